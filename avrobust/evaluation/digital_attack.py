"""``avrobust attack pgd``: the digital baselines (FGSM, PGD under L-inf or L2) against a sign
classifier on a dataset's sign crops. Not physical: the perturbation covers every pixel of the
crop; it is the upper bound the physical attacks are compared with and what adversarial
training is judged by."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from avrobust.attacks.digital import PGD
from avrobust.core.classes import BACKGROUND, distance_band
from avrobust.core.errors import ConfigError
from avrobust.models.adapters import ClassifierAdapter
from avrobust.models.crops import CropSet


@dataclass
class DigitalResult:
    """Counts over the crops of real signs (background crops left out) the model reads
    correctly when clean; ``success``: read as ``target`` (targeted) or as anything else."""

    crops: int
    clean_correct: int
    clean_accuracy: float
    adversarial_accuracy: float
    success: float
    mean_linf: float
    mean_l2: float
    by_band: dict[str, dict[str, float]] = field(default_factory=dict)


def sign_crops(crops: CropSet) -> CropSet:
    """The crops of real signs (background crops left out)."""
    return crops.subset(torch.tensor([crops.classes[int(y)] != BACKGROUND for y in crops.labels]))


def run_digital_attack(
    classifier: ClassifierAdapter,
    crops: CropSet,
    attack: PGD,
    target: str | None = None,
    batch: int = 128,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    keep_examples: int = 0,
) -> tuple[DigitalResult, list[tuple[torch.Tensor, torch.Tensor, str, str, str]]]:
    """Attack every sign crop; returns the result and up to ``keep_examples`` successful
    ``(clean, adversarial, true, clean prediction, adversarial prediction)`` examples."""
    classes = classifier.classes
    if target is not None and target not in classes:
        raise ConfigError(f"unknown class {target!r}", field="target", allowed=", ".join(classes))
    if attack.targeted != (target is not None):
        raise ConfigError("a targeted PGD needs a target class and only then", field="target")
    names = crops.classes
    crops = sign_crops(crops)
    if len(crops) == 0:
        raise ConfigError("the data holds no sign crops", field="data")
    # The dataset's labels by name, in the classifier's own class order.
    try:
        labels = torch.tensor([classes.index(names[int(y)]) for y in crops.labels])
    except ValueError as exc:
        raise ConfigError(
            f"the classifier lacks a class of the data: {exc}", field="data"
        ) from None
    gen = torch.Generator().manual_seed(seed)
    clean_ok, adv_ok, hit, linf, l2 = [], [], [], [], []
    examples = []
    for i in range(0, len(crops), batch):
        x = crops.images[i : i + batch].float() / 255.0
        y = labels[i : i + batch]
        goal = torch.full_like(y, classes.index(target)) if target is not None else y
        adv = attack(x, goal, gen)
        with torch.no_grad():
            pc, pa = classifier(x).argmax(1), classifier(adv).argmax(1)
        d = (adv - x).flatten(1)
        clean_ok.append(pc == y)
        adv_ok.append(pa == y)
        hit.append(pa == goal if target is not None else pa != y)
        linf.append(d.abs().amax(1))
        l2.append(d.norm(dim=1))
        for k in torch.nonzero((pc == y) & hit[-1]).flatten().tolist():
            if len(examples) < keep_examples:
                examples.append(
                    (x[k], adv[k], classes[int(y[k])], classes[int(pc[k])], classes[int(pa[k])])
                )
        if progress:
            progress(len(y))
    c, a, h = torch.cat(clean_ok), torch.cat(adv_ok), torch.cat(hit)
    n_ok = int(c.sum())
    bands: dict[str, dict[str, float]] = {}
    for k, dist in enumerate(crops.distance.tolist()):
        b = bands.setdefault(distance_band(dist), {"crops": 0, "clean": 0, "adversarial": 0})
        b["crops"] += 1
        b["clean"] += bool(c[k])
        b["adversarial"] += bool(a[k])
    by_band = {
        k: {
            "crops": v["crops"],
            "clean": v["clean"] / v["crops"],
            "adversarial": v["adversarial"] / v["crops"],
        }
        for k, v in sorted(bands.items())
    }
    return (
        DigitalResult(
            crops=len(crops),
            clean_correct=n_ok,
            clean_accuracy=n_ok / len(crops),
            adversarial_accuracy=float(a.float().mean()),
            success=float((h & c).sum()) / max(n_ok, 1),
            mean_linf=float(torch.cat(linf).mean()),
            mean_l2=float(torch.cat(l2).mean()),
            by_band=by_band,
        ),
        examples,
    )


def example_sheet(
    examples: list[tuple[torch.Tensor, torch.Tensor, str, str, str]], path, scale: int = 3
) -> None:
    """A PNG with one row per example: the clean crop, the adversarial crop and the
    perturbation (amplified to the full range), each labelled with the model's reading."""
    import cv2
    import numpy as np

    from avrobust.core.files import atomic_write

    if not examples:
        raise ConfigError("no successful example to show", field="examples")

    def tile(img: torch.Tensor, label: str) -> np.ndarray:
        a = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        a = cv2.resize(a, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        band = np.full((22, a.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        return np.vstack([a, band])

    rows = []
    for clean, adv, true, pc, pa in examples:
        d = adv - clean
        amp = 0.5 + d / (2 * d.abs().max().clamp(min=1e-6))
        rows.append(
            np.hstack([tile(clean, f"{true}: {pc}"), tile(adv, f"-> {pa}"), tile(amp, "delta")])
        )
    sheet = np.vstack(rows)
    _ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    with atomic_write(path) as fh:
        fh.write(buf.tobytes())
