"""Patches as CARLA textures: resampled to the size and orientation of the target object's
texture layout and written into a ``carla.TextureColor`` once per patch (filling one is per
pixel from Python, about a second for 512 x 512), then reused for every job.

Which way a mesh's UVs run is a property of the CARLA asset, not of the patch; ``TextureLayout``
names it. The defaults fit the stop-sign plates of CARLA's towns as far as we could tell
without a server; ``docs/carla.md`` says how to check a layout by rendering it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avrobust.backends.carla.convert import _carla


@dataclass(frozen=True)
class TextureLayout:
    """How an object's texture is laid out: its size in texels, and how the patch (row 0 at the
    top as printed, column 0 at the left as seen from the front) maps onto it."""

    width: int = 512
    height: int = 512
    flip_u: bool = False  # mirror left-right (meshes seen from their back in UV space)
    flip_v: bool = False  # mirror top-bottom (UV origins at the bottom)
    rotate90: int = 0  # quarter turns counter-clockwise


LAYOUTS = {"BP_Stop": TextureLayout(), "default": TextureLayout()}


def layout_for(object_name: str) -> TextureLayout:
    for prefix, layout in LAYOUTS.items():
        if object_name.startswith(prefix):
            return layout
    return LAYOUTS["default"]


def resample(texture: torch.Tensor, mask: torch.Tensor | None, layout: TextureLayout):
    """``[H, W, 4]`` uint8 RGBA in the layout's texel grid: the patch where its mask is set, its
    own texture elsewhere (an attack's texture starts from the surface's own face, so outside
    the stickers it is that face). Alpha carries the mask."""
    tex = texture.detach().float().clamp(0, 1)
    m = (
        torch.ones_like(tex[:1])
        if mask is None
        else mask.detach().float().reshape(1, *tex.shape[1:])
    )
    img = torch.cat([tex, m], 0)
    img = torch.rot90(img, layout.rotate90, dims=(1, 2))
    if layout.flip_u:
        img = img.flip(2)
    if layout.flip_v:
        img = img.flip(1)
    img = F.interpolate(
        img[None],
        size=(layout.height, layout.width),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0]
    return (img.permute(1, 2, 0) * 255 + 0.5).clamp(0, 255).to(torch.uint8)


def texture_color(rgba: torch.Tensor):
    """A ``carla.TextureColor`` holding ``[H, W, 4]`` uint8 (``set(x, y, colour)``: x is the
    column). Slow per pixel, so callers cache it (``TextureCache``)."""
    carla = _carla()
    h, w = rgba.shape[:2]
    tex = carla.TextureColor(w, h)
    data = rgba.tolist()
    for y in range(h):
        row = data[y]
        for x in range(w):
            r, g, b, a = row[x]
            tex.set(x, y, carla.Color(r, g, b, a))
    return tex


class TextureCache:
    """TextureColors by patch content and layout, built once per process."""

    def __init__(self) -> None:
        self._cache: dict[str, object] = {}

    def get(self, texture: torch.Tensor, mask: torch.Tensor | None, layout: TextureLayout):
        h = hashlib.sha256()
        h.update(texture.detach().cpu().contiguous().numpy().tobytes())
        if mask is not None:
            h.update(mask.detach().cpu().contiguous().numpy().tobytes())
        h.update(repr(layout).encode())
        key = h.hexdigest()
        if key not in self._cache:
            self._cache[key] = texture_color(resample(texture, mask, layout))
        return self._cache[key]


CACHE = TextureCache()
