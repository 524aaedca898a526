"""The sign-crop set a dataset build writes (``crops.csv`` and ``crops/*.png``), in memory."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from avrobust.core.classes import SIGN_CLASSES
from avrobust.core.errors import DataError


@dataclass
class CropSet:
    """Attributes:
    images: ``[N, 3, 64, 64]`` uint8. labels: ``[N]`` int64 indices into ``classes``.
    box_height, distance: ``[N]`` float (distance is NaN for background crops).
    weather: N preset names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    box_height: torch.Tensor
    distance: torch.Tensor
    weather: list[str]
    classes: tuple[str, ...] = SIGN_CLASSES

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, keep: torch.Tensor) -> CropSet:
        idx = torch.nonzero(keep).flatten()
        return CropSet(
            self.images[idx],
            self.labels[idx],
            self.box_height[idx],
            self.distance[idx],
            [self.weather[i] for i in idx.tolist()],
            self.classes,
        )


def load_crops(folder: str | Path, classes: tuple[str, ...] = SIGN_CLASSES) -> CropSet:
    """Read a dataset's crops; raises :class:`DataError` naming the file on bad input."""
    folder = Path(folder)
    index = folder / "crops.csv"
    if not index.is_file():
        raise DataError(
            "no crops.csv: build the dataset first (avrobust dataset build)", file=folder
        )
    images, labels, heights, dists, weathers = [], [], [], [], []
    with open(index) as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            if row.get("label") not in classes:
                raise DataError(
                    f"unknown label {row.get('label')!r}",
                    file=index,
                    line=line,
                    field="label",
                    allowed=", ".join(classes),
                )
            path = folder / "crops" / row["file"]
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError("missing or unreadable crop image", file=path)
            images.append(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1)))
            labels.append(classes.index(row["label"]))
            heights.append(float(row["box_height"]))
            d = row.get("distance", "")
            dists.append(float(d) if d not in ("", "nan") else math.nan)
            weathers.append(row.get("weather", ""))
    if not images:
        raise DataError("the crop set is empty", file=index)
    return CropSet(
        torch.from_numpy(np.stack(images)),
        torch.tensor(labels),
        torch.tensor(heights),
        torch.tensor(dists),
        weathers,
        classes,
    )
