"""Everything a report needs, read once from a run directory's results store: jobs with their
conditions in words, per-frame and per-encounter rows, detections, pictures, the components'
provenance and the campaign file. Bad input (no store, an unreadable one, a store with no
finished job) is refused with a DataError naming the file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avrobust.campaign.store import DB_NAME, ResultsStore
from avrobust.core.errors import DataError
from avrobust.scenario.campaign import Campaign


def component_label(ref: dict) -> str:
    """A short, unique-enough name for a model, attack or defence: the registry name, with the
    stem of its file (a patch, or a model's weights) or its parameters (two patch attacks, or a
    clean and an adversarially trained classifier, in one campaign differ by their files)."""
    params = ref.get("params") or {}
    if not params:
        return ref["name"]
    for key in ("file", "weights"):
        if key in params and len(params) == 1 + ("surface" in params):
            return f"{ref['name']}:{Path(params[key]).stem}"
    return f"{ref['name']}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"


def light_of(sun_altitude: float) -> str:
    """day (sun at least 15 degrees up), low sun (dawn, dusk) or night (below the horizon)."""
    if sun_altitude < 0:
        return "night"
    return "low sun" if sun_altitude < 15 else "day"


def distance_bin(d: float, width: float = 10.0) -> str:
    lo = math.floor(d / width) * width
    return f"{lo:g}-{lo + width:g} m"


@dataclass
class JobInfo:
    id: str
    index: int
    scenario: str
    conditions: dict[str, Any]
    model: str
    attack: str
    defence: str
    attack_ref: dict
    weather: str
    light: str
    seed: int
    status: str
    error: str | None
    duration: float | None
    frames: int | None

    @property
    def conditions_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.conditions.items()) or "as in the scenario"

    @property
    def cell(self) -> tuple:
        """What clean and attacked jobs share: scenario, conditions, model, defence."""
        return (
            self.scenario,
            json.dumps(self.conditions, sort_keys=True),
            self.model,
            self.defence,
        )


@dataclass
class FrameRow:
    job: JobInfo
    frame: int
    target: str
    distance: float
    bearing: float
    visible: bool
    correct: bool | None
    predicted: str | None
    score: float | None


@dataclass
class EncounterRow:
    job: JobInfo
    target: str
    frames_in_window: int
    frames_visible: int
    frames_failed: int
    longest_failure: int
    failed: bool | None


@dataclass
class AlarmRow:
    """An alarm a consistency check raised in a frame of a job."""

    job: JobInfo
    frame: int
    check: str
    kind: str
    detail: str


@dataclass
class RunData:
    run_dir: Path
    campaign_name: str
    campaign_text: str
    campaign: Campaign | None
    versions: dict[str, str]
    created: float | None
    jobs: list[JobInfo]
    frames: list[FrameRow]
    encounters: list[EncounterRow]
    detections: list[tuple[JobInfo, int, str, dict, dict]]
    pictures: dict[tuple[str, str], tuple[int, Path]]  # (job id, role) -> (frame, file)
    components: dict[str, dict] = field(default_factory=dict)  # job id -> provenance
    alarms: list[AlarmRow] = field(default_factory=list)

    @property
    def done(self) -> list[JobInfo]:
        return [j for j in self.jobs if j.status == "done"]

    def job(self, job_id: str) -> JobInfo:
        return next(j for j in self.jobs if j.id == job_id)


def _weather_name(spec: dict) -> tuple[str, float]:
    from avrobust.scenario.schema import WeatherSpec

    w = WeatherSpec.model_validate(spec)
    changed = {k for k, v in w.model_dump(exclude={"preset"}).items() if v is not None}
    name = w.preset if not changed - {"sun_altitude_angle"} else f"{w.preset} (modified)"
    return name, w.to_weather().sun_altitude_angle


def load_run(run_dir: str | Path) -> RunData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError("no such run directory", file=run_dir)
    if not (run_dir / DB_NAME).is_file():
        raise DataError(
            f"no results store ({DB_NAME}) here; is this the --out folder of 'avrobust run'?",
            file=run_dir,
        )
    with ResultsStore(run_dir, create=False) as store:
        try:
            return _read(store, run_dir)
        except DataError:
            raise
        except Exception as exc:  # a damaged row: name the store, never a bare traceback
            raise DataError(
                f"the results store could not be read ({type(exc).__name__}: {exc})",
                file=store.path,
            ) from None


def _read(store: ResultsStore, run_dir: Path) -> RunData:
    name = store.meta("campaign")
    text = store.campaign_text()
    if name is None or text is None:
        raise DataError(
            "the results store holds no campaign (was the run started?)", file=store.path
        )
    campaign = None
    try:
        import yaml

        campaign = Campaign.model_validate(yaml.safe_load(text))
    except Exception:  # an old or hand-edited campaign: the report still shows its text
        campaign = None
    versions = json.loads(
        store.query("SELECT versions FROM campaigns ORDER BY registered DESC LIMIT 1")[0][0]
    )
    created = store.meta("created")
    jobs = []
    for row in store.query(
        "SELECT id, idx, scenario, conditions, model, attack, defence, spec, status, error, "
        "duration, frames FROM jobs ORDER BY idx"
    ):
        jid, idx, scenario, cond, model, attack, defence, spec, status, error, dur, nf = row
        spec = json.loads(spec)
        weather, sun = _weather_name(spec["scenario"]["weather"])
        attack_ref = json.loads(attack)
        jobs.append(
            JobInfo(
                jid,
                idx,
                scenario,
                json.loads(cond),
                component_label(json.loads(model)),
                component_label(attack_ref),
                component_label(json.loads(defence)),
                attack_ref,
                weather,
                light_of(sun),
                int(spec["seed"]),
                status,
                error,
                dur,
                nf,
            )
        )
    if not jobs:
        raise DataError("the run has no jobs", file=store.path)
    if not any(j.status == "done" for j in jobs):
        raise DataError(
            "no job of this run has finished; run the campaign (again) before reporting",
            file=store.path,
        )
    by_id = {j.id: j for j in jobs}
    frames = [
        FrameRow(by_id[r[0]], r[1], r[2], r[3], r[4], bool(r[5]), _opt_bool(r[6]), r[7], r[8])
        for r in store.query(
            "SELECT job_id, frame, target, distance, bearing, visible, correct, predicted, score "
            "FROM frames ORDER BY job_id, frame, target"
        )
    ]
    encounters = [
        EncounterRow(by_id[r[0]], r[1], r[2], r[3], r[4], r[5], _opt_bool(r[6]))
        for r in store.query(
            "SELECT job_id, target, frames_in_window, frames_visible, frames_failed, "
            "longest_failure, failed FROM encounters ORDER BY job_id, target"
        )
    ]
    detections = [
        (by_id[r[0]], r[1], r[2], json.loads(r[3]), json.loads(r[4]))
        for r in store.query("SELECT job_id, frame, kind, truth, predicted FROM detections")
    ]
    pictures = {
        (r[0], r[2]): (r[1], run_dir / r[3])
        for r in store.query("SELECT job_id, frame, role, path FROM pictures")
        if (run_dir / r[3]).is_file()
    }
    components = {
        r[0]: json.loads(r[1]) for r in store.query("SELECT job_id, provenance FROM components")
    }
    alarms = [
        AlarmRow(by_id[r[0]], r[1], r[2], r[3], r[4])
        for r in store.query('SELECT job_id, frame, "check", kind, detail FROM alarms')
    ]
    return RunData(
        run_dir,
        name,
        text,
        campaign,
        versions,
        float(created) if created else None,
        jobs,
        frames,
        encounters,
        detections,
        pictures,
        components,
        alarms,
    )


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)
