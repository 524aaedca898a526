"""Running one Job: start its backend, apply its attack, run its (defended) model on every frame,
and measure each target per frame and per encounter."""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field

import torch

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.factory import make_backend
from avrobust.campaign import registry
from avrobust.campaign.records import AlarmRecord, EncounterRecord, FrameRecord, JobOutcome
from avrobust.core.components import (
    CampaignAttack,
    CampaignDefence,
    CampaignModel,
    MadeTarget,
    Perception,
)
from avrobust.core.detections import Detections
from avrobust.core.errors import AvrobustError
from avrobust.core.frame import Frame
from avrobust.core.thresholds import PHANTOM_RADIUS_M
from avrobust.models.matching import Match, best_match
from avrobust.scenario.campaign import Job
from avrobust.scenario.schema import Scenario


class JobTimeout(AvrobustError):
    """A job ran past its time limit."""


def _surfaces_on(scenario: Scenario) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in scenario.surfaces:
        if s.object:
            out.setdefault(s.object, []).append(s.name)
    return out


def frame_records(
    job_id: str,
    frame: Frame,
    targets: dict[str, int],
    expect: dict[str, str | None],
    surfaces: dict[str, list[str]],
    detections: Detections | None,
    with_model: bool,
    categories: tuple[str, ...] | None = None,
    by_category: bool = False,
) -> list[FrameRecord]:
    """Rows for the targets in ``frame``; the model's verdict only for targets whose category
    the model perceives (``categories``; None: all). A model that names categories (a
    detector: ``by_category``) is right when it names the target's category; one that names
    classes (a sign recogniser) must name the target's ``expect`` class."""
    truth = frame.truth
    ids = truth.ids.tolist()
    out = []
    for name, inst in targets.items():
        if inst not in ids:
            continue  # beyond the ground-truth range this frame
        i = ids.index(inst)
        c = truth.boxes_3d.center[i]
        box = truth.boxes_2d.xyxy[i]
        visible = bool(box[2] > box[0])
        px = sum(
            frame.surfaces[s].visible_pixels for s in surfaces.get(name, ()) if s in frame.surfaces
        )
        rec = FrameRecord(
            job_id,
            frame.index,
            name,
            round(frame.timestamp, 6),
            float(torch.linalg.vector_norm(c[:2])),
            math.degrees(math.atan2(float(c[1]), float(c[0]))),
            visible,
            float(truth.visible_fraction[i]),
            float(box[3] - box[1]) if visible else 0.0,
            int(px),
            int(truth.num_points[i]),
        )
        if with_model and (categories is None or truth.categories[i] in categories):
            match = best_match(detections, box, truth.boxes_3d[i])
            want = truth.categories[i] if by_category else expect.get(name)
            rec.detected = match is not None
            rec.predicted = None if match is None else match.name
            rec.correct = match is not None and (want is None or match.name == want)
            rec.score = None if match is None else match.score
        out.append(rec)
    return out


def _reports(dets: Detections | None, target: MadeTarget, calibration) -> Match | None:
    """The detection reporting an attack-made target: one of its category centred within
    ``PHANTOM_RADIUS_M`` of it (3D detections; the most confident) or overlapping its projection
    (2D), or None."""
    if dets is None or len(dets) == 0:
        return None
    if dets.kind != "3d":
        b2, valid = target.box.project(calibration)
        if not bool(valid[0]):
            return None
        return best_match(dets, b2.xyxy[0], by="score", category=target.category)
    names = [dets.class_names[int(k)] for k in dets.labels]
    centres = dets.box3d().center[:, :2].float()
    near = torch.linalg.vector_norm(centres - target.box.center[0, :2].float(), dim=1)
    hit = [i for i, n in enumerate(names) if n == target.category and near[i] <= PHANTOM_RADIUS_M]
    if not hit:
        return None
    best = max(hit, key=lambda i: float(dets.scores[i]))
    return Match(best, names[best], float(dets.scores[best]))


def made_target_record(
    job_id: str,
    frame: Frame,
    target: MadeTarget,
    detections: Detections | None,
    with_model: bool,
    categories: tuple[str, ...] | None = None,
) -> FrameRecord:
    """The row of a target the attack made: the model is right when it does not report it."""
    c = target.box.center[0]
    rec = FrameRecord(
        job_id,
        frame.index,
        target.name,
        round(frame.timestamp, 6),
        float(torch.linalg.vector_norm(c[:2])),
        math.degrees(math.atan2(float(c[1]), float(c[0]))),
        True,
        1.0,
        0.0,
        0,
        target.points,
    )
    if with_model and (categories is None or target.category in categories):
        match = _reports(detections, target, frame.calibration)
        rec.detected = match is not None
        rec.predicted = None if match is None else match.name
        rec.score = None if match is None else match.score
        rec.correct = match is None
    return rec


def _made_encounter(job_id: str, name: str, min_frames: int, rows, with_model: bool):
    """An attack-made target over the drive-by: it fails when the model reports it in
    ``min_frames`` consecutive frames (a planner brakes for a tracked obstacle)."""
    window = sorted((r for r in rows if r.target == name), key=lambda r: r.frame)
    judged = [r for r in window if r.correct is not None]
    failures, longest, _ = _runs(judged)
    failed = (longest >= min_frames) if with_model and judged else None
    return EncounterRecord(job_id, name, len(window), len(window), failures, longest, failed)


def _runs(judged: list[FrameRecord]) -> tuple[int, int, int]:
    """Over judged frames in order: the frames wrong, the longest run of wrong frames and the
    longest run of right ones."""
    longest_fail = best_ok = run_fail = run_ok = 0
    for r in judged:
        run_fail = 0 if r.correct else run_fail + 1
        run_ok = run_ok + 1 if r.correct else 0
        longest_fail, best_ok = max(longest_fail, run_fail), max(best_ok, run_ok)
    return sum(not r.correct for r in judged), longest_fail, best_ok


def encounter_records(
    job_id: str,
    scenario: Scenario,
    rows: list[FrameRecord],
    with_model: bool,
    made: dict[str, int] | None = None,
) -> list[EncounterRecord]:
    """Per target: the stack *recognises* it when the model gets it right in at least
    ``min_frames`` consecutive frames while it is between ``far`` and ``near`` metres away;
    the encounter fails when that never happens (a recogniser that remembers a sign once read,
    as deployed ones do, needs one stable reading). ``made``: the attack-made targets seen in
    the job, by name, with the consecutive reported frames that fail each."""
    out = []
    for t in scenario.targets:
        enc = t.encounter
        window = sorted(
            (r for r in rows if r.target == t.object and enc.near <= r.distance <= enc.far),
            key=lambda r: r.frame,
        )
        judged = [r for r in window if r.correct is not None]
        failures, longest_fail, best_ok = _runs(judged)
        out.append(
            EncounterRecord(
                job_id,
                t.object,
                len(window),
                sum(r.visible for r in window),
                failures,
                longest_fail,
                (best_ok < enc.min_frames) if with_model and judged else None,
            )
        )
    for name, min_frames in (made or {}).items():
        out.append(_made_encounter(job_id, name, min_frames, rows, with_model))
    return out


def run_job(job: Job) -> JobOutcome:
    """Run a job to completion; errors are caught and returned in the outcome."""
    start = time.monotonic()
    outcome = JobOutcome(job.id)
    try:
        execute(job, outcome, start)
    except Exception as exc:  # a failed job is recorded, never fatal to the run
        detail = str(exc) if isinstance(exc, AvrobustError) else traceback.format_exc(limit=6)
        outcome.error = f"{type(exc).__name__}: {detail}".strip()
    outcome.duration = time.monotonic() - start
    return outcome


def _provenance(component: CampaignModel | CampaignAttack | CampaignDefence, ref: dict) -> dict:
    described = component.provenance()
    return {**ref, **({"provenance": described} if described else {})}


def components(job: Job, outcome: JobOutcome):
    """The job's model, attack and defence, built, with their provenance on the outcome."""
    model: CampaignModel = registry.create("model", job.model)
    attack: CampaignAttack = registry.create("attack", job.attack)
    defence: CampaignDefence = registry.create("defence", job.defence)
    outcome.components = {
        "model": _provenance(model, job.model),
        "attack": _provenance(attack, job.attack),
        "defence": _provenance(defence, job.defence),
    }
    if defence.raises_alarms:  # the report lists this defence's alarms, even none
        outcome.components["defence"]["raises_alarms"] = True
    return model, attack, defence


def check_time(job: Job, start: float, index: int) -> None:
    if job.timeout is not None and time.monotonic() - start > job.timeout:
        raise JobTimeout(
            f"job ran past its {job.timeout:g} s limit at frame {index}", field="timeout"
        )


@dataclass
class FrameBook:
    """What a job records of every frame (its targets' rows, the attack's made targets, alarms,
    detections for mAP, example pictures), the same in open and closed loop."""

    job: Job
    scenario: Scenario
    model: CampaignModel
    attack: CampaignAttack
    defence: CampaignDefence
    perceive: Perception
    outcome: JobOutcome
    targets: dict[str, int]
    with_model: bool
    kept: dict = field(default_factory=dict)
    made: dict[str, int] = field(default_factory=dict)
    #: The alarms of the frame last seen (the closed loop's fail-safe reacts to them).
    last_alarms: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.expect = {t.object: t.expect for t in self.scenario.targets}
        self.surfaces = _surfaces_on(self.scenario)
        self.by_category = self.model.label_level == "category"

    def see(self, frame: Frame) -> tuple[Frame, Detections | None]:
        """The attack on the sensor data in flight, then the (defended) model; the frame's
        rows recorded. Returns the frame as perceived and the detections."""
        from avrobust.campaign import evidence

        job, out, cats = self.job, self.outcome, self.model.categories
        frame = self.attack.perturb(frame, self.model)
        dets = self.perceive(frame) if self.with_model else None
        self.last_alarms = self.perceive.take_alarms()
        for alarm in self.last_alarms:
            out.alarms.append(
                AlarmRecord(job.id, frame.index, self.defence.name, alarm.kind, alarm.detail)
            )
        out.frames += frame_records(
            job.id, frame, self.targets, self.expect, self.surfaces, dets, self.with_model,
            cats, self.by_category,
        )  # fmt: skip
        for target in self.attack.made_targets(frame):
            self.made[target.name] = target.min_frames
            out.frames.append(
                made_target_record(job.id, frame, target, dets, self.with_model, cats)
            )
        if dets is not None and self.by_category:  # detectors: kept for mAP
            out.detections.append(evidence.detection_record(job.id, frame, dets, cats))
        picture = evidence.keep(frame, dets)
        if picture is not None:
            self.kept[frame.index] = picture
        out.num_frames += 1
        return frame, dets

    def finish(self) -> None:
        from avrobust.campaign import evidence

        out = self.outcome
        out.encounters = encounter_records(
            self.job.id, self.scenario, out.frames, self.with_model, self.made
        )
        out.pictures = evidence.pictures(self.scenario, out.frames, self.kept, self.targets)


def execute(job: Job, outcome: JobOutcome, start: float) -> None:
    """Run a job into ``outcome``; errors propagate (:func:`run_job` records them)."""
    if job.closed_loop:
        from avrobust.campaign.closed_loop import execute_closed_loop

        execute_closed_loop(job, outcome, start)
        return
    scenario = job.load_scenario()
    model, attack, defence = components(job, outcome)
    # Attacks that change the scene itself (the adversarial object) say so before it is built.
    backend = make_backend(job.backend, job.carla, attack.attachments(scenario))
    backend.start(EpisodeSpec.from_scenario(scenario, seed=job.seed))
    try:
        attack.prepare(backend, scenario)
        targets = {t.object: backend.object_id(t.object) for t in scenario.targets}
        book = FrameBook(
            job, scenario, model, attack, defence, defence.wrap(model), outcome, targets,
            job.model["name"] != "none",
        )  # fmt: skip
        for frame in backend.frames():
            check_time(job, start, frame.index)
            book.see(frame)
    finally:
        backend.close()
    book.finish()
