"""A recording stand-in for a CARLA server's Client and World, for testing the CARLA backend's
job life cycle without a server. It is not CARLA: it records every call in order, hands real
carla value types (Transform, WeatherParameters, TextureColor, a ``carla.Map`` built from
OpenDRIVE text) back, and makes sensors deliver synthetic data for each tick's frame id, one
stale measurement first (CARLA's latency)."""

from __future__ import annotations

import itertools

import carla
import numpy as np


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, *call) -> None:
        self.calls.append(call)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class Blueprint:
    def __init__(self, bp_id: str) -> None:
        self.id = bp_id
        self.attributes: dict[str, str] = {}

    def has_attribute(self, name: str) -> bool:
        return True

    def set_attribute(self, name: str, value: str) -> None:
        self.attributes[name] = value


class Library:
    def find(self, bp_id: str) -> Blueprint:
        return Blueprint(bp_id)


class Measurement:
    def __init__(self, frame: int, raw: bytes, width: int = 0, height: int = 0) -> None:
        self.frame, self.raw_data, self.width, self.height = frame, raw, width, height


class Actor:
    _ids = itertools.count(100)

    def __init__(self, world, blueprint, transform, parent) -> None:
        self.id = next(self._ids)
        self.world, self.blueprint, self.transform, self.parent = (
            world,
            blueprint,
            transform,
            parent,
        )
        self.callback = None
        self.bounding_box = carla.BoundingBox(
            carla.Location(0, 0, 0.75), carla.Vector3D(2.25, 0.9, 0.75)
        )

    def listen(self, callback) -> None:
        self.world.rec("listen", self.blueprint.id)
        self.callback = callback

    def stop(self) -> None:
        self.world.rec("stop", self.blueprint.id)

    def set_simulate_physics(self, on: bool) -> None:
        pass

    def set_transform(self, t) -> None:
        self.world.rec("set_transform", self.id, t.location.x, t.location.y)
        self.transform = t

    def get_transform(self):
        return self.transform

    def emit(self, frame: int) -> None:
        bp = self.blueprint
        if bp.id.startswith("sensor.camera"):
            w, h = int(bp.attributes["image_size_x"]), int(bp.attributes["image_size_y"])
            img = np.zeros((h, w, 4), np.uint8)
            img[..., 2] = 200  # red in BGRA
            if "instance" in bp.id:
                img[..., :] = 0
            self.callback(Measurement(frame, img.tobytes(), w, h))
        else:
            pts = np.array([[10.0, 0.0, -1.0, 0.5], [10.0, 0.5, -1.2, 0.4]], np.float32)
            self.callback(Measurement(frame, pts.tobytes()))


class EnvObject:
    def __init__(self, name: str, x: float, y: float) -> None:
        self.name, self.id = name, 7
        self.transform = carla.Transform(carla.Location(x, y, 0.0), carla.Rotation())
        self.bounding_box = carla.BoundingBox(
            carla.Location(x, y, 2.4), carla.Vector3D(0.05, 0.38, 0.38)
        )


class Settings:
    def __init__(self) -> None:
        self.synchronous_mode = False
        self.fixed_delta_seconds = None


class TrafficManager:
    def __init__(self, rec, port) -> None:
        self.rec, self.port = rec, port

    def set_synchronous_mode(self, on: bool) -> None:
        self.rec("tm_sync", self.port, on)


class World:
    def __init__(self, rec: Recorder, carla_map, signs=(), silent: set[str] = frozenset()) -> None:
        self.rec, self.map, self.signs = rec, carla_map, list(signs)
        self.settings = Settings()
        self.frame = 0
        self.actors: list[Actor] = []
        self.silent = silent  # sensors that never deliver (for time-outs)
        self.fail_on_tick: int | None = None

    def get_map(self):
        return self.map

    def get_settings(self):
        s = Settings()
        s.synchronous_mode = self.settings.synchronous_mode
        s.fixed_delta_seconds = self.settings.fixed_delta_seconds
        return s

    def apply_settings(self, s) -> None:
        self.rec("apply_settings", s.synchronous_mode, s.fixed_delta_seconds)
        self.settings = s

    def set_weather(self, w) -> None:
        self.rec("set_weather", w)

    def get_blueprint_library(self):
        return Library()

    def spawn_actor(self, bp, transform, attach_to=None):
        a = Actor(self, bp, transform, attach_to)
        self.actors.append(a)
        self.rec("spawn", bp.id, None if attach_to is None else attach_to.id)
        return a

    def get_environment_objects(self, label):
        return self.signs

    def tick(self, timeout: float = 10.0) -> int:
        self.frame += 1
        if self.fail_on_tick is not None and self.frame >= self.fail_on_tick:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator")
        self.rec("tick", self.frame)
        for a in self.actors:
            if a.callback is not None and a.blueprint.id not in self.silent:
                a.emit(self.frame - 1)  # a stale measurement first, as CARLA's latency gives
                a.emit(self.frame)
        return self.frame

    def apply_color_texture_to_object(self, name, parameter, texture) -> None:
        self.rec("texture", name, parameter, texture)


class Client:
    """Stands in for ``carla.Client(host, port)``."""

    def __init__(self, world: World, version: str = "0.9.16") -> None:
        self.world, self.version = world, version
        self.rec = world.rec

    def __call__(self, host, port):  # used as the client factory
        self.rec("connect", host, port)
        return self

    def set_timeout(self, t: float) -> None:
        pass

    def get_server_version(self) -> str:
        return self.version

    def get_client_version(self) -> str:
        return "0.9.16"

    def get_world(self):
        return self.world

    def generate_opendrive_world(self, text, params):
        self.rec("generate_opendrive_world", len(text))
        return self.world

    def load_world(self, town):
        self.rec("load_world", town)
        return self.world

    def get_trafficmanager(self, port):
        return TrafficManager(self.rec, port)

    def apply_batch_sync(self, commands):
        self.rec("destroy", [c.actor_id for c in commands])
        return []
