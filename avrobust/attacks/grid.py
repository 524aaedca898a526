"""The grid an attack optimises a texture on: the texture itself, or a coarser one upsampled
to it (patterns a far camera can still resolve)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TextureGrid:
    """Maps between a texture of ``size`` ``(h, w)`` and the optimiser's grid of ``cells``."""

    size: tuple[int, int]
    cells: tuple[int, int]

    def down(self, texture: torch.Tensor) -> torch.Tensor:
        """The grid's values for ``texture`` (``[C, h, w]``): area averages."""
        if self.cells == self.size:
            return texture
        return F.interpolate(texture[None], size=self.cells, mode="area")[0]

    def up(self, values: torch.Tensor) -> torch.Tensor:
        """The texture for the grid's ``values`` (``[C, *cells]``), bilinear, differentiable."""
        if self.cells == self.size:
            return values
        return F.interpolate(values[None], size=self.size, mode="bilinear", align_corners=False)[0]


def coarse_grid(texture: torch.Tensor, res: int | None) -> TextureGrid:
    """The grid with ``res`` cells along the texture's longer side (its own size when ``res``
    is None or not smaller), keeping its aspect ratio."""
    h, w = texture.shape[-2:]
    if res is None or res >= max(h, w):
        return TextureGrid((h, w), (h, w))
    scale = res / max(h, w)
    return TextureGrid((h, w), (max(2, round(h * scale)), max(2, round(w * scale))))
