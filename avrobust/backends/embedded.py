"""The embedded backend: wraps the built-in simulator (``avrobust.sim``), the only module outside
``sim/`` that imports it. It turns a :class:`~avrobust.scenario.schema.Scenario` into the
simulator's scene description."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from avrobust.backends.base import EpisodeSpec
from avrobust.core.attachment import Attachment
from avrobust.core.errors import ConfigError
from avrobust.core.frame import Frame
from avrobust.scenario.library import load_scenario
from avrobust.scenario.schema import Scenario
from avrobust.sim.roads import RoadLayout
from avrobust.sim.scene import (
    EgoRoute,
    PatchPlacement,
    PedestrianPlacement,
    SceneDescription,
    SignPlacement,
    VehiclePlacement,
)
from avrobust.sim.simulator import RawFrame, Simulator


def scene_description(sc: Scenario) -> SceneDescription:
    """The simulator's scene for a scenario (angles to radians, surfaces onto their objects)."""
    m = sc.map
    try:
        road = RoadLayout(
            m.kind,
            m.length,
            m.lanes_per_direction,
            m.lane_width,
            m.sidewalk_width,
            m.kerb_height,
            m.curve_radius,
            m.environment,
            tuple(m.crosswalks),
            m.centre_line,
        )
    except ValueError as exc:
        raise ConfigError(str(exc), field="map") from None
    faces = {s.object: s for s in sc.surfaces if s.kind == "sign_face"}
    rears = {s.object: s for s in sc.surfaces if s.kind == "vehicle_rear"}
    signs = tuple(
        SignPlacement(
            s.type,
            s.s,
            s.side,
            s.offset,
            s.height,
            math.radians(s.yaw),
            s.name,
            faces[s.name].name if s.name in faces else "",
        )
        for s in sc.signs
    )
    place = _origin_transform(sc)
    vehicles = tuple(
        VehiclePlacement(
            v.name,
            v.body,
            v.s or 0.0,
            v.lane,
            v.lateral_offset,
            v.speed,
            v.colour,
            v.parked,
            rears[v.name].name if v.name in rears else "",
            tuple(rears[v.name].size) if v.name in rears and rears[v.name].size else (1.2, 0.5),
            place(v.pose),
            _behaviour(v.behaviour),
        )
        for v in sc.vehicles
    )
    pedestrians = tuple(
        PedestrianPlacement(
            p.name,
            p.s or 0.0,
            p.lateral or 0.0,
            math.radians(p.heading),
            p.speed,
            p.height,
            place(p.pose),
            _behaviour(p.behaviour),
        )
        for p in sc.pedestrians
    )
    patches = tuple(
        PatchPlacement(
            s.name,
            s.kind,
            s.s,
            s.lateral,
            tuple(s.size or (1.0, 1.0)),
            s.height,
            math.radians(s.yaw),
        )
        for s in sc.surfaces
        if s.kind in ("billboard", "road")
    )
    ego = EgoRoute(
        sc.ego.start, sc.ego.lane, sc.ego.speed, sc.ego.lateral_offset, place(sc.ego.pose)
    )
    return SceneDescription(
        sc.name, road, ego, signs, vehicles, pedestrians, patches, m.clutter, sc.seed
    )


def _behaviour(b) -> tuple | None:
    if b is None:
        return None
    return (b.speed, b.accel, b.trigger.time, b.trigger.ego_within)


def _origin_transform(sc: Scenario):
    """World poses of the scenario re-expressed in the embedded world, where ``map.origin``
    (default: the world origin) stands at the start of the procedural road."""
    o = sc.map.origin
    ox, oy, oyaw = (0.0, 0.0, 0.0) if o is None else (o.x, o.y, math.radians(o.yaw))
    c, s = math.cos(-oyaw), math.sin(-oyaw)

    def place(pose) -> tuple[float, float, float] | None:
        if pose is None:
            return None
        dx, dy = pose.x - ox, pose.y - oy
        return (c * dx - s * dy, s * dx + c * dy, math.radians(pose.yaw) - oyaw)

    return place


def resolve_scene(scene: str | Scenario | SceneDescription) -> SceneDescription:
    if isinstance(scene, SceneDescription):
        return scene
    if isinstance(scene, str):
        scene = load_scenario(scene)
    return scene_description(scene)


def set_threads(n: int) -> None:
    """Threads the embedded simulator's ray casting may use in this process (0: every
    core); campaign workers set their share of the machine."""
    from avrobust.sim.world import set_raycast_threads

    set_raycast_threads(n)


class EmbeddedBackend:
    """Runs episodes in the embedded simulator. Usable as a context manager."""

    name = "embedded"

    def __init__(self, attachments: Sequence[Attachment] = ()) -> None:
        """``attachments``: textured meshes fixed to objects of every episode's scene (an
        adversarial object on its host); their textures are attack surfaces too."""
        self.episode: EpisodeSpec | None = None
        self.simulator: Simulator | None = None
        self.textures: dict[str, torch.Tensor] = {}
        self.attachments = tuple(attachments)

    def start(self, episode: EpisodeSpec) -> None:
        self.episode = episode
        try:
            self.simulator = Simulator(
                resolve_scene(episode.scene),
                episode.camera,
                episode.lidar,
                episode.weather,
                episode.seed,
                self.attachments,
            )
        except ValueError as exc:  # a scene the simulator cannot build
            raise ConfigError(str(exc), field="scene") from None
        self.textures = {}

    def _require(self) -> tuple[EpisodeSpec, Simulator]:
        if self.episode is None or self.simulator is None:
            raise RuntimeError("start() the backend before asking for frames")
        return self.episode, self.simulator

    def render(
        self, index: int, truth: bool = True, ego_pose: torch.Tensor | None = None
    ) -> RawFrame:
        """Frame ``index`` of the episode with the renderers' own outputs; ``ego_pose``
        (``[4, 4]`` world from ego) places the ego instead of its route."""
        ep, sim = self._require()
        t = ep.start_time + index / ep.rate
        pose = ego_pose
        if pose is None and ep.ego_poses is not None:
            pose = torch.tensor(ep.ego_poses[index], dtype=torch.float64)
        raw = sim.render(t, index, self.textures or None, truth=truth, ego_pose=pose)
        raw.frame.metadata["episode_seed"] = ep.seed
        return raw

    def frames(self) -> Iterator[Frame]:
        ep, _ = self._require()
        for i in range(ep.frames):
            yield self.render(i).frame

    def frame_at(self, index: int, ego_pose: torch.Tensor) -> Frame:
        return self.render(index, ego_pose=ego_pose).frame

    def ego_lane(self, step: float = 1.0) -> np.ndarray:
        _, sim = self._require()
        return sim.ego_lane(step)

    def object_names(self) -> dict[int, str]:
        _, sim = self._require()
        return {o.instance_id: n for n, o in sim.world.objects.items() if o.labelled}

    def object_id(self, name: str) -> int:
        """Instance id of a named object (ids in frames' ground truth)."""
        _, sim = self._require()
        if name not in sim.world.objects:
            raise ConfigError(f"no object named {name!r} in this scene", field="object")
        return sim.world.objects[name].instance_id

    def surface_names(self) -> list[str]:
        _, sim = self._require()
        return list(sim.world.surfaces)

    def _surface_sim(self, surface: str) -> Simulator:
        """The simulator, once ``surface`` is known to be one of its attack surfaces (the
        scene's, or an attachment's)."""
        _, sim = self._require()
        names = [n for n, m in sim.world.materials.items() if m.surface == n]
        if surface not in names:
            raise ConfigError(
                f"no attack surface named {surface!r} in this scene",
                field="surface",
                allowed=", ".join(names) or "none",
            )
        return sim

    def surface_texture(self, surface: str) -> torch.Tensor:
        """The surface's own texture (``[3, h, w]``), as the scene drew it."""
        sim = self._surface_sim(surface)
        return sim.world.materials[surface].texture.clone()

    def apply_texture(
        self, surface: str, texture: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        sim = self._surface_sim(surface)
        base = sim.world.materials[surface].texture
        tex = texture.to(torch.float32)
        if tex.shape[1:] != base.shape[1:]:
            tex = F.interpolate(
                tex[None], size=base.shape[1:], mode="bilinear", align_corners=False, antialias=True
            )[0]
        if mask is not None:
            m = F.interpolate(
                mask.to(torch.float32)[None],
                size=base.shape[1:],
                mode="bilinear",
                align_corners=False,
            )[0]
            tex = m * tex + (1 - m) * base
        self.textures[surface] = tex.clamp(0, 1)

    def close(self) -> None:
        self.simulator = None
        self.episode = None
        self.textures = {}

    def __enter__(self) -> EmbeddedBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
