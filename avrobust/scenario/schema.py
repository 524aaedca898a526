"""The scenario file format (YAML), validated with pydantic.

People write degrees and km/h-free SI units (metres, m/s); the models convert angles to radians
when they build the simulator's and backends' objects. Unknown fields are errors, so a typo is
reported instead of silently ignored. ``docs/scenarios.md`` documents every field.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from avrobust.core.classes import ALL_SIGN_TYPES as _SIGN_TYPES
from avrobust.core.sensors import CameraSpec, LidarSpec, Mount
from avrobust.core.weather import PRESETS as WEATHER_PRESETS
from avrobust.core.weather import Weather

# A scenario may place any drawable sign, the classes never trained on included.
SIGN_TYPES = _SIGN_TYPES
BODIES = ("sedan", "suv", "van")


class Strict(BaseModel):
    # NaN and infinity are never a position, speed or weather value: refused at validation.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PoseSpec(Strict):
    """A pose in the scenario's world frame (x forward, y left, z up): metres and degrees."""

    x: float = Field(description="metres")
    y: float = Field(description="metres, positive to the left")
    yaw: float = Field(0.0, description="degrees, counter-clockwise from +x")


class MapSpec(Strict):
    """The road network: one of the embedded simulator's layouts, and optionally a CARLA town."""

    kind: Literal["straight", "curve", "intersection"] = Field(
        "straight", description="road layout; an intersection crosses at half the length"
    )
    length: float = Field(200.0, gt=20, le=2000, description="metres of the main road")
    lanes_per_direction: int = Field(1, ge=1, le=4, description="lanes each way")
    lane_width: float = Field(3.5, gt=2.0, le=5.0, description="metres")
    sidewalk_width: float = Field(3.0, ge=0.0, le=8.0, description="metres; 0 for none")
    kerb_height: float = Field(0.15, ge=0.0, le=0.4, description="metres")
    curve_radius: float = Field(150.0, description="metres; positive turns left (curve only)")
    environment: Literal["urban", "rural", "highway"] = Field(
        "urban", description="buildings and lamps, trees and grass, or guard rails"
    )
    crosswalks: list[float] = Field(default_factory=list, description="s positions, metres")
    centre_line: Literal["dashed", "solid", "none"] = Field(
        "dashed", description="marking between the two directions"
    )
    clutter: float = Field(1.0, ge=0.0, le=3.0, description="density of buildings, trees, lamps")
    carla_town: str | None = Field(None, description="CARLA map for the CARLA backend")
    origin: PoseSpec | None = Field(
        None, description="world pose that the embedded road's start (s = 0) stands for"
    )
    opendrive: str | None = Field(None, description="OpenDRIVE file for the CARLA backend")

    @field_validator("curve_radius")
    @classmethod
    def _radius(cls, v: float) -> float:
        if abs(v) < 20:
            raise ValueError("must be at least 20 m in magnitude")
        return v


class MountSpec(Strict):
    """Sensor pose on the ego: metres, and degrees (pitch > 0 looks down)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def to_mount(self) -> Mount:
        r = math.radians
        return Mount(self.x, self.y, self.z, r(self.roll), r(self.pitch), r(self.yaw))


class CameraFields(Strict):
    """CARLA ``sensor.camera.rgb`` names where they exist."""

    width: int = Field(640, ge=16, le=8192, description="pixels (CARLA image_size_x)")
    height: int = Field(480, ge=16, le=8192, description="pixels (CARLA image_size_y)")
    fov: float = Field(90.0, gt=1, lt=179, description="horizontal, degrees")
    mount: MountSpec = MountSpec(x=1.5, z=1.5, pitch=2.0)
    exposure: float = Field(1.0, gt=0, description="factor on top of auto exposure")
    noise_stddev: float = Field(0.01, ge=0, le=0.5, description="sensor noise, [0, 1] units")
    motion_blur: float = Field(0.0, ge=0, le=0.2, description="shutter seconds")
    antialias: int = Field(1, ge=1, le=4, description="supersampling per axis")

    def to_spec(self) -> CameraSpec:
        return CameraSpec(
            self.width,
            self.height,
            math.radians(self.fov),
            self.mount.to_mount(),
            self.exposure,
            self.noise_stddev,
            self.motion_blur,
            self.antialias,
        )


# Real spinning LiDARs have 512-4096 columns a sweep; far more would only exhaust memory.
MAX_LIDAR_COLUMNS = 16_384


class LidarFields(Strict):
    """CARLA ``sensor.lidar.ray_cast`` names; angles in degrees."""

    channels: int = Field(32, ge=1, le=256, description="lasers")
    range: float = Field(100.0, gt=1, le=500, description="metres")
    points_per_second: int = Field(
        327_680,
        ge=100,
        le=20_000_000,
        description="columns = points_per_second / channels / frequency",
    )
    rotation_frequency: float = Field(10.0, gt=0, le=100, description="Hz")
    upper_fov: float = Field(10.0, ge=-90, le=90, description="degrees, top laser")
    lower_fov: float = Field(-30.0, ge=-90, le=90, description="degrees, bottom laser")
    horizontal_fov: float = Field(360.0, gt=0, le=360, description="degrees")
    noise_stddev: float = Field(0.02, ge=0, le=1, description="metres along each ray")
    dropoff_general_rate: float = Field(0.0, ge=0, le=1, description="share dropped at random")
    dropoff_intensity_limit: float = Field(
        0.8, ge=0, le=1, description="returns stronger than this are never dropped"
    )
    dropoff_zero_intensity: float = Field(
        0.4, ge=0, le=1, description="drop probability of a zero-intensity return"
    )
    atmosphere_attenuation_rate: float = Field(
        0.004, ge=0, description="intensity factor exp(-rate * distance)"
    )
    mount: MountSpec = MountSpec(z=1.9)

    @model_validator(mode="after")
    def _fov_order(self) -> LidarFields:
        if self.upper_fov < self.lower_fov:
            raise ValueError("upper_fov must be >= lower_fov")
        columns = self.points_per_second / self.channels / self.rotation_frequency
        if columns > MAX_LIDAR_COLUMNS:  # a sweep is channels x columns rays, cast every frame
            raise ValueError(
                f"points_per_second / channels / rotation_frequency is {columns:.0f} columns "
                f"per sweep; at most {MAX_LIDAR_COLUMNS}"
            )
        return self

    def to_spec(self) -> LidarSpec:
        r = math.radians
        return LidarSpec(
            self.channels,
            self.range,
            self.points_per_second,
            self.rotation_frequency,
            r(self.upper_fov),
            r(self.lower_fov),
            r(self.horizontal_fov),
            self.noise_stddev,
            self.dropoff_general_rate,
            self.dropoff_intensity_limit,
            self.dropoff_zero_intensity,
            self.atmosphere_attenuation_rate,
            mount=self.mount.to_mount(),
        )


class SensorsSpec(Strict):
    camera: CameraFields | None = CameraFields()
    lidar: LidarFields | None = LidarFields()


class EgoSpec(Strict):
    """The ego drives along ``lane`` from ``start`` (or straight from ``pose``) at ``speed``."""

    lane: int = Field(-1, description="OpenDRIVE lane: -1 is the first lane right of centre")
    start: float = Field(0.0, ge=0, description="s along the road at t = 0, metres")
    speed: float = Field(10.0, ge=0, le=60, description="m/s")
    lateral_offset: float = 0.0
    pose: PoseSpec | None = Field(None, description="world pose instead of lane and start")


class SignSpec(Strict):
    name: str = Field(description="unique name; targets and surfaces refer to it")
    type: Literal[SIGN_TYPES]  # type: ignore[valid-type]
    s: float = Field(ge=0)
    side: Literal["right", "left"] = "right"
    offset: float = Field(0.8, ge=-3, le=10, description="metres beyond the road edge")
    height: float = Field(2.0, ge=0.3, le=6, description="lower edge above ground, metres")
    yaw: float = Field(0.0, ge=-90, le=90, description="degrees, turns the face to the left")


class TriggerSpec(Strict):
    """When a behaviour starts: at ``time`` seconds, or once the ego is within ``ego_within``
    metres of the actor."""

    time: float | None = Field(None, ge=0, description="seconds after the start")
    ego_within: float | None = Field(None, gt=0, le=500, description="metres, centre to centre")

    @model_validator(mode="after")
    def _one(self) -> TriggerSpec:
        if (self.time is None) == (self.ego_within is None):
            raise ValueError("give exactly one of 'time' or 'ego_within'")
        return self


class BehaviourSpec(Strict):
    """A speed change at a trigger: a lead that brakes hard (``speed: 0, accel: 8``), a
    pedestrian who starts walking (``speed: 1.4``)."""

    trigger: TriggerSpec
    speed: float = Field(ge=0, le=60, description="m/s after the change")
    accel: float = Field(4.0, gt=0, le=15, description="m/s^2 towards that speed")

    def profile(self, v0: float):
        from avrobust.scenario.behaviour import SpeedProfile

        t = self.trigger
        return SpeedProfile(v0, self.speed, self.accel, t.time, t.ego_within)


class VehicleSpec(Strict):
    """A vehicle in a lane at ``s`` (or at a world ``pose``, driving straight ahead)."""

    name: str
    body: Literal[BODIES] = "sedan"  # type: ignore[valid-type]
    s: float | None = Field(None, ge=0)
    lane: int = Field(-1, description="-1, -2 drive towards +s; 1, 2 towards -s")
    lateral_offset: float = Field(0.0, description="metres left of the lane centre")
    speed: float = Field(0.0, ge=0, le=60, description="m/s along its lane")
    colour: int = Field(0, ge=0, description="index into the paint palette")
    parked: bool = Field(False, description="stand at the right kerb, half on the verge")
    pose: PoseSpec | None = Field(None, description="world pose instead of s and lane")
    behaviour: BehaviourSpec | None = Field(None, description="a speed change at a trigger")

    @model_validator(mode="after")
    def _placed(self) -> VehicleSpec:
        if (self.s is None) == (self.pose is None):
            raise ValueError("give either 's' (with 'lane') or 'pose'")
        return self


class PedestrianSpec(Strict):
    """A pedestrian at ``s``, ``lateral`` (or at a world ``pose``), walking straight ahead."""

    name: str
    s: float | None = Field(None, ge=0)
    lateral: float | None = Field(None, description="metres left of the centre line")
    heading: float = Field(90.0, description="degrees from the road direction; 90 crosses left")
    speed: float = Field(0.0, ge=0, le=10)
    height: float = Field(1.75, ge=0.8, le=2.2, description="metres")
    pose: PoseSpec | None = Field(None, description="world pose instead of s and lateral")
    behaviour: BehaviourSpec | None = Field(None, description="a speed change at a trigger")

    @model_validator(mode="after")
    def _placed(self) -> PedestrianSpec:
        if self.pose is None and (self.s is None or self.lateral is None):
            raise ValueError("give 's' and 'lateral', or 'pose'")
        return self


class SurfaceSpec(Strict):
    """An attack surface: on a sign's face or a vehicle's rear (``object`` names it), or a
    standalone billboard or road patch placed at ``s``, ``lateral``. (Not ``on``: YAML reads
    ``on`` as the boolean true.)"""

    name: str
    kind: Literal["sign_face", "vehicle_rear", "billboard", "road"] = Field(
        description="where the surface is"
    )
    object: str | None = Field(None, description="the sign or vehicle it lies on")
    size: tuple[float, float] | None = Field(None, description="width, height in metres")
    s: float | None = None
    lateral: float | None = None
    height: float = Field(0.8, ge=0, le=6, description="billboard: lower edge, metres")
    yaw: float = Field(0.0, description="degrees")

    @model_validator(mode="after")
    def _where(self) -> SurfaceSpec:
        if self.kind in ("sign_face", "vehicle_rear") and not self.object:
            raise ValueError(f"a {self.kind} surface needs 'object' (the sign's or vehicle's name)")
        if self.kind in ("billboard", "road") and (self.s is None or self.lateral is None):
            raise ValueError(f"a {self.kind} surface needs 's' and 'lateral'")
        if self.size is not None and min(self.size) <= 0:
            raise ValueError("size must be positive")
        return self


class WeatherSpec(Strict):
    """A CARLA preset, optionally with fields changed."""

    preset: str = Field("ClearNoon", description="a CARLA preset name, or Dusk, Fog, DenseFog")
    cloudiness: float | None = None
    precipitation: float | None = None
    precipitation_deposits: float | None = None
    wind_intensity: float | None = None
    sun_azimuth_angle: float | None = None
    sun_altitude_angle: float | None = None
    fog_density: float | None = None
    fog_distance: float | None = None
    wetness: float | None = None
    fog_falloff: float | None = None

    @field_validator("preset")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in WEATHER_PRESETS:
            raise ValueError(f"unknown preset {v!r}; known: {', '.join(WEATHER_PRESETS)}")
        return v

    def to_weather(self) -> Weather:
        changes = {k: v for k, v in self.model_dump(exclude={"preset"}).items() if v is not None}
        try:
            return WEATHER_PRESETS[self.preset].replace(**changes)
        except ValueError as exc:
            raise ValueError(str(exc)) from None


class EncounterSpec(Strict):
    """When a drive-by counts as failed: the model never gets the target right in ``min_frames``
    consecutive frames while its distance is within ``[near, far]`` metres."""

    far: float = Field(40.0, gt=0, description="metres: the window opens")
    near: float = Field(5.0, ge=0, description="metres: the window closes")
    min_frames: int = Field(3, ge=1, description="consecutive correct frames that recognise it")


class TargetSpec(Strict):
    """An object the evaluation watches (an attack's target)."""

    object: str = Field(description="a sign, vehicle or pedestrian of the scenario")
    expect: str | None = Field(None, description="the class a model should report, e.g. stop")
    encounter: EncounterSpec = EncounterSpec()


class EpisodeFields(Strict):
    """How long an episode runs and how often it samples."""

    frames: int = Field(20, ge=1, le=100_000)
    rate: float = Field(10.0, gt=0, le=100, description="frames per second")
    start_time: float = Field(0.0, ge=0)


class DrivingFields(Strict):
    """The closed-loop drive (``avrobust drive``): goal, time limit and cruise speed."""

    goal: float | None = Field(
        None,
        gt=0,
        le=5000,
        description="metres along the route (default: what the scripted ego covers in the episode)",
    )
    time_limit: float | None = Field(
        None, gt=0, le=3600, description="seconds (default: twice the episode plus 10 s)"
    )
    cruise_speed: float | None = Field(
        None,
        gt=0,
        le=60,
        description="m/s the policy drives at on a free road (default: ego.speed)",
    )


class Scenario(Strict):
    """One scenario file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="letters, digits, _ . -")
    description: str = Field("", description="what the scenario tests, for people")
    map: MapSpec = MapSpec()
    ego: EgoSpec = EgoSpec()
    sensors: SensorsSpec = SensorsSpec()
    signs: list[SignSpec] = Field(default_factory=list)
    vehicles: list[VehicleSpec] = Field(default_factory=list)
    pedestrians: list[PedestrianSpec] = Field(default_factory=list)
    surfaces: list[SurfaceSpec] = Field(default_factory=list)
    weather: WeatherSpec = WeatherSpec()
    episode: EpisodeFields = EpisodeFields()
    driving: DrivingFields = DrivingFields()
    targets: list[TargetSpec] = Field(default_factory=list)
    seed: int = Field(0, description="seed of the procedural world (layout, textures)")

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        names = [o.name for o in (*self.signs, *self.vehicles, *self.pedestrians)]
        names += [s.name for s in self.surfaces]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"names must be unique; repeated: {', '.join(dup)}")
        signs = {s.name for s in self.signs}
        vehicles = {v.name for v in self.vehicles}
        objects = signs | vehicles | {p.name for p in self.pedestrians}
        for i, s in enumerate(self.surfaces):
            if s.kind == "sign_face" and s.object not in signs:
                raise ValueError(f"surfaces[{i}].object: no sign named {s.object!r}")
            if s.kind == "vehicle_rear" and s.object not in vehicles:
                raise ValueError(f"surfaces[{i}].object: no vehicle named {s.object!r}")
        for i, t in enumerate(self.targets):
            if t.object not in objects:
                raise ValueError(
                    f"targets[{i}].object: no sign, vehicle or pedestrian named {t.object!r}"
                )
        for i, v in enumerate(self.vehicles):
            if abs(v.lane) > self.map.lanes_per_direction or v.lane == 0:
                n = self.map.lanes_per_direction
                raise ValueError(f"vehicles[{i}].lane must be in +-1..{n}")
        if self.ego.lane == 0 or abs(self.ego.lane) > self.map.lanes_per_direction:
            raise ValueError(f"ego.lane must be in +-1..{self.map.lanes_per_direction}")
        return self
