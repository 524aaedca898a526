"""Expectation over transformation: the conditions a physical attack must survive, as a seeded,
replayable Kornia pipeline.

``EOT(preset)`` draws a transformation per image: light (brightness, contrast, gamma), colour
(saturation, hue), blur (Gaussian, motion), sensor noise, JPEG, rain, and small perspective and
scale jitter of the whole view. The same ``seed`` replays the same transformations, and named
presets let evaluation use the conditions an attack was trained for.
"""

from __future__ import annotations

import contextlib

import kornia.augmentation as K
import torch
from torch import nn

from avrobust.core.errors import UnknownNameError

PRESETS: dict[str, dict[str, float]] = {
    # strength of each family, 0 disables it
    "light": {
        "light": 1.0,
        "colour": 0.5,
        "blur": 0.0,
        "noise": 0.3,
        "jpeg": 0.0,
        "rain": 0.0,
        "geometry": 0.3,
    },
    "standard": {
        "light": 1.0,
        "colour": 1.0,
        "blur": 1.0,
        "noise": 1.0,
        "jpeg": 1.0,
        "rain": 0.3,
        "geometry": 1.0,
    },
    "harsh": {
        "light": 1.5,
        "colour": 1.3,
        "blur": 1.5,
        "noise": 1.5,
        "jpeg": 1.5,
        "rain": 1.0,
        "geometry": 1.5,
    },
    "none": {
        "light": 0.0,
        "colour": 0.0,
        "blur": 0.0,
        "noise": 0.0,
        "jpeg": 0.0,
        "rain": 0.0,
        "geometry": 0.0,
    },
}


def build_pipeline(strength: dict[str, float]) -> nn.Module:
    s = strength
    augs: list[nn.Module] = []
    if s["light"] > 0:
        b = 0.35 * s["light"]
        augs += [
            K.ColorJitter(brightness=b, contrast=0.3 * s["light"], p=1.0),
            K.RandomGamma((1 - 0.3 * s["light"], 1 + 0.3 * s["light"]), p=0.5),
        ]
    if s["colour"] > 0:
        augs.append(K.ColorJitter(saturation=0.3 * s["colour"], hue=0.03 * s["colour"], p=0.7))
    if s["blur"] > 0:
        augs += [
            K.RandomGaussianBlur((5, 5), (0.1, 0.6 + 0.6 * s["blur"]), p=0.4),
            K.RandomMotionBlur(5, 35.0, 0.5, p=0.2 * min(1.0, s["blur"])),
        ]
    if s["geometry"] > 0:
        augs += [
            K.RandomPerspective(0.08 * s["geometry"], p=0.5),
            K.RandomAffine(
                degrees=3 * s["geometry"],
                scale=(1 - 0.08 * s["geometry"], 1 + 0.08 * s["geometry"]),
                padding_mode="border",
                p=0.5,
            ),
        ]
    if s["rain"] > 0:
        augs.append(
            K.RandomRain(
                drop_height=(2, 5),
                drop_width=(1, 2),
                number_of_drops=(20, int(40 + 200 * s["rain"])),
                p=0.3 * min(1.0, s["rain"]),
            )
        )
    if s["noise"] > 0:
        augs.append(K.RandomGaussianNoise(std=0.02 * s["noise"], p=0.7))
    if s["jpeg"] > 0:
        augs.append(K.RandomJPEG(jpeg_quality=(max(20.0, 80 - 40 * s["jpeg"]), 95.0), p=0.4))
    return K.AugmentationSequential(*augs) if augs else nn.Identity()


class EOT(nn.Module):
    """A seeded distribution of transformations applied to ``[B, 3, H, W]`` images in [0, 1];
    differentiable with respect to the images."""

    def __init__(self, preset: str | dict[str, float] = "standard") -> None:
        super().__init__()
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise UnknownNameError(
                    f"unknown EOT preset {preset!r}", field="eot", allowed=", ".join(PRESETS)
                )
            self.name, strength = preset, PRESETS[preset]
        else:
            self.name, strength = "custom", {**PRESETS["none"], **preset}
        self.strength = strength
        self.pipeline = build_pipeline(strength)

    def forward(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """Transform ``images``; the same ``seed`` draws the same transformations."""
        # Kornia draws from the global generator: fork it so the caller's stream is untouched
        # and seed it so the draw replays.
        devices = [images.device] if images.is_cuda else []
        with torch.random.fork_rng(devices=devices), contextlib.nullcontext():
            torch.manual_seed(int(seed))
            return self.pipeline(images).clamp(0, 1)
