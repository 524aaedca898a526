"""Detections: what a perception model outputs, for 2D and 3D alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from avrobust.core.boxes import Box2D, Box3D
from avrobust.core.errors import UnknownNameError

Kind = Literal["2d", "3d"]
_WIDTH = {"2d": 4, "3d": 7}


@dataclass
class Detections:
    """Boxes with labels and scores, for one image/sweep or batched over several.

    Attributes:
        boxes: ``[N, 4]`` ``(x1, y1, x2, y2)`` pixels for ``kind="2d"``; ``[N, 7]``
            ``(x, y, z, l, w, h, yaw)`` in the LiDAR frame for ``kind="3d"``.
        scores: ``[N]`` float in [0, 1].
        labels: ``[N]`` int64 class indices into ``class_names``.
        kind: ``"2d"`` or ``"3d"``.
        class_names: names of the label indices, shared by all detections.
        batch_index: ``[N]`` int64, the item each detection belongs to, or None for one item.
        batch_size: the number of items when batched (items may have no detections).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    kind: Kind = "2d"
    class_names: tuple[str, ...] = field(default_factory=tuple)
    batch_index: torch.Tensor | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _WIDTH:
            raise ValueError(f"kind must be '2d' or '3d', got {self.kind!r}")
        width = _WIDTH[self.kind]
        self.boxes = torch.as_tensor(self.boxes, dtype=torch.float32).reshape(-1, width)
        n = self.boxes.shape[0]
        self.scores = torch.as_tensor(self.scores, dtype=torch.float32).reshape(-1)
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64).reshape(-1)
        if self.scores.shape[0] != n or self.labels.shape[0] != n:
            raise ValueError(
                f"Detections need one score and label per box: {n} boxes, "
                f"{self.scores.shape[0]} scores, {self.labels.shape[0]} labels"
            )
        self.class_names = tuple(self.class_names)
        if self.batch_index is not None:
            self.batch_index = torch.as_tensor(self.batch_index, dtype=torch.int64).reshape(-1)
            if self.batch_index.shape[0] != n:
                raise ValueError("batch_index needs one entry per detection")
            if self.batch_size is None:
                self.batch_size = int(self.batch_index.max()) + 1 if n else 0

    def __len__(self) -> int:
        return self.boxes.shape[0]

    @classmethod
    def empty(cls, kind: Kind = "2d", class_names: tuple[str, ...] = ()) -> Detections:
        return cls(torch.zeros(0, _WIDTH[kind]), torch.zeros(0), torch.zeros(0), kind, class_names)

    @property
    def is_batched(self) -> bool:
        return self.batch_index is not None

    def filter(self, keep: torch.Tensor) -> Detections:
        """The detections where the bool mask (or index tensor) ``keep`` selects."""
        return Detections(
            self.boxes[keep],
            self.scores[keep],
            self.labels[keep],
            self.kind,
            self.class_names,
            None if self.batch_index is None else self.batch_index[keep],
            self.batch_size,
        )

    def above(self, threshold: float) -> Detections:
        """Detections scoring at least ``threshold``."""
        return self.filter(self.scores >= threshold)

    def of_class(self, name: str) -> Detections:
        """Detections whose label names ``name``."""
        if name not in self.class_names:
            raise UnknownNameError(
                f"unknown class {name!r}", field="class", allowed=", ".join(self.class_names)
            )
        return self.filter(self.labels == self.class_names.index(name))

    def box2d(self) -> Box2D:
        if self.kind != "2d":
            raise TypeError("box2d() needs 2D detections")
        return Box2D(self.boxes)

    def box3d(self) -> Box3D:
        if self.kind != "3d":
            raise TypeError("box3d() needs 3D detections")
        return Box3D.from_tensor(self.boxes)

    def to(self, device) -> Detections:
        return Detections(
            self.boxes.to(device),
            self.scores.to(device),
            self.labels.to(device),
            self.kind,
            self.class_names,
            None if self.batch_index is None else self.batch_index.to(device),
            self.batch_size,
        )

    @staticmethod
    def batch(items: list[Detections]) -> Detections:
        """Concatenate per-item detections into one batched object (``batch_index`` set)."""
        if not items:
            raise ValueError("cannot batch an empty list of Detections")
        kind, names = items[0].kind, items[0].class_names
        for d in items:
            if d.is_batched:
                raise ValueError("cannot batch detections that are already batched")
            if d.kind != kind or d.class_names != names:
                raise ValueError("batched detections must share kind and class names")
        index = torch.cat(
            [torch.full((len(d),), i, dtype=torch.int64) for i, d in enumerate(items)]
        )
        return Detections(
            torch.cat([d.boxes for d in items]),
            torch.cat([d.scores for d in items]),
            torch.cat([d.labels for d in items]),
            kind,
            names,
            index,
            len(items),
        )

    def unbatch(self) -> list[Detections]:
        """Split batched detections back into one object per item, in order."""
        if self.batch_index is None:
            return [self]
        assert self.batch_size is not None
        return [
            Detections(self.boxes[m], self.scores[m], self.labels[m], self.kind, self.class_names)
            for m in (self.batch_index == i for i in range(self.batch_size))
        ]

    def to_torchmetrics(self) -> list[dict[str, torch.Tensor]]:
        """Per-item dicts ``{"boxes", "scores", "labels"}`` as torchmetrics' detection metrics
        take them (2D only)."""
        if self.kind != "2d":
            raise TypeError("torchmetrics' MeanAveragePrecision takes 2D boxes")
        return [{"boxes": d.boxes, "scores": d.scores, "labels": d.labels} for d in self.unbatch()]
