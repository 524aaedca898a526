"""The results store's records: what a job produces (one row per frame and target, one per
target encounter, detections, alarms, pictures) and what the store keeps of each job and
campaign. Each table of the store has exactly the columns of one record
(``tests/test_store_read.py`` checks), and the store's readers return these types."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar


class _Row:
    """A record that is one row of a results table."""

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def row(self) -> tuple:
        return tuple(asdict(self).values())

    #: Fields the store keeps as JSON text.
    _JSON: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_row(cls, row: tuple):
        """The record of a stored row: SQLite keeps booleans as 0/1 (they come back bool) and
        dictionaries as JSON text (they come back decoded)."""
        values = dict(zip(cls.columns(), row, strict=True))
        for f in fields(cls):
            if str(f.type).startswith("bool") and values[f.name] is not None:
                values[f.name] = bool(values[f.name])
        for key in cls._JSON:
            values[key] = json.loads(values[key])
        return cls(**values)


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
class DetectionRecord(_Row):
    """A frame's ground truth and the model's output, as JSON, for mAP after the run.

    ``truth``: ``{"boxes": [...], "categories": [...], "visible_fraction": [...],
    "distance": [...]}`` (2D boxes for ``kind="2d"``, 3D ``x y z l w h yaw`` for ``"3d"``);
    ``predicted``: ``{"boxes": [...], "scores": [...], "labels": [names]}``.
    """

    job_id: str
    frame: int
    kind: str
    truth: str
    predicted: str


@dataclass
class AlarmRecord(_Row):
    """An alarm a defence raised in a frame (a consistency check flagging what it saw):
    ``check`` the defence's name, ``kind`` a short fixed name (``vanished``, ``class_flip``,
    ...), ``detail`` for people."""

    job_id: str
    frame: int
    check: str
    kind: str
    detail: str


@dataclass
class PictureRecord(_Row):
    """Where a job's example frame was written: ``path`` relative to the run directory."""

    job_id: str
    frame: int
    role: str
    path: str


@dataclass
class JobRecord(_Row):
    """A job as the store keeps it: the campaign's description (``conditions``, ``model``,
    ``attack`` and ``defence`` references, the whole ``spec``, decoded from JSON) and its state
    (``status`` pending, done or failed; the last ``error``; ``attempts``; when it
    ``finished``; its ``duration`` in seconds and the ``frames`` it rendered)."""

    id: str
    idx: int
    scenario: str
    conditions: dict
    model: dict
    attack: dict
    defence: dict
    spec: dict
    status: str
    error: str | None
    attempts: int
    finished: float | None
    duration: float | None
    frames: int | None

    _JSON: ClassVar[tuple[str, ...]] = ("conditions", "model", "attack", "defence", "spec")


@dataclass
class CampaignRecord(_Row):
    """A campaign file as registered with a run (the latest registration is the one in force):
    when, its name, its YAML text and the software versions of the registering process."""

    registered: float
    name: str
    text: str
    versions: dict

    _JSON: ClassVar[tuple[str, ...]] = ("versions",)


# A stored trace decompresses to at most this many bytes: a hostile store cannot exhaust memory.
MAX_TRACE_BYTES = 64 * 1024 * 1024


@dataclass
class DriveRecord(_Row):
    """A closed-loop job's drive: ``result`` (the criteria, :class:`DriveResult` as plain
    data), ``trace`` (every step and the actors around it, :class:`Trace` as plain data; kept
    zlib-compressed), ``from_model`` (the categories the model gave the policy; the rest came
    from ground truth)."""

    job_id: str
    result: dict
    trace: dict
    from_model: list

    _JSON: ClassVar[tuple[str, ...]] = ("result", "from_model")

    def row(self) -> tuple:
        import zlib

        packed = zlib.compress(json.dumps(self.trace, separators=(",", ":")).encode(), 6)
        return (self.job_id, json.dumps(self.result), packed, json.dumps(self.from_model))

    @classmethod
    def from_row(cls, row: tuple) -> DriveRecord:
        import zlib

        from avrobust.core.errors import DataError

        job_id, result, packed, from_model = row
        inflate = zlib.decompressobj()
        try:
            text = inflate.decompress(packed, MAX_TRACE_BYTES)
        except zlib.error as exc:
            raise DataError(f"job {job_id}: damaged trace ({exc})", field="drives.trace") from None
        if inflate.unconsumed_tail:
            raise DataError(
                f"job {job_id}: trace larger than {MAX_TRACE_BYTES // 2**20} MiB",
                field="drives.trace",
            )
        return cls(job_id, json.loads(result), json.loads(text), json.loads(from_model))


@dataclass
class Picture:
    """An example frame with boxes drawn, JPEG-encoded, kept as evidence for the report.

    ``role``: ``window`` (the middle of the first target's encounter window, the same frame in
    every job of a scenario so clean and attacked line up) or ``failure`` (the first frame in
    that window where the model got the target wrong)."""

    frame: int
    role: str
    jpeg: bytes


@dataclass
class JobOutcome:
    """What a job returns to the run, across processes and machines (plain data and bytes).

    ``components``: provenance of the model, attack and defence as they were when the job
    ran (weights and patch hashes), for the report's reproducibility appendix."""

    job_id: str
    frames: list[FrameRecord] = field(default_factory=list)
    encounters: list[EncounterRecord] = field(default_factory=list)
    detections: list[DetectionRecord] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    alarms: list[AlarmRecord] = field(default_factory=list)
    components: dict = field(default_factory=dict)
    drive: DriveRecord | None = None  # closed-loop jobs
    duration: float = 0.0
    num_frames: int = 0
    error: str | None = None
