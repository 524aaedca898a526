"""``avrobust demo`` in miniature: the same stages and code paths as the full demo (attack
optimisation, campaign, report, print files), with two optimisation steps and one drive-by per
job; a rerun resumes instead of starting again."""

from __future__ import annotations

import pytest

from avrobust.core.patch import Patch
from avrobust.demo import DemoConfig, Stages, run_demo
from avrobust.scenario.campaign import load_campaign

pytestmark = pytest.mark.slow

TINY = DemoConfig(
    sticker_steps=2,
    hide_steps=2,
    train_distances=(15.0,),
    train_angles=(0.0,),
    train_weathers=("ClearNoon",),
    weathers=("ClearNoon",),
    distances=(20.0,),
    frames=3,
    workers=1,
    camera=(320, 240),
    models=("sign-classifier",),
)


class Recorder(Stages):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.advanced: dict[str, int] = {}

    def start(self, name, total):
        self.started.append(name)

    def advance(self, name, n=1, info=""):
        assert name in self.started, f"{name} advanced before it started"
        self.advanced[name] = self.advanced.get(name, 0) + n


def test_demo_end_to_end_and_resume(tmp_path):
    stages = Recorder()
    res = run_demo(tmp_path / "demo", TINY, stages)
    # Progress all the way: every stage started and moved.
    for name in ("sticker: optimise", "hiding patch: optimise", "campaign: jobs"):
        assert stages.advanced.get(name, 0) > 0, name
    # The patches: real patch files that record how they were made and against what.
    sticker = Patch.load(res.patches["stop_to_80_sticker"])
    hiding = Patch.load(res.patches["hide_stop_poster"])
    assert sticker.provenance["target"] == "speed_limit_80"
    assert sticker.provenance["victim"]["model"] == "sign-classifier"
    assert hiding.provenance["goal"] == "hide" and hiding.provenance["category"] == "traffic_sign"
    assert sticker.size_m == pytest.approx((0.9, 0.9), abs=0.01)
    for pdf in res.prints.values():
        assert pdf.read_bytes().startswith(b"%PDF")
    # The campaign file it ran is a valid campaign with both patches and acceptance criteria.
    campaign = load_campaign(res.campaign)
    files = {a.params.get("file") for a in campaign.attacks}
    assert {str(p.resolve()) for p in res.patches.values()} <= files
    assert campaign.acceptance
    # 1 condition x 1 model x 3 attacks; the report's verdict covers the model.
    assert res.report_html.is_file() and res.report_pdf.is_file()
    assert {row[0] for row in res.verdict} == {"sign-classifier / none"}
    html = res.report_html.read_text()
    assert "patch:stop_to_80_sticker" in html and "patch:hide_stop_poster" in html
    assert "patch:stop_to_80_sticker [control: grey]" in html  # beside its matched control

    # A rerun reuses the patches and skips the finished jobs.
    before = {k: p.stat().st_mtime_ns for k, p in res.patches.items()}
    again = Recorder()
    run_demo(tmp_path / "demo", TINY, again)
    assert {k: p.stat().st_mtime_ns for k, p in res.patches.items()} == before
    assert "sticker: optimise" not in again.started
    assert again.advanced.get("campaign: jobs", 0) == 0
