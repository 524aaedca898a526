"""Differentiable placement of a texture on a surface seen in an image (REAP-style).

The texture is warped onto the surface's quad with a Kornia perspective transform, limited to
the pixels where the surface is visible (occluders and the surface's own outline removed),
relit with the gain and offset the renderer measured for that surface (and its per-pixel
shading, for shadows), and alpha-blended over the image. Gradients reach the texture (and the
mask), so attacks can optimise through it.

Coordinates: a quad holds continuous pixel coordinates (pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``); the texture's corners are ``(0, 0)``, ``(w, 0)``, ``(w, h)``,
``(0, h)`` in the same convention. Kornia indexes pixel centres by integers, so the homography is
conjugated by half-pixel shifts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from kornia.geometry.transform import get_perspective_transform, warp_perspective

from avrobust.core.surface import SurfaceView


def _shift(d: float, like: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, dtype=like.dtype, device=like.device)
    m[0, 2] = m[1, 2] = d
    return m


def texture_to_image(quad: torch.Tensor, tex_h: int, tex_w: int) -> torch.Tensor:
    """``[3, 3]`` homography from texture pixel indices to image pixel indices."""
    src = torch.tensor(
        [[0.0, 0.0], [tex_w, 0.0], [tex_w, tex_h], [0.0, tex_h]],
        dtype=torch.float32,
        device=quad.device,
    )
    h = get_perspective_transform(src[None], quad.to(torch.float32)[None])[0]
    # index -> continuous (+0.5), continuous homography, continuous -> index (-0.5)
    return _shift(-0.5, h) @ h @ _shift(0.5, h)


def composite(
    image: torch.Tensor,
    texture: torch.Tensor,
    mask: torch.Tensor,
    view: SurfaceView,
    relight: bool = True,
    window: tuple[int, int, int, int] | None = None,
) -> torch.Tensor:
    """Place ``texture`` (``[3, h, w]`` in [0, 1]) with ``mask`` (``[1, h, w]``: 1 where the
    texture is applied) on ``view`` in ``image`` (``[3, H, W]``); returns the new image, or
    only its ``window`` ``(x0, y0, x1, y1)`` (pixel bounds) when one is given: the same pixels,
    computed with less work."""
    x0, y0, x1, y1 = window if window is not None else (0, 0, image.shape[2], image.shape[1])
    base = image[:, y0:y1, x0:x1]
    vis = view.mask.to(image)[y0:y1, x0:x1][None]
    shading = None if view.shading is None else view.shading.to(image)[y0:y1, x0:x1][None]
    h, w = texture.shape[1:]
    quad = view.quad.to(image) - torch.tensor([x0, y0], dtype=image.dtype, device=image.device)
    m = texture_to_image(quad, h, w)
    rgba = torch.cat([texture, mask.to(texture)], dim=0)[None]
    warped = warp_perspective(
        rgba, m[None], (y1 - y0, x1 - x0), mode="bilinear", padding_mode="zeros", align_corners=True
    )[0]
    alpha = warped[3:4] * vis
    colour = warped[:3]
    if relight:
        gain = view.gain.to(image).view(3, 1, 1)
        if shading is not None:
            gain = gain * shading
        colour = colour * gain + view.offset.to(image).view(3, 1, 1)
    return base * (1 - alpha) + colour.clamp(0, 1) * alpha


TRANSFORM_REACH = 16  # pixels: two JPEG blocks, a median kernel up to 33


def _whole(n: int, block: int) -> int:
    return -(-n // block) * block


def composite_in_crop(
    image: torch.Tensor,
    texture: torch.Tensor,
    mask: torch.Tensor,
    view: SurfaceView,
    box: torch.Tensor,
    size: int = 64,
    margin: float = 0.15,
    relight: bool = True,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The ``[3, size, size]`` square crop around ``box`` (as
    :func:`avrobust.data.crops.square_crop` takes it) of the image with the texture composited.

    Identical to compositing the whole image and cropping: the texture is warped at the
    image's own resolution inside the crop's window only, then resampled like any crop, so the
    optimiser sees the texture exactly as coarsely as the camera does. ``transform`` (an input
    transformation defence, differentiable) is applied to the window at the image's resolution
    before cropping, as the defence applies it to the whole image: the window is widened by
    ``TRANSFORM_REACH`` pixels and starts on the 8-pixel grid, so a local transformation (a
    median, JPEG's blocks) gives the crop it gives in the whole image; one that looks at the
    whole image (LGS normalises by the image's largest gradient) is approximated."""
    from avrobust.data.crops import square_crop

    x1, y1, x2, y2 = (float(v) for v in box)
    half = max(x2 - x1, y2 - y1) * (1 + 2 * margin) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    _, height, width = image.shape
    wx0, wy0 = max(0, math.floor(cx - half) - 1), max(0, math.floor(cy - half) - 1)
    # square_crop average-pools large crops in blocks aligned to the tensor's origin: align
    # the window to the same blocks so that the result matches the full image's exactly.
    factor = int(2 * half // size)
    # A transform reaches a few pixels around each pixel (a median's kernel, a JPEG block):
    # widen the window so that the crop sees what it sees in the whole image.
    reach = TRANSFORM_REACH if transform is not None else 0
    wx0, wy0 = max(0, wx0 - reach), max(0, wy0 - reach)
    grid = math.lcm(factor if factor >= 2 else 1, 8 if transform is not None else 1)
    wx0, wy0 = wx0 - wx0 % grid, wy0 - wy0 % grid
    # ...and spans whole blocks: square_crop maps coordinates by the pooled size, which a
    # partial last block would stretch.
    wx1 = min(width, wx0 + _whole(math.ceil(cx + half) + 2 + reach - wx0, grid))
    wy1 = min(height, wy0 + _whole(math.ceil(cy + half) + 2 + reach - wy0, grid))
    local = composite(image, texture, mask, view, relight, (wx0, wy0, wx1, wy1))
    if transform is not None:
        local = transform(local)
    shifted = box.to(image) - torch.tensor(
        [wx0, wy0, wx0, wy0], dtype=image.dtype, device=image.device
    )
    return square_crop(local, shifted, margin, size)
