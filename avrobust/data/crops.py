"""Square crops around image boxes: what the sign classifier sees."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CROP_SIZE = 64
CROP_MARGIN = 0.15  # context around a sign's box, as a share of its size on each side


def square_crop(
    image: torch.Tensor, box: torch.Tensor, margin: float = CROP_MARGIN, size: int = CROP_SIZE
) -> torch.Tensor:
    """A ``[3, size, size]`` crop of the square around ``box`` (xyxy) with ``margin`` context,
    padded with edge pixels where it leaves the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    _, h, w = image.shape
    # Normalised sampling grid over the square (align_corners=False pixel centres).
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    gx = (cx + lin * side) / w * 2 - 1
    gy = (cy + lin * side) / h * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    # Average down first when the sign is larger than the crop, so it does not alias.
    src = image[None]
    factor = int(side // size)
    if factor >= 2:
        src = F.avg_pool2d(src, factor, ceil_mode=True)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
