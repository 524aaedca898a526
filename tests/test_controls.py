"""Matched controls: exactly the attack's mask and placement, scored on exactly its views."""

import math

import pytest
import torch

from avrobust.attacks.controls import (
    STANDARD,
    GreyFill,
    MeanColour,
    OtherTexture,
    PrintableNoise,
    control,
)
from avrobust.attacks.masks import sticker_mask
from avrobust.attacks.printability import load_palette
from avrobust.core.errors import ConfigError, DataError
from avrobust.core.patch import Patch


def _sticker(seed=0, mask="rp2_bars"):
    g = torch.Generator().manual_seed(seed)
    m = sticker_mask(mask)
    return Patch(
        torch.rand((3, *m.shape[-2:]), generator=g),
        m,
        (0.9, 0.9),
        "s",
        load_palette(),
        {"attack": "sign-sticker", "target": "speed_limit_80"},
    )


@pytest.mark.parametrize("make", [GreyFill(), MeanColour(), PrintableNoise(seed=3)])
def test_a_control_changes_the_texture_only_under_the_mask(make):
    patch = _sticker()
    c = make(patch)
    inside = patch.mask > 0
    assert torch.equal(c.mask, patch.mask)  # pixel-exact: the same mask
    assert c.size_m == patch.size_m
    assert torch.equal(c.texture[:, ~inside[0]], patch.texture[:, ~inside[0]])
    assert not torch.equal(c.texture[:, inside[0]], patch.texture[:, inside[0]])
    assert c.provenance["control"]["kind"] == make.name
    assert c.provenance["control"]["of"] == patch.sha256()
    assert c.provenance["target"] == "speed_limit_80"  # still judged by the attack's goal


def test_fills_are_what_they_say():
    patch = _sticker()
    inside = patch.mask[0] > 0
    grey = GreyFill()(patch).texture[:, inside]
    assert torch.all(grey == 0.5)
    mean = MeanColour()(patch).texture[:, inside]
    want = (patch.texture * patch.mask).sum((1, 2)) / patch.mask.sum()
    assert torch.allclose(mean, want[:, None].expand_as(mean))
    noise = PrintableNoise(seed=1)(patch).texture[:, inside].T
    # every texel is a palette colour, in cells of 8 texels on a 256-texel texture
    d = torch.cdist(noise, patch.palette).min(1).values
    assert float(d.max()) < 1e-6
    assert PrintableNoise(seed=1)(patch).provenance["control"]["cell_texels"] == 8
    assert torch.equal(PrintableNoise(seed=1)(patch).texture, PrintableNoise(seed=1)(patch).texture)
    assert not torch.equal(
        PrintableNoise(seed=1)(patch).texture, PrintableNoise(seed=2)(patch).texture
    )
    # without a palette: uniform colours
    bare = Patch(patch.texture, patch.mask, patch.size_m)
    assert PrintableNoise()(bare).texture.std() > 0.2


def test_another_target_texture_must_share_the_mask(tmp_path):
    patch, other = _sticker(0), _sticker(1)
    other.provenance["target"] = "yield"
    other.save(tmp_path / "o.patch")
    c = OtherTexture.load(tmp_path / "o.patch")
    assert c.name == "other:yield"
    made = c(patch)
    inside = patch.mask[0] > 0
    assert torch.equal(made.texture[:, inside], other.texture[:, inside])
    assert torch.equal(made.mask, patch.mask)
    _sticker(2, "centre_patch").save(tmp_path / "m.patch")
    with pytest.raises(DataError, match=r"m\.patch: mask"):
        control(f"file:{tmp_path / 'm.patch'}")(patch)
    with pytest.raises(ConfigError, match="grey, mean, noise"):
        control("pink")
    assert [c.name for c in STANDARD] == ["grey", "mean", "noise"]


def test_a_control_equal_to_the_attack_scores_exactly_the_same():
    """The controls run through the attack's own evaluation path on its own views: a patch that
    is already flat grey and its grey control must agree view for view."""
    from avrobust.core.sensors import CameraSpec
    from avrobust.evaluation.sign_attack import Sweep, evaluate_sign_patch
    from avrobust.models.adapters import load_classifier
    from avrobust.models.weights import ASSETS

    patch = GreyFill()(_sticker(mask="centre_patch"))
    clf = load_classifier(ASSETS / "sign_classifier.pt")
    cam = CameraSpec(320, 240, math.radians(45), noise_stddev=0.0)
    sweep = Sweep(
        distances=(8.0, 14.0), angles=(0.0, 25.0), weathers=("ClearNoon",), laterals=(0.0,)
    )
    ev = evaluate_sign_patch(
        patch, clf, "urban_stop", "stop_sign", "stop", None, sweep, cam, controls=STANDARD
    )
    assert set(ev.controls) == {"grey", "mean", "noise"}
    assert (
        ev.controls["grey"]["k"] == ev.rendered["k"]
        and ev.controls["grey"]["n"] == ev.clean_correct
    )
    assert ev.controls["mean"]["k"] == ev.rendered["k"]  # the mean of flat grey is grey
    assert ev.rendered["n"] == ev.clean_correct and ev.rendered["low"] <= ev.rendered_success
    eff = ev.effect
    assert eff["difference"] <= 0 and not eff["distinguishable"]


def test_lidar_effects_pair_each_method_with_the_random_control_on_the_same_cases():
    from avrobust.evaluation.lidar_attack import LidarAttackRow, LidarAttackRun

    def row(method, frame, ok, budget=60):
        return LidarAttackRow(
            "lidar", "spoof", method, budget, 5.0, "ClearNoon", 0.0, frame, ok, 0.0, budget, 0.1
        )

    run = LidarAttackRun({})
    # twelve frames: white-box wins all, random only the first two; frame 12 has no control
    run.rows = [row("random", f, f < 2) for f in range(12)]
    run.rows += [row("white-box", f, True) for f in range(13)]
    run.rows += [row("black-box", f, f < 3) for f in range(12)]
    eff = run.effects()
    assert set(eff) == {"lidar/white-box/60", "lidar/black-box/60"}
    wb = eff["lidar/white-box/60"]
    assert (wb["attack"]["k"], wb["attack"]["n"], wb["control_rate"]["k"]) == (12, 12, 2)
    assert wb["p"] == pytest.approx(2 * 0.5**10) and wb["distinguishable"]
    bb = eff["lidar/black-box/60"]
    assert bb["p"] == pytest.approx(1.0) and not bb["distinguishable"]
    assert run.rate(method="white-box").n == 13
    assert "effects" in run.to_dict()


def _control_campaign(tmp_path, controls, attacks=None):
    import yaml

    from avrobust.models.weights import ASSETS

    sticker = {"file": str(ASSETS.parent / "patches/stop_to_80.patch"), "surface": "stop_sign"}
    campaign = {
        "name": "controls_test",
        "scenarios": ["urban_stop"],
        "sweep": {"weather": ["ClearNoon"], "distance": [14, 20]},
        "models": [{"name": "sign-classifier"}],
        "attacks": attacks or [{"name": "none"}, {"name": "patch", "params": sticker}],
        "controls": controls,
        "episode": {"frames": 3, "rate": 10},
        "sensors": {"camera": {"width": 480, "height": 360, "fov": 90}, "lidar": None},
        "target_width": 0.3,
        "seed": 2,
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign))
    return path


def test_a_campaign_plans_controls_beside_their_attack_and_refuses_unknown_ones(tmp_path):
    from avrobust.campaign.run import plan, width_plan
    from avrobust.core.errors import ConfigError

    jobs = plan(_control_campaign(tmp_path, ["grey", "mean"]))
    attacks = [j.attack for j in jobs if j.conditions["distance"] == 14]
    assert [a.get("control") for a in attacks] == [None, None, "grey", "mean"]
    assert attacks[2]["params"] == attacks[1]["params"]  # the same file and surface
    # Plain attacks keep the ids they had before controls existed.
    assert len({j.id for j in jobs}) == len(jobs) == 8
    assert plan(_control_campaign(tmp_path, []))[1].id == jobs[1].id
    w = width_plan(jobs, 0.3)
    assert (w.per_cell, w.enough) == (2, False) and w.needed > 2
    with pytest.raises(ConfigError, match=r"controls\[0\].*random"):
        plan(_control_campaign(tmp_path, ["random"]))
    bad = [{"name": "none"}, {"name": "lidar-spoof", "control": "grey"}]
    with pytest.raises(ConfigError, match=r"attacks\[1\]\.control.*allowed: random"):
        plan(_control_campaign(tmp_path, [], bad))


def test_a_campaign_runs_and_reports_an_attack_beside_its_control(tmp_path):
    from avrobust.campaign.run import run_campaign
    from avrobust.report.build import write_report

    path = _control_campaign(tmp_path, ["grey"])
    summary = run_campaign(path, tmp_path / "run")
    assert summary.done == 6 and summary.failed == 0
    files = write_report(tmp_path / "run", tmp_path / "out", pdf=False)
    tables = files.document.tables()
    assert "over its strongest control (grey" in files.html.read_text()  # the summary says it
    matrix = tables["matrix"]
    assert matrix.header[2:] == ["patch:stop_to_80", "patch:stop_to_80 [control: grey]"]
    rows = tables["controls"].rows
    assert len(rows) == 1 and rows[0][2] == "patch:stop_to_80" and rows[0][4] == "grey"
    assert rows[0][3] == matrix.rows[0][2].split(";")[0] + ";" + matrix.rows[0][2].split(";")[1]
    # The verdict judges the attack alone, not its control.
    assert all("control" not in " ".join(map(str, r)) for r in tables["verdict"].rows)
