"""``CarlaBackend``: one episode on a CARLA 0.9.16 server, behind the same Backend protocol as
the embedded simulator.

Per episode: load the scenario's map (a town, an OpenDRIVE file, or its own road generated as
OpenDRIVE) unless it is loaded already; synchronous mode with a fixed step of at most 0.1 s and
the Traffic Manager in synchronous mode on the server's own TM port; spawn the ego, its sensors
(RGB and instance-segmentation cameras, LiDAR with one full sweep per frame) and the scenario's
vehicles and pedestrians, which move kinematically along their routes; match the scenario's
signs to the map's sign objects; set the weather. Each frame: move everything, tick, collect
every sensor's data for that frame id from its queue (with a timeout), and convert to a Frame.

Teardown (``close``, also after any error): restore the server's settings first so it never
stays frozen in synchronous mode, then stop every sensor before destroying it, then destroy
every actor spawned, in one batch.
"""

from __future__ import annotations

import contextlib
import math
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.carla import convert, layout, textures, truth
from avrobust.backends.carla.road import RoadFrame, opendrive_for
from avrobust.core.calibration import Calibration, CameraIntrinsics
from avrobust.core.errors import BackendError, ConfigError
from avrobust.core.frame import Frame
from avrobust.scenario.schema import Scenario

MAX_STEP = 0.1  # seconds: CARLA's physics is unreliable with longer fixed steps
SIGN_MATCH_M = 5.0  # a scenario sign takes the map's sign object within this distance


@dataclass
class _Sensor:
    name: str
    actor: Any
    queue: queue.Queue = field(default_factory=queue.Queue)


def connect(host: str, port: int, timeout: float = 10.0, client_factory: Callable | None = None):
    """A connected ``carla.Client``: a short probe first (a clear error when nothing answers),
    then the client and server versions compared."""
    factory = client_factory or convert._carla().Client
    client = factory(host, port)
    client.set_timeout(min(timeout, 2.0))
    try:
        server = client.get_server_version()
    except RuntimeError as exc:
        raise BackendError(
            f"no CARLA server answers at {host}:{port} ({str(exc).splitlines()[0]}); start one "
            "(docs/carla.md) or check carla.servers in the campaign",
            field="carla.servers",
        ) from None
    mine = client.get_client_version()
    if server.split("-")[0] != mine.split("-")[0]:
        raise BackendError(
            f"CARLA server {server} at {host}:{port} does not match the client {mine}; "
            "install the carla package of the server's version",
            field="carla.servers",
        )
    client.set_timeout(timeout)
    return client


class CarlaBackend:
    """One episode at a time on one server (a ``ServerPool`` lease gives the server)."""

    name = "carla"

    def __init__(
        self,
        host: str = "localhost",
        port: int = 2000,
        tm_port: int | None = None,
        timeout: float = 10.0,
        client_factory: Callable | None = None,
        sensor_timeout: float = 5.0,
    ) -> None:
        self.host, self.port = host, port
        self.tm_port = tm_port if tm_port is not None else port + 6000
        self.timeout, self.sensor_timeout = timeout, sensor_timeout
        self._client_factory = client_factory
        self.client = None
        self.world = None
        self._original_settings = None
        self._actors: list[Any] = []
        self._sensors: list[_Sensor] = []
        self._tracked: list[tuple[truth.Tracked, Any]] = []  # (what, actor or env object)
        self._placed: dict[str, layout.Placed] = {}
        self._road: RoadFrame | None = None
        self._episode: EpisodeSpec | None = None
        self._scenario: Scenario | None = None
        self._ids: dict[str, int] = {}
        self._profiles: dict = {}
        self._sign_objects: dict[str, str] = {}  # scenario sign -> CARLA object name
        self._sign_poses: dict[str, tuple[np.ndarray, layout.Placed]] = {}
        self._ticks_per_frame = 1

    # --- set-up -------------------------------------------------------------------------
    def start(self, episode: EpisodeSpec) -> None:
        if not isinstance(episode.scene, Scenario):
            raise ConfigError(
                "the CARLA backend runs scenario files (not embedded scene descriptions)",
                field="scene",
            )
        if episode.ego_poses is not None:
            raise ConfigError("the CARLA backend does not take ego pose overrides", field="ego")
        self.close()
        self._episode, self._scenario = episode, episode.scene
        self._placed = {p.name: p for p in layout.place(self._scenario)}
        # Behaviours: fresh speed profiles each episode (their triggers fire once).
        self._profiles = {
            a.name: a.behaviour.profile(a.speed)
            for a in (*self._scenario.vehicles, *self._scenario.pedestrians)
            if a.behaviour is not None
        }
        if self.client is None:
            self.client = connect(self.host, self.port, self.timeout, self._client_factory)
        try:
            try:
                self.world = self.client.get_world()
            except RuntimeError:  # a dropped connection (a restarted server): reconnect once
                self.client = connect(self.host, self.port, self.timeout, self._client_factory)
            self._setup(episode)
        except BaseException:
            with contextlib.suppress(BackendError):  # the set-up error is the one to report
                self.close()
            raise

    def _setup(self, episode: EpisodeSpec) -> None:
        carla = convert._carla()
        sc = episode.scene
        self.world = self._load_map(sc)
        self._original_settings = self.world.get_settings()
        step = 1.0 / episode.rate
        self._ticks_per_frame = max(1, math.ceil(step / MAX_STEP - 1e-9))
        settings = self.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = step / self._ticks_per_frame
        self.world.apply_settings(settings)
        tm = self.client.get_trafficmanager(self.tm_port)
        tm.set_synchronous_mode(True)
        self.world.set_weather(convert.weather_parameters(episode.weather))
        self._road = RoadFrame(self.world.get_map(), sc.map)
        library = self.world.get_blueprint_library()
        ego = self._spawn(library.find(layout.EGO_BLUEPRINT), self._pose_of("ego", 0.0))
        ego.set_simulate_physics(False)
        self._ego = ego
        if episode.camera is not None:
            cam = episode.camera
            mount = convert.mount_transform(cam.mount)
            self._sensor(
                "camera",
                "sensor.camera.rgb",
                convert.camera_attributes(cam, episode.rate),
                mount,
                ego,
                library,
            )
            self._sensor("instances", "sensor.camera.instance_segmentation",
                         convert.instance_camera_attributes(cam, episode.rate), mount, ego,
                         library)  # fmt: skip
        if episode.lidar is not None:
            self._sensor(
                "lidar",
                "sensor.lidar.ray_cast",
                convert.lidar_attributes(episode.lidar, episode.rate),
                convert.mount_transform(episode.lidar.mount),
                ego,
                library,
            )
        next_id = 1
        for name, p in self._placed.items():
            if p.category in ("car", "pedestrian"):
                bp_name = (
                    layout.BODY_BLUEPRINTS.get(p.subclass, layout.EGO_BLUEPRINT)
                    if p.category == "car"
                    else layout.PEDESTRIAN_BLUEPRINT
                )
                actor = self._spawn(library.find(bp_name), self._pose_of(name, 0.0))
                actor.set_simulate_physics(False)
                self._tracked.append(
                    (truth.Tracked(next_id, name, p.category, p.subclass, actor.id), actor)
                )
            elif p.category == "traffic_sign":
                obj = self._match_sign(name, p, carla)
                self._sign_objects[name] = obj.name
                pose = self._pose_of(name, 0.0)
                loc = obj.transform.location
                pose[0, 3], pose[1, 3] = loc.x, -loc.y  # the scenario's plate at the map sign
                self._sign_poses[name] = (pose, p)
                self._tracked.append(
                    (truth.Tracked(next_id, name, "traffic_sign", p.subclass, None), obj)
                )
            else:
                continue
            self._ids[name] = next_id
            next_id += 1
        self._tick()  # settle spawned actors; sensor data of this tick is discarded

    def _load_map(self, sc: Scenario):
        carla = convert._carla()
        world = self.client.get_world()
        m = sc.map
        if m.carla_town:
            if not world.get_map().name.endswith(m.carla_town):
                world = self.client.load_world(m.carla_town)
            return world
        if m.opendrive:
            path = Path(m.opendrive)
            if not path.is_file():
                raise ConfigError("no such OpenDRIVE file", file=path, field="map.opendrive")
            text = path.read_text(encoding="utf-8")
        else:
            text = opendrive_for(m, sc.name)
        params = carla.OpendriveGenerationParameters(
            vertex_distance=2.0, max_road_length=50.0, wall_height=0.0, additional_width=0.6,
            smooth_junctions=True, enable_mesh_visibility=True,
        )  # fmt: skip
        return self.client.generate_opendrive_world(text, params)

    def _spawn(self, blueprint, pose: np.ndarray, attach_to=None, transform=None):
        actor = self.world.spawn_actor(
            blueprint,
            transform if transform is not None else convert.pose_to_transform(pose),
            attach_to=attach_to,
        )
        self._actors.append(actor)
        return actor

    def _sensor(self, name, bp_name, attrs, transform, ego, library) -> None:
        bp = library.find(bp_name)
        for k, v in attrs.items():
            if bp.has_attribute(k):
                bp.set_attribute(k, v)
        actor = self._spawn(bp, None, attach_to=ego, transform=transform)
        s = _Sensor(name, actor)
        actor.listen(s.queue.put)
        self._sensors.append(s)

    def _match_sign(self, name: str, p: layout.Placed, carla) -> Any:
        pose = self._pose_of(name, 0.0)
        objs = self.world.get_environment_objects(carla.CityObjectLabel.TrafficSigns)
        best, dist = None, float("inf")
        for o in objs:
            loc = o.transform.location
            d = math.hypot(loc.x - pose[0, 3], -loc.y - pose[1, 3])
            if d < dist:
                best, dist = o, d
        if best is None or dist > SIGN_MATCH_M:
            raise ConfigError(
                f"sign {name}: the map has no traffic-sign object within {SIGN_MATCH_M:g} m of "
                "where the scenario puts it; CARLA cannot spawn signs, so place the scenario at "
                "one of the town's signs (map.carla_town and map.origin, docs/carla.md)",
                field=f"signs.{name}",
            )
        return best

    def _pose_of(self, name: str, t: float) -> np.ndarray:
        p = self._placed[name]
        d = self._profiles[name].distance(t) if name in self._profiles else p.speed * t
        if p.pose is not None:
            yaw = math.radians(p.pose.yaw)
            x, y = p.pose.x + d * math.cos(yaw), p.pose.y + d * math.sin(yaw)
            m = np.eye(4)
            m[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
            m[:3, 3] = (x, y, 0.0)
            return m
        s, lateral, yaw = p.at(t, d)
        return self._road.pose(s, lateral, 0.0, yaw)

    # --- frames -------------------------------------------------------------------------
    def object_id(self, name: str) -> int:
        if name not in self._ids:
            raise ConfigError(f"no object {name!r} in this episode", field="targets")
        return self._ids[name]

    def _tick(self) -> int:
        frame_id = None
        for _ in range(self._ticks_per_frame):
            frame_id = self.world.tick(self.timeout)
        return frame_id

    def _collect(self, frame_id: int) -> dict[str, Any]:
        """Each sensor's data for ``frame_id``; older data in a queue (latency) is dropped."""
        out = {}
        for s in self._sensors:
            while True:
                try:
                    data = s.queue.get(timeout=self.sensor_timeout)
                except queue.Empty:
                    raise BackendError(
                        f"sensor {s.name} sent nothing for frame {frame_id} within "
                        f"{self.sensor_timeout:g} s",
                        field="carla",
                    ) from None
                if data.frame == frame_id:
                    out[s.name] = data
                    break
                if data.frame > frame_id:
                    raise BackendError(
                        f"sensor {s.name} skipped frame {frame_id} (got {data.frame})",
                        field="carla",
                    )
        return out

    def frames(self) -> Iterator[Frame]:
        ep = self._require()
        for i in range(ep.frames):
            t = ep.start_time + i / ep.rate
            yield self.frame_at(i, torch.from_numpy(self._pose_of("ego", t)))

    def frame_at(self, index: int, ego_pose: torch.Tensor) -> Frame:
        """Frame ``index`` with the ego at ``ego_pose`` (closed loop: the driving model's pose,
        set as a transform like every other actor's, physics off): move everything, tick,
        collect."""
        ep = self._require()
        t = ep.start_time + index / ep.rate
        pose = ego_pose.to(torch.float64)
        ego_xy = (float(pose[0, 3]), float(pose[1, 3]))
        for name, profile in self._profiles.items():
            own = self._pose_of(name, t)
            profile.check(t, ego_xy, (float(own[0, 3]), float(own[1, 3])))
        self._ego.set_transform(convert.pose_to_transform(pose.numpy()))
        for tr, actor in self._tracked:
            if tr.carla_id is not None:
                actor.set_transform(convert.pose_to_transform(self._pose_of(tr.name, t)))
        data = self._collect(self._tick())
        return self._frame(index, t, data, self.calibration(), pose)

    def ego_lane(self, step: float = 1.0, max_length: float = 500.0) -> np.ndarray:
        """``[N, 2]`` our-frame world points along the ego's lane from its start, up to where
        the map's road ends (or ``max_length`` metres)."""
        self._require()
        p = self._placed["ego"]
        if p.pose is not None:
            yaw = math.radians(p.pose.yaw)
            d = np.arange(0.0, max_length + step, step)
            return np.stack([p.pose.x + d * math.cos(yaw), p.pose.y + d * math.sin(yaw)], 1)
        direction = 1.0 if math.cos(p.yaw) >= 0 else -1.0
        out = []
        for k in range(int(max_length / step) + 1):
            try:
                m = self._road.pose(p.s + direction * k * step, p.lateral, 0.0, p.yaw)
            except ConfigError:  # the road ends here
                break
            out.append(m[:2, 3])
        if len(out) < 2:
            raise ConfigError("the ego's lane is shorter than two metres on this map", field="ego")
        return np.array(out)

    def object_names(self) -> dict[int, str]:
        return {i: n for n, i in self._ids.items()}

    def _require(self) -> EpisodeSpec:
        if self._episode is None or self.world is None:
            raise BackendError("start() an episode before asking for frames")
        return self._episode

    def calibration(self) -> Calibration:
        ep = self._episode
        cam = ep.camera
        intr = (
            CameraIntrinsics.from_fov(cam.width, cam.height, cam.hfov)
            if cam is not None
            else CameraIntrinsics.from_fov(64, 64, math.radians(90))
        )
        return Calibration(
            intr,
            camera_pose=cam.mount.pose() if cam is not None else torch.eye(4, dtype=torch.float64),
            lidar_pose=(
                ep.lidar.mount.pose() if ep.lidar is not None else torch.eye(4, dtype=torch.float64)
            ),
        )

    def _frame(
        self, index: int, t: float, data: dict, cal: Calibration, world_from_ego: torch.Tensor
    ) -> Frame:
        ep = self._episode
        image = instances = points = None
        if "camera" in data:
            d = data["camera"]
            image = convert.bgra_to_image(bytes(d.raw_data), d.width, d.height)
            instances = convert.instance_ids(bytes(data["instances"].raw_data), d.width, d.height)
        if "lidar" in data:
            points = convert.lidar_to_points(bytes(data["lidar"].raw_data))
        boxes = [
            truth.world_box(obj.bounding_box, obj.get_transform() if tr.carla_id else None)
            for tr, obj in self._tracked
        ]
        gt, id_map = truth.ground_truth(
            [tr for tr, _ in self._tracked], boxes, world_from_ego, cal, points, instances
        )
        return Frame(
            cal,
            image=image,
            points=points,
            truth=gt,
            surfaces=self._surfaces(world_from_ego, cal, id_map) if image is not None else {},
            index=index,
            timestamp=t,
            ego_pose=world_from_ego,
            instance_map=id_map,
            metadata={"backend": "carla", "server": f"{self.host}:{self.port}", "seed": ep.seed},
        )

    def _surfaces(self, world_from_ego, cal: Calibration, id_map) -> dict:
        from avrobust.backends.carla.surfaces import FACE_SIZE, face_corners, sign_face_view

        out = {}
        occluders = None if id_map is None else id_map > 0
        for spec in self._scenario.surfaces:
            if spec.kind != "sign_face" or spec.object not in self._sign_poses:
                continue
            pose, placed = self._sign_poses[spec.object]
            size = spec.size[0] if spec.size else FACE_SIZE.get(placed.subclass, 0.75)
            corners = face_corners(pose, size, placed.height)
            out[spec.name] = sign_face_view(
                spec.name,
                self._ids[spec.object],
                corners,
                pose[:3, 0],
                size,
                world_from_ego,
                cal,
                occluders,
            )
        return out

    # --- attacks ------------------------------------------------------------------------
    def apply_texture(
        self, surface: str, texture: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Paint a patch on the map object carrying ``surface`` (a sign face: the map's sign
        object matched to the scenario's sign)."""
        carla = convert._carla()
        spec = next((s for s in self._scenario.surfaces if s.name == surface), None)
        if spec is None:
            raise ConfigError(f"no surface {surface!r} in this scenario", field="surface")
        if spec.kind != "sign_face" or spec.object not in self._sign_objects:
            raise ConfigError(
                f"surface {surface}: the CARLA backend textures sign faces only (vehicle "
                "materials reject apply_color_texture_to_object)",
                field="surface",
            )
        name = self._sign_objects[spec.object]
        tex = textures.CACHE.get(texture, mask, textures.layout_for(name))
        self.world.apply_color_texture_to_object(name, carla.MaterialParameter.Diffuse, tex)

    # --- teardown -----------------------------------------------------------------------
    def close(self) -> None:
        """Restore the server, stop sensors, destroy actors; every step runs even if one
        fails, and calling it twice is harmless."""
        errors = []
        if self.world is not None and self._original_settings is not None:
            try:
                settings = self.world.get_settings()
                settings.synchronous_mode = False
                settings.fixed_delta_seconds = self._original_settings.fixed_delta_seconds
                self.world.apply_settings(settings)
                self.client.get_trafficmanager(self.tm_port).set_synchronous_mode(False)
            except Exception as exc:  # the next steps must still run
                errors.append(exc)
        for s in self._sensors:
            try:
                s.actor.stop()
            except Exception as exc:
                errors.append(exc)
        if self._actors and self.client is not None:
            try:
                carla = convert._carla()
                self.client.apply_batch_sync(
                    [carla.command.DestroyActor(a.id) for a in reversed(self._actors)]
                )
            except Exception as exc:
                errors.append(exc)
        self._actors, self._sensors, self._tracked = [], [], []
        self._original_settings = None
        self._ids, self._sign_objects, self._sign_poses = {}, {}, {}
        if errors:
            raise BackendError(f"CARLA teardown incomplete: {errors[0]}", field="carla")

    def __enter__(self) -> CarlaBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PooledCarlaBackend(CarlaBackend):
    """A CarlaBackend that leases its server from a ``ServerPool`` for each episode (start to
    close), so parallel jobs never share a server."""

    def __init__(self, servers: list[str], timeout: float = 10.0, **kwargs: Any) -> None:
        from avrobust.backends.server_pool import ServerPool

        super().__init__(timeout=timeout, **kwargs)
        self._pool = ServerPool(servers)
        self._lease: contextlib.ExitStack | None = None

    def start(self, episode: EpisodeSpec) -> None:
        if self._lease is None:
            self._lease = contextlib.ExitStack()
            server = self._lease.enter_context(self._pool.lease())
            if (server.host, server.port) != (self.host, self.port):
                self.client = None  # another server: connect afresh
            self.host, self.port, self.tm_port = server.host, server.port, server.tm_port
        super().start(episode)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._lease is not None:
                self._lease.close()
                self._lease = None


def check_servers(servers: list[str], timeout: float = 10.0) -> None:
    """Fail early, with the server named, when any campaign server does not answer."""
    from avrobust.backends.server_pool import parse_servers

    for server in parse_servers(servers):
        connect(server.host, server.port, min(timeout, 5.0))
