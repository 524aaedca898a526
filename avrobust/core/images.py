"""Image tensors to and from PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from avrobust.core.errors import DataError
from avrobust.core.files import atomic_write


def to_rgb8(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` float in [0, 1] to ``[H, W, 3]`` uint8."""
    arr = image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray((arr * 255 + 0.5).astype(np.uint8))


def save_png(path: str | Path, rgb: np.ndarray | torch.Tensor) -> Path:
    """Write an ``[H, W, 3]`` uint8 RGB array (or a ``[3, H, W]`` float tensor) as PNG,
    atomically."""
    if isinstance(rgb, torch.Tensor):
        rgb = to_rgb8(rgb)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise DataError("could not encode the image as PNG", file=path)
    with atomic_write(path) as fh:
        fh.write(buf.tobytes())
    return Path(path)


def load_png(path: str | Path) -> torch.Tensor:
    """``[3, H, W]`` float32 in [0, 1] from a PNG or JPEG file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such image file", file=path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError("not a readable image", file=path)
    return torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float() / 255.0
