"""Judging a backdoor: the printed trigger on a held-out sweep of re-rendered views, read by the
poisoned model and by the clean one, beside the poisoned model's clean accuracy.

Three comparisons make the number trustworthy:

* the trigger on the **clean** model (same views): a sticker that fools a clean model too is an
  evasion attack, not a backdoor;
* matched controls on the **poisoned** model (the trigger's mask filled grey, with its mean
  colour, with palette noise): the backdoor answers to the trigger, not to any sticker there;
* clean top-1 on a held-out crop set, poisoned against clean model (a backdoor must not show
  in accuracy; the issue allows one point).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from avrobust.attacks.controls import STANDARD, Control
from avrobust.core.patch import Patch
from avrobust.core.sensors import CameraSpec
from avrobust.core.stats import rate
from avrobust.evaluation.sign_attack import judge_sign_patch, render_patch_views
from avrobust.evaluation.viewpoints import Sweep

# Within 25 m, six weather and light conditions and two more, three sign angles: the views the
# issue's backdoor target is stated on (none of them a training sample: the training data are
# random scenes, this is the library's urban stop at fixed viewpoints).
BACKDOOR_SWEEP = Sweep(
    distances=(6.0, 10.0, 14.0, 18.0, 22.0, 25.0),
    angles=(0.0, 15.0, 30.0),
    weathers=(
        "ClearNoon",
        "CloudyNoon",
        "ClearSunset",
        "Dusk",
        "ClearNight",
        "WetNight",
        "Fog",
        "HardRainNoon",
    ),
    laterals=(0.0,),
)


def clean_accuracy(poisoned, clean, crops) -> dict:
    """Top-1 of both models on held-out crops, with Wilson intervals, and the points lost."""
    from avrobust.training.classifier import evaluate

    out = {}
    for name, model in (("poisoned", poisoned), ("clean", clean)):
        ev = evaluate(model, crops)
        out[name] = rate(round(ev["top1"] * ev["count"]), ev["count"]).to_dict()
        out[name]["by_weather"] = {w: v["top1"] for w, v in ev["by_weather"].items()}
    out["points_lost"] = 100 * (out["clean"]["rate"] - out["poisoned"]["rate"])
    out["crops"] = len(crops)
    return out


def _model(w) -> tuple:
    """A classifier and its provenance, from a weights file or an adapter in memory."""
    from avrobust.models.adapters import ClassifierAdapter, load_classifier
    from avrobust.models.victims import weights_provenance

    if isinstance(w, ClassifierAdapter):
        return w, {"file": "in memory", "sha256": None}
    return load_classifier(w), weights_provenance(classifier=w)["classifier"]


def evaluate_backdoor(
    trigger: Patch | str | Path,
    poisoned_weights,
    clean_weights=None,
    val: str | Path | None = None,
    sweep: Sweep = BACKDOOR_SWEEP,
    camera: CameraSpec | None = None,
    scenario: str | None = None,
    progress: Callable[[int], None] | None = None,
    controls: Sequence[Control] = STANDARD,
) -> dict:
    """Render ``sweep`` once (clean, with the trigger, with each control) and let both models
    read it; success counts views whose clean sign the model reads right (as for stickers).
    The models: weights files or classifier adapters (default clean: the shipped one).
    ``val``: a held-out dataset folder for clean accuracy. Returns plain data."""
    from avrobust.models.crops import load_crops
    from avrobust.models.weights import ASSETS

    if not isinstance(trigger, Patch):
        trigger = Patch.load(trigger)
    prov = trigger.provenance
    clean_weights = clean_weights or ASSETS / "sign_classifier.pt"
    camera = camera or CameraSpec(640, 480, math.radians(90))
    scenario = scenario or prov.get("scenario", "urban_stop")
    surface = prov.get("surface", "stop_sign")
    source, target = prov.get("true_class", "stop"), prov.get("target")
    views = render_patch_views(trigger, scenario, surface, sweep, camera, progress, controls)
    (poisoned, poisoned_id), (clean, clean_id) = _model(poisoned_weights), _model(clean_weights)
    result = {
        "trigger": {"sha256": trigger.sha256(), **prov},
        "scenario": scenario,
        "surface": surface,
        "source": source,
        "target": target,
        "weights": {"poisoned": poisoned_id, "clean": clean_id},
        "sweep": asdict(sweep),
        "poisoned": asdict(judge_sign_patch(views, poisoned, source, target)),
        "clean_model": asdict(judge_sign_patch(views, clean, source, target)),
    }
    if val is not None:
        result["clean_accuracy"] = clean_accuracy(poisoned, clean, load_crops(val))
    return result


def scan_training_set(
    data: str | Path,
    weights: str | Path,
    methods: Sequence[str] = ("spectral_signatures", "activation_clustering", "robust_mahalanobis"),
) -> dict:
    """Run the data-side poison scans on a training crop set with the model trained on it;
    where the folder holds a ``poison.json`` (avrobust poison dataset), each scan is judged
    against it: the share of poisons found and of clean crops flagged."""
    import json

    import numpy as np

    from avrobust.core.errors import ConfigError
    from avrobust.defences.poisoned_data import SCANS
    from avrobust.models.adapters import load_classifier
    from avrobust.models.crops import load_crops

    bad = [m for m in methods if m not in SCANS]
    if bad:
        raise ConfigError(f"unknown scans {bad}", field="--methods", allowed=", ".join(SCANS))
    data = Path(data)
    crops = load_crops(data)
    model = load_classifier(weights)
    manifest = data / "poison.json"
    truth = None
    if manifest.is_file():
        changed = json.loads(manifest.read_text())["changed"]
        rows = {c["row"] for c in changed if c.get("role", "poison") == "poison"}
        truth = np.array([i in rows for i in range(len(crops))])
    x = crops.images.float() / 255
    out = {"data": str(data), "crops": len(crops), "scans": []}
    for name in methods:
        scan = SCANS[name](model.module, x, crops.labels)
        entry = (
            scan.judged(truth, crops.labels.numpy())
            if truth is not None
            else {
                "method": scan.method,
                "settings": scan.settings,
                "flagged": int(scan.flagged.sum()),
            }
        )
        entry["flagged_rows"] = np.nonzero(scan.flagged)[0].tolist()
        out["scans"].append(entry)
    return out
