"""The LiDAR 3D detector: PointPillars encoding (Lang et al. 2019) with a centre-heatmap head
(CenterPoint, Yin et al. 2021), for cars and pedestrians, 3D boxes in the LiDAR frame.

* Pillars: every in-range point becomes a 9-vector (x, y, z, intensity, its offset from its
  pillar's mean and from the pillar's centre), a shared linear layer with batch norm lifts it
  to 32 features, and each pillar keeps the maximum over its points (``scatter_reduce``: no
  per-pillar point cap, so no point is ever dropped, and gradients reach each point's
  coordinates, which LiDAR attacks need).
* BEV backbone: three stages at strides 2, 4 and 8 of the pillar grid, each merged back at
  stride 2 (0.4 m cells).
* Head: per cell, a logit per class for "a box centre is here", the centre's sub-cell offset,
  its height, log length/width/height, and the yaw as (sin, cos) of twice the angle.

The grid covers 0-51.2 m ahead and 25.6 m to each side (the camera's field of view and more,
as KITTI-style detectors do), 0.2 m pillars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from avrobust.core.boxes import Box3D
from avrobust.core.errors import ModelError
from avrobust.models.blocks import Residual, conv_bn_relu

LIDAR_CLASSES = ("car", "pedestrian")


@dataclass(frozen=True)
class BEVGrid:
    """The pillar grid: metric ranges (LiDAR frame) and pillar size."""

    x_range: tuple[float, float] = (0.0, 51.2)
    y_range: tuple[float, float] = (-25.6, 25.6)
    z_range: tuple[float, float] = (-3.0, 1.5)
    pillar: float = 0.2
    stride: int = 2  # of the head, in pillars

    @property
    def nx(self) -> int:
        return round((self.x_range[1] - self.x_range[0]) / self.pillar)

    @property
    def ny(self) -> int:
        return round((self.y_range[1] - self.y_range[0]) / self.pillar)

    @property
    def cell(self) -> float:
        return self.pillar * self.stride

    def crop(self, ix: int, iy: int, size: int) -> BEVGrid:
        """The ``size`` x ``size`` pillars starting at pillar ``(ix, iy)``, as a grid."""
        x0 = self.x_range[0] + ix * self.pillar
        y0 = self.y_range[0] + iy * self.pillar
        return BEVGrid(
            (x0, x0 + size * self.pillar),
            (y0, y0 + size * self.pillar),
            self.z_range,
            self.pillar,
            self.stride,
        )

    def in_range(self, points: torch.Tensor) -> torch.Tensor:
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        return (
            (x >= self.x_range[0])
            & (x < self.x_range[1])
            & (y >= self.y_range[0])
            & (y < self.y_range[1])
            & (z >= self.z_range[0])
            & (z < self.z_range[1])
        )


def pillar_index(points: torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    """Flat pillar index ``ix * ny + iy`` of each (in-range) point."""
    ix = ((points[:, 0] - grid.x_range[0]) / grid.pillar).floor().long().clamp(0, grid.nx - 1)
    iy = ((points[:, 1] - grid.y_range[0]) / grid.pillar).floor().long().clamp(0, grid.ny - 1)
    return ix * grid.ny + iy


class LidarDetector(nn.Module):
    """Points in, per-cell head outputs out (see the module notes)."""

    def __init__(
        self,
        classes: tuple[str, ...] = LIDAR_CLASSES,
        grid: BEVGrid | None = None,
        extra_features: int = 0,
    ):
        super().__init__()
        self.classes = tuple(classes)
        self.grid = grid or BEVGrid()
        # Channels beyond intensity that every point carries (PointPainting's class scores).
        self.extra_features = extra_features
        self.pfn = nn.Sequential(
            nn.Linear(9 + extra_features, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU()
        )
        self.b1 = nn.Sequential(conv_bn_relu(32, 48, 2), conv_bn_relu(48, 48))
        self.b2 = nn.Sequential(conv_bn_relu(48, 96, 2), Residual(96))
        self.b3 = nn.Sequential(conv_bn_relu(96, 128, 2), Residual(128))
        self.up2 = nn.Sequential(nn.Conv2d(96, 48, 1, bias=False), nn.BatchNorm2d(48))
        self.up3 = nn.Sequential(nn.Conv2d(128, 48, 1, bias=False), nn.BatchNorm2d(48))
        self.shared = conv_bn_relu(48, 48)
        self.heatmap = nn.Conv2d(48, len(self.classes), 1)
        self.regress = nn.Conv2d(48, 8, 1)  # dx, dy, z, log l, w, h, sin 2yaw, cos 2yaw
        nn.init.constant_(self.heatmap.bias, -4.6)
        nn.init.zeros_(self.regress.weight)
        with torch.no_grad():
            self.regress.bias.copy_(torch.tensor([0.5, 0.5, -1.0, 1.2, 0.6, 0.4, 0.0, 1.0]))

    def canvas(
        self,
        points: list[torch.Tensor],
        grids: list[BEVGrid] | None = None,
        weights: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``[B, 32, nx, ny]`` pillar features of each sweep (``[N, 4 + extra_features]`` x, y,
        z, intensity and the extra channels),
        on the detector's grid or, per sweep, a part of it of one common size (``grids``:
        training crops). ``weights``: per sweep, a ``[N]`` factor on each point's features
        (1 keeps a point, 0 removes it; removal attacks differentiate through it)."""
        grids = grids or [self.grid] * len(points)
        g = grids[0]
        feats, index, point_weights = [], [], []
        for b, pts in enumerate(points):
            if pts.dim() != 2 or pts.shape[1] < 4 + self.extra_features:
                raise ModelError(
                    f"points must be [N, {4 + self.extra_features}] (x, y, z, intensity"
                    + (", painted scores" if self.extra_features else "")
                    + f"), got {tuple(pts.shape)}"
                )
            g = grids[b]
            inside = g.in_range(pts)
            pts = pts[inside]
            if weights is not None:
                point_weights.append(weights[b][inside])
            idx = pillar_index(pts, g)
            n = g.nx * g.ny
            # A point's weight also weighs it in its pillar's mean, so weight 0 is removal.
            w = point_weights[-1] if weights is not None else torch.ones_like(idx, dtype=pts.dtype)
            count = torch.zeros(n, device=pts.device, dtype=pts.dtype).index_add(0, idx, w)
            mean = (
                torch.zeros(n, 3, device=pts.device, dtype=pts.dtype).index_add(
                    0, idx, pts[:, :3] * w[:, None]
                )
                / count.clamp(min=1e-6)[:, None]
            )
            cx = (idx // g.ny).to(pts.dtype) * g.pillar + g.x_range[0] + g.pillar / 2
            cy = (idx % g.ny).to(pts.dtype) * g.pillar + g.y_range[0] + g.pillar / 2
            f = torch.cat(
                [
                    pts[:, :3] / torch.tensor([50.0, 25.0, 2.0], device=pts.device),
                    pts[:, 3:4],
                    (pts[:, :3] - mean[idx]) / g.pillar,
                    ((pts[:, 0] - cx) / g.pillar)[:, None],
                    ((pts[:, 1] - cy) / g.pillar)[:, None],
                    pts[:, 4 : 4 + self.extra_features],
                ],
                dim=1,
            )
            feats.append(f)
            index.append(idx + b * g.nx * g.ny)
        f = torch.cat(feats)
        if self.training and len(f) < 2:  # batch norm needs two points to train on
            self.pfn.eval()
            f = self.pfn(f)
            self.pfn.train()
        else:
            f = self.pfn(f)
        if weights is not None:
            f = f * torch.cat(point_weights)[:, None]
        idx = torch.cat(index)
        flat = torch.zeros(len(points) * g.nx * g.ny, 32, device=f.device, dtype=f.dtype)
        flat = flat.scatter_reduce(0, idx[:, None].expand(-1, 32), f, "amax", include_self=False)
        return flat.view(len(points), g.nx, g.ny, 32).permute(0, 3, 1, 2)

    def head(self, canvas: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head outputs at stride 2 of a ``[B, 32, H, W]`` canvas (H, W multiples of 8)."""
        c1 = self.b1(canvas)
        c2 = self.b2(c1)
        c3 = self.b3(c2)
        p = c1 + F.interpolate(self.up2(c2), scale_factor=2.0, mode="nearest")
        p = p + F.interpolate(self.up3(c3), scale_factor=4.0, mode="nearest")
        f = self.shared(F.relu(p))
        return {"heatmap": self.heatmap(f), "regress": self.regress(f)}

    def forward(self, points: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.head(self.canvas(points))

    @torch.no_grad()
    def detect(
        self, points: list[torch.Tensor], score_threshold: float = 0.1, top_k: int = 100
    ) -> list[tuple[Box3D, torch.Tensor, torch.Tensor]]:
        """Per sweep: boxes (LiDAR frame), scores and labels."""
        return decode(self(points), self.grid, score_threshold, top_k)


def decode(
    out: dict[str, torch.Tensor],
    grid: BEVGrid,
    score_threshold: float = 0.1,
    top_k: int = 100,
    origin: tuple[float, float] = (0.0, 0.0),
) -> list[tuple[Box3D, torch.Tensor, torch.Tensor]]:
    """Boxes from the heatmap's peaks (3x3 max pooling, CenterPoint's NMS-free decoding);
    ``origin``: metric offset of the output's first cell beyond the grid's own (crops)."""
    heat = out["heatmap"].sigmoid()
    b, c, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    scores, idx = peaks.reshape(b, -1).topk(min(top_k, c * h * w))
    labels = idx // (h * w)
    cell = idx % (h * w)
    results = []
    for i in range(b):
        keep = scores[i] >= score_threshold
        s, lab, cl = scores[i][keep], labels[i][keep], cell[i][keep]
        r = out["regress"][i].reshape(8, -1)[:, cl]
        ix, iy = (cl // w).to(r.dtype), (cl % w).to(r.dtype)
        results.append((cell_boxes(r, ix, iy, grid, origin), s, lab))
    return results


def cell_boxes(
    r: torch.Tensor,
    ix: torch.Tensor,
    iy: torch.Tensor,
    grid: BEVGrid,
    origin: tuple[float, float] = (0.0, 0.0),
) -> Box3D:
    """The boxes that the regression ``r`` (``[8, K]``) encodes at output cells ``(ix, iy)``
    of ``grid`` (plus ``origin`` metres, for crops); differentiable in ``r``."""
    x = grid.x_range[0] + origin[0] + (ix + r[0]) * grid.cell
    y = grid.y_range[0] + origin[1] + (iy + r[1]) * grid.cell
    size = r[3:6].clamp(-3.0, 3.0).exp().T
    yaw = torch.atan2(r[6], r[7]) / 2
    return Box3D(torch.stack([x, y, r[2]], 1), size, yaw)


def yaw_encoding(yaw: torch.Tensor) -> torch.Tensor:
    """(sin, cos) of twice the yaw: a box is the same box turned half a turn, and the doubled
    angle makes that symmetry continuous (no jump where a folded angle would wrap)."""
    return torch.stack([torch.sin(2 * yaw), torch.cos(2 * yaw)], -1)


def grid_from_dict(d: dict) -> BEVGrid:
    """The grid stored in a weights file's metadata."""
    return BEVGrid(
        tuple(d["x_range"]), tuple(d["y_range"]), tuple(d["z_range"]), d["pillar"], d["stride"]
    )


def load_lidar_model(path: str | Path, kind: str = "lidar-detector") -> LidarDetector:
    """A LiDAR detector (plain or painted) from its weights file."""
    from avrobust.models.weights import load_weights

    state, meta = load_weights(path, kind)
    model = LidarDetector(
        tuple(meta["classes"]), grid_from_dict(meta["grid"]), meta.get("extra_features", 0)
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"weights do not fit the LiDAR detector ({exc})".splitlines()[0], file=path
        ) from None
    return model.eval()
