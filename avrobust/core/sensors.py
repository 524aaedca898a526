"""Sensor specifications, with the parameter names of CARLA's ``sensor.camera.rgb`` and
``sensor.lidar.ray_cast`` so that one scenario drives both backends.

Inside, angles are radians; :meth:`to_carla_attributes` writes CARLA's degrees and strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from avrobust.core.calibration import CameraIntrinsics
from avrobust.core.conventions import make_pose


@dataclass(frozen=True)
class Mount:
    """Where a sensor sits on the ego: metres and radians in the ego frame (x fwd, y left, z up)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def pose(self) -> torch.Tensor:
        """``[4, 4]`` ego-from-sensor pose (float64)."""
        return make_pose((self.x, self.y, self.z), self.roll, self.pitch, self.yaw)


@dataclass(frozen=True)
class CameraSpec:
    """An RGB camera.

    Attributes:
        width, height: pixels. hfov: horizontal field of view, radians (CARLA ``fov``).
        mount: pose on the ego.
        exposure: multiplier on top of auto exposure (CARLA ``exposure_compensation`` in stops is
            ``log2`` of it).
        noise_stddev: standard deviation of the sensor noise at mid grey, in [0, 1] units.
        motion_blur: shutter time in seconds over which ego motion smears the image; 0 disables
            (CARLA ``motion_blur_intensity`` has no physical unit; see docs).
        antialias: render at this many times the resolution per axis and average down.
    """

    width: int = 640
    height: int = 480
    hfov: float = math.radians(90.0)
    mount: Mount = field(default_factory=lambda: Mount(1.5, 0.0, 1.5, 0.0, math.radians(2.0), 0.0))
    exposure: float = 1.0
    noise_stddev: float = 0.01
    motion_blur: float = 0.0
    antialias: int = 1

    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_fov(self.width, self.height, self.hfov)

    def to_carla_attributes(self) -> dict[str, str]:
        return {
            "image_size_x": str(self.width),
            "image_size_y": str(self.height),
            "fov": f"{math.degrees(self.hfov):g}",
            "exposure_compensation": f"{math.log2(max(self.exposure, 1e-6)):g}",
            "motion_blur_intensity": "0" if self.motion_blur == 0 else "0.45",
        }


@dataclass(frozen=True)
class LidarSpec:
    """A rotating multi-beam LiDAR, as CARLA's ``sensor.lidar.ray_cast``.

    Attributes:
        channels: lasers, spread evenly from ``upper_fov`` down to ``lower_fov`` (radians).
        range: metres. points_per_second and rotation_frequency (Hz) set the columns per sweep:
            ``points_per_second / channels / rotation_frequency``.
        horizontal_fov: radians, centred on the sensor's x axis.
        noise_stddev: metres of Gaussian noise along each ray.
        dropoff_general_rate: share of points dropped at random.
        dropoff_intensity_limit: points with intensity above it are never dropped.
        dropoff_zero_intensity: probability of dropping a point of zero intensity.
        atmosphere_attenuation_rate: CARLA's intensity ``exp(-rate * distance)`` in clear air.
        min_intensity: returns weaker than this are lost (fog and long range drop points).
        mount: pose on the ego.
    """

    channels: int = 32
    range: float = 100.0
    points_per_second: int = 327_680
    rotation_frequency: float = 10.0
    upper_fov: float = math.radians(10.0)
    lower_fov: float = math.radians(-30.0)
    horizontal_fov: float = math.radians(360.0)
    noise_stddev: float = 0.02
    dropoff_general_rate: float = 0.0
    dropoff_intensity_limit: float = 0.8
    dropoff_zero_intensity: float = 0.4
    atmosphere_attenuation_rate: float = 0.004
    min_intensity: float = 0.02
    mount: Mount = field(default_factory=lambda: Mount(0.0, 0.0, 1.9))

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError("lidar.channels must be >= 1")
        if self.upper_fov < self.lower_fov:
            raise ValueError("lidar.upper_fov must be >= lidar.lower_fov")
        if self.columns < 1:
            raise ValueError("lidar.points_per_second is too small for its channels and frequency")

    @property
    def columns(self) -> int:
        """Horizontal samples per sweep."""
        return round(self.points_per_second / self.channels / self.rotation_frequency)

    def elevations(self) -> torch.Tensor:
        """``[channels]`` elevation of each laser, top first (ring 0), radians."""
        if self.channels == 1:
            return torch.tensor([self.upper_fov])
        return torch.linspace(self.upper_fov, self.lower_fov, self.channels)

    def azimuths(self) -> torch.Tensor:
        """``[columns]`` azimuth of each column, radians, counter-clockwise from x."""
        n = self.columns
        if self.horizontal_fov >= 2 * math.pi - 1e-9:
            return torch.arange(n) * (2 * math.pi / n) - math.pi
        return torch.linspace(-self.horizontal_fov / 2, self.horizontal_fov / 2, n)

    def ray_directions(self) -> torch.Tensor:
        """``[channels * columns, 3]`` unit directions in the sensor frame, ring-major."""
        el = self.elevations()[:, None]
        az = self.azimuths()[None, :]
        d = torch.stack(
            [
                torch.cos(el) * torch.cos(az),
                torch.cos(el) * torch.sin(az),
                torch.sin(el).expand(-1, az.shape[1]),
            ],
            dim=-1,
        )
        return d.reshape(-1, 3)

    def to_carla_attributes(self) -> dict[str, str]:
        return {
            "channels": str(self.channels),
            "range": f"{self.range:g}",
            "points_per_second": str(self.points_per_second),
            "rotation_frequency": f"{self.rotation_frequency:g}",
            "upper_fov": f"{math.degrees(self.upper_fov):g}",
            "lower_fov": f"{math.degrees(self.lower_fov):g}",
            "horizontal_fov": f"{math.degrees(self.horizontal_fov):g}",
            "noise_stddev": f"{self.noise_stddev:g}",
            "dropoff_general_rate": f"{self.dropoff_general_rate:g}",
            "dropoff_intensity_limit": f"{self.dropoff_intensity_limit:g}",
            "dropoff_zero_intensity": f"{self.dropoff_zero_intensity:g}",
            "atmosphere_attenuation_rate": f"{self.atmosphere_attenuation_rate:g}",
        }


def clear_air_intensity(
    reflectivity: torch.Tensor | float,
    cos_incidence: torch.Tensor,
    r: torch.Tensor,
    spec: LidarSpec,
) -> torch.Tensor:
    """A return's intensity in clear air: the surface's reflectivity, a Lambert-like
    incidence term and CARLA's attenuation ``exp(-rate * range)`` (fog multiplies its own)."""
    return (
        reflectivity
        * (0.3 + 0.7 * cos_incidence)
        * torch.exp(-spec.atmosphere_attenuation_rate * r)
    )
