"""The camera detector's detections on every image of a KITTI tree, computed once per
(detector weights, threshold) and cached beside the data: both fusion detectors train on them,
and a 4000-image set takes minutes to run through the camera detector on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from avrobust.core.errors import DataError
from avrobust.core.files import atomic_write
from avrobust.models.camera_detector import load_camera_detector
from avrobust.models.detection_data import _image
from avrobust.models.weights import file_sha256

Dets = dict[str, torch.Tensor]  # boxes [K, 4] xyxy pixels, scores [K], labels [K]


def camera_detections(
    folder: str | Path,
    detector: str | Path,
    names: list[str],
    score_threshold: float = 0.05,
    batch: int = 8,
    on_step: Callable[[int, int], None] | None = None,
) -> list[Dets]:
    """Detections of the camera detector (weights file ``detector``) on ``image_2/<name>.png``
    for each of ``names``, from ``<folder>/cache/`` when an earlier run cached them."""
    folder = Path(folder)
    key = f"camera_{file_sha256(detector)[:12]}_{score_threshold:g}.pt"
    cache = folder / "cache" / key
    stored: dict[str, Dets] = {}
    if cache.exists():
        stored = torch.load(cache, weights_only=True)
    todo = [n for n in names if n not in stored]
    if todo:
        model = load_camera_detector(detector)
        paths = [folder / "image_2" / f"{n}.png" for n in todo]
        for p in paths[:1]:
            if not p.exists():
                raise DataError("missing image for a LiDAR sweep", file=p)
        with ThreadPoolExecutor(2) as pool:
            for i in range(0, len(todo), batch):
                chunk = paths[i : i + batch]
                images = (
                    torch.stack([torch.from_numpy(a) for a in pool.map(_image, chunk)]).float()
                    / 255
                )
                for n, d in zip(
                    todo[i : i + batch], model.detect(images, score_threshold), strict=True
                ):
                    stored[n] = {k: v.clone() for k, v in d.items()}
                if on_step:
                    on_step(min(i + batch, len(todo)), len(todo))
                if (i // batch) % 64 == 63:  # an interrupted run keeps what it has done
                    _save(cache, stored)
        _save(cache, stored)
    return [stored[n] for n in names]


def _save(cache: Path, stored: dict[str, Dets]) -> None:
    cache.parent.mkdir(exist_ok=True)
    with atomic_write(cache) as fh:
        torch.save(stored, fh)
