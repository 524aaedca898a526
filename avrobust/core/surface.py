"""SurfaceView: one attack surface as it appears in one camera frame."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SurfaceView:
    """A named attack surface (sign face, vehicle rear, wall or road patch) seen in one frame.

    The compositor of the camera attacks warps a texture onto ``quad``, multiplies by ``mask`` and
    relights it as ``gain * texture + offset`` (times ``shading`` where given).

    Attributes:
        name: the surface's name in the scenario.
        object_id: instance id of the object that carries the surface.
        quad: ``[4, 2]`` float32, pixel positions ``(u, v)`` of the texture's corners in the order
            top-left, top-right, bottom-right, bottom-left (as the texture is seen from the front).
        mask: ``[H, W]`` float32 in [0, 1], the pixels where the surface is visible (occluders and
            the surface's own outline, e.g. an octagon, already removed).
        gain: ``[3]`` per-channel illumination gain on the texture's albedo.
        offset: ``[3]`` per-channel additive light (ambient, airlight).
        size_m: ``(width, height)`` of the texture's rectangle in metres.
        distance: metres from the camera to the surface centre.
        view_angle: radians between the surface normal and the direction to the camera.
        shading: optional ``[H, W]`` float32 per-pixel light factor (cast shadows).
    """

    name: str
    object_id: int
    quad: torch.Tensor
    mask: torch.Tensor
    gain: torch.Tensor
    offset: torch.Tensor
    size_m: tuple[float, float]
    distance: float
    view_angle: float
    shading: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.quad = torch.as_tensor(self.quad, dtype=torch.float32).reshape(4, 2)
        self.mask = torch.as_tensor(self.mask, dtype=torch.float32)
        if self.mask.dim() != 2:
            raise ValueError(f"SurfaceView.mask must be [H, W], got {tuple(self.mask.shape)}")
        self.gain = torch.as_tensor(self.gain, dtype=torch.float32).reshape(3)
        self.offset = torch.as_tensor(self.offset, dtype=torch.float32).reshape(3)
        if self.shading is not None and self.shading.shape != self.mask.shape:
            raise ValueError("SurfaceView.shading must have the mask's shape")

    @property
    def visible_pixels(self) -> int:
        """How many pixels show the surface (mask above one half)."""
        return int((self.mask > 0.5).sum())

    @property
    def is_visible(self) -> bool:
        return self.visible_pixels > 0
