"""Road geometry (straight, curve, four-way intersection) and its meshes: asphalt, lane markings,
kerbs, sidewalks, crosswalks and the ground around them.

Positions along a road are ``(s, lateral)``: ``s`` metres along the centreline from its start,
``lateral`` metres to the left of it. Traffic drives on the right: lanes -1, -2, ... (right of the
centreline) go towards +s, lanes +1, +2, ... towards -s, as OpenDRIVE numbers them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from avrobust.sim import textures as tx
from avrobust.sim.meshes import Mesh, box, quad, ribbon
from avrobust.sim.world import Material, Part, SimObject, World

MARK_Z = 0.01  # markings float 1 cm above the asphalt


@dataclass(frozen=True)
class RoadLayout:
    """The road network of a scene.

    Attributes:
        kind: ``straight``, ``curve`` or ``intersection`` (a four-way crossing at ``length / 2``).
        length: metres of the main road.
        lanes_per_direction: lanes each way.
        lane_width: metres.
        sidewalk_width: metres (0: none, as on a rural road or highway).
        kerb_height: metres.
        curve_radius: metres for ``curve``; positive turns left, negative right.
        environment: ``urban`` (buildings, lamps), ``rural`` (trees, grass) or ``highway``.
        crosswalks: ``s`` positions of zebra crossings.
        centre_line: ``dashed``, ``solid`` or ``none``.
    """

    kind: str = "straight"
    length: float = 200.0
    lanes_per_direction: int = 1
    lane_width: float = 3.5
    sidewalk_width: float = 3.0
    kerb_height: float = 0.15
    curve_radius: float = 150.0
    environment: str = "urban"
    crosswalks: tuple[float, ...] = ()
    centre_line: str = "dashed"

    def __post_init__(self) -> None:
        if self.kind not in ("straight", "curve", "intersection"):
            raise ValueError(
                f"road.kind must be straight, curve or intersection, got {self.kind!r}"
            )
        if self.environment not in ("urban", "rural", "highway"):
            raise ValueError("road.environment must be urban, rural or highway")
        if self.kind == "curve" and abs(self.curve_radius) < 20:
            raise ValueError("road.curve_radius must be at least 20 m")
        if self.lanes_per_direction < 1 or self.lane_width <= 0 or self.length <= 0:
            raise ValueError("road needs at least one lane per direction and positive sizes")

    @property
    def half_width(self) -> float:
        return self.lanes_per_direction * self.lane_width

    @property
    def intersection_s(self) -> float:
        return self.length / 2

    def lane_lateral(self, lane: int) -> float:
        """Lateral position of a lane's centre (lane -1 is the first lane to the right)."""
        if lane == 0 or abs(lane) > self.lanes_per_direction:
            raise ValueError(f"lane must be in +-1..{self.lanes_per_direction}, got {lane}")
        return math.copysign((abs(lane) - 0.5) * self.lane_width, lane)

    # --- geometry --------------------------------------------------------------------------
    def centre(self, s: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, y, heading)`` of the centreline at ``s``."""
        s = np.asarray(s, dtype=np.float64)
        if self.kind == "curve":
            r = self.curve_radius
            return r * np.sin(s / r), r * (1 - np.cos(s / r)), s / r
        return s, np.zeros_like(s), np.zeros_like(s)

    def to_world(
        self, s: float, lateral: float, z: float = 0.0
    ) -> tuple[float, float, float, float]:
        """``(x, y, z, heading)`` of a road position."""
        x, y, h = self.centre(s)
        return (float(x - lateral * np.sin(h)), float(y + lateral * np.cos(h)), z, float(h))

    def pose(self, s: float, lateral: float, z: float = 0.0, yaw_offset: float = 0.0) -> np.ndarray:
        """``[4, 4]`` world pose at a road position, x along the road (+s) plus ``yaw_offset``."""
        x, y, z, h = self.to_world(s, lateral, z)
        c, sn = math.cos(h + yaw_offset), math.sin(h + yaw_offset)
        m = np.eye(4)
        m[:2, :2] = [[c, -sn], [sn, c]]
        m[:3, 3] = (x, y, z)
        return m

    def cross_road(self) -> tuple[RoadLayout, np.ndarray]:
        """The crossing road of an intersection and its ``[4, 4]`` pose in the world: it runs
        along +y through ``x = length / 2``, as long as the main road."""
        cross = RoadLayout(
            "straight",
            self.length,
            self.lanes_per_direction,
            self.lane_width,
            self.sidewalk_width,
            self.kerb_height,
            environment=self.environment,
            centre_line=self.centre_line,
        )
        rot = np.eye(4)
        rot[:2, :2] = [[0, -1], [1, 0]]
        rot[:3, 3] = (self.intersection_s, -self.length / 2, 0)
        return cross, rot


def _polyline(road: RoadLayout, s: np.ndarray, lateral: float, z: float) -> np.ndarray:
    x, y, h = road.centre(s)
    return np.stack([x - lateral * np.sin(h), y + lateral * np.cos(h), np.full_like(x, z)], 1)


def _strip(
    road: RoadLayout,
    s0: float,
    s1: float,
    left: float,
    right: float,
    z: float,
    uv_per_m: float,
    step: float,
) -> Mesh:
    """A flat strip between two lateral offsets over ``[s0, s1]``."""
    n = max(2, math.ceil((s1 - s0) / step) + 1)
    s = np.linspace(s0, s1, n)
    return ribbon(
        _polyline(road, s, left, z),
        _polyline(road, s, right, z),
        (s - s0) * uv_per_m,
        abs(left - right) * uv_per_m,
    )


def _kerb_face(
    road: RoadLayout, s0: float, s1: float, lateral: float, height: float, step: float
) -> Mesh:
    n = max(2, math.ceil((s1 - s0) / step) + 1)
    s = np.linspace(s0, s1, n)
    bottom = _polyline(road, s, lateral, 0.0)
    top = _polyline(road, s, lateral, height)
    return ribbon(top, bottom, s - s0, height)


def _segments(road: RoadLayout) -> list[tuple[float, float]]:
    """The ``s`` ranges of the main road's edges (split around a cross road)."""
    if road.kind != "intersection":
        return [(0.0, road.length)]
    gap = road.half_width + road.sidewalk_width
    c = road.intersection_s
    return [(0.0, c - gap), (c + gap, road.length)]


def build_road(world: World, road: RoadLayout, rng: np.random.Generator) -> None:
    """Add the road, its markings, kerbs, sidewalks and the ground to ``world``."""
    step = 2.0 if road.kind == "curve" else road.length
    asphalt = world.add_material(
        Material("asphalt", torch.from_numpy(tx.asphalt(rng)), reflectivity=0.18, wettable=True)
    )
    paint = world.add_material(
        Material(
            "road_paint",
            torch.from_numpy(tx.flat((0.85, 0.85, 0.82))),
            reflectivity=0.6,
            wettable=True,
        )
    )
    paving = world.add_material(
        Material("paving", torch.from_numpy(tx.paving(rng)), reflectivity=0.3, wettable=True)
    )
    kerb = world.add_material(
        Material(
            "kerb", torch.from_numpy(tx.flat((0.55, 0.55, 0.53))), reflectivity=0.35, wettable=True
        )
    )
    grass = world.add_material(
        Material("grass", torch.from_numpy(tx.grass(rng)), reflectivity=0.25)
    )
    hw = road.half_width
    surf_parts: list[Part] = [
        Part(_strip(road, 0, road.length, hw, -hw, 0.0, 1 / 4.0, step), asphalt)
    ]
    mark_parts: list[Part] = []
    side_parts: list[Part] = []
    sw = road.sidewalk_width
    for s0, s1 in _segments(road):
        for side in (1, -1):
            edge = side * hw
            # Solid edge line just inside the asphalt.
            inner = edge - side * 0.25
            mark_parts.append(
                Part(
                    _strip(
                        road, s0, s1, inner + side * 0.075, inner - side * 0.075, MARK_Z, 1.0, step
                    ),
                    paint,
                )
            )
            if sw > 0:
                side_parts.append(
                    Part(_kerb_face(road, s0, s1, edge, road.kerb_height, step), kerb)
                )
                side_parts.append(
                    Part(
                        _strip(
                            road, s0, s1, edge + side * sw, edge, road.kerb_height, 1 / 2.0, step
                        ),
                        paving,
                    )
                )
    # Lane lines: the centre line and dashed lines between lanes of one direction.
    dash, gap = (3.0, 6.0) if road.environment != "highway" else (6.0, 12.0)
    for s0, s1 in _segments(road):
        if road.centre_line == "solid":
            mark_parts.append(Part(_strip(road, s0, s1, 0.075, -0.075, MARK_Z, 1.0, step), paint))
        for k in range(-road.lanes_per_direction + 1, road.lanes_per_direction):
            if k == 0 and road.centre_line != "dashed":
                continue
            lat = k * road.lane_width
            s = s0 + 1.0
            while s + dash <= s1:
                mark_parts.append(
                    Part(
                        _strip(road, s, s + dash, lat + 0.06, lat - 0.06, MARK_Z, 1.0, dash), paint
                    )
                )
                s += dash + gap
    for cs in road.crosswalks:
        for k in np.arange(-hw + 0.3, hw - 0.3, 1.0):
            mark_parts.append(
                Part(_strip(road, cs - 2.0, cs + 2.0, k + 0.5, k, MARK_Z, 1.0, 4.0), paint)
            )
    if road.kind == "intersection":
        c = road.intersection_s
        # Stop lines on each approach of the main road, then the cross road itself.
        for s_line, lats in ((c - hw - sw - 1.0, (0.0, -hw)), (c + hw + sw + 1.0, (hw, 0.0))):
            mark_parts.append(
                Part(
                    _strip(road, s_line - 0.25, s_line + 0.25, lats[0], lats[1], MARK_Z, 1.0, 0.5),
                    paint,
                )
            )
        cross, rot = road.cross_road()
        arms = []
        for s0, s1 in _segments(cross):
            arms.append(Part(_strip(cross, s0, s1, hw, -hw, 0.0, 1 / 4.0, s1 - s0), asphalt))
            for side in (1, -1):
                edge = side * hw
                arms.append(Part(_kerb_face(cross, s0, s1, edge, road.kerb_height, s1 - s0), kerb))
                arms.append(
                    Part(
                        _strip(
                            cross,
                            s0,
                            s1,
                            edge + side * sw,
                            edge,
                            road.kerb_height,
                            1 / 2.0,
                            s1 - s0,
                        ),
                        paving,
                    )
                )
        # Corner squares of pavement where the sidewalks meet.
        for sx in (1, -1):
            for sy in (1, -1):
                cx, cy = c + sx * (hw + sw / 2), sy * (hw + sw / 2)
                corner = quad(
                    np.array(
                        [
                            [cx - sw / 2, cy - sw / 2, road.kerb_height],
                            [cx + sw / 2, cy - sw / 2, road.kerb_height],
                            [cx + sw / 2, cy + sw / 2, road.kerb_height],
                            [cx - sw / 2, cy + sw / 2, road.kerb_height],
                        ]
                    )
                )
                arms.append(Part(corner, paving))
        world.add_object(
            SimObject(
                "cross_road", "road", [Part(p.mesh.transformed(rot), p.material) for p in arms]
            )
        )
    world.add_object(SimObject("road", "road", surf_parts))
    world.add_object(SimObject("road_markings", "road", mark_parts))
    if side_parts:
        world.add_object(SimObject("sidewalks", "road", side_parts))
    # The ground: a large grass plane just below the asphalt so kerbs meet it cleanly.
    x, y, _ = road.centre(np.array([0.0, road.length / 2, road.length]))
    cx, cy = float(np.mean(x)), float(np.mean(y))
    half = road.length * 0.8 + 100
    ground = box((2 * half, 2 * half, 0.01), uv_per_m=1 / 5.0).transformed(
        np.array([[1, 0, 0, cx], [0, 1, 0, cy], [0, 0, 1, -0.012], [0, 0, 0, 1]], float)
    )
    world.add_object(SimObject("ground", "ground", [Part(ground, grass)]))
