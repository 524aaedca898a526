"""The traffic-sign classifier: a compact CNN that names a sign crop.

Input: ``[B, 3, 64, 64]`` RGB in [0, 1], the square around a sign's box with 15% context on each
side (:func:`avrobust.data.crops.square_crop` makes them). Output: logits over the sign
classes of the simulator plus ``background``. Small enough to train on two CPU cores within the
hour and to ship (under 2 MB), deep enough to read speed-limit digits at 20 px.
"""

from __future__ import annotations

import torch
from torch import nn

from avrobust.core.classes import SIGN_CLASSES

INPUT_SIZE = 64


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class SignClassifier(nn.Module):
    """Six 3x3 convolutions in four stages (24, 48, 96, 128 channels) with max pooling, then
    dropout and two linear layers: about 73 million multiply-adds per crop."""

    def __init__(self, classes: tuple[str, ...] = SIGN_CLASSES, width: int = 24) -> None:
        super().__init__()
        self.classes = tuple(classes)
        w = width
        self.features = nn.Sequential(
            *_conv(3, w),
            nn.MaxPool2d(2),  # 32x32
            *_conv(w, 2 * w),
            *_conv(2 * w, 2 * w),
            nn.MaxPool2d(2),  # 16x16
            *_conv(2 * w, 4 * w),
            *_conv(4 * w, 4 * w),
            nn.MaxPool2d(2),  # 8x8
            *_conv(4 * w, 128),
            nn.MaxPool2d(2),  # 4x4
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(128 * 16, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, len(self.classes)),
        )
        # Fixed input normalisation, part of the model so that users feed plain [0, 1] images.
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, 64, 64]`` in [0, 1] to ``[B, num_classes]`` logits."""
        return self.head(self.features((x - self.mean) / self.std))
