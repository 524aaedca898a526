"""The report's numbers, each defined once so that the summary, the tables and the figures agree.

Attack success is measured on *paired* frames: an attacked job's frame counts when the same
frame of the same scenario, conditions, model and defence without any attack was judged right
(the RP2 convention: an attack cannot be credited with errors the stack makes anyway); it is a
success when the attacked stack then gets the target wrong. When the campaign has no clean
job for a cell, every judged attacked frame counts (the report says so). Drive-bys pair the
same way: an attacked drive-by counts when the clean one recognised the target.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from avrobust.report.run_data import EncounterRow, FrameRow, RunData, distance_bin

CLEAN = "none"


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n``; ``value`` is None when ``n`` is 0."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    def text(self) -> str:
        return "n/a (0)" if not self.n else f"{self.k / self.n:.0%} ({self.k}/{self.n})"

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.k + other.k, self.n + other.n)


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


def attack_outcomes(data: RunData) -> list[Outcome]:
    """Every attacked frame that counts for attack success."""
    return _paired(
        data.frames,
        _frame_key,
        lambda r: None if r.correct is None else not r.correct,
        lambda r: r.correct,
    )


def encounter_outcomes(data: RunData) -> list[Outcome]:
    """Every attacked drive-by that counts: failed under attack, recognised when clean."""
    return _paired(
        data.encounters,
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


def rate(outcomes: Iterable[Outcome]) -> Rate:
    k = n = 0
    for o in outcomes:
        n += 1
        k += o.success
    return Rate(k, n)


def group(outcomes: Iterable[Outcome], key: Callable[[Outcome], object]) -> dict[object, Rate]:
    """Rates per value of ``key``, in first-seen order."""
    buckets: dict[object, list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        b = buckets[key(o)]
        b[0] += o.success
        b[1] += 1
    return {k: Rate(k_, n) for k, (k_, n) in buckets.items()}


def recall(rows: Iterable[FrameRow]) -> Rate:
    """Frames in which the stack got the target right, of those judged."""
    k = n = 0
    for r in rows:
        if r.correct is None:
            continue
        n += 1
        k += bool(r.correct)
    return Rate(k, n)


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


def attacks(data: RunData) -> list[str]:
    seen: dict[str, None] = {}
    for j in data.jobs:
        if j.attack != CLEAN:
            seen[j.attack] = None
    return list(seen)
