"""Running one Job: start its backend, apply its attack, run its (defended) model on every frame,
and measure each target per frame and per encounter."""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

import torch

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.factory import make_backend
from avrobust.campaign import registry
from avrobust.campaign.records import AlarmRecord, EncounterRecord, FrameRecord, JobOutcome
from avrobust.core.detections import Detections
from avrobust.core.errors import AvrobustError
from avrobust.core.frame import Frame
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


def _match(
    dets: Detections | None, box: torch.Tensor, box3d=None
) -> tuple[bool, str | None, float | None]:
    """The best detection overlapping the target with IoU >= 0.5, if any: with its 2D box for
    2D detections, with its 3D box's footprint (BEV IoU) for 3D ones."""
    if dets is None or len(dets) == 0:
        return False, None, None
    if dets.kind == "3d":
        from avrobust.models.box3d_metrics import bev_iou

        iou = bev_iou(dets.box3d(), box3d)[:, 0].float()
    else:
        if box[2] <= box[0]:
            return False, None, None
        from torchvision.ops import box_iou

        iou = box_iou(dets.boxes, box[None].to(dets.boxes))[:, 0]
    best = int(torch.argmax(iou * (iou >= 0.5) + dets.scores * 1e-3 * (iou >= 0.5)))
    if iou[best] < 0.5:
        return False, None, None
    label = int(dets.labels[best])
    name = dets.class_names[label] if label < len(dets.class_names) else str(label)
    return True, name, float(dets.scores[best])


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
            detected, predicted, score = _match(detections, box, truth.boxes_3d[i])
            want = truth.categories[i] if by_category else expect.get(name)
            rec.detected = detected
            rec.predicted = predicted
            rec.correct = detected and (want is None or predicted == want)
            rec.score = score
        out.append(rec)
    return out


PHANTOM = "phantom"  # the target name of a spoofed object (lidar-spoof)
PHANTOM_MIN_FRAMES = 3  # consecutive frames a reported phantom needs to fail a drive-by
PHANTOM_RADIUS = 2.0  # metres: a 3D detection this near the phantom's centre reports it


def _phantom_reported(dets: Detections, box, category: str, calibration):
    """Whether ``dets`` report the phantom ``box`` (a ``Box3D`` of one): a detection of its
    category centred within 2 m (3D detections) or overlapping its projection with IoU at
    least 0.5 (2D); with the detection's class name and score."""
    if dets is None or len(dets) == 0:
        return False, None, None
    names = [dets.class_names[int(k)] for k in dets.labels]
    same = torch.tensor([n == category for n in names])
    if dets.kind == "3d":
        c = dets.box3d().center[:, :2].float()
        near = torch.linalg.vector_norm(c - box.center[0, :2].float(), dim=1) <= PHANTOM_RADIUS
    else:
        from torchvision.ops import box_iou

        b2, valid = box.project(calibration)
        if not bool(valid[0]):
            return False, None, None
        near = box_iou(dets.boxes.float(), b2.xyxy.float())[:, 0] >= 0.5
    hit = (same & near).nonzero().flatten()
    if len(hit) == 0:
        return False, None, None
    best = int(hit[dets.scores[hit].argmax()])
    return True, names[best], float(dets.scores[best])


def phantom_record(
    job_id: str,
    frame: Frame,
    detections: Detections | None,
    with_model: bool,
    categories: tuple[str, ...] | None = None,
) -> FrameRecord | None:
    """The row of a frame's spoofed phantom (``lidar-spoof`` puts it in the frame's metadata),
    or None: the model is right when it does not report it."""
    from avrobust.core.boxes import Box3D

    info = frame.metadata.get("lidar_attack", {}).get("phantom")
    if info is None:
        return None
    v = torch.tensor(info["box"], dtype=torch.float64)
    box = Box3D(v[None, :3], v[None, 3:6], v[6:7])
    c = box.center[0]
    rec = FrameRecord(
        job_id,
        frame.index,
        PHANTOM,
        round(frame.timestamp, 6),
        float(torch.linalg.vector_norm(c[:2])),
        math.degrees(math.atan2(float(c[1]), float(c[0]))),
        True,
        1.0,
        0.0,
        0,
        int(frame.metadata["lidar_attack"].get("spoofed", 0)),
    )
    if with_model and (categories is None or info["category"] in categories):
        reported, predicted, score = _phantom_reported(
            detections, box, info["category"], frame.calibration
        )
        rec.detected, rec.predicted, rec.score = reported, predicted, score
        rec.correct = not reported
    return rec


def _phantom_encounter(job_id: str, rows: list[FrameRecord], with_model: bool):
    """A spoofed phantom over the drive-by: it fails when the model reports it in
    ``PHANTOM_MIN_FRAMES`` consecutive frames (a planner brakes for a tracked obstacle)."""
    window = sorted((r for r in rows if r.target == PHANTOM), key=lambda r: r.frame)
    if not window:
        return None
    judged = [r for r in window if r.correct is not None]
    failures, longest, _ = _runs(judged)
    failed = (longest >= PHANTOM_MIN_FRAMES) if with_model and judged else None
    return EncounterRecord(job_id, PHANTOM, len(window), len(window), failures, longest, failed)


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
    job_id: str, scenario: Scenario, rows: list[FrameRecord], with_model: bool
) -> list[EncounterRecord]:
    """Per target: the stack *recognises* it when the model gets it right in at least
    ``min_frames`` consecutive frames while it is between ``far`` and ``near`` metres away;
    the encounter fails when that never happens (a recogniser that remembers a sign once read,
    as deployed ones do, needs one stable reading)."""
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
    phantom = _phantom_encounter(job_id, rows, with_model)
    if phantom is not None:
        out.append(phantom)
    return out


def run_job(job: Job) -> JobOutcome:
    """Run a job to completion; errors are caught and returned in the outcome."""
    start = time.monotonic()
    outcome = JobOutcome(job.id)
    try:
        _run(job, outcome, start)
    except Exception as exc:  # a failed job is recorded, never fatal to the run
        detail = str(exc) if isinstance(exc, AvrobustError) else traceback.format_exc(limit=6)
        outcome.error = f"{type(exc).__name__}: {detail}".strip()
    outcome.duration = time.monotonic() - start
    return outcome


def _provenance(component: Any, ref: dict) -> dict:
    describe = getattr(component, "provenance", None)
    return {**ref, **({"provenance": describe()} if describe else {})}


def _run(job: Job, outcome: JobOutcome, start: float) -> None:
    from avrobust.campaign import evidence

    scenario = job.load_scenario()
    model = registry.create("model", job.model)
    attack = registry.create("attack", job.attack)
    defence = registry.create("defence", job.defence)
    perceive = defence.wrap(model)
    take_alarms = getattr(perceive, "take_alarms", list)  # consistency checks raise alarms
    with_model = job.model["name"] != "none"
    outcome.components = {
        "model": _provenance(model, job.model),
        "attack": _provenance(attack, job.attack),
        "defence": _provenance(defence, job.defence),
    }
    if hasattr(perceive, "take_alarms"):  # the report lists this defence's alarms, even none
        outcome.components["defence"]["raises_alarms"] = True
    categories = getattr(model, "categories", None)
    by_category = getattr(model, "label_level", "class") == "category"
    kept: dict[int, evidence.Kept] = {}
    # Attacks that change the scene itself (the adversarial object) say so before it is built.
    attachments = attack.attachments(scenario) if hasattr(attack, "attachments") else ()
    backend = make_backend(job.backend, job.carla, attachments)
    backend.start(EpisodeSpec.from_scenario(scenario, seed=job.seed))
    try:
        attack.prepare(backend, scenario)
        perturb = getattr(attack, "perturb", None)
        targets = {t.object: backend.object_id(t.object) for t in scenario.targets}
        expect = {t.object: t.expect for t in scenario.targets}
        surfaces = _surfaces_on(scenario)
        for frame in backend.frames():
            if job.timeout is not None and time.monotonic() - start > job.timeout:
                raise JobTimeout(
                    f"job ran past its {job.timeout:g} s limit at frame {frame.index}",
                    field="timeout",
                )
            if perturb is not None:  # attacks on the sensor data in flight (LiDAR)
                frame = perturb(frame, model)
            dets = perceive(frame) if with_model else None
            for alarm in take_alarms():
                outcome.alarms.append(
                    AlarmRecord(job.id, frame.index, defence.name, alarm.kind, alarm.detail)
                )
            outcome.frames += frame_records(
                job.id, frame, targets, expect, surfaces, dets, with_model, categories, by_category
            )
            phantom = phantom_record(job.id, frame, dets, with_model, categories)
            if phantom is not None:
                outcome.frames.append(phantom)
            if dets is not None and by_category:  # detectors: kept for mAP
                outcome.detections.append(
                    evidence.detection_record(job.id, frame, dets, categories)
                )
            picture = evidence.keep(frame, dets)
            if picture is not None:
                kept[frame.index] = picture
            outcome.num_frames += 1
    finally:
        backend.close()
    outcome.encounters = encounter_records(job.id, scenario, outcome.frames, with_model)
    outcome.pictures = evidence.pictures(scenario, outcome.frames, kept, targets)
