"""The Backend protocol: how the runner gets Frames from a simulator, whichever it is.

A backend is started for one episode (a scene under one weather with one sensor set), yields its
frames, accepts attack textures for named surfaces, and is closed. Everything that crosses a
process boundary (an :class:`EpisodeSpec`) is plain, picklable data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from avrobust.core.frame import Frame
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.core.weather import Weather
from avrobust.scenario.schema import Scenario


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to simulate.

    Attributes:
        scene: a :class:`~avrobust.scenario.schema.Scenario` or a scenario library name (the
            embedded backend also takes its own ``SceneDescription``).
        camera, lidar: sensor specs (None: no such sensor).
        weather: CARLA-named weather.
        frames: how many frames; rate: frames per second; start_time: seconds.
        seed: seed of the sensors' randomness.
        ego_poses: optional list of ``[4, 4]`` world-from-ego poses (nested lists), one per
            frame, overriding the scene's route (viewpoint sweeps for attack training).
    """

    scene: Any
    camera: CameraSpec | None = field(default_factory=CameraSpec)
    lidar: LidarSpec | None = field(default_factory=LidarSpec)
    weather: Weather = field(default_factory=Weather)
    frames: int = 1
    rate: float = 10.0
    start_time: float = 0.0
    seed: int = 0
    ego_poses: tuple | None = None

    @classmethod
    def from_scenario(cls, scenario: Scenario, **overrides: Any) -> EpisodeSpec:
        """The episode a scenario file describes (its sensors, weather and timing)."""
        fields = dict(
            scene=scenario,
            camera=None if scenario.sensors.camera is None else scenario.sensors.camera.to_spec(),
            lidar=None if scenario.sensors.lidar is None else scenario.sensors.lidar.to_spec(),
            weather=scenario.weather.to_weather(),
            frames=scenario.episode.frames,
            rate=scenario.episode.rate,
            start_time=scenario.episode.start_time,
            seed=scenario.seed,
        )
        fields.update(overrides)
        return cls(**fields)


@runtime_checkable
class Backend(Protocol):
    """What every backend provides."""

    name: str

    def start(self, episode: EpisodeSpec) -> None:
        """Prepare the episode (build or load the world, spawn sensors)."""

    def frames(self) -> Iterator[Frame]:
        """The episode's frames, in order, the ego on its scripted route."""

    def frame_at(self, index: int, ego_pose: torch.Tensor) -> Frame:
        """Frame ``index`` (time ``start_time + index / rate``) with the ego at ``ego_pose``
        (``[4, 4]`` world from ego): the closed loop's step, where the driving model says."""

    def ego_lane(self) -> np.ndarray:
        """``[N, 2]`` world ``(x, y)`` along the ego's lane from its start, about a metre
        apart: the route a closed-loop drive follows."""

    def object_names(self) -> dict[int, str]:
        """The scenario's name of each ground-truth instance id."""

    def object_id(self, name: str) -> int:
        """The ground-truth instance id of a named object of the scenario."""

    def apply_texture(
        self, surface: str, texture: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Paint ``texture`` (``[3, H, W]`` in [0, 1]) on the named attack surface, blended
        with the surface's own texture where ``mask`` (``[1, H, W]``) is below 1."""

    def close(self) -> None:
        """Release everything the episode holds; safe to call twice."""
