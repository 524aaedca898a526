"""The route the ego follows: its lane's centre line as a world polyline (the backend supplies
it from its road: what a lane-keeping stack gets from its map), with projection onto it and the
pure-pursuit steering that keeps the ego on it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avrobust.driving.dynamics import EgoState, VehicleLimits


@dataclass(frozen=True)
class Route:
    """``points``: ``[N, 2]`` world ``(x, y)`` metres along the lane, in driving order, at
    most a few metres apart."""

    points: np.ndarray

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2 or not np.isfinite(pts).all():
            raise ValueError("a route needs at least two finite (x, y) points")
        object.__setattr__(self, "points", pts)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        object.__setattr__(self, "_s", np.concatenate([[0.0], np.cumsum(seg)]))

    @property
    def length(self) -> float:
        return float(self._s[-1])

    def project(self, x: float, y: float) -> tuple[float, float]:
        """``(s, d)``: arc length of the nearest point of the route and the signed distance to
        it (positive to the left of the driving direction)."""
        p = np.array([x, y])
        a, b = self.points[:-1], self.points[1:]
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.einsum("ij,ij->i", ab, ab), 0, 1)
        near = a + t[:, None] * ab
        i = int(np.argmin(np.linalg.norm(near - p, axis=1)))
        d_vec = p - near[i]
        cross = ab[i, 0] * d_vec[1] - ab[i, 1] * d_vec[0]
        seg = float(np.linalg.norm(ab[i]))
        s = float(self._s[i] + t[i] * seg)
        return s, math.copysign(float(np.linalg.norm(d_vec)), cross)

    def at(self, s: float) -> tuple[float, float, float]:
        """``(x, y, heading)`` at arc length ``s`` (extrapolated straight past either end)."""
        i = int(np.clip(np.searchsorted(self._s, s) - 1, 0, len(self._s) - 2))
        a, b = self.points[i], self.points[i + 1]
        seg = self._s[i + 1] - self._s[i]
        h = math.atan2(b[1] - a[1], b[0] - a[0])
        u = (s - self._s[i]) / seg
        x, y = a + u * (b - a)
        return float(x), float(y), h


def pure_pursuit(
    route: Route,
    state: EgoState,
    limits: VehicleLimits,
    offset: float = 0.0,
    min_lookahead: float = 5.0,
) -> float:
    """Front-wheel angle that steers the rear axle onto the route point one look-ahead ahead
    (Coulter 1992), the look-ahead growing with speed (0.8 s, at least ``min_lookahead``);
    ``offset`` metres left of the route (to pass an obstacle at the lane's edge)."""
    lr = limits.wheelbase * limits.rear_share
    rx, ry = state.x - lr * math.cos(state.yaw), state.y - lr * math.sin(state.yaw)
    s, _ = route.project(rx, ry)
    look = max(min_lookahead, 0.8 * state.speed)
    gx, gy, h = route.at(s + look)
    gx, gy = gx - offset * math.sin(h), gy + offset * math.cos(h)
    alpha = math.atan2(gy - ry, gx - rx) - state.yaw
    dist = math.hypot(gx - rx, gy - ry)
    return math.atan2(2 * limits.wheelbase * math.sin(alpha), dist)
