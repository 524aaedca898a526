"""Where a sign perturbation may print: sticker masks in the face texture's square."""

from __future__ import annotations

import torch

from avrobust.core.errors import ConfigError


def sticker_mask(kind: str, size: int = 256) -> torch.Tensor:
    """``[1, size, size]`` mask in the sign face's texture square.

    ``rp2_bars``: two horizontal bars above and below the sign's centre, as RP2's stickers
    (14% of the square, about 17% of a stop sign's octagon); ``poster``: the whole face;
    ``lower_patch``: a square on the lower half (REAP's patch placement); ``centre_patch``: a
    centred square of 20% of the square, about 24% of a stop octagon (a hiding patch within
    a quarter of the face).
    """
    m = torch.zeros(1, size, size)
    s = size
    if kind == "rp2_bars":
        m[:, int(0.22 * s) : int(0.34 * s), int(0.2 * s) : int(0.8 * s)] = 1
        m[:, int(0.66 * s) : int(0.78 * s), int(0.2 * s) : int(0.8 * s)] = 1
    elif kind == "poster":
        m[:] = 1
    elif kind == "lower_patch":
        m[:, int(0.55 * s) : int(0.9 * s), int(0.325 * s) : int(0.675 * s)] = 1
    elif kind == "centre_patch":
        m[:, int(0.275 * s) : int(0.725 * s), int(0.275 * s) : int(0.725 * s)] = 1
    else:
        raise ConfigError(
            f"unknown sticker mask {kind!r}",
            field="mask",
            allowed="rp2_bars, poster, lower_patch, centre_patch",
        )
    return m


def mask_from_spec(spec: str, mask_steps: int = 150):
    """A mask as the command line names it: ``whole`` (None: the whole surface), a named
    sticker mask, ``learnt:F`` (an L1 stage learns one covering F of the face), or the path of
    an image (white where the sticker prints; resampled to the texture)."""
    from pathlib import Path

    from avrobust.attacks.learnt_mask import LearntMaskSpec

    if spec == "whole":
        return None
    learnt = LearntMaskSpec.parse(spec, mask_steps)
    if learnt is not None:
        return learnt
    path = Path(spec)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        import cv2

        if not path.is_file():
            raise ConfigError(f"no mask image {spec!r}", field="mask", file=path)
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ConfigError("not a readable image", field="mask", file=path)
        m = torch.from_numpy(img > 127).float()[None]
        if m.sum() == 0:
            raise ConfigError("the mask image is all black: nothing would print", file=path)
        return m
    try:
        return sticker_mask(spec)
    except ConfigError:
        raise ConfigError(
            f"unknown mask {spec!r}",
            field="mask",
            allowed="whole, rp2_bars, poster, lower_patch, centre_patch, learnt:F, or an image "
            "file (.png, .jpg, .tif)",
        ) from None
