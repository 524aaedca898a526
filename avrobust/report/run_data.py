"""Everything a report needs, read once from a run directory's results store: jobs with their
conditions in words, per-frame and per-encounter rows, detections, pictures, the components'
provenance and the campaign file. Bad input (no store, an unreadable one, a store with no
finished job) is refused with a DataError naming the file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from avrobust.campaign.records import (
    AlarmRecord,
    DriveRecord,
    EncounterRecord,
    FrameRecord,
    JobRecord,
)
from avrobust.campaign.store import DB_NAME, ResultsStore
from avrobust.core.errors import DataError
from avrobust.scenario.campaign import Campaign


def component_label(ref: dict) -> str:
    """A short, unique-enough name for a model, attack or defence: the registry name, with the
    stem of its file (a patch, or a model's weights) or its parameters (two patch attacks, or a
    clean and an adversarially trained classifier, in one campaign differ by their files)."""
    if ref.get("control") is not None:  # the attack's matched control: its label, marked
        plain = {k: v for k, v in ref.items() if k != "control"}
        return control_label(component_label(plain), ref["control"])
    params = ref.get("params") or {}
    if not params:
        return ref["name"]
    for key in ("file", "weights", "classifier", "detector"):
        if key in params and len(params) == 1 + ("surface" in params):
            return f"{ref['name']}:{Path(params[key]).stem}"
    return f"{ref['name']}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"


def control_label(attack: str, control: str) -> str:
    """How the report names ``attack``'s matched ``control``."""
    return f"{attack} [control: {control}]"


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


# The report's rows are the store's records with the job they belong to (in words) attached.
@dataclass
class FrameRow(FrameRecord):
    job: JobInfo = field(kw_only=True, repr=False, compare=False)


@dataclass
class EncounterRow(EncounterRecord):
    job: JobInfo = field(kw_only=True, repr=False, compare=False)


@dataclass
class AlarmRow(AlarmRecord):
    """An alarm a consistency check raised in a frame of a job."""

    job: JobInfo = field(kw_only=True, repr=False, compare=False)


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
    drives: list[tuple[JobInfo, DriveRecord]] = field(default_factory=list)  # closed loop

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
    registered = store.campaign()
    if name is None or registered is None:
        raise DataError(
            "the results store holds no campaign (was the run started?)", file=store.path
        )
    campaign = None
    try:
        from avrobust.scenario.loader import parse_yaml

        # The same limits as a campaign file: a store may come from someone else.
        campaign = Campaign.model_validate(parse_yaml(registered.text, store.path)[0])
    except Exception:  # an old or hand-edited campaign: the report still shows its text
        campaign = None
    created = store.meta("created")
    jobs = [_job_info(j) for j in store.jobs()]
    if not jobs:
        raise DataError("the run has no jobs", file=store.path)
    if not any(j.status == "done" for j in jobs):
        raise DataError(
            "no job of this run has finished; run the campaign (again) before reporting",
            file=store.path,
        )
    by_id = {j.id: j for j in jobs}
    return RunData(
        run_dir,
        name,
        registered.text,
        campaign,
        registered.versions,
        float(created) if created else None,
        jobs,
        [FrameRow(**_fields(r), job=by_id[r.job_id]) for r in store.frames()],
        [EncounterRow(**_fields(r), job=by_id[r.job_id]) for r in store.encounters()],
        [
            (by_id[d.job_id], d.frame, d.kind, json.loads(d.truth), json.loads(d.predicted))
            for d in store.detections()
        ],
        {
            (p.job_id, p.role): (p.frame, run_dir / p.path)
            for p in store.pictures()
            if (run_dir / p.path).is_file()
        },
        store.components(),
        [AlarmRow(**_fields(r), job=by_id[r.job_id]) for r in store.alarms()],
        [(by_id[d.job_id], d) for d in store.drives()],
    )


def _job_info(j: JobRecord) -> JobInfo:
    weather, sun = _weather_name(j.spec["scenario"]["weather"])
    return JobInfo(
        j.id,
        j.idx,
        j.scenario,
        j.conditions,
        component_label(j.model),
        component_label(j.attack),
        component_label(j.defence),
        j.attack,
        weather,
        light_of(sun),
        int(j.spec["seed"]),
        j.status,
        j.error,
        j.duration,
        j.frames,
    )


def _fields(record) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}
