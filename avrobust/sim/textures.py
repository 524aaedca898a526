"""Procedural textures: asphalt, paving, grass, facades, bark, foliage, paint.

Every texture is ``[3, H, W]`` float32 RGB in [0, 1] (display values, as printed: the renderer
multiplies them by light, as REAP-style relighting does) made from a seeded NumPy generator,
so the same seed draws the same world. Nothing is downloaded.
"""

from __future__ import annotations

import cv2
import numpy as np


def _value_noise(
    rng: np.random.Generator, size: int, octaves: int = 4, base: int = 4
) -> np.ndarray:
    """Tileable fractal value noise ``[size, size]`` in about [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    cells = base
    for _ in range(octaves):
        grid = rng.random((cells, cells)).astype(np.float32)
        # Wrap the grid so that the upsampled noise tiles seamlessly.
        grid = np.concatenate([grid, grid[:1]], 0)
        grid = np.concatenate([grid, grid[:, :1]], 1)
        up = cv2.resize(
            grid, (size + size // cells, size + size // cells), interpolation=cv2.INTER_CUBIC
        )[:size, :size]
        out += amp * up
        total += amp
        amp *= 0.5
        cells = min(cells * 2, size)
    return np.clip(out / total, 0, 1)


def _to_tensor_layout(img: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` to ``[3, H, W]`` float32 in [0, 1]."""
    return np.ascontiguousarray(np.clip(img, 0, 1).transpose(2, 0, 1).astype(np.float32))


def flat(rgb: tuple[float, float, float], size: int = 4) -> np.ndarray:
    return _to_tensor_layout(np.broadcast_to(np.array(rgb, np.float32), (size, size, 3)))


def asphalt(rng: np.random.Generator, size: int = 256, shade: float = 0.22) -> np.ndarray:
    n = _value_noise(rng, size, octaves=5, base=8)
    grain = rng.random((size, size)).astype(np.float32)
    v = shade * (0.8 + 0.25 * n + 0.15 * (grain - 0.5))
    img = np.stack([v, v * 1.0, v * 1.03], axis=-1)
    return _to_tensor_layout(img)


def paving(rng: np.random.Generator, size: int = 128, tiles: int = 4) -> np.ndarray:
    n = _value_noise(rng, size, octaves=3, base=4)
    base = 0.45 + 0.1 * n
    img = np.stack([base, base * 0.97, base * 0.92], axis=-1)
    step = size // tiles
    for k in range(0, size, step):
        img[k : k + 1, :, :] *= 0.6
        img[:, k : k + 1, :] *= 0.6
    return _to_tensor_layout(img)


def grass(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    n = _value_noise(rng, size, octaves=5, base=4)
    g = rng.random((size, size)).astype(np.float32)
    img = np.stack([0.10 + 0.08 * n, 0.22 + 0.14 * n + 0.05 * g, 0.06 + 0.04 * n], axis=-1)
    return _to_tensor_layout(img)


def facade(
    rng: np.random.Generator, size: int = 128, floors: int = 2, windows: int = 2
) -> np.ndarray:
    """One tile of a building front: plaster or brick with ``windows`` x ``floors`` windows."""
    hue = rng.choice(
        [
            (0.62, 0.55, 0.45),
            (0.55, 0.30, 0.22),
            (0.70, 0.68, 0.62),
            (0.45, 0.47, 0.50),
            (0.72, 0.62, 0.45),
        ]
    )
    n = _value_noise(rng, size, octaves=4, base=8)
    img = np.array(hue, np.float32)[None, None] * (0.85 + 0.25 * n[..., None])
    fh, fw = size // floors, size // windows
    glass = np.array([0.10, 0.13, 0.17], np.float32)
    for f in range(floors):
        for w in range(windows):
            y0, x0 = f * fh + fh // 4, w * fw + fw // 4
            img[y0 : y0 + fh // 2, x0 : x0 + fw // 2] = glass * (0.8 + 0.6 * rng.random())
            img[y0 - 2 : y0, x0 - 2 : x0 + fw // 2 + 2] = 0.8  # lintel
    return _to_tensor_layout(img)


def bark(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    n = _value_noise(rng, size, octaves=4, base=8)
    img = np.stack([0.25 + 0.1 * n, 0.17 + 0.07 * n, 0.10 + 0.05 * n], axis=-1)
    return _to_tensor_layout(img)


def foliage(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    n = _value_noise(rng, size, octaves=5, base=4)
    img = np.stack([0.07 + 0.07 * n, 0.20 + 0.18 * n, 0.05 + 0.05 * n], axis=-1)
    return _to_tensor_layout(img)


def paint(rgb: tuple[float, float, float], size: int = 32) -> np.ndarray:
    """Vehicle paint: a flat colour with a soft top-to-bottom gradient."""
    grad = np.linspace(1.08, 0.9, size, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(np.array(rgb, np.float32), (size, size, 3)) * grad
    return _to_tensor_layout(img)


def clothing(rng: np.random.Generator, size: int = 16) -> np.ndarray:
    rgb = rng.choice(
        [
            (0.1, 0.1, 0.12),
            (0.15, 0.2, 0.45),
            (0.5, 0.1, 0.1),
            (0.6, 0.6, 0.55),
            (0.2, 0.35, 0.2),
            (0.55, 0.45, 0.3),
        ]
    )
    return flat(tuple(rgb), size)


VEHICLE_COLOURS = [
    (0.55, 0.05, 0.04),
    (0.05, 0.12, 0.35),
    (0.75, 0.75, 0.74),
    (0.04, 0.04, 0.05),
    (0.85, 0.85, 0.82),
    (0.25, 0.27, 0.30),
    (0.12, 0.30, 0.15),
    (0.70, 0.55, 0.10),
]
