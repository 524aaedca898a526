"""Campaigns: stable expansion, conditions, the results store, resume after a crash, executors."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avrobust.campaign.run import plan, run_campaign
from avrobust.campaign.store import ResultsStore
from avrobust.core.errors import ConfigError, DataError
from avrobust.scenario.campaign import apply_conditions, expand, load_campaign
from avrobust.scenario.library import library_dir, load_scenario

TINY = """\
name: tiny
scenarios: [urban_stop, rural_speed_limit]
sweep:
  weather: [ClearNoon, Fog]
  distance: [15, 30]
episode: {{frames: {frames}, rate: 5}}
sensors:
  camera: {{width: 64, height: 48, fov: 60}}
  lidar: {{channels: 8, points_per_second: 20480}}
seed: 3
"""


def _campaign(tmp_path, frames=2, extra=""):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY.format(frames=frames) + extra)
    return p


def test_expansion_is_stable_and_complete(tmp_path):
    path = _campaign(tmp_path)
    jobs = plan(path)
    assert len(jobs) == 2 * 2 * 2
    assert [j.id for j in jobs] == [j.id for j in plan(path)]
    assert len({j.id for j in jobs}) == len(jobs)
    assert len({j.seed for j in jobs}) == len(jobs)
    # Another interpreter with another hash seed derives the same ids.
    code = (
        "import json,sys; from avrobust.campaign.run import plan; "
        "print(json.dumps([j.id for j in plan(sys.argv[1])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout) == [j.id for j in jobs]


def test_ids_change_with_content(tmp_path):
    a = plan(_campaign(tmp_path, frames=2))
    b = plan(_campaign(tmp_path, frames=3))
    assert not {j.id for j in a} & {j.id for j in b}


def test_conditions_move_the_ego_and_turn_the_sign():
    sc = load_scenario("urban_stop")
    out = apply_conditions(
        sc,
        {
            "distance": 25.0,
            "angle": 20.0,
            "weather": "HardRainNoon",
            "time_of_day": "dusk",
            "sensor_noise": 2.0,
        },
    )
    stop = next(s for s in out.signs if s.name == "stop_1")
    assert out.ego.start == pytest.approx(stop.s - 25.0)
    assert stop.yaw == 20.0
    assert out.weather.to_weather().precipitation == 100.0
    assert out.weather.to_weather().sun_altitude_angle == 2.0
    assert out.sensors.camera.noise_stddev == pytest.approx(2 * sc.sensors.camera.noise_stddev)


def test_impossible_conditions_are_config_errors():
    with pytest.raises(ConfigError, match="cannot start 500"):
        apply_conditions(load_scenario("urban_stop"), {"distance": 500.0})
    with pytest.raises(ConfigError, match="not one"):
        apply_conditions(load_scenario("lead_vehicle"), {"angle": 10.0})


def test_a_vehicle_target_too_near_the_start_moves_ahead():
    base = load_scenario("lead_vehicle")  # lead at s = 20, ego from 0
    near = apply_conditions(base, {"distance": 10.0})
    assert near.ego.start == 10.0 and near.vehicles[0].s == 20.0
    far = apply_conditions(base, {"distance": 30.0})
    assert far.ego.start == 0.0 and far.vehicles[0].s == 30.0


def test_campaign_file_errors_name_the_field(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: c\nscenarios: [urban_stop]\nsweep:\n  weather: [Sunny]\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4: sweep\.weather: unknown preset 'Sunny'"):
        load_campaign(p)
    p.write_text("name: c\nscenarios: [urban_stop]\nmodels: [{name: yolo}]\n")
    jobs = expand(load_campaign(p))
    from avrobust.campaign.runner import run_job

    outcome = run_job(jobs[0])
    assert "unknown model 'yolo'" in outcome.error
    # Planning (and running) refuse it before any job, naming the file, field and names.
    with pytest.raises(ConfigError, match=r"c\.yaml: models\[0\]\.name: unknown model 'yolo'"):
        plan(p)
    with pytest.raises(ConfigError, match=r"allowed: .*camera-detector"):
        run_campaign(p, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written
    p.write_text(
        "name: c\nscenarios: [urban_stop]\nattacks: [{name: lidar-spoof, params: {distanc: 5}}]\n"
    )
    with pytest.raises(ConfigError, match=r"attacks\[0\]\.params: bad parameters.*distanc"):
        plan(p)


def test_run_stores_results_and_resume_skips_done_jobs(tmp_path):
    path = _campaign(tmp_path)
    out = tmp_path / "run"
    first = run_campaign(path, out)
    assert (first.done, first.failed, first.skipped) == (8, 0, 0)
    with ResultsStore(out, create=False) as store:
        assert store.counts()["done"] == 8
        (n,) = store.query("SELECT COUNT(*) FROM frames")[0]
        assert n == 8 * 2  # two frames, one target each
        assert store.campaign_text() == path.read_text()
        enc = store.query("SELECT frames_in_window, failed FROM encounters")
        assert len(enc) == 8 and all(failed is None for _, failed in enc)
    again = run_campaign(path, out)
    assert (again.done, again.skipped) == (0, 8)


def test_failed_jobs_are_recorded_and_retried(tmp_path):
    path = _campaign(tmp_path)
    out = tmp_path / "run"
    summary = run_campaign(path, out, timeout=1e-6, retries=1)
    assert summary.failed == 8 and summary.done == 0
    with ResultsStore(out, create=False) as store:
        rows = store.query("SELECT status, attempts, error FROM jobs")
    assert all(s == "failed" and a == 2 and "JobTimeout" in e for s, a, e in rows)
    # A later run without the limit finishes them.
    assert run_campaign(path, out).done == 8


def test_store_refuses_other_campaigns_and_bad_files(tmp_path):
    out = tmp_path / "run"
    with ResultsStore(out) as store:
        store.register("a", "name: a", [])
        with pytest.raises(DataError, match="holds campaign 'a'"):
            store.register("b", "name: b", [])
        store.set_meta("schema_version", "99")
    with pytest.raises(DataError, match="schema version 99"):
        ResultsStore(out)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="not a readable results store"):
        ResultsStore(junk)
    with pytest.raises(DataError, match="no results store here"):
        ResultsStore(tmp_path / "empty", create=False)


def test_export_csv_and_parquet(tmp_path):
    path = _campaign(tmp_path)
    out = tmp_path / "run"
    run_campaign(path, out)
    with ResultsStore(out, create=False) as store:
        csv_files = store.export("csv")
        pq_files = store.export("parquet")
    import csv

    import pyarrow.parquet as pq

    rows = list(csv.DictReader(open(csv_files[1])))
    assert len(rows) == 16 and "surface_pixels" in rows[0]
    assert pq.read_table(pq_files[1]).num_rows == 16


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates_or_gaps(tmp_path):
    # Eight frames a job: after the second job is done, the six left take far longer than the
    # 20 ms between looks, however fast the host, so the kill always lands mid-run.
    path = _campaign(tmp_path, frames=8)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "avrobust.cli", "run", str(path), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "results.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and _done_jobs(db) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with ResultsStore(out, create=False) as store:
        interrupted = store.counts()
    assert 2 <= interrupted["done"] < 8
    summary = run_campaign(path, out)
    assert summary.skipped == interrupted["done"]
    with ResultsStore(out, create=False) as store:
        assert store.counts()["done"] == 8
        per_job = store.query("SELECT job_id, COUNT(*) FROM frames GROUP BY job_id")
        assert len(per_job) == 8 and all(n == 8 for _, n in per_job)


@pytest.mark.slow
def test_process_pool_and_ray_give_identical_results(tmp_path):
    path = _campaign(tmp_path)
    results = {}
    for name, kw in {
        "local": {},
        "pool": {"workers": 2},
        "ray": {"executor": "ray", "workers": 2},
    }.items():
        out = tmp_path / name
        summary = run_campaign(path, out, **kw)
        assert summary.done == 8, name
        with ResultsStore(out, create=False) as store:
            results[name] = (
                store.query(
                    "SELECT job_id, frame, target, time, distance, bearing, visible, "
                    "visible_fraction, box_height, surface_pixels, lidar_points "
                    "FROM frames ORDER BY job_id, frame, target"
                ),
                store.query("SELECT * FROM encounters ORDER BY job_id, target"),
            )
    assert results["local"] == results["pool"] == results["ray"]


@pytest.mark.slow
def test_a_crashed_worker_fails_only_its_job(tmp_path, monkeypatch):
    from avrobust.campaign import executors

    jobs = plan(_campaign(tmp_path))[:3]
    crash = jobs[1].id
    monkeypatch.setenv("AVROBUST_TEST_CRASH_JOB", crash)
    outcomes = {o.job_id: o for o in executors.run_local(jobs, workers=2)}
    assert set(outcomes) == {j.id for j in jobs}
    assert "WorkerCrashed" in outcomes[crash].error
    assert all(outcomes[j.id].error is None for j in jobs if j.id != crash)


def test_campaign_with_the_sign_classifier_records_verdicts(tmp_path):
    p = tmp_path / "reading.yaml"
    p.write_text(
        "name: reading\nscenarios: [urban_stop]\nsweep: {distance: [12]}\n"
        "models: [{name: sign-classifier}]\nepisode: {frames: 3, rate: 10}\n"
        "sensors: {camera: {width: 320, height: 240, fov: 45}, lidar: null}\n"
    )
    out = tmp_path / "run"
    assert run_campaign(p, out).done == 1
    with ResultsStore(out, create=False) as store:
        rows = store.query(
            "SELECT detected, predicted, correct, score FROM frames WHERE target='stop_1'"
        )
        enc = store.query("SELECT frames_in_window, failed FROM encounters")
    assert len(rows) == 3
    assert all(d == 1 and pred == "stop" and c == 1 and s > 0.5 for d, pred, c, s in rows)
    assert enc == [(3, 0)]


def test_encounters_need_one_stable_reading():
    from avrobust.campaign.records import FrameRecord
    from avrobust.campaign.runner import encounter_records

    sc = load_scenario("urban_stop")  # stop_1: window 40..5 m, min_frames 3

    def rows(pattern: str) -> list[FrameRecord]:
        return [
            FrameRecord(
                "j",
                i,
                "stop_1",
                0.1 * i,
                35.0 - i,
                0.0,
                True,
                1.0,
                20.0,
                100,
                3,
                c == "1",
                "stop" if c == "1" else "yield",
                c == "1",
                0.9,
            )
            for i, c in enumerate(pattern)
        ]

    # Misread far away, then three right in a row: recognised.
    assert encounter_records("j", sc, rows("000000111"), True)[0].failed is False
    # Never three right in a row: the encounter fails, however many frames were right.
    (e,) = encounter_records("j", sc, rows("110110110"), True)
    assert e.failed is True and e.frames_failed == 3 and e.longest_failure == 1
    assert encounter_records("j", sc, rows("111"), False)[0].failed is None


def test_patch_attack_in_a_campaign_changes_the_verdicts(tmp_path):
    import torch

    from avrobust.core.patch import Patch

    # A "patch" that paints the whole stop-sign face as a no-entry sign: a physical attack the
    # classifier must fall for, rendered by the backend.
    from avrobust.sim.signs import draw_face

    face = torch.from_numpy(draw_face("no_entry", 256))
    patch_file = Patch(face, torch.ones(1, 256, 256), (0.9, 0.9), "fake_no_entry").save(
        tmp_path / "fake.patch"
    )
    p = tmp_path / "attacked.yaml"
    p.write_text(
        "name: attacked\nscenarios: [urban_stop]\nsweep: {distance: [12]}\n"
        "models: [{name: sign-classifier}]\n"
        f"attacks: [{{name: none}}, {{name: patch, params: {{file: '{patch_file}', "
        "surface: stop_sign}}]\n"
        "episode: {frames: 3, rate: 10}\n"
        "sensors: {camera: {width: 320, height: 240, fov: 45}, lidar: null}\n"
    )
    out = tmp_path / "run"
    assert run_campaign(p, out).done == 2
    with ResultsStore(out, create=False) as store:
        rows = store.query(
            "SELECT json_extract(j.attack, '$.name'), f.predicted FROM frames f "
            "JOIN jobs j ON j.id = f.job_id WHERE f.target = 'stop_1'"
        )
    clean = {pred for name, pred in rows if name == "none"}
    attacked = {pred for name, pred in rows if name == "patch"}
    assert clean == {"stop"} and attacked == {"no_entry"}


@pytest.mark.parametrize(
    "path", sorted((library_dir() / "campaigns").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_campaign_expands_and_names_known_components(path):
    from pathlib import Path

    from avrobust.campaign import registry

    campaign = load_campaign(path)
    jobs = expand(campaign)
    assert jobs
    for job in jobs[:50]:
        for kind, ref in (("model", job.model), ("attack", job.attack), ("defence", job.defence)):
            assert ref["name"] in registry.names(kind), (kind, ref["name"])
        f = job.attack.get("params", {}).get("file")
        if f:
            assert (Path(__file__).resolve().parents[1] / f).is_file(), f


def test_a_second_run_on_the_same_directory_is_refused_while_the_first_holds_it(tmp_path):
    """Two runs on one run directory would both run every job; the second stops, naming the
    first. The lock goes with its holder, so a later run goes ahead."""
    import os

    from avrobust.campaign.lock import run_lock
    from avrobust.campaign.run import run_campaign
    from avrobust.core.errors import ConfigError

    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        "name: lock\nscenarios: [urban_stop]\nepisode: {frames: 1, rate: 10}\n"
        "sensors: {camera: {width: 64, height: 48, fov: 90}, lidar: null}\n"
    )
    with run_lock(tmp_path / "run"):
        with pytest.raises(ConfigError, match=rf"another avrobust run .*pid {os.getpid()}"):
            run_campaign(campaign, tmp_path / "run")
    assert run_campaign(campaign, tmp_path / "run").done == 1


def _done_jobs(db: Path) -> int:
    """Finished jobs in a store another process is writing (0 while it cannot be read)."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM jobs WHERE status='done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_parallel_run_leaves_no_worker_and_resumes_to_the_same_results(tmp_path, sig):
    """SIGTERM stops like Ctrl-C (exit 130, says how to resume); after either signal no worker
    is alive 5 s later, and the resumed run stores what an uninterrupted one stores."""
    path = _campaign(tmp_path, frames=8)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "avrobust.cli", "run", str(path), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    db = out / "results.sqlite"
    deadline = time.monotonic() + 180
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = sorted(set(workers) | set(_children(proc.pid)))
        if _done_jobs(db) >= 1 and len(workers) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    text, _ = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130, text
        assert "run the same command again to resume" in " ".join(text.split())
    gone = time.monotonic() + 5
    while time.monotonic() < gone and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a worker outlived its run"

    run_campaign(path, out)  # resume
    straight = tmp_path / "straight"
    run_campaign(path, straight)
    query = (
        "SELECT job_id, frame, target, time, distance, bearing, visible, visible_fraction, "
        "box_height, surface_pixels, lidar_points FROM frames ORDER BY job_id, frame, target"
    )
    with ResultsStore(out, create=False) as a, ResultsStore(straight, create=False) as b:
        assert a.counts()["done"] == 8
        assert a.query(query) == b.query(query)


def test_runs_list_names_a_damaged_store_and_lists_the_rest(tmp_path):
    from typer.testing import CliRunner

    from avrobust.cli import app

    run_campaign(_campaign(tmp_path), tmp_path / "runs" / "good")
    bad = tmp_path / "runs" / "bad"
    bad.mkdir()
    (bad / "results.sqlite").write_bytes(b"not sqlite at all" * 64)
    result = CliRunner().invoke(app, ["runs", "list", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "good" in text and "unreadable:" in text and "bad" in text
    result = CliRunner().invoke(app, ["runs", "list", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and "no such folder" in str(result.exception)
