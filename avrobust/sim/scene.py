"""A scene description in plain Python (what a scenario file turns into for the embedded
simulator) and the procedural world built from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from avrobust.scenario.behaviour import SpeedProfile
from avrobust.sim import assets
from avrobust.sim.roads import RoadLayout, build_road
from avrobust.sim.world import SimObject, SurfaceDef, World


@dataclass(frozen=True)
class SignPlacement:
    """A traffic sign beside the road, facing traffic that drives towards +s (right side) or -s
    (left side).

    Attributes:
        sign_type: a class of :data:`avrobust.sim.signs.SIGN_TYPES`.
        s: metres along the road.
        side: ``right`` or ``left`` of the road.
        offset: metres beyond the road edge (onto the sidewalk or verge).
        height: metres from the ground to the plate's lower edge.
        yaw: radians of extra rotation about the post (positive turns the face to the left).
        name: object name; ``sign_<i>`` when empty.
        surface: name of the attack surface on its face, or empty for none.
    """

    sign_type: str
    s: float
    side: str = "right"
    offset: float = 0.8
    height: float = 2.0
    yaw: float = 0.0
    name: str = ""
    surface: str = ""


@dataclass(frozen=True)
class VehiclePlacement:
    """Attributes:
    name: object name. body: ``sedan``, ``suv`` or ``van``. s: metres along the road at time 0.
    lane: OpenDRIVE-style lane (-1: first lane right of the centre line, driving towards +s).
    lateral_offset: metres left of the lane centre. speed: m/s along its lane.
    colour: index into the paint palette. parked: stand at the right kerb, half on the verge.
    rear_surface: name of an attack surface on its rear, or empty. rear_size: its (w, h) in m.
    """

    name: str
    body: str = "sedan"
    s: float = 30.0
    lane: int = -1
    lateral_offset: float = 0.0
    speed: float = 0.0
    colour: int = 0
    parked: bool = False
    rear_surface: str = ""
    rear_size: tuple[float, float] = (1.2, 0.5)
    world_pose: tuple[float, float, float] | None = None  # (x, y, yaw rad) instead of s, lane
    # (speed after, accel, trigger time or None, ego distance or None): a speed change.
    behaviour: tuple[float, float, float | None, float | None] | None = None


@dataclass(frozen=True)
class PedestrianPlacement:
    """Attributes:
    name: object name. s, lateral: start position (lateral metres left of the centre line).
    heading: radians relative to the road's direction (pi/2: crossing to the left).
    speed: m/s. height: metres.
    """

    name: str
    s: float
    lateral: float
    heading: float = math.pi / 2
    speed: float = 0.0
    height: float = 1.75
    world_pose: tuple[float, float, float] | None = None  # (x, y, yaw rad) instead of s, lateral
    behaviour: tuple[float, float, float | None, float | None] | None = None  # as a vehicle's


@dataclass(frozen=True)
class PatchPlacement:
    """A standalone attack surface: ``billboard`` (an upright panel beside the road facing
    oncoming traffic) or ``road`` (a patch lying on the asphalt).

    Attributes: name (the surface's name), kind, s, lateral, size (w, h) metres, height of the
    panel's lower edge (billboard), yaw radians.
    """

    name: str
    kind: str = "billboard"
    s: float = 40.0
    lateral: float = -6.0
    size: tuple[float, float] = (1.0, 1.0)
    height: float = 0.8
    yaw: float = 0.0


@dataclass(frozen=True)
class EgoRoute:
    """The ego drives along ``lane`` from ``s0`` at a constant ``speed`` (m/s)."""

    s0: float = 0.0
    lane: int = -1
    speed: float = 10.0
    lateral_offset: float = 0.0
    world_pose: tuple[float, float, float] | None = None  # (x, y, yaw rad): drive straight


@dataclass(frozen=True)
class SceneDescription:
    """Everything the embedded simulator needs to build a world."""

    name: str = "scene"
    road: RoadLayout = field(default_factory=RoadLayout)
    ego: EgoRoute = field(default_factory=EgoRoute)
    signs: tuple[SignPlacement, ...] = ()
    vehicles: tuple[VehiclePlacement, ...] = ()
    pedestrians: tuple[PedestrianPlacement, ...] = ()
    patches: tuple[PatchPlacement, ...] = ()
    clutter: float = 1.0
    seed: int = 0


def build_world(desc: SceneDescription) -> World:
    """The world of a scene: road, clutter, signs, vehicles, pedestrians and attack surfaces."""
    rng = np.random.default_rng(desc.seed)
    world = World()
    road = desc.road
    build_road(world, road, rng)
    hw = road.half_width

    sign_s: list[float] = []
    for i, sp in enumerate(desc.signs):
        name = sp.name or f"sign_{i}"
        plate, post, surf = assets.sign_parts(world, sp.sign_type, sp.height, sp.surface or None)
        side = -1 if sp.side == "right" else 1
        if sp.side not in ("right", "left"):
            raise ValueError(f"signs[{i}].side must be right or left")
        lateral = side * (hw + sp.offset)
        # The face (+x of the plate) looks at approaching traffic: backwards along its lane.
        facing = math.pi if sp.side == "right" else 0.0
        pose = road.pose(sp.s, lateral, 0.0, facing + sp.yaw)
        world.add_object(SimObject(name, "traffic_sign", plate, pose, subclass=sp.sign_type))
        world.add_object(SimObject(f"{name}_post", "pole", post, pose))
        if surf is not None:
            world.add_surface(_attach(surf, name))
        sign_s.append(sp.s)

    for v in desc.vehicles:
        parts, surf = assets.vehicle_parts(
            world, v.body, v.colour, v.rear_surface or None, v.rear_size
        )
        width = assets.BODIES[v.body][1]
        profile = _profile(world, v.name, v.speed, v.behaviour)
        if v.world_pose is not None:
            start = world_pose(*v.world_pose)
            traj = _straight_line(start, profile) if profile else None
            world.add_object(
                SimObject(v.name, "car", parts, start, subclass=v.body, trajectory=traj)
            )
            if surf is not None:
                world.add_surface(_attach(surf, v.name))
            continue
        if v.parked:
            lateral = -(hw - width / 2 + 0.6)
            direction = 1.0
        else:
            lateral = road.lane_lateral(v.lane) + v.lateral_offset
            direction = 1.0 if v.lane < 0 else -1.0
        yaw = 0.0 if direction > 0 else math.pi
        traj = None
        if profile is not None:
            traj = _along_road(road, v.s, lateral, direction, yaw, profile)
        world.add_object(
            SimObject(
                v.name,
                "car",
                parts,
                road.pose(v.s, lateral, 0.0, yaw),
                subclass=v.body,
                trajectory=traj,
            )
        )
        if surf is not None:
            world.add_surface(_attach(surf, v.name))

    for p in desc.pedestrians:
        parts = assets.pedestrian_parts(world, rng, p.height)
        if p.world_pose is not None:
            start = world_pose(*p.world_pose)
        else:
            start = road.pose(p.s, p.lateral, 0.0, p.heading)
        profile = _profile(world, p.name, p.speed, p.behaviour)
        traj = _straight_line(start, profile) if profile else None
        world.add_object(SimObject(p.name, "pedestrian", parts, start, trajectory=traj))

    for pp in desc.patches:
        if pp.kind == "billboard":
            parts, surf = assets.billboard_parts(world, pp.size, pp.name, pp.height)
            facing = math.pi if pp.lateral < 0 else 0.0
            pose = road.pose(pp.s, pp.lateral, 0.0, facing + pp.yaw)
        elif pp.kind == "road":
            parts, surf = assets.road_patch_parts(world, pp.size, pp.name, rng)
            pose = road.pose(pp.s, pp.lateral, 0.0, pp.yaw)
        else:
            raise ValueError(f"patch {pp.name}: kind must be billboard or road")
        world.add_object(SimObject(f"{pp.name}_carrier", "prop", parts, pose))
        world.add_surface(_attach(surf, f"{pp.name}_carrier"))

    _clutter(world, desc, rng, sign_s)
    return world


def world_pose(x: float, y: float, yaw: float) -> np.ndarray:
    """``[4, 4]`` pose on the ground at ``(x, y)`` facing ``yaw`` radians."""
    c, s = math.cos(yaw), math.sin(yaw)
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:2, 3] = (x, y)
    return m


def _attach(surf: SurfaceDef, object_name: str) -> SurfaceDef:
    return SurfaceDef(surf.name, object_name, surf.corners, surf.size_m, surf.normal)


def _profile(world: World, name: str, speed: float, behaviour) -> SpeedProfile | None:
    """The object's speed profile (None: it stands still throughout); registered on the world
    when a trigger may change it."""
    if behaviour is None:
        return SpeedProfile(speed) if speed != 0.0 else None
    v1, accel, time, within = behaviour
    profile = SpeedProfile(speed, v1, accel, time, within)
    world.behaviours[name] = profile
    return profile


def _along_road(road: RoadLayout, s0: float, lateral: float, direction: float, yaw: float, profile):
    def pose(t: float) -> np.ndarray:
        return road.pose(s0 + direction * profile.distance(t), lateral, 0.0, yaw)

    return pose


def _straight_line(start: np.ndarray, profile):
    def pose(t: float) -> np.ndarray:
        m = start.copy()
        m[:3, 3] = start[:3, 3] + start[:3, 0] * profile.distance(t)
        return m

    return pose


def _clutter(
    world: World, desc: SceneDescription, rng: np.random.Generator, sign_s: list[float]
) -> None:
    """Buildings, lamps and props (urban), trees (rural), guard rails (highway)."""
    road = desc.road
    hw, sw = road.half_width, road.sidewalk_width
    if desc.clutter <= 0:
        return
    arms = [(road, np.eye(4))]
    if road.kind == "intersection":
        cross, rot = road.cross_road()
        arms.append((cross, rot))
    count = 0

    def add(parts, pose, category, prefix):
        nonlocal count
        count += 1
        world.add_object(SimObject(f"{prefix}_{count}", category, parts, pose))

    def clear_of_cross(r: RoadLayout, to_world: np.ndarray, s: float, margin: float) -> bool:
        # The main road's arm is split by the cross road and vice versa.
        if road.kind != "intersection":
            return True
        return abs(s - road.intersection_s) > hw + sw + margin

    def trees(arm, to_world, side, n, near, far, check_cross):
        """``n`` trees along an arm on one side, between ``near`` and ``far`` metres out."""
        for _ in range(n):
            s = rng.uniform(0, arm.length)
            if check_cross and not clear_of_cross(arm, to_world, s, 4.0):
                continue
            lat = side * rng.uniform(near, far)
            add(assets.tree_parts(world, rng), to_world @ arm.pose(s, lat), "vegetation", "tree")

    for arm, to_world in arms:
        for side in (1, -1):
            edge = hw + sw
            if road.environment == "urban":
                s = rng.uniform(0, 6)
                while s < arm.length:
                    length = rng.uniform(8, 22) / max(desc.clutter, 0.3)
                    depth = rng.uniform(8, 14)
                    height = rng.uniform(6, 20)
                    mid = s + length / 2
                    if (
                        clear_of_cross(arm, to_world, mid, length / 2 + 1)
                        and s + length < arm.length
                    ):
                        setback = edge + rng.uniform(0.5, 2.5) + depth / 2
                        pose = to_world @ arm.pose(mid, side * setback)
                        add(
                            assets.building_parts(
                                world, rng, (length, depth, height), int(rng.integers(5))
                            ),
                            pose,
                            "building",
                            "building",
                        )
                    s += length + rng.uniform(1.0, 6.0)
                for s in np.arange(12.0, arm.length, 30.0 / desc.clutter):
                    if not clear_of_cross(arm, to_world, s, 2.0):
                        continue
                    if arm is road and any(abs(s - q) < 4.0 for q in sign_s):
                        continue
                    # The lamp's arm (its +y) reaches over the road.
                    yaw = math.pi if side > 0 else 0.0
                    pose = to_world @ arm.pose(s, side * (hw + sw - 0.4), 0.0, yaw)
                    add(assets.lamp_parts(world), pose, "pole", "lamp")
                    if rng.random() < 0.3 * desc.clutter:
                        p = to_world @ arm.pose(s + 3.0, side * (hw + sw - 0.6))
                        add(assets.prop_parts(world, "bin"), p, "prop", "bin")
            elif road.environment == "rural":
                trees(
                    arm,
                    to_world,
                    side,
                    int(arm.length / 12 * desc.clutter),
                    edge + 3.0,
                    edge + 18.0,
                    check_cross=True,
                )
            else:  # highway: continuous guard rails on both sides and a few distant trees
                rail = assets.rail_parts(world, 4.0)
                for s in np.arange(2.0, arm.length, 4.0):
                    add(rail, to_world @ arm.pose(s, side * (hw + 1.0)), "prop", "rail")
                trees(
                    arm,
                    to_world,
                    side,
                    int(arm.length / 25 * desc.clutter),
                    hw + 10.0,
                    hw + 30.0,
                    check_cross=False,
                )
