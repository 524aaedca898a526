"""Where a scenario puts things, in road coordinates (``s`` along the road, ``lateral`` metres
left of its centre line, a heading relative to the road), by the same rules the embedded
simulator follows, so that one scenario file means the same scene in both backends. The CARLA
backend turns road coordinates into world poses along the loaded map's lanes (``road.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from avrobust.core.errors import ConfigError
from avrobust.scenario.schema import PoseSpec, Scenario

# CARLA picks the vehicle models; the parked position assumes a car this wide, as the embedded
# simulator's sedan.
PARKED_WIDTH = 1.8

# Blueprints for the scenario's vehicle bodies and for pedestrians (CARLA 0.9.16 names).
BODY_BLUEPRINTS = {
    "sedan": "vehicle.lincoln.mkz_2020",
    "suv": "vehicle.nissan.patrol_2021",
    "van": "vehicle.mercedes.sprinter",
}
PEDESTRIAN_BLUEPRINT = "walker.pedestrian.0001"
EGO_BLUEPRINT = "vehicle.lincoln.mkz_2020"


@dataclass(frozen=True)
class Placed:
    """One thing of the scenario: at road position ``(s, lateral)`` facing ``yaw`` radians from
    the road's direction, or at a world ``pose``; moving at ``speed`` m/s (along its lane for
    road placements, straight ahead for world ones)."""

    name: str
    category: str  # car, pedestrian, traffic_sign, ego
    subclass: str
    s: float = 0.0
    lateral: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    pose: PoseSpec | None = None
    height: float = 0.0  # signs: the plate's lower edge; pedestrians: their height

    def at(self, t: float, distance: float | None = None) -> tuple[float, float, float]:
        """``(s, lateral, yaw)`` at ``t`` seconds (road placements), having moved ``distance``
        metres along its heading (default: ``speed * t``; a pedestrian crossing at 90 degrees
        moves across the road)."""
        d = self.speed * t if distance is None else distance
        return self.s + d * math.cos(self.yaw), self.lateral + d * math.sin(self.yaw), self.yaw


def place(sc: Scenario) -> list[Placed]:
    """The ego (first), signs, vehicles and pedestrians of a scenario."""
    m = sc.map
    if m.kind == "intersection" and not (m.carla_town or m.opendrive):
        raise ConfigError(
            f"scenario {sc.name}: an intersection needs a CARLA town or an OpenDRIVE file on the "
            "CARLA backend (only straight and curved roads are generated)",
            field="map.carla_town",
        )
    hw = m.lanes_per_direction * m.lane_width
    out = []
    e = sc.ego
    out.append(
        Placed(
            "ego",
            "ego",
            "",
            e.start,
            _lane_lateral(sc, e.lane) + e.lateral_offset,
            0.0 if e.lane < 0 else math.pi,
            e.speed,
            e.pose,
        )
    )
    for sign in sc.signs:
        side = -1.0 if sign.side == "right" else 1.0
        facing = math.pi if sign.side == "right" else 0.0  # the face looks at oncoming traffic
        out.append(
            Placed(
                sign.name,
                "traffic_sign",
                sign.type,
                sign.s,
                side * (hw + sign.offset),
                facing + math.radians(sign.yaw),
                height=sign.height,
            )
        )
    for v in sc.vehicles:
        if v.pose is not None:
            out.append(Placed(v.name, "car", v.body, speed=v.speed, pose=v.pose))
            continue
        if v.parked:
            lateral, yaw = -(hw - PARKED_WIDTH / 2 + 0.6), 0.0
        else:
            lateral = _lane_lateral(sc, v.lane) + v.lateral_offset
            yaw = 0.0 if v.lane < 0 else math.pi
        out.append(Placed(v.name, "car", v.body, v.s or 0.0, lateral, yaw, v.speed))
    for p in sc.pedestrians:
        out.append(
            Placed(
                p.name,
                "pedestrian",
                "",
                p.s or 0.0,
                p.lateral or 0.0,
                math.radians(p.heading),
                p.speed,
                p.pose,
                p.height,
            )
        )
    for s in sc.surfaces:
        if s.kind in ("billboard", "road"):
            raise ConfigError(
                f"scenario {sc.name}: surface {s.name} is a standalone {s.kind}, which the CARLA "
                "backend does not place (use a sign face or a vehicle rear)",
                field=f"surfaces.{s.name}",
            )
    return out


def _lane_lateral(sc: Scenario, lane: int) -> float:
    m = sc.map
    if lane == 0 or abs(lane) > m.lanes_per_direction:
        raise ConfigError(
            f"scenario {sc.name}: lane must be in +-1..{m.lanes_per_direction}, got {lane}",
            field="lane",
        )
    return math.copysign((abs(lane) - 0.5) * m.lane_width, lane)
