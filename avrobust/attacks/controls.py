"""Matched controls for texture attacks: the attack's own mask and placement, filled with
something that was not optimised. A sticker that covers part of a sign changes what a
classifier reads even when it is plain grey; the adversarial effect is the attack's success
minus its strongest control's, measured on the same views (RP2 compares the same shapes in
other colours).

Each control is one small object: ``control(patch) -> Patch`` keeps the mask, the size and the
provenance, and replaces the texture under the mask. The texture outside the mask is kept too,
so the control differs from the attack only where the attack printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from avrobust.core.errors import DataError, UnknownNameError
from avrobust.core.patch import Patch


class Control(Protocol):
    """A control for a texture attack: a patch with the same mask, not optimised."""

    name: str

    def __call__(self, patch: Patch) -> Patch: ...


def _filled(patch: Patch, fill: torch.Tensor, name: str, **info) -> Patch:
    """``patch`` with ``fill`` (``[3, H, W]`` or ``[3, 1, 1]``) under its mask."""
    inside = patch.mask > 0
    texture = torch.where(inside, fill.expand_as(patch.texture), patch.texture)
    return Patch(
        texture.clone(),
        patch.mask.clone(),
        patch.size_m,
        f"{patch.name}-{name}",
        patch.palette,
        {**patch.provenance, "control": {"kind": name, "of": patch.sha256(), **info}},
    )


def _mean_colour(patch: Patch) -> torch.Tensor:
    w = patch.mask.clamp(0, 1)
    return (patch.texture * w).sum((1, 2)) / w.sum().clamp_min(1e-8)


@dataclass(frozen=True)
class GreyFill:
    """The mask printed in flat mid-grey."""

    level: float = 0.5
    name: str = "grey"

    def __call__(self, patch: Patch) -> Patch:
        return _filled(patch, torch.full((3, 1, 1), self.level), self.name, level=self.level)


@dataclass(frozen=True)
class MeanColour:
    """The mask printed in the optimised texture's mean colour under the mask: the same
    average light and colour, no pattern."""

    name: str = "mean"

    def __call__(self, patch: Patch) -> Patch:
        colour = _mean_colour(patch)
        return _filled(patch, colour[:, None, None], self.name, rgb=colour.tolist())


@dataclass(frozen=True)
class PrintableNoise:
    """The mask filled with random colours from the patch's printable palette (uniform RGB
    without one), in square cells: ``cells`` across the texture's width, so the grain is
    coarse enough to survive distance and blur, as a printed sticker's would."""

    seed: int = 0
    cells: int = 32
    name: str = "noise"

    def __call__(self, patch: Patch) -> Patch:
        g = torch.Generator().manual_seed(self.seed)
        _, h, w = patch.texture.shape
        block = max(1, math.ceil(w / self.cells))
        ch, cw = math.ceil(h / block), math.ceil(w / block)
        if patch.palette is not None and len(patch.palette):
            idx = torch.randint(len(patch.palette), (ch, cw), generator=g)
            cells = patch.palette[idx].permute(2, 0, 1)
        else:
            cells = torch.rand((3, ch, cw), generator=g)
        fill = cells.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :h, :w]
        return _filled(patch, fill, self.name, seed=self.seed, cell_texels=block)


@dataclass(frozen=True)
class OtherTexture:
    """A texture optimised for another goal (e.g. another target class) in exactly the same
    mask: the control for "any optimised pattern here does this". The other patch must have
    the same mask, texel for texel, and the same size."""

    other: Patch
    source: str = "patch"
    name: str = "other"

    @classmethod
    def load(cls, path: Path | str) -> OtherTexture:
        p = Patch.load(path)
        goal = p.provenance.get("target") or p.provenance.get("goal") or p.name
        return cls(p, str(path), f"other:{goal}")

    def __call__(self, patch: Patch) -> Patch:
        if self.other.mask.shape != patch.mask.shape or not torch.equal(
            self.other.mask, patch.mask
        ):
            raise DataError(
                "the control patch's mask differs from the attack's (a control must use "
                "exactly the attack's mask)",
                file=self.source,
                field="mask",
            )
        if self.other.size_m != patch.size_m:
            raise DataError(
                f"the control patch is {self.other.size_m} m, the attack {patch.size_m} m",
                file=self.source,
                field="size_m",
            )
        return _filled(patch, self.other.texture, self.name, patch_sha256=self.other.sha256())


# The controls every texture attack is judged against unless told otherwise.
STANDARD: tuple[Control, ...] = (GreyFill(), MeanColour(), PrintableNoise())
BY_NAME: dict[str, Control] = {c.name: c for c in STANDARD}


def control(spec: str) -> Control:
    """A control by name (``grey``, ``mean``, ``noise``) or ``file:PATH`` (another patch
    file with the same mask: :class:`OtherTexture`)."""
    if spec.startswith("file:"):
        return OtherTexture.load(spec[5:])
    if spec not in BY_NAME:
        raise UnknownNameError(
            f"unknown control {spec!r}",
            field="control",
            allowed=", ".join(BY_NAME) + ", file:PATH",
        )
    return BY_NAME[spec]
