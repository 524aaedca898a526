"""``avrobust attack evaluate``: a saved patch re-evaluated on a sweep of viewpoints, against
the model it was made for (from its provenance) or another one (a transfer).

The default sweep is a held-out one: distances, angles and lateral offsets that no training
sweep of ``avrobust attack sign|patch`` uses, so the number is not the training success."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from avrobust.attacks.controls import STANDARD, Control
from avrobust.core.errors import ConfigError, DataError
from avrobust.core.patch import Patch
from avrobust.core.sensors import CameraSpec
from avrobust.evaluation.viewpoints import Sweep

HELD_OUT = Sweep(
    distances=(7.0, 12.0, 17.0, 22.0),
    angles=(5.0, 20.0, 28.0),
    weathers=("ClearNoon", "CloudyNoon", "Dusk"),
    laterals=(0.0, -1.0),
)


def patch_kind(patch: Patch, path: Path | str = "patch") -> str:
    """``sign`` (a sticker against a sign classifier) or ``detector`` (a patch against the
    camera detector), from the patch's provenance."""
    attack = str(patch.provenance.get("attack", ""))
    if attack in ("sign-sticker", "backdoor-trigger"):  # a trigger is judged like a sticker
        return "sign"
    if attack.startswith("detector-patch"):
        return "detector"
    raise DataError(
        f"the patch's provenance names attack {attack!r}; attack evaluate knows sign-sticker "
        "and detector-patch-* patches (apply others in a campaign with the patch attack)",
        file=path,
        field="provenance.attack",
    )


def _need(patch: Patch, key: str, path: Path | str) -> Any:
    if key not in patch.provenance:
        raise DataError(
            "the patch's provenance lacks a field", file=path, field=f"provenance.{key}"
        )
    return patch.provenance[key]


def evaluate_patch_file(
    path: Path | str,
    sweep: Sweep = HELD_OUT,
    camera: CameraSpec | None = None,
    weights: Path | str | None = None,
    scenario: str | None = None,
    progress: Callable[[int], None] | None = None,
    stack: str | None = None,
    controls: Sequence[Control] = STANDARD,
) -> dict[str, Any]:
    """Re-render ``sweep`` with the patch painted on its surface and, on the same views, each
    of ``controls`` in its mask, and score them; returns plain data (kind, victim, scenario,
    surface, the evaluation's fields). ``stack``: for a sign patch, ``classifier`` or
    ``pipeline`` (default: the one it was made against)."""
    import math

    from avrobust.models.victims import weights_provenance
    from avrobust.models.weights import ASSETS

    patch = Patch.load(path)
    kind = patch_kind(patch, path)
    scenario = scenario or _need(patch, "scenario", path)
    surface = _need(patch, "surface", path)
    camera = camera or CameraSpec(640, 480, math.radians(90))
    if kind == "sign":
        from avrobust.evaluation.sign_attack import evaluate_sign_patch
        from avrobust.models.adapters import load_classifier

        w = Path(weights) if weights else ASSETS / "sign_classifier.pt"
        pipeline = None
        made_against = "pipeline" if patch.provenance.get("against") == "sign-pipeline" else None
        if stack not in (None, "classifier", "pipeline"):
            raise ConfigError(
                f"unknown stack {stack!r}", field="--stack", allowed="classifier, pipeline"
            )
        if (stack or made_against) == "pipeline":
            from avrobust.models.victims import SignRecognitionPipeline

            pipeline = SignRecognitionPipeline(classifier=w)
            victim = {"model": "sign-pipeline", **weights_provenance(**pipeline.weights)}
        else:
            victim = {"model": "sign-classifier", **weights_provenance(classifier=w)}
        ev = evaluate_sign_patch(
            patch,
            load_classifier(w),
            scenario,
            surface,
            _need(patch, "true_class", path),
            patch.provenance.get("target"),
            sweep,
            camera,
            progress=progress,
            pipeline=pipeline,
            controls=controls,
        )
    else:
        from avrobust.evaluation.detector_attack import evaluate_detector_patch
        from avrobust.models.camera_detector import load_camera_detector

        w = Path(weights) if weights else ASSETS / "camera_detector.pt"
        victim = {"model": "camera-detector", **weights_provenance(detector=w)}
        ev = evaluate_detector_patch(
            patch,
            load_camera_detector(w),
            scenario,
            surface,
            _need(patch, "goal", path),
            _need(patch, "category", path),
            sweep,
            camera,
            progress=progress,
            controls=controls,
        )
    # White-box when evaluated on the weights (and stack) it was optimised on, a transfer
    # otherwise.
    role = "classifier" if kind == "sign" else "detector"
    made = patch.provenance.get("victim") or {}
    made_on = (made.get(role) or {}).get("sha256")
    if made_on is None:
        relation = "unknown"
    elif made_on != victim[role]["sha256"] or made.get("model", victim["model"]) != victim["model"]:
        relation = "transfer"
    else:
        relation = "white-box"
    return {
        "patch": str(path),
        "patch_sha256": patch.sha256(),
        "kind": kind,
        "scenario": scenario,
        "surface": surface,
        "victim": victim,
        "relation": relation,
        "sweep": asdict(sweep),
        **asdict(ev),
    }
