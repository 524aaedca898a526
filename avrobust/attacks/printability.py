"""Printability: the non-printability score against a palette of printable colours (Sharif et
al. 2016, as Thys et al. 2019 use it) and total variation (smoothness)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from avrobust.core.errors import DataError
from avrobust.core.resources import data_path

PALETTES = data_path("assets", "palettes")


def load_palette(name_or_path: str | Path = "printer30") -> torch.Tensor:
    """``[K, 3]`` colours in [0, 1] from a CSV with columns ``r,g,b`` (0-255) or a palette
    name in ``assets/palettes/``."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PALETTES / f"{name_or_path}.csv"
    if not path.is_file():
        known = sorted(p.stem for p in PALETTES.glob("*.csv"))
        raise DataError(
            f"no palette {str(name_or_path)!r}", field="palette", allowed=", ".join(known)
        )
    rows = []
    with open(path) as fh:
        for line, row in enumerate(
            csv.DictReader(r for r in fh if not r.lstrip().startswith("#")), start=2
        ):
            try:
                rows.append([float(row["r"]), float(row["g"]), float(row["b"])])
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    "each row needs numeric r, g, b (0-255)", file=path, line=line
                ) from None
    if not rows:
        raise DataError("the palette is empty", file=path)
    colours = torch.tensor(rows) / 255.0
    if colours.min() < 0 or colours.max() > 1:
        raise DataError("colours must be within 0-255", file=path)
    return colours


def nps(
    texture: torch.Tensor, palette: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over pixels of the product over palette colours of the distance to each colour
    (zero exactly when every pixel is a palette colour). ``texture`` ``[3, H, W]``."""
    d = (texture[None] - palette[:, :, None, None].to(texture)).norm(dim=1)  # [K, H, W]
    per_pixel = d.prod(dim=0)
    if mask is not None:
        w = mask.reshape(per_pixel.shape).to(texture)
        return (per_pixel * w).sum() / w.sum().clamp(min=1e-6)
    return per_pixel.mean()


def total_variation(texture: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (inside ``mask`` when given)."""
    dx = (texture[:, :, 1:] - texture[:, :, :-1]).abs()
    dy = (texture[:, 1:, :] - texture[:, :-1, :]).abs()
    if mask is not None:
        m = mask.reshape(texture.shape[1:]).to(texture)
        dx = dx * (m[:, 1:] * m[:, :-1])
        dy = dy * (m[1:, :] * m[:-1, :])
        return (dx.sum() + dy.sum()) / m.sum().clamp(min=1.0)
    return dx.mean() + dy.mean()


def snap_to_palette(texture: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Every pixel replaced by its nearest palette colour."""
    d = (texture[None] - palette[:, :, None, None].to(texture)).norm(dim=1)
    return palette.to(texture)[d.argmin(0)].permute(2, 0, 1)
