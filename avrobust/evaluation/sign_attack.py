"""Running a sign perturbation end to end: render a sweep of viewpoints, optimise a sticker
texture through the compositor, then close the loop by painting it on the sign in the backend,
rendering again and classifying. Success is counted only on signs the model reads correctly
when clean (as REAP does), and the gap between compositor and re-rendered success is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from avrobust.attacks.compositor import composite
from avrobust.attacks.controls import STANDARD, Control
from avrobust.attacks.learnt_mask import LearntMaskSpec, resolve_mask
from avrobust.attacks.sign_sticker import SignView, StickerAttack, sign_views
from avrobust.core.errors import ConfigError
from avrobust.core.patch import Patch
from avrobust.core.sensors import CameraSpec
from avrobust.data.crops import square_crop
from avrobust.evaluation.controls import judged, render_controls
from avrobust.evaluation.viewpoints import Sweep, SweepFrames, render_sweep, success_by
from avrobust.models.adapters import ClassifierAdapter
from avrobust.models.matching import best_match


def _pipeline_reading(pipeline, view: SignView, image: torch.Tensor) -> str:
    """What the detector-plus-classifier pipeline reports at the sign (its best-scoring
    detection overlapping it), or ``missed``."""
    from dataclasses import replace

    match = best_match(pipeline(replace(view.frame, image=image)), view.box, by="score")
    return "missed" if match is None else match.name


def _classify(
    classifier: ClassifierAdapter,
    views: list[SignView],
    patch: Patch | None = None,
    pipeline=None,
) -> list[str]:
    if pipeline is not None:
        return [
            _pipeline_reading(
                pipeline,
                v,
                v.frame.image
                if patch is None
                else composite(
                    v.frame.image, patch.texture, patch.mask, v.frame.surfaces[v.surface]
                ),
            )
            for v in views
        ]
    crops = []
    for v in views:
        img = v.frame.image
        if patch is not None:
            img = composite(img, patch.texture, patch.mask, v.frame.surfaces[v.surface])
        crops.append(square_crop(img, v.box))
    if not crops:
        return []
    names, _ = classifier.predict(torch.stack(crops))
    return names


@dataclass
class PatchEvaluation:
    """Success of a sign patch over a sweep, counted on signs read correctly when clean;
    ``rendered``, ``controls`` and ``effect`` as :func:`avrobust.evaluation.controls.judged`
    gives them (rates with 95% Wilson intervals; the effect over the strongest control)."""

    views: int
    clean_correct: int
    compositor_success: float
    rendered_success: float
    by_distance: dict[str, dict[str, float]] = field(default_factory=dict)
    by_weather: dict[str, dict[str, float]] = field(default_factory=dict)
    by_angle: dict[str, dict[str, float]] = field(default_factory=dict)
    rendered: dict = field(default_factory=dict)
    controls: dict[str, dict] = field(default_factory=dict)
    effect: dict | None = None


@dataclass
class PatchViews:
    """A sweep rendered clean, with a patch painted on its surface, and with each control in
    the patch's mask: the same views, for any number of models to read."""

    patch: Patch
    surface: str
    sweep: Sweep
    clean: SweepFrames
    attacked: SweepFrames
    fills: dict[str, SweepFrames]


def render_patch_views(
    patch: Patch,
    scenario: str,
    surface: str,
    sweep: Sweep,
    camera: CameraSpec,
    progress: Callable[[int], None] | None = None,
    controls: Sequence[Control] = STANDARD,
) -> PatchViews:
    """Render ``sweep`` clean, with ``patch`` painted on ``surface`` and with each of
    ``controls`` painted in its place (the same mask, not optimised)."""
    clean = render_sweep(scenario, sweep, camera, progress=progress)
    attacked = render_sweep(
        scenario, sweep, camera, {surface: (patch.texture, patch.mask)}, progress=progress
    )
    fills = render_controls(patch, controls, scenario, surface, sweep, camera, progress)
    return PatchViews(patch, surface, sweep, clean, attacked, fills)


def judge_sign_patch(
    views: PatchViews,
    classifier: ClassifierAdapter,
    true_class: str,
    target: str | None,
    pipeline=None,
) -> PatchEvaluation:
    """Classify rendered views and compare with the compositor's prediction of the same
    views. With ``pipeline`` (a detector-plus-classifier stack), the stack reads whole frames
    instead of the classifier reading the sign's true crop; a sign it misses counts as not read
    as ``true_class``."""
    patch, surface, sweep = views.patch, views.surface, views.sweep
    clean, attacked, fills = views.clean, views.attacked, views.fills
    rows, control_hits = [], {name: [] for name in fills}
    for i, (vp, fc, fa) in enumerate(
        zip(clean.viewpoints, clean.frames, attacked.frames, strict=True)
    ):
        vc, va = sign_views([fc], surface), sign_views([fa], surface)
        vf = {name: sign_views([f.frames[i]], surface) for name, f in fills.items()}
        if not vc or not va or not all(vf.values()):
            continue
        clean_pred = _classify(classifier, vc, pipeline=pipeline)[0]
        if clean_pred != true_class:
            continue  # only signs the model reads correctly when clean count
        comp = _classify(classifier, vc, patch, pipeline)[0]
        rend = _classify(classifier, va, pipeline=pipeline)[0]

        def hit(p: str) -> bool:
            return p == target if target is not None else p != true_class

        for name, v in vf.items():
            control_hits[name].append(hit(_classify(classifier, v, pipeline=pipeline)[0]))
        rows.append((vp, hit(comp), hit(rend)))
    if not rows:
        raise ConfigError(
            "the model reads the sign correctly in none of the sweep's views", field="sweep"
        )

    n = len(rows)
    return PatchEvaluation(
        views=len(clean.frames),
        clean_correct=n,
        compositor_success=sum(r[1] for r in rows) / n,
        rendered_success=sum(r[2] for r in rows) / n,
        by_distance=success_by(rows, sweep, "distance"),
        by_weather=success_by(rows, sweep, "weather"),
        by_angle=success_by(rows, sweep, "angle"),
        **judged([r[2] for r in rows], control_hits),
    )


def evaluate_sign_patch(
    patch: Patch,
    classifier: ClassifierAdapter,
    scenario: str,
    surface: str,
    true_class: str,
    target: str | None,
    sweep: Sweep,
    camera: CameraSpec,
    progress: Callable[[int], None] | None = None,
    pipeline=None,
    controls: Sequence[Control] = STANDARD,
) -> PatchEvaluation:
    """Render the sweep clean, with the patch and with each of ``controls``
    (:func:`render_patch_views`), and judge the views (:func:`judge_sign_patch`)."""
    views = render_patch_views(patch, scenario, surface, sweep, camera, progress, controls)
    return judge_sign_patch(views, classifier, true_class, target, pipeline)


def run_sign_attack(
    scenario: str,
    surface: str,
    attack: StickerAttack,
    mask: torch.Tensor | LearntMaskSpec,
    train_sweep: Sweep,
    camera: CameraSpec,
    on_step=None,
    progress=None,
    victim: dict | None = None,
    on_mask_step=None,
) -> Patch:
    """Render the training sweep and run ``attack`` on the views of ``surface`` (in a mask learnt
    first when ``mask`` is a :class:`LearntMaskSpec`); the patch's provenance adds the scenario,
    the surface, the training views and the ``victim``'s weights. ``attack`` is not changed."""
    sweep = render_sweep(scenario, train_sweep, camera, progress=progress)
    views = sign_views(sweep.frames, surface)
    frame = next((f for f in sweep.frames if surface in f.surfaces), None)
    if frame is None:
        raise ConfigError(f"scenario {scenario} has no surface {surface!r}", field="surface")
    # The sign's own face texture is the starting point.
    base = sweep.surface_textures[surface]
    size = frame.surfaces[surface].size_m
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
