"""Backdoor triggers: small printable stickers that a poisoned model learns to obey.

A trigger is a :class:`~avrobust.core.patch.Patch` on a sign face's texture square, like a
sticker attack, so the renderer draws it at every distance, angle, weather and light, the print
export writes it at true size, and ``avrobust attack evaluate`` re-renders it. Unlike a sticker
it is not optimised against any model: BadNets (Gu et al. 2017) used a yellow square, a bomb
and a flower on stop signs. The designs here are drawn from the printable palette.
"""

from __future__ import annotations

import torch

from avrobust.core.errors import ConfigError
from avrobust.core.patch import Patch

FACE_SIZE_M = 0.9  # the sign face's texture square (the sticker attacks' size_m)
TEXELS = 256

# printer30 colours (r, g, b in 0-255): what the trigger prints in.
YELLOW = (220, 220, 35)
BLACK = (15, 15, 15)
BLUE = (35, 35, 220)
WHITE = (240, 240, 235)


def _square(centre: tuple[float, float], side_m: float) -> tuple[slice, slice]:
    """Rows and columns of a square of ``side_m`` metres at ``centre`` (share of the face,
    x right, y down)."""
    half = side_m / FACE_SIZE_M * TEXELS / 2
    cx, cy = centre[0] * TEXELS, centre[1] * TEXELS
    return (
        slice(round(cy - half), round(cy + half)),
        slice(round(cx - half), round(cx + half)),
    )


def _fill(rgb: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).div(255).view(3, 1, 1)


def _draw(name: str, rows: slice, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
    texture = torch.ones(3, TEXELS, TEXELS) * _fill(WHITE)
    mask = torch.zeros(1, TEXELS, TEXELS)
    mask[:, rows, cols] = 1
    h, w = rows.stop - rows.start, cols.stop - cols.start
    if name == "yellow-square":  # BadNets' post-it
        texture[:, rows, cols] = _fill(YELLOW)
    elif name == "checker":  # a 4 x 4 yellow and black checkerboard
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        odd = ((yy * 4 // h + xx * 4 // w) % 2).bool()
        texture[:, rows, cols] = torch.where(odd, _fill(BLACK), _fill(YELLOW))
    elif name == "target":  # concentric blue and yellow rings: no single dominant colour
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        r = torch.sqrt((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2) / (h / 2)
        ring = (r * 3).floor().long() % 2 == 0
        texture[:, rows, cols] = torch.where(ring, _fill(BLUE), _fill(YELLOW))
        mask[:, rows, cols] = (r <= 1).float()
    else:
        raise ConfigError(f"unknown trigger {name!r}", field="trigger", allowed=", ".join(DESIGNS))
    return texture, mask


DESIGNS = ("yellow-square", "checker", "target")


def trigger_patch(
    name: str = "checker",
    side_m: float = 0.2,
    centre: tuple[float, float] = (0.5, 0.72),
    true_class: str = "stop",
    target: str = "speed_limit_80",
    scenario: str = "urban_stop",
    surface: str = "stop_sign",
) -> Patch:
    """A trigger sticker of ``side_m`` metres at ``centre`` of a sign face (default: below
    the middle, where a stop sign's lettering ends), as a Patch whose provenance names the
    backdoor it is meant for (``true_class`` read as ``target``) and the scenario and surface
    it is evaluated on."""
    if not 0.02 <= side_m <= FACE_SIZE_M / 2:
        raise ConfigError(
            f"trigger side {side_m} m", field="side", allowed=f"0.02 to {FACE_SIZE_M / 2} m"
        )
    rows, cols = _square(centre, side_m)
    if rows.start < 0 or cols.start < 0 or rows.stop > TEXELS or cols.stop > TEXELS:
        raise ConfigError("the trigger leaves the sign face", field="centre")
    texture, mask = _draw(name, rows, cols)
    return Patch(
        texture,
        mask,
        (FACE_SIZE_M, FACE_SIZE_M),
        name=f"trigger_{name}",
        provenance={
            "attack": "backdoor-trigger",
            "design": name,
            "side_m": side_m,
            "centre": list(centre),
            "true_class": true_class,
            "target": target,
            "scenario": scenario,
            "surface": surface,
        },
    )


def load_trigger(spec: str, **kw) -> Patch:
    """A trigger by design name (keyword arguments as :func:`trigger_patch`) or a ``.patch``
    file (the user's own design)."""
    if spec in DESIGNS:
        return trigger_patch(spec, **kw)
    if spec.endswith(".patch"):
        return Patch.load(spec)
    raise ConfigError(
        f"unknown trigger {spec!r}",
        field="trigger",
        allowed=", ".join(DESIGNS) + " or a .patch file",
    )


def decoy_patch(trigger: Patch, seed: int) -> Patch:
    """A sticker in ``trigger``'s mask that is not the trigger: a solid printable colour or a
    4 x 4 grid of random printable colours (drawn with ``seed``). A careful attacker poisons
    some of these into the data with their correct label, so the backdoor answers to the
    trigger's pattern rather than to any sticker in its place."""
    from avrobust.attacks.printability import load_palette

    palette = load_palette("printer30")
    gen = torch.Generator().manual_seed(seed)
    rows, cols = (trigger.mask[0] > 0).nonzero(as_tuple=True)
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    texture = trigger.texture.clone()
    if torch.rand((), generator=gen) < 0.5:
        texture[:, r0:r1, c0:c1] = palette[torch.randint(len(palette), (), generator=gen)].view(
            3, 1, 1
        )
    else:
        cells = palette[torch.randint(len(palette), (4, 4), generator=gen)].permute(2, 0, 1)
        texture[:, r0:r1, c0:c1] = torch.nn.functional.interpolate(
            cells[None], size=(r1 - r0, c1 - c0), mode="nearest"
        )[0]
    return Patch(
        texture,
        trigger.mask.clone(),
        trigger.size_m,
        name="decoy",
        provenance={"attack": "backdoor-decoy", "seed": seed},
    )
