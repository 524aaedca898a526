"""The report's numbers, each defined once so that the summary, the tables and the figures agree.

Attack success is measured on *paired* frames: an attacked job's frame counts when the same
frame of the same scenario, conditions, model and defence without any attack was judged right
(the RP2 convention: an attack cannot be credited with errors the stack makes anyway); it is a
success when the attacked stack then gets the target wrong. When the campaign has no clean
job for a cell, every judged attacked frame counts (the report says so). Drive-bys pair the
same way: an attacked drive-by counts when the clean one recognised the target.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from avrobust.core import stats
from avrobust.report.run_data import (
    EncounterRow,
    FrameRow,
    RunData,
    component_label,
    distance_bin,
)

CLEAN = "none"


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n``; ``value`` is None when ``n`` is 0. ``clusters``: ``(k_i, n_i)`` per
    drive-by when the trials are frames (correlated within a drive-by); the 95% interval then
    counts drive-bys, not frames, as far as the frames move together
    (:func:`avrobust.core.stats.clustered_rate`). Without clusters the trials are independent
    (drive-bys, or jobs) and the interval is Wilson's."""

    k: int
    n: int
    clusters: tuple[tuple[int, int], ...] = field(default=(), compare=False)

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> stats.Rate:
        if self.clusters:
            return stats.clustered_rate(self.clusters)
        return stats.rate(self.k, self.n)

    def text(self) -> str:
        if not self.n:
            return "n/a (0)"
        ci = self.interval
        return f"{self.k / self.n:.0%} ({self.k}/{self.n}; {100 * ci.low:.0f}-{100 * ci.high:.0f}%)"

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.k + other.k, self.n + other.n, self.clusters + other.clusters)


@dataclass
class Outcome:
    """One judged attacked frame (or drive-by): ``success`` when the attack made the stack get
    it wrong; ``paired`` when a clean partner exists (and was right)."""

    row: FrameRow | EncounterRow
    success: bool
    paired: bool


def _frame_key(r: FrameRow) -> tuple:
    return (*r.job.cell, r.target, r.frame)


def _encounter_key(r: EncounterRow) -> tuple:
    return (*r.job.cell, r.target)


def _paired(rows, key, wrong, clean_ok) -> list[Outcome]:
    """Attacked rows that count (see the module notes): ``wrong(row)`` is None when the row
    is not judged; ``clean_ok(row)`` is the clean twin's verdict (None when not judged)."""
    clean = {key(r): clean_ok(r) for r in rows if r.job.attack == CLEAN}
    out = []
    for r in rows:
        if r.job.attack == CLEAN or wrong(r) is None:
            continue
        partner = clean.get(key(r))
        if partner is None:  # no clean twin, or one that was not judged: every frame counts
            out.append(Outcome(r, wrong(r), False))
        elif partner:
            out.append(Outcome(r, wrong(r), True))
    return out


def is_control(job) -> bool:
    """Whether a job ran an attack's matched control rather than an attack."""
    return job.attack_ref.get("control") is not None


def attack_outcomes(data: RunData, with_controls: bool = False) -> list[Outcome]:
    """Every attacked frame that counts for attack success; matched controls only when
    ``with_controls`` (the matrix shows them beside their attacks; the verdict, the
    breakdowns and the examples judge attacks alone)."""
    rows = data.frames if with_controls else [r for r in data.frames if not is_control(r.job)]
    return _paired(
        rows,
        _frame_key,
        lambda r: None if r.correct is None else not r.correct,
        lambda r: r.correct,
    )


def encounter_outcomes(data: RunData, with_controls: bool = False) -> list[Outcome]:
    """Every attacked drive-by that counts: failed under attack, recognised when clean
    (matched controls only when ``with_controls``)."""
    rows = data.encounters
    if not with_controls:
        rows = [r for r in rows if not is_control(r.job)]
    return _paired(
        rows,
        _encounter_key,
        lambda r: None if r.failed is None else bool(r.failed),
        lambda r: None if r.failed is None else not r.failed,
    )


def clean_misses(data: RunData) -> list[Outcome]:
    """Clean frames as outcomes whose ``success`` is a miss (the stack got the target wrong)."""
    return [
        Outcome(r, not r.correct, True)
        for r in data.frames
        if r.job.attack == CLEAN and r.correct is not None
    ]


def _clustered(pairs: Iterable[tuple[str, bool]]) -> Rate:
    """A :class:`Rate` of ``(job id, success)`` trials, clustered by job (drive-by)."""
    by_job: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for job, ok in pairs:
        b = by_job[job]
        b[0] += bool(ok)
        b[1] += 1
    k = sum(b[0] for b in by_job.values())
    n = sum(b[1] for b in by_job.values())
    return Rate(k, n, tuple((b[0], b[1]) for b in by_job.values()))


def rate(outcomes: Iterable[Outcome]) -> Rate:
    """Success of outcomes; frames of one job are one cluster for the interval."""
    return _clustered((o.row.job.id, o.success) for o in outcomes)


def group(outcomes: Iterable[Outcome], key: Callable[[Outcome], object]) -> dict[object, Rate]:
    """Rates per value of ``key``, in first-seen order."""
    buckets: dict[object, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        buckets[key(o)].append(o)
    return {k: rate(os) for k, os in buckets.items()}


def recall(rows: Iterable[FrameRow]) -> Rate:
    """Frames in which the stack got the target right, of those judged."""
    return _clustered((r.job.id, r.correct) for r in rows if r.correct is not None)


# Condition factors the report breaks results down by: name -> value of an outcome's row.
FACTORS: dict[str, Callable[[FrameRow | EncounterRow], object]] = {
    "scenario": lambda r: r.job.scenario,
    "weather": lambda r: r.job.weather,
    "light": lambda r: r.job.light,
    "distance": lambda r: _distance_bin(r),
    "angle": lambda r: r.job.conditions.get("angle"),
    "sensor noise": lambda r: r.job.conditions.get("sensor_noise"),
}


def _distance_bin(r) -> str | None:
    d = getattr(r, "distance", None)
    if d is None:  # an encounter: its sweep distance, when the campaign swept it
        d = r.job.conditions.get("distance")
        return None if d is None else f"start {d:g} m"
    return distance_bin(d)


def stacks(data: RunData) -> list[tuple[str, str]]:
    """(model, defence) pairs in campaign order: the stacks the verdict judges."""
    seen: dict[tuple[str, str], None] = {}
    for j in data.done:
        if j.model != "none":
            seen[(j.model, j.defence)] = None
    return list(seen)


def attacks(data: RunData, with_controls: bool = False) -> list[str]:
    """Attack labels in campaign order (matched controls too when ``with_controls``)."""
    seen: dict[str, None] = {}
    for j in data.jobs:
        if j.attack != CLEAN and (with_controls or not is_control(j)):
            seen[j.attack] = None
    return list(seen)


def controls(data: RunData) -> dict[str, dict[str, str]]:
    """Attack label -> {control name: the control's label}, for the attacks of the run that
    ran beside their matched controls."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for j in data.jobs:
        c = j.attack_ref.get("control")
        if c is not None:
            plain = {k: v for k, v in j.attack_ref.items() if k != "control"}
            out[component_label(plain)][c] = j.attack
    return dict(out)


def control_effect(
    rates: dict[tuple, Rate], stack: tuple[str, str], attack: str, labels: dict[str, str]
) -> stats.Effect | None:
    """The attack's success on ``stack`` beside its strongest control's (None when either is
    missing); ``rates`` keyed ``(model, defence, attack label)``."""
    mine = rates.get((*stack, attack))
    theirs = {c: rates[(*stack, lab)] for c, lab in labels.items() if (*stack, lab) in rates}
    theirs = {c: r for c, r in theirs.items() if r.n}
    if mine is None or not mine.n or not theirs:
        return None
    return stats.strongest(mine.interval, {c: r.interval for c, r in theirs.items()})


def paired_drive_bys(
    outcomes: list[Outcome], model: str, attack: str, defences: tuple[str, str]
) -> tuple[list[bool], list[bool]]:
    """Failed-or-not of the same attacked drive-bys (scenario, conditions, target) under two
    defences, for McNemar's paired test; only drive-bys that count under both.
    ``outcomes``: :func:`encounter_outcomes` of the run."""
    by: dict[str, dict[tuple, bool]] = {d: {} for d in defences}
    for o in outcomes:
        j = o.row.job
        if j.model == model and j.attack == attack and j.defence in by:
            key = (j.scenario, json.dumps(j.conditions, sort_keys=True), o.row.target)
            by[j.defence][key] = o.success
    both = [k for k in by[defences[0]] if k in by[defences[1]]]
    return [by[defences[0]][k] for k in both], [by[defences[1]][k] for k in both]
