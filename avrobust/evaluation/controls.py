"""Judging a texture attack beside its matched controls on the same views: the controls'
patches (the attack's mask, not optimised), and the summary a reviewer reads (the attack's
rate with its interval, each control's, and the effect over the strongest, with McNemar's
paired p-value, since every control ran on exactly the attack's views)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from avrobust.attacks.controls import Control
from avrobust.core.patch import Patch
from avrobust.core.sensors import CameraSpec
from avrobust.core.stats import rate_of, strongest
from avrobust.evaluation.viewpoints import Sweep, SweepFrames, render_sweep


def control_patches(patch: Patch, controls: Sequence[Control]) -> dict[str, Patch]:
    """Name -> the control's patch (same mask, size and placement as ``patch``)."""
    return {c.name: c(patch) for c in controls}


def render_controls(
    patch: Patch,
    controls: Sequence[Control],
    scenario: str,
    surface: str,
    sweep: Sweep,
    camera: CameraSpec,
    progress: Callable[[int], None] | None = None,
) -> dict[str, SweepFrames]:
    """Name -> ``sweep`` rendered with that control painted on ``surface``."""
    return {
        name: render_sweep(
            scenario, sweep, camera, {surface: (p.texture, p.mask)}, progress=progress
        )
        for name, p in control_patches(patch, controls).items()
    }


def judged(hits: Sequence[bool], control_hits: dict[str, Sequence[bool]]) -> dict:
    """Plain data: ``rendered`` (the attack's rate), ``controls`` (name -> rate) and ``effect``
    (over the strongest control; None without controls). Views are the trials: every view is
    rendered independently, so its outcome does not lean on its neighbours'."""
    attack = rate_of(hits)
    controls = {n: rate_of(h) for n, h in control_hits.items()}
    paired = {n: (list(hits), list(h)) for n, h in control_hits.items()}
    effect = strongest(attack, controls, paired)
    return {
        "rendered": attack.to_dict(),
        "controls": {n: r.to_dict() for n, r in controls.items()},
        "effect": None if effect is None else effect.to_dict(),
    }
