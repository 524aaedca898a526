"""The results store's read API: each table has the columns of its record, what a job wrote comes
back as the same records, and no module of the package outside the store writes SQL."""

from __future__ import annotations

import ast
import json

import pytest

from avrobust.campaign.records import (
    AlarmRecord,
    CampaignRecord,
    DetectionRecord,
    EncounterRecord,
    FrameRecord,
    JobOutcome,
    JobRecord,
    Picture,
    PictureRecord,
)
from avrobust.campaign.store import ResultsStore, outcome_summary
from avrobust.scenario.campaign import Campaign, expand
from tests.test_layers import PACKAGE

TABLES = {
    "jobs": JobRecord,
    "frames": FrameRecord,
    "encounters": EncounterRecord,
    "detections": DetectionRecord,
    "pictures": PictureRecord,
    "alarms": AlarmRecord,
    "campaigns": CampaignRecord,
}
SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "PRAGMA ")


def _campaign() -> Campaign:
    return Campaign.model_validate(
        {
            "name": "store_read",
            "scenarios": ["urban_stop"],
            "sweep": {"weather": ["ClearNoon", "Fog"]},
            "models": [{"name": "sign-classifier"}],
            "attacks": [{"name": "none"}],
            "episode": {"frames": 2, "rate": 10},
            "seed": 3,
        }
    )


def _outcome(job_id: str) -> JobOutcome:
    return JobOutcome(
        job_id=job_id,
        frames=[
            FrameRecord(job_id, 0, "stop_0", 0.0, 20.5, -3.0, True, 1.0, 31.0, 900, 12),
            FrameRecord(
                job_id,
                1,
                "stop_0",
                0.1,
                19.5,
                -3.2,
                False,
                0.4,
                33.0,
                410,
                9,
                True,
                "yield",
                False,
                0.7,
            ),
        ],
        encounters=[EncounterRecord(job_id, "stop_0", 2, 1, 1, 1, True)],
        detections=[DetectionRecord(job_id, 1, "2d", json.dumps({"boxes": []}), "{}")],
        pictures=[Picture(1, "failure", b"\xff\xd8not really a jpeg")],
        alarms=[AlarmRecord(job_id, 1, "temporal", "class_flip", "stop -> yield")],
        components={"model": {"name": "sign-classifier"}},
        duration=1.5,
        num_frames=2,
    )


@pytest.fixture
def store(tmp_path):
    jobs = expand(_campaign())
    with ResultsStore(tmp_path / "run") as s:
        s.register("store_read", "name: store_read\n", jobs)
        s.record(_outcome(jobs[0].id))
        s.record(JobOutcome(job_id=jobs[1].id, error="Traceback ...\nValueError: bad"))
        yield s, jobs


@pytest.mark.parametrize("table", sorted(TABLES))
def test_each_table_has_exactly_its_records_columns(store, table):
    s, _ = store
    assert s.columns(table) == TABLES[table].columns()


def test_what_a_job_wrote_comes_back_as_the_same_records(store):
    s, jobs = store
    written = _outcome(jobs[0].id)
    assert s.frames() == written.frames
    assert isinstance(s.frames()[1].correct, bool) and isinstance(s.frames()[0].visible, bool)
    assert s.encounters() == written.encounters
    assert s.detections() == written.detections
    assert s.alarms() == written.alarms
    (pic,) = s.pictures()
    assert (pic.job_id, pic.frame, pic.role) == (jobs[0].id, 1, "failure")
    assert (s.run_dir / pic.path).read_bytes() == b"\xff\xd8not really a jpeg"
    assert s.components() == {jobs[0].id: written.components}


def test_jobs_come_back_decoded_with_their_state(store):
    s, jobs = store
    stored = s.jobs()
    assert [j.id for j in stored] == [j.id for j in jobs]
    assert [j.status for j in stored] == ["done", "failed"]
    assert stored[0].model == jobs[0].model and stored[0].conditions == jobs[0].conditions
    assert stored[0].spec == json.loads(jobs[0].to_json())
    assert (stored[0].frames, stored[0].duration, stored[0].attempts) == (2, 1.5, 1)
    (failed,) = s.jobs("failed")
    assert failed.error.endswith("ValueError: bad") and failed.frames is None
    assert outcome_summary(s) == {
        "jobs": {"pending": 0, "done": 1, "failed": 1, "total": 2},
        "duration_s": 1.5,
        "frames_rendered": 2,
    }
    entry = s.campaign()
    assert entry.name == "store_read" and entry.text == "name: store_read\n"
    assert "torch" in entry.versions


def _sql_strings(source: str) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.lstrip().upper().startswith(SQL_WORDS)
    ]


def test_no_sql_outside_the_store():
    found = {
        str(p.relative_to(PACKAGE)): strings
        for p in PACKAGE.rglob("*.py")
        if p.name != "store.py" and (strings := _sql_strings(p.read_text(encoding="utf-8")))
    }
    assert found == {}
    # The check sees what it is for: a planted query is found.
    assert _sql_strings('rows = store.query("SELECT id FROM jobs")\n') == ["SELECT id FROM jobs"]
