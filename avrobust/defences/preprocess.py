"""Input-transformation baselines for camera models: JPEG re-compression (Dziugaite et al. 2016),
median smoothing (Xu et al. 2018, feature squeezing) and Local Gradient Smoothing (Naseer et al.
2019, against patches). Each wraps a model so that it sees the transformed image; the model's
output format is unchanged. All are known to fall to adaptive attacks that pass the
transformation exactly or with BPDA (Athalye et al. 2018); they are here as
the baselines the literature compares against, measured by the campaigns against patches made
without them and through them (``avrobust attack sign --through``).
"""

from __future__ import annotations

import dataclasses

import cv2
import kornia
import numpy as np
import torch

from avrobust.core.components import DefenceBase, Perception
from avrobust.core.errors import ConfigError


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """``[3, H, W]`` in [0, 1] through JPEG at ``quality`` (OpenCV's encoder) and back."""
    rgb = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    return torch.from_numpy(back).permute(2, 0, 1).to(image) / 255.0


def median(image: torch.Tensor, kernel: int) -> torch.Tensor:
    return kornia.filters.median_blur(image[None], (kernel, kernel))[0]


class InputTransform(DefenceBase):
    """A defence that transforms the camera image before the model sees it.

    ``differentiable`` is the same transformation as an attack optimises through it: exact
    where the transformation has a gradient (the median picks one input per pixel), BPDA
    (Athalye et al. 2018: forward through it, backward as the identity) where it has none
    (JPEG's quantisation)."""

    def __init__(self, name: str, transform, bpda: bool, **params) -> None:
        self.name, self._transform, self.bpda, self.params = name, transform, bpda, params

    def differentiable(self, image: torch.Tensor) -> torch.Tensor:
        """``[3, H, W]`` through the transformation, with a gradient an attack can follow."""
        if self.bpda:
            return image + (self._transform(image.detach()) - image).detach()
        return self._transform(image)

    def wrap(self, model) -> Perception:
        return _Transformed(model, self._transform)

    def provenance(self) -> dict:
        return dict(self.params)


class _Transformed:
    """``model`` on transformed camera images (a frame without one passes unchanged)."""

    def __init__(self, model, transform) -> None:
        self.model, self._transform = model, transform

    def __call__(self, frame):
        if frame.image is None:
            return self.model(frame)
        return self.model(dataclasses.replace(frame, image=self._transform(frame.image)))

    def take_alarms(self) -> list:
        return self.model.take_alarms()


def jpeg_defence(quality: int = 75) -> InputTransform:
    if not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality must be 1-100, got {quality}", field="quality")
    return InputTransform("jpeg", lambda img: jpeg(img, quality), bpda=True, quality=quality)


def median_defence(kernel: int = 3) -> InputTransform:
    if kernel < 3 or kernel % 2 == 0:
        raise ConfigError(f"the median kernel must be odd and >= 3, got {kernel}", field="kernel")
    return InputTransform("median-blur", lambda img: median(img, kernel), bpda=False, kernel=kernel)


def local_gradient_smoothing(
    image: torch.Tensor,
    window: int = 15,
    overlap: int = 5,
    threshold: float = 0.1,
    strength: float = 2.3,
) -> torch.Tensor:
    """Local Gradient Smoothing (Naseer et al. 2019): a localised patch is a dense cluster of
    high image gradients, so where the normalised gradient magnitude is dense (its mean over a
    ``window`` exceeds ``threshold``) the image is darkened by ``strength`` times it, which
    flattens the patch. Defaults are the paper's."""
    x = image[None]
    grad = kornia.filters.spatial_gradient(kornia.color.rgb_to_grayscale(x), normalized=False)
    mag = torch.linalg.vector_norm(grad[:, 0], dim=1, keepdim=True)  # [1, 1, H, W]
    lo, hi = mag.amin(), mag.amax()
    mag = (mag - lo) / (hi - lo).clamp(min=1e-6)
    stride = window - overlap
    density = torch.nn.functional.avg_pool2d(mag, window, stride, ceil_mode=True)
    dense = (density > threshold).float()
    # Back to pixels: a pixel counts as dense when any window covering it was dense.
    cover = torch.nn.functional.interpolate(dense, scale_factor=stride, mode="nearest")
    cover = torch.nn.functional.max_pool2d(cover, overlap | 1, 1, (overlap | 1) // 2)
    cover = cover[..., : mag.shape[2], : mag.shape[3]]
    cover = torch.nn.functional.pad(
        cover, (0, mag.shape[3] - cover.shape[3], 0, mag.shape[2] - cover.shape[2])
    )
    return (x * (1 - strength * mag * cover).clamp(0, 1))[0]


def lgs_defence(threshold: float = 0.1, strength: float = 2.3) -> InputTransform:
    if not 0 < threshold < 1 or strength <= 0:
        raise ConfigError(
            f"LGS needs 0 < threshold < 1 and strength > 0, got {threshold}, {strength}",
            field="threshold",
        )
    return InputTransform(
        "local-gradient-smoothing",
        lambda img: local_gradient_smoothing(img, threshold=threshold, strength=strength),
        bpda=True,  # as Chiang et al. (2020) broke it: the gradient through the mask is useless
        threshold=threshold,
        strength=strength,
    )
