"""Patch: an adversarial texture with its physical size, palette and provenance."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from avrobust.core.errors import DataError
from avrobust.core.files import atomic_write

FORMAT_VERSION = 1


@dataclass
class Patch:
    """A printable texture that an attack produced.

    Attributes:
        texture: ``[3, H, W]`` float32 RGB in [0, 1]; row 0 is the top edge as printed.
        mask: ``[1, H, W]`` float32 in [0, 1]: 1 where the texture is printed and applied, 0 where
            the surface beneath shows through (sticker shapes).
        size_m: ``(width, height)`` of the texture's rectangle in metres.
        name: a short name for files and reports.
        palette: ``[K, 3]`` printable colours the texture was constrained to, or None.
        provenance: plain data on how it was made: attack, hyperparameters, model hash, sweep,
            seed, software versions.
    """

    texture: torch.Tensor
    mask: torch.Tensor
    size_m: tuple[float, float]
    name: str = "patch"
    palette: torch.Tensor | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.texture = torch.as_tensor(self.texture, dtype=torch.float32)
        if self.texture.dim() != 3 or self.texture.shape[0] != 3:
            raise ValueError(f"Patch.texture must be [3, H, W], got {tuple(self.texture.shape)}")
        self.mask = torch.as_tensor(self.mask, dtype=torch.float32)
        if self.mask.dim() == 2:
            self.mask = self.mask[None]
        if self.mask.shape != (1, *self.texture.shape[1:]):
            raise ValueError(
                f"Patch.mask must be [1, H, W] matching the texture, got {tuple(self.mask.shape)}"
            )
        w, h = (float(s) for s in self.size_m)
        if w <= 0 or h <= 0:
            raise ValueError(f"Patch.size_m must be positive, got {self.size_m}")
        self.size_m = (w, h)
        if self.palette is not None:
            self.palette = torch.as_tensor(self.palette, dtype=torch.float32).reshape(-1, 3)

    @property
    def resolution(self) -> tuple[int, int]:
        """``(width, height)`` in texels."""
        return self.texture.shape[2], self.texture.shape[1]

    @property
    def coverage(self) -> float:
        """Share of the rectangle covered by the mask."""
        return float(self.mask.mean())

    def sha256(self) -> str:
        """Hash of what gets printed: texture, mask and physical size."""
        h = hashlib.sha256()
        h.update(self.texture.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.mask.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps(self.size_m).encode())
        return h.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the patch to one file (written atomically)."""
        path = Path(path)
        payload = {
            "format": "avrobust.patch",
            "version": FORMAT_VERSION,
            "texture": self.texture.detach().cpu(),
            "mask": self.mask.detach().cpu(),
            "palette": None if self.palette is None else self.palette.cpu(),
            "meta": json.dumps(
                {"name": self.name, "size_m": list(self.size_m), "provenance": self.provenance}
            ),
        }
        with atomic_write(path) as fh:
            torch.save(payload, fh)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Patch:
        """Read a patch written by :meth:`save`; raises :class:`DataError` on a bad file."""
        path = Path(path)
        if not path.is_file():
            raise DataError("no such patch file", file=path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for a corrupt file
            raise DataError(
                f"not a readable patch file ({type(exc).__name__})", file=path
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != "avrobust.patch":
            raise DataError("not an avrobust patch file", file=path, field="format")
        if payload.get("version") != FORMAT_VERSION:
            raise DataError(
                f"unsupported patch format version {payload.get('version')!r}",
                file=path,
                field="version",
                allowed=str(FORMAT_VERSION),
            )
        try:
            meta = json.loads(payload["meta"])
            return cls(
                payload["texture"],
                payload["mask"],
                tuple(meta["size_m"]),
                meta.get("name", path.stem),
                payload.get("palette"),
                meta.get("provenance", {}),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"malformed patch contents: {exc}", file=path) from None
