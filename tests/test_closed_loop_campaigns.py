"""Closed-loop campaigns: ``closed_loop: true`` drives every job, the store keeps each drive's
trajectory and criteria with the job's rows (whole or absent), a killed run resumes to the
trajectories an uninterrupted run stores, and the oracle is refused in open loop."""

import signal
import subprocess
import sys
import time

import pytest

from avrobust.campaign.run import plan, run_campaign
from avrobust.campaign.store import ResultsStore
from avrobust.core.errors import ConfigError
from avrobust.driving.criteria import evaluate
from avrobust.driving.trace import Trace
from tests.test_campaigns import _done_jobs

CAMPAIGN = """
name: drives
scenarios: [stop_cross_traffic, pedestrian_dart]
closed_loop: {closed}
sweep: {{weather: [ClearNoon, WetNoon, HardRainNoon]}}
models: [{{name: oracle}}]
"""


def _write(tmp_path, closed="true", extra=""):
    p = tmp_path / "drives.yaml"
    p.write_text(CAMPAIGN.format(closed=closed) + extra)
    return p


def test_closed_loop_jobs_have_their_own_ids_and_the_oracle_needs_closed_loop(tmp_path):
    jobs = plan(_write(tmp_path))
    assert len(jobs) == 6 and all(j.closed_loop for j in jobs)
    with pytest.raises(ConfigError, match="closed_loop"):
        plan(_write(tmp_path, closed="false"))
    # The same stack open-loop is another job; open-loop ids are as before the option existed.
    open_path = tmp_path / "open.yaml"
    open_path.write_text(CAMPAIGN.format(closed="false").replace("oracle", "none"))
    closed_path = tmp_path / "closed.yaml"
    closed_path.write_text(CAMPAIGN.format(closed="true").replace("oracle", "none"))
    assert {j.id for j in plan(open_path)}.isdisjoint({j.id for j in plan(closed_path)})
    assert all(not j.closed_loop for j in plan(open_path))


def test_a_closed_loop_campaign_stores_each_drive(tmp_path):
    out = tmp_path / "run"
    summary = run_campaign(_write(tmp_path), out)
    assert summary.done == 6
    with ResultsStore(out, create=False) as store:
        drives = {d.job_id: d for d in store.drives()}
        jobs = store.jobs("done")
        frames = store.frames()
    assert set(drives) == {j.id for j in jobs}
    for job in jobs:
        d = drives[job.id]
        trace = Trace.from_dict(d.trace)
        assert job.frames == len(trace.steps)  # one rendered frame per step
        assert d.result["collisions"] == [] and d.result["route_completion"] == 1.0
        # The stored criteria are the trace's: a report can re-score it.
        assert evaluate(trace, job.spec["scenario"]["driving"]["goal"]).to_dict() == d.result
        if job.scenario == "stop_cross_traffic":
            assert [s["stopped"] for s in d.result["stops"]] == [True]
    # Frame rows describe the targets as the car saw them where it drove.
    assert {f.target for f in frames} == {"stop_1", "walker"}


def test_a_killed_closed_loop_run_resumes_to_whole_identical_drives(tmp_path):
    path = _write(tmp_path)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "avrobust.cli", "run", str(path), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "results.sqlite"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and _done_jobs(db) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with ResultsStore(out, create=False) as store:
        done = store.counts()["done"]
        assert len(store.drives()) == done  # no drive without its job's status, or the reverse
    assert 2 <= done < 6
    run_campaign(path, out)
    straight = tmp_path / "straight"
    run_campaign(path, straight)
    with ResultsStore(out, create=False) as a, ResultsStore(straight, create=False) as b:
        resumed = {d.job_id: (d.result, d.trace) for d in a.drives()}
        fresh = {d.job_id: (d.result, d.trace) for d in b.drives()}
    assert resumed == fresh and len(fresh) == 6


BLIND = """
name: blind
scenarios: [stop_cross_traffic]
closed_loop: true
sweep: {weather: [ClearNoon, WetNoon]}
models: [{name: blind-signs}, {name: oracle}]
attacks: [{name: none}]
sensors: {camera: {width: 64, height: 48}, lidar: null}
"""


def test_the_report_leads_with_what_the_car_did(tmp_path):
    # A sign recogniser that never reports a sign: its car runs the stop and hits the crossing
    # car; the oracle beside it does not. The report's vehicle-level section says so.
    from avrobust.campaign.registry import register
    from avrobust.core.components import ModelBase
    from avrobust.core.detections import Detections
    from avrobust.report.build import build_document
    from avrobust.report.run_data import load_run

    class BlindSigns(ModelBase):
        name = "blind-signs"
        categories = ("traffic_sign",)

        def __call__(self, frame):
            return Detections.empty("2d", ("stop",))

    register("model", "blind-signs", "test: sees no sign")(lambda: BlindSigns())
    path = tmp_path / "blind.yaml"
    path.write_text(BLIND)
    out = tmp_path / "run"
    assert run_campaign(path, out).done == 4
    doc = build_document(load_run(out))
    assert [s.key for s in doc.sections][:2] == ["summary", "driving"]
    table = doc.tables()["driving_outcomes"]
    col = table.header.index
    rows = {r[col("model")]: r for r in table.rows}
    assert "scenario" not in table.header  # one scenario: named in the caption
    assert "scenario: stop_cross_traffic" in table.caption
    assert rows["blind-signs"][col("ran the stop sign")].startswith("2/2")
    assert rows["blind-signs"][col("collided")].startswith("2/2")
    assert rows["oracle"][col("ran the stop sign")].startswith("0/2")
    assert rows["oracle"][col("driving score")] == "1.00"
    figures = [b for b in doc.section("driving").blocks if b.__class__.__name__ == "Figure"]
    assert all(f.png[:4] == b"\x89PNG" for f in figures)
    # Each failed drive: from above, over time, and the camera where perception missed.
    kinds = sorted(f.key.split("_")[0] for f in figures)
    assert kinds == ["cam", "cam", "td", "td", "tl", "tl"]


def test_the_paired_table_sets_each_attack_against_its_clean_twin_and_its_control():
    # Six cells: the clean stack stops in five; the sticker makes all six run the stop, its
    # mean-colour control four. Against clean: 5 of the 5 that stopped; against the control:
    # two drives failed only under the sticker, none only under the control.
    from avrobust.driving.criteria import DriveResult, StopCheck
    from avrobust.report.run_data import JobInfo, component_label
    from avrobust.report.sections_driving import _paired

    def job(k, ref):
        # As the report reads a job: the attack's label made from its reference.
        cond = {"weather": "ClearNoon", "distance": 60 + k}
        attack = component_label(ref)
        return JobInfo(
            f"{attack}{k}", k, "stop_cross_traffic", cond, "sign-pipeline", attack, "none",
            ref, "ClearNoon", "day", 0, "done", None, 1.0, 10,
        )  # fmt: skip

    def drive(stopped):
        return DriveResult(stops=[StopCheck("stop_1", stopped, 0.0 if stopped else 5.0, None)])

    sticker, control = "patch:stop_to_80", "patch:stop_to_80 [control: mean]"
    ref = {"name": "patch", "params": {"file": "p/stop_to_80.patch", "surface": "stop_sign"}}
    drives = [(job(k, {"name": "none", "params": {}}), drive(k != 0)) for k in range(6)]
    drives += [(job(k, ref), drive(False)) for k in range(6)]
    drives += [(job(k, {**ref, "control": "mean"}), drive(k in (1, 2))) for k in range(6)]
    table = _paired(drives)
    col = table.header.index
    rows = {r[col("attack")]: r for r in table.rows}
    assert rows[sticker][col("ran the stop where clean stopped")].startswith("5/5")
    beyond = rows[sticker][-1]
    assert beyond.startswith("mean: +2 / -0") and "p 0.5" in beyond
    assert rows[control][col("ran the stop where clean stopped")].startswith("3/5")
    assert rows[control][-1] == "-"


def test_vehicle_level_failures_are_triggering_conditions():
    # The clean stack runs the stop in fog in 5 of 6 drives and nowhere else in 12: fog is
    # named for the vehicle-level failure; the oracle's drives are not judged.
    from types import SimpleNamespace

    from avrobust.campaign.records import DriveRecord
    from avrobust.driving.criteria import DriveResult, StopCheck
    from avrobust.report.run_data import JobInfo
    from avrobust.report.sections_text import _vehicle_pools, triggering_conditions

    drives = []
    for k in range(18):
        weather = ("Fog", "ClearNoon", "CloudyNoon")[k % 3]
        for model in ("sign-pipeline", "oracle"):
            j = JobInfo(
                f"{model}{k}", k, "stop_cross_traffic", {"weather": weather}, model, "none",
                "none", {}, weather, "day", 0, "done", None, 1.0, 10,
            )  # fmt: skip
            ran = model != "oracle" and weather == "Fog" and k != 0
            r = DriveResult(stops=[StopCheck("stop_1", not ran, 3.0 if ran else 0.0, None)])
            drives.append((j, DriveRecord(j.id, r.to_dict(), {}, [])))
    data = SimpleNamespace(drives=drives)
    [(_, clean), (_, attacked)] = _vehicle_pools(data)
    assert len(clean) == 18 and attacked == [] and sum(o.success for o in clean) == 5
    found = [
        t
        for t in triggering_conditions(
            SimpleNamespace(drives=drives, frames=[], encounters=[], done=[], jobs=[])
        )
        if t["what"].startswith("drives")
    ]
    assert [(t["factor"], t["value"]) for t in found] == [("weather", "Fog")]
    assert found[0]["inside"].text().startswith("83% (5/6")


def test_a_phantom_fails_a_drive_by_the_hard_braking_it_adds():
    from avrobust.driving.criteria import DriveResult
    from avrobust.report.run_data import JobInfo, component_label
    from avrobust.report.sections_driving import _paired

    def job(k, ref):
        attack = component_label(ref)
        return JobInfo(
            f"{attack}{k}", k, "empty_road", {"weather": str(k)}, "lidar-detector", attack,
            "none", ref, "ClearNoon", "day", 0, "done", None, 1.0, 10,
        )  # fmt: skip

    spoof = "lidar-spoof"
    ref = {"name": spoof, "params": {}}
    drives = [(job(k, {"name": "none"}), DriveResult(hard_brakes=int(k == 0))) for k in range(4)]
    drives += [(job(k, ref), DriveResult(hard_brakes=1)) for k in range(4)]
    drives += [(job(k, {**ref, "control": "random"}), DriveResult()) for k in range(4)]
    table = _paired(drives)
    row = next(r for r in table.rows if r[table.header.index("attack")] == spoof)
    assert row[table.header.index("hard braking added")] == "3"  # not the clean one's own
    assert row[-1].startswith("random: +3 / -0")
