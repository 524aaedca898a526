"""A texture atlas: every static material's texture packed into one image, so that all static
pixels of a frame are textured by a single ``grid_sample`` call."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 2  # texels of edge padding around each texture, against bilinear bleeding


class TextureAtlas:
    """Packs ``[3, h, w]`` textures into one ``[3, S, S]`` image (shelf packing).

    ``rects[i]`` is ``(u0, v0, du, dv)`` in atlas units for texture ``i``, inset by half a texel
    so that bilinear taps never leave the texture; UVs outside [0, 1] wrap (the texture repeats).
    """

    def __init__(self, textures: list[torch.Tensor], max_size: int = 4096) -> None:
        if not textures:
            textures = [torch.zeros(3, 1, 1)]
        order = sorted(range(len(textures)), key=lambda i: -textures[i].shape[1])
        size = 256
        while True:
            placement = self._pack([textures[i] for i in order], size)
            if placement is not None or size >= max_size:
                break
            size *= 2
        if placement is None:
            raise ValueError("textures do not fit in a 4096x4096 atlas")
        atlas = torch.zeros(3, size, size)
        rects = torch.zeros(len(textures), 4)
        for slot, i in enumerate(order):
            tex = textures[i]
            x, y = placement[slot]
            h, w = tex.shape[1:]
            # Pad by repeating the texture's own wrap-around so that tiling is seamless.
            padded = (
                F.pad(tex[None], (PAD, PAD, PAD, PAD), mode="circular")[0]
                if min(h, w) > PAD
                else F.pad(tex[None], (PAD, PAD, PAD, PAD), mode="replicate")[0]
            )
            atlas[:, y : y + h + 2 * PAD, x : x + w + 2 * PAD] = padded
            rects[i] = torch.tensor(
                [(x + PAD + 0.5) / size, (y + PAD + 0.5) / size, (w - 1) / size, (h - 1) / size]
            )
        self.image = atlas
        self.rects = rects
        # The same rectangles in grid_sample's coordinates (x = 2u - 1).
        self.grid_rects = torch.cat([rects[:, :2] * 2 - 1, rects[:, 2:] * 2], dim=1)
        self.size = size

    @staticmethod
    def _pack(textures: list[torch.Tensor], size: int) -> list[tuple[int, int]] | None:
        x = y = shelf = 0
        out = []
        for tex in textures:
            h, w = tex.shape[1] + 2 * PAD, tex.shape[2] + 2 * PAD
            if w > size:
                return None
            if x + w > size:
                x, y, shelf = 0, y + shelf, 0
            if y + h > size:
                return None
            out.append((x, y))
            x += w
            shelf = max(shelf, h)
        return out

    def sample(self, index: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Colours ``[3, N]`` of textures ``index`` ``[N]`` at ``uv`` ``[N, 2]`` (wrapping)."""
        if index.numel() == 0:
            return torch.zeros(3, 0)
        return self.sample_rects(self.grid_rects.index_select(0, index), uv)

    def sample_rects(self, rects: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Like :meth:`sample` with each point's rectangle given (``grid_rects`` rows)."""
        # Straight to grid_sample's [-1, 1] coordinates: grid = origin + frac(uv) * extent.
        return self.sample_grid(torch.addcmul(rects[:, :2], uv - torch.floor(uv), rects[:, 2:]))

    def sample_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """Colours ``[3, N]`` at ``grid`` ``[N, 2]``, points in grid_sample's coordinates of
        the whole atlas (``rect origin + frac(uv) * rect extent``)."""
        out = F.grid_sample(
            self.image[None],
            grid.view(1, 1, -1, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        return out[0, :, 0, :]


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear colours ``[3, N]`` of a ``[3, h, w]`` texture at ``uv`` ``[N, 2]`` in [0, 1]
    (0 and 1 at the outer edges of the border texels). Differentiable in ``texture``."""
    grid = (uv * 2 - 1).reshape(1, 1, -1, 2).to(texture.dtype)
    out = F.grid_sample(
        texture[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[0, :, 0, :]
