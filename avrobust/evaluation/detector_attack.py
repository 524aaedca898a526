"""A detector patch end to end: render a sweep of viewpoints, optimise the patch through the
compositor, then paint it on the surface in the backend, render again and run the detector on
the whole frames. For ``hide``, success is counted on views where the clean detector finds the
object (IoU at least 0.5 with its box, as campaigns score it); for ``appear``, on views where
the clean detector reports no object of the category over the patch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torchvision.ops import box_iou

from avrobust.attacks.compositor import composite
from avrobust.attacks.controls import STANDARD, Control
from avrobust.attacks.detector_patch import DetectorPatchAttack, PatchView, patch_views
from avrobust.attacks.learnt_mask import LearntMaskSpec, resolve_mask
from avrobust.core.errors import ConfigError
from avrobust.core.patch import Patch
from avrobust.core.sensors import CameraSpec
from avrobust.core.thresholds import DETECTION_SCORE, MATCH_IOU
from avrobust.evaluation.controls import judged, render_controls
from avrobust.evaluation.viewpoints import Sweep, render_sweep, success_by
from avrobust.models.camera_detector import CameraDetector


def goal_met(
    pred: dict[str, torch.Tensor], view: PatchView, goal: str, cls: int, threshold: float
) -> bool:
    """Whether one frame's detections meet the goal for the view's region."""
    keep = (pred["labels"] == cls) & (pred["scores"] >= threshold)
    boxes = pred["boxes"][keep]
    if goal == "hide":
        if len(boxes) == 0:
            return True
        return bool(box_iou(boxes, view.box[None])[:, 0].max() < MATCH_IOU)
    # appear: a detection of the category whose centre lies on the patch's region
    if len(boxes) == 0:
        return False
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    x1, y1, x2, y2 = view.box.tolist()
    return bool(((cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)).any())


@dataclass
class DetectorPatchEvaluation:
    """Success over a sweep, counted on the views where the clean detector gets it right."""

    goal: str
    views: int
    clean_correct: int
    compositor_success: float
    rendered_success: float
    by_distance: dict[str, dict[str, float]] = field(default_factory=dict)
    by_weather: dict[str, dict[str, float]] = field(default_factory=dict)
    by_angle: dict[str, dict[str, float]] = field(default_factory=dict)
    # hide: the detector's recall of the object (IoU >= 0.5) over every view that shows the
    # surface, clean and with the patch re-rendered (the measure of a hiding patch)
    seen: int = 0
    clean_recall: float = float("nan")
    attacked_recall: float = float("nan")
    # rates with 95% Wilson intervals, as avrobust.evaluation.controls.judged gives them
    rendered: dict = field(default_factory=dict)
    controls: dict[str, dict] = field(default_factory=dict)
    effect: dict | None = None


def evaluate_detector_patch(
    patch: Patch,
    detector: CameraDetector,
    scenario: str,
    surface: str,
    goal: str,
    category: str,
    sweep: Sweep,
    camera: CameraSpec,
    score_threshold: float = DETECTION_SCORE,
    progress: Callable[[int], None] | None = None,
    controls: Sequence[Control] = STANDARD,
) -> DetectorPatchEvaluation:
    """Render the sweep clean, with the patch painted and with each of ``controls`` painted in
    its place (the same mask, not optimised), detect on them all, and compare with the
    compositor's prediction of the same views."""
    cls = detector.classes.index(category)
    clean = render_sweep(scenario, sweep, camera, progress=progress)
    attacked = render_sweep(
        scenario, sweep, camera, {surface: (patch.texture, patch.mask)}, progress=progress
    )
    fills = render_controls(patch, controls, scenario, surface, sweep, camera, progress)
    rows, control_hits = [], {name: [] for name in fills}
    seen = clean_found = attacked_found = 0
    for i, (vp, fc, fa) in enumerate(
        zip(clean.viewpoints, clean.frames, attacked.frames, strict=True)
    ):
        vc, va = patch_views([fc], surface, goal), patch_views([fa], surface, goal)
        vf = {name: patch_views([f.frames[i]], surface, goal) for name, f in fills.items()}
        if not vc or not va or not all(vf.values()):
            continue
        v = vc[0]
        comp_img = composite(fc.image, patch.texture, patch.mask, fc.surfaces[surface])
        preds = detector.detect(torch.stack([fc.image, comp_img, fa.image]), score_threshold)
        met = [
            goal_met(p, v if i < 2 else va[0], goal, cls, score_threshold)
            for i, p in enumerate(preds)
        ]
        seen += 1
        clean_found += not met[0]
        attacked_found += not met[2]
        if met[0]:
            continue  # clean already hidden (or a phantom already there): not counted
        if vf:
            names = list(vf)
            got = detector.detect(
                torch.stack([fills[n].frames[i].image for n in names]), score_threshold
            )
            for n, p in zip(names, got, strict=True):
                control_hits[n].append(goal_met(p, vf[n][0], goal, cls, score_threshold))
        rows.append((vp, met[1], met[2]))
    if not rows:
        raise ConfigError("the clean detector gets none of the sweep's views right", field="sweep")

    n = len(rows)
    return DetectorPatchEvaluation(
        goal=goal,
        views=len(clean.frames),
        clean_correct=n,
        compositor_success=sum(r[1] for r in rows) / n,
        rendered_success=sum(r[2] for r in rows) / n,
        by_distance=success_by(rows, sweep, "distance"),
        by_weather=success_by(rows, sweep, "weather"),
        by_angle=success_by(rows, sweep, "angle"),
        seen=seen,
        clean_recall=clean_found / seen if goal == "hide" else float("nan"),
        attacked_recall=attacked_found / seen if goal == "hide" else float("nan"),
        **judged([r[2] for r in rows], control_hits),
    )


def run_detector_attack(
    scenario: str,
    surface: str,
    attack: DetectorPatchAttack,
    mask: torch.Tensor | LearntMaskSpec | None,
    train_sweep: Sweep,
    camera: CameraSpec,
    on_step=None,
    progress=None,
    victim: dict | None = None,
    on_mask_step=None,
) -> Patch:
    """Render the training sweep and run ``attack`` on the views of ``surface`` (the whole
    surface when ``mask`` is None; in a mask learnt first when it is a :class:`LearntMaskSpec`);
    the patch's provenance adds the scenario, the surface, the training views and the
    ``victim``'s weights. ``attack`` is not changed."""
    from avrobust.scenario.library import load_scenario

    names = [s.name for s in load_scenario(scenario).surfaces]
    if surface not in names:  # before minutes of rendering
        raise ConfigError(
            f"scenario {scenario} has no surface {surface!r}",
            field="surface",
            allowed=", ".join(names) or "none",
        )
    sweep = render_sweep(scenario, train_sweep, camera, progress=progress)
    views = patch_views(sweep.frames, surface, attack.goal)
    base = sweep.surface_textures[surface]
    size = next(f.surfaces[surface].size_m for f in sweep.frames if surface in f.surfaces)
    attack = replace(
        attack,
        provenance={
            **attack.provenance,
            "scenario": scenario,
            "surface": surface,
            "train_views": len(views),
            # The weights attacked, by hash: the report calls an evaluation on the same weights
            # white-box and any other a transfer.
            "victim": victim or {},
        },
    )
    mask, mask_info = resolve_mask(mask, attack, views, base, attack.seed, on_mask_step)
    attack.provenance["mask"] = mask_info
    return attack(views, base, mask, size, on_step)
