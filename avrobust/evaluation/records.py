"""What a job produces: one row per frame and target, one row per target encounter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


class _Row:
    """A record that is one row of a results table."""

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def row(self) -> tuple:
        return tuple(asdict(self).values())


@dataclass
class FrameRecord(_Row):
    """One target in one frame.

    ``detected``, ``predicted``, ``correct`` and ``score`` are None when the job has no model.
    """

    job_id: str
    frame: int
    target: str
    time: float
    distance: float
    bearing: float
    visible: bool
    visible_fraction: float
    box_height: float
    surface_pixels: int
    lidar_points: int
    detected: bool | None = None
    predicted: str | None = None
    correct: bool | None = None
    score: float | None = None


@dataclass
class EncounterRecord(_Row):
    """A target over the whole drive-by.

    ``failed`` is None when the job has no model (or none that perceives the target's
    category); otherwise true when the model never got the target right in ``min_frames``
    consecutive frames inside the encounter window (it was never reliably recognised).
    """

    job_id: str
    target: str
    frames_in_window: int
    frames_visible: int
    frames_failed: int
    longest_failure: int
    failed: bool | None


@dataclass
class JobOutcome:
    job_id: str
    frames: list[FrameRecord] = field(default_factory=list)
    encounters: list[EncounterRecord] = field(default_factory=list)
    duration: float = 0.0
    num_frames: int = 0
    error: str | None = None
