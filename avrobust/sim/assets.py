"""Procedural objects: vehicles of three bodies, pedestrians, signs on posts, trees, buildings,
street lamps and props. Each builder registers its materials in the world and returns the parts
of a :class:`SimObject` in the object's own frame (x forward, y left, z up, on the ground)."""

from __future__ import annotations

import math

import numpy as np
import torch

from avrobust.core.conventions import make_pose
from avrobust.sim import textures as tx
from avrobust.sim.meshes import box, cylinder, frustum, polygon_plate, quad, sphere
from avrobust.sim.signs import ALL_SIGN_TYPES, draw_face
from avrobust.sim.world import Material, Part, SurfaceDef, World

# (length, width, lower body bottom, lower body top, cabin bottom (l, w), top (l, w), cabin
# height, cabin shift along x, wheel radius, wheelbase)
BODIES: dict[str, tuple] = {
    "sedan": (4.6, 1.82, 0.28, 0.98, (2.6, 1.70), (1.85, 1.40), 0.46, -0.25, 0.33, 2.75),
    "suv": (4.8, 1.95, 0.36, 1.20, (3.0, 1.85), (2.55, 1.62), 0.60, -0.20, 0.38, 2.85),
    "van": (5.4, 2.02, 0.36, 1.40, (4.3, 2.00), (3.95, 1.90), 0.95, -0.45, 0.36, 3.30),
}


def _m(pose_xyz=(0.0, 0.0, 0.0), roll=0.0, pitch=0.0, yaw=0.0) -> np.ndarray:
    return make_pose(pose_xyz, roll, pitch, yaw).numpy()


def _material(world: World, name: str, texture: np.ndarray, **kw) -> str:
    return world.add_material(Material(name, torch.from_numpy(texture), **kw))


def vehicle_parts(
    world: World,
    body: str,
    colour: int,
    rear_surface: str | None = None,
    rear_size: tuple[float, float] = (1.2, 0.5),
) -> tuple[list[Part], SurfaceDef | None]:
    """A vehicle's parts, and its rear attack surface when ``rear_surface`` names one."""
    if body not in BODIES:
        raise ValueError(f"unknown vehicle body {body!r}; known: {', '.join(BODIES)}")
    length, width, z0, z1, cab_b, cab_t, cab_h, shift, wheel_r, base = BODIES[body]
    rgb = tx.VEHICLE_COLOURS[colour % len(tx.VEHICLE_COLOURS)]
    paint = _material(
        world,
        f"paint_{colour % len(tx.VEHICLE_COLOURS)}",
        tx.paint(rgb),
        reflectivity=0.45,
        specular=0.06,
    )
    glass = _material(world, "glass", tx.flat((0.06, 0.08, 0.10)), reflectivity=0.1, specular=0.25)
    tyre = _material(world, "tyre", tx.flat((0.03, 0.03, 0.03)), reflectivity=0.08)
    red = _material(world, "tail_light", tx.flat((0.55, 0.02, 0.02)), reflectivity=0.9)
    white = _material(world, "head_light", tx.flat((0.9, 0.9, 0.85)), reflectivity=0.9)
    lower = box((length, width, z1 - z0)).transformed(_m((0, 0, z0)))
    cabin = frustum(cab_b, cab_t, cab_h, shift / 2).transformed(_m((shift, 0, z1)))
    parts = [Part(lower, paint), Part(cabin, glass)]
    # A roof slab in paint colour so the cabin reads as a car, not a glass box.
    roof = box((cab_t[0], cab_t[1], 0.05)).transformed(_m((1.5 * shift, 0, z1 + cab_h)))
    parts.append(Part(roof, paint))
    wheel = cylinder(wheel_r, 0.24, segments=10).transformed(_m((0, 0.12, 0), roll=math.pi / 2))
    for sx in (base / 2, -base / 2):
        for sy in (1, -1):
            y = sy * (width / 2 - 0.12)
            parts.append(Part(wheel.transformed(_m((sx, y, wheel_r))), tyre))
    light_z = z1 - 0.18
    for sy in (1, -1):
        y = sy * (width / 2 - 0.22)
        parts.append(
            Part(box((0.04, 0.28, 0.12)).transformed(_m((-length / 2 - 0.01, y, light_z))), red)
        )
        parts.append(
            Part(box((0.04, 0.26, 0.10)).transformed(_m((length / 2 + 0.01, y, light_z))), white)
        )
    surface = None
    if rear_surface is not None:
        w, h = rear_size
        if w > width - 0.1 or h > (z1 - z0) - 0.05:
            raise ValueError(f"rear surface {w}x{h} m does not fit a {body} rear")
        x = -length / 2 - 0.012
        zc = z0 + (z1 - z0) * 0.45
        tl, tr = (x, w / 2, zc + h / 2), (x, -w / 2, zc + h / 2)
        br, bl = (x, -w / 2, zc - h / 2), (x, w / 2, zc - h / 2)
        corners = np.array([tl, tr, br, bl], np.float32)
        base_tex = tx.paint(rgb, 64)
        world.add_material(
            Material(
                rear_surface, torch.from_numpy(base_tex), reflectivity=0.45, surface=rear_surface
            )
        )
        parts.append(Part(quad(corners[[3, 2, 1, 0]]), rear_surface))
        surface = SurfaceDef(rear_surface, "", corners, (w, h), np.array([-1.0, 0, 0]))
    return parts, surface


def pedestrian_parts(world: World, rng: np.random.Generator, height: float = 1.75) -> list[Part]:
    k = height / 1.75
    top = _material(world, f"cloth_top_{rng.integers(6)}", tx.clothing(rng), reflectivity=0.3)
    bottom = _material(world, f"cloth_bottom_{rng.integers(6)}", tx.clothing(rng), reflectivity=0.3)
    skin = _material(world, "skin", tx.flat((0.62, 0.45, 0.36)), reflectivity=0.35)
    parts = []
    for sy in (0.1, -0.1):
        parts.append(
            Part(box((0.16 * k, 0.14 * k, 0.86 * k)).transformed(_m((0, sy * k, 0))), bottom)
        )
    parts.append(Part(box((0.26 * k, 0.44 * k, 0.62 * k)).transformed(_m((0, 0, 0.86 * k))), top))
    for sy in (0.27, -0.27):
        parts.append(
            Part(box((0.1 * k, 0.09 * k, 0.6 * k)).transformed(_m((0, sy * k, 0.88 * k))), top)
        )
    parts.append(Part(sphere(0.11 * k).transformed(_m((0, 0, 1.62 * k))), skin))
    return parts


def sign_parts(
    world: World, sign_type: str, height: float, surface: str | None = None
) -> tuple[list[Part], list[Part], SurfaceDef | None]:
    """``(plate parts, post parts, surface)``: the plate faces +x; its lower edge is ``height``
    metres above the ground; the post is a separate object so it is not part of the sign's box."""
    if sign_type not in ALL_SIGN_TYPES:
        raise ValueError(f"unknown sign type {sign_type!r}; known: {', '.join(ALL_SIGN_TYPES)}")
    st = ALL_SIGN_TYPES[sign_type]
    ext = st.face_extent
    outline = st.outline()
    zc = height + (outline[:, 1].max() - outline[:, 1].min()) / 2
    front, back = polygon_plate(outline, thickness=0.02)
    lift = _m((0.0, 0.0, zc))
    face_tex = draw_face(st, 256)
    if surface is None:
        face = _material(world, f"sign_{sign_type}", face_tex, reflectivity=0.95)
    else:
        face = world.add_material(
            Material(surface, torch.from_numpy(face_tex), reflectivity=0.95, surface=surface)
        )
    metal = _material(world, "sign_back", tx.flat((0.5, 0.5, 0.52)), reflectivity=0.4)
    plate = [Part(front.transformed(lift), face), Part(back.transformed(lift), metal)]
    post_h = zc + 0.1
    post = [Part(cylinder(0.035, post_h, 8).transformed(_m((-0.06, 0, 0))), metal)]
    surf = None
    if surface is not None:
        corners = np.array(
            [
                [0.0, -ext / 2, zc + ext / 2],
                [0.0, ext / 2, zc + ext / 2],
                [0.0, ext / 2, zc - ext / 2],
                [0.0, -ext / 2, zc - ext / 2],
            ],
            np.float32,
        )
        surf = SurfaceDef(surface, "", corners, (ext, ext), np.array([1.0, 0, 0]))
    return plate, post, surf


def tree_parts(world: World, rng: np.random.Generator) -> list[Part]:
    trunk_h = rng.uniform(2.0, 3.5)
    crown_r = rng.uniform(1.5, 2.8)
    bark = _material(world, "bark", tx.bark(rng), reflectivity=0.25)
    leaves = _material(world, "foliage", tx.foliage(rng), reflectivity=0.2)
    crown = sphere(crown_r, rings=5, segments=8).transformed(_m((0, 0, trunk_h + crown_r * 0.8)))
    return [Part(cylinder(0.18, trunk_h + 0.5, 8), bark), Part(crown, leaves)]


def building_parts(
    world: World, rng: np.random.Generator, size: tuple[float, float, float], variant: int
) -> list[Part]:
    mat = _material(
        world,
        f"facade_{variant}",
        tx.facade(np.random.default_rng(1000 + variant)),
        reflectivity=0.3,
    )
    return [Part(box(size, uv_per_m=1 / 6.0), mat)]


def lamp_parts(world: World) -> list[Part]:
    metal = _material(world, "lamp_metal", tx.flat((0.3, 0.31, 0.32)), reflectivity=0.35)
    pole = cylinder(0.08, 7.0, 8)
    arm = box((0.12, 1.6, 0.12)).transformed(_m((0, 0.8, 6.9)))
    head = box((0.3, 0.5, 0.15)).transformed(_m((0, 1.5, 6.8)))
    return [Part(pole, metal), Part(arm, metal), Part(head, metal)]


def billboard_parts(
    world: World, size: tuple[float, float], surface: str, height: float = 0.5
) -> tuple[list[Part], SurfaceDef]:
    """A free-standing panel facing +x carrying a poster attack surface (a wall patch)."""
    w, h = size
    frame = _material(world, "panel_frame", tx.flat((0.25, 0.25, 0.27)), reflectivity=0.3)
    poster = tx.paving(np.random.default_rng(7), 64)  # neutral light-grey paper until attacked
    world.add_material(
        Material(surface, torch.from_numpy(poster), reflectivity=0.5, surface=surface)
    )
    panel = box((0.15, w + 0.2, h + 0.2)).transformed(_m((-0.08, 0, height - 0.1)))
    x = 0.002
    tl, tr = (x, -w / 2, height + h), (x, w / 2, height + h)
    br, bl = (x, w / 2, height), (x, -w / 2, height)
    corners = np.array([tl, tr, br, bl], np.float32)
    legs = [box((0.1, 0.1, height)).transformed(_m((-0.08, sy * w / 2, 0))) for sy in (1, -1)]
    parts = [Part(panel, frame), Part(quad(corners[[3, 2, 1, 0]]), surface)]
    parts += [Part(leg, frame) for leg in legs]
    return parts, SurfaceDef(surface, "", corners, (w, h), np.array([1.0, 0, 0]))


def road_patch_parts(
    world: World, size: tuple[float, float], surface: str, rng: np.random.Generator
) -> tuple[list[Part], SurfaceDef]:
    """A patch lying on the road, its top edge towards +x (away from an approaching car)."""
    w, h = size
    world.add_material(
        Material(
            surface,
            torch.from_numpy(tx.asphalt(rng, 128)),
            reflectivity=0.2,
            surface=surface,
            wettable=True,
        )
    )
    z = 0.006  # above the asphalt, below the markings' 0.01
    tl, tr = (h / 2, w / 2, z), (h / 2, -w / 2, z)
    br, bl = (-h / 2, -w / 2, z), (-h / 2, w / 2, z)
    corners = np.array([tl, tr, br, bl], np.float32)
    parts = [Part(quad(corners[[3, 2, 1, 0]]), surface)]
    return parts, SurfaceDef(surface, "", corners, (w, h), np.array([0.0, 0, 1.0]))


def rail_parts(world: World, length: float) -> list[Part]:
    """One segment of a highway guard rail: a steel beam on a post, ``length`` metres long."""
    steel = _material(
        world, "rail_steel", tx.flat((0.62, 0.63, 0.65)), reflectivity=0.7, specular=0.1
    )
    beam = box((length, 0.08, 0.3)).transformed(_m((0, 0, 0.45)))
    post = box((0.1, 0.1, 0.6)).transformed(_m((0, 0.08, 0)))
    return [Part(beam, steel), Part(post, steel)]


def prop_parts(world: World, kind: str) -> list[Part]:
    if kind == "bin":
        mat = _material(world, "bin", tx.flat((0.15, 0.3, 0.18)), reflectivity=0.3)
        return [Part(box((0.6, 0.6, 1.0)), mat)]
    if kind == "bollard":
        mat = _material(world, "bollard", tx.flat((0.8, 0.8, 0.78)), reflectivity=0.7)
        return [Part(cylinder(0.1, 0.9, 8), mat)]
    if kind == "barrier":
        mat = _material(world, "barrier", tx.flat((0.7, 0.7, 0.72)), reflectivity=0.5)
        return [Part(box((0.3, 0.4, 0.8)), mat)]
    raise ValueError(f"unknown prop {kind!r}")
