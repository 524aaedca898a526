"""A KITTI-layout detection set (``image_2``, ``label_2`` and the build's ``meta``) in memory,
with what evaluation needs per box: distance, occlusion level and truncation."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from avrobust.core.classes import DETECTION_CLASSES
from avrobust.core.errors import DataError
from avrobust.data import kitti


@dataclass
class DetectionTargets:
    """The labelled boxes of one image. ``boxes``: ``[K, 4]`` xyxy pixels; ``labels``:
    ``[K]`` indices into the set's classes; ``distance`` (metres, camera to box),
    ``occluded`` (KITTI level 0-2) and ``truncated`` (0-1): ``[K]``."""

    boxes: torch.Tensor
    labels: torch.Tensor
    distance: torch.Tensor
    occluded: torch.Tensor
    truncated: torch.Tensor


@dataclass
class DetectionSet:
    """Attributes: images (``[N, 3, H, W]`` uint8), targets (one per image), weather (preset
    name per image, ``""`` when the folder has no ``meta``), names (sample names)."""

    images: torch.Tensor
    targets: list[DetectionTargets]
    weather: list[str]
    names: list[str]
    classes: tuple[str, ...] = DETECTION_CLASSES

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: list[int]) -> DetectionSet:
        return DetectionSet(
            self.images[indices],
            [self.targets[i] for i in indices],
            [self.weather[i] for i in indices],
            [self.names[i] for i in indices],
            self.classes,
        )


def _targets(path: Path, classes: tuple[str, ...]) -> DetectionTargets:
    rows = []
    for lab in kitti.read_labels(path):
        cat = kitti.CATEGORIES.get(lab.type)
        if cat not in classes:
            continue  # DontCare and classes this model does not learn
        x, _, z = lab.location
        rows.append((*lab.bbox, classes.index(cat), math.hypot(x, z), lab.occluded, lab.truncated))
    t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 8)
    return DetectionTargets(t[:, :4], t[:, 4].long(), t[:, 5], t[:, 6].long(), t[:, 7].clamp(0, 1))


def _image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError("missing or unreadable image", file=path)
    return np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))


def load_detection_set(
    folder: str | Path, classes: tuple[str, ...] = DETECTION_CLASSES, limit: int | None = None
) -> DetectionSet:
    """Read a KITTI tree; raises :class:`DataError` naming the file on bad input."""
    folder = Path(folder)
    image_dir = folder / "image_2"
    if not image_dir.is_dir():
        raise DataError(
            "no image_2 folder: build the dataset first (avrobust dataset build)", file=folder
        )
    names = sorted(p.stem for p in image_dir.glob("*.png"))[:limit]
    if not names:
        raise DataError("no images in image_2", file=image_dir)
    first = _image(image_dir / f"{names[0]}.png")
    images = torch.empty((len(names), *first.shape), dtype=torch.uint8)  # no stacked copy

    def fill(k: int) -> None:
        path = image_dir / f"{names[k]}.png"
        im = _image(path)
        if im.shape != first.shape:
            raise DataError(f"size {im.shape[1:]} differs from {first.shape[1:]}", file=path)
        images[k] = torch.from_numpy(im)

    with ThreadPoolExecutor(4) as pool:  # cv2 decodes without the GIL
        list(pool.map(fill, range(len(names))))
    targets = [_targets(folder / "label_2" / f"{n}.txt", classes) for n in names]
    weather = []
    for n in names:
        meta = folder / "meta" / f"{n}.json"
        weather.append(
            json.loads(meta.read_text())["conditions"]["weather"] if meta.exists() else ""
        )
    return DetectionSet(images, targets, weather, names, classes)
