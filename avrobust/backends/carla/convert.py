"""Between avrobust's values and the carla client's: transforms, weather, sensor blueprint
attributes, camera images and LiDAR sweeps. Every handedness flip goes through
``core.conventions.from_carla`` / ``to_carla`` / ``carla_points_to_ours``; nothing here needs a
server (the carla value types work offline).

CARLA is left-handed (x forward, y right, z up; degrees, yaw turning right); avrobust is
right-handed (x forward, y left, z up; radians). ``T_world_x`` matrices are ours.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from avrobust.core import make_pose
from avrobust.core.conventions import carla_points_to_ours, from_carla, to_carla
from avrobust.core.sensors import CameraSpec, LidarSpec, Mount
from avrobust.core.weather import Weather


def _carla():
    from avrobust.core.errors import DependencyError

    try:
        import carla
    except ImportError:
        raise DependencyError(
            "the CARLA backend needs the carla client: pip install 'avrobust[carla]'"
        ) from None
    return carla


def rpy_of(rotation: np.ndarray) -> tuple[float, float, float]:
    """Roll, pitch, yaw (radians, ZYX as ``make_pose``) of a 3x3 rotation."""
    r = np.asarray(rotation, dtype=np.float64)
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    roll = math.atan2(r[2, 1], r[2, 2])
    yaw = math.atan2(r[1, 0], r[0, 0])
    return roll, pitch, yaw


def pose_to_transform(pose: np.ndarray | torch.Tensor):
    """Our ``[4, 4]`` pose as a ``carla.Transform``."""
    carla = _carla()
    m = np.asarray(pose, dtype=np.float64)
    (x, y, z), (roll, pitch, yaw) = to_carla(*m[:3, 3], *rpy_of(m[:3, :3]))
    return carla.Transform(
        carla.Location(x=x, y=y, z=z), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll)
    )


def transform_to_pose(transform) -> torch.Tensor:
    """A ``carla.Transform`` (or anything with ``location`` and ``rotation``) as our pose."""
    loc, rot = transform.location, transform.rotation
    (x, y, z), (roll, pitch, yaw) = from_carla(loc.x, loc.y, loc.z, rot.roll, rot.pitch, rot.yaw)
    return make_pose((x, y, z), roll, pitch, yaw)


def mount_transform(mount: Mount):
    """Where a sensor sits on the ego, as the transform ``spawn_actor(..., attach_to=ego)``
    takes."""
    return pose_to_transform(mount.pose())


def weather_parameters(w: Weather):
    """``carla.WeatherParameters`` with every field of ours. Sun azimuth is measured towards +y
    in both, and y is mirrored, so it changes sign: the sun stands on the same side of the road."""
    carla = _carla()
    p = carla.WeatherParameters()
    for name, value in w.to_dict().items():
        setattr(p, name, float(value))
    p.sun_azimuth_angle = float((-w.sun_azimuth_angle) % 360.0)
    return p


def camera_attributes(spec: CameraSpec, rate: float) -> dict[str, str]:
    """``sensor.camera.rgb`` blueprint attributes (strings, as ``set_attribute`` takes them)."""
    attrs = {
        "image_size_x": str(spec.width),
        "image_size_y": str(spec.height),
        "fov": f"{math.degrees(spec.hfov):.6g}",
        "sensor_tick": f"{1.0 / rate:.6g}",
        # Our exposure is a factor on top of auto exposure; CARLA's compensation is in stops.
        "exposure_compensation": f"{math.log2(spec.exposure):.6g}",
        "motion_blur_intensity": "0" if spec.motion_blur == 0 else "0.45",
    }
    return attrs


def instance_camera_attributes(spec: CameraSpec, rate: float) -> dict[str, str]:
    """``sensor.camera.instance_segmentation`` matching the RGB camera pixel for pixel."""
    return {
        "image_size_x": str(spec.width),
        "image_size_y": str(spec.height),
        "fov": f"{math.degrees(spec.hfov):.6g}",
        "sensor_tick": f"{1.0 / rate:.6g}",
    }


def lidar_attributes(spec: LidarSpec, rate: float) -> dict[str, str]:
    """``sensor.lidar.ray_cast`` attributes. The rotation frequency is the frame rate so that each
    tick delivers one whole sweep (CARLA returns the part of a sweep done since the last tick)."""
    if abs(spec.rotation_frequency - rate) > 1e-6:
        pps = spec.points_per_second * rate / spec.rotation_frequency  # same columns per sweep
    else:
        pps = spec.points_per_second
    return {
        "channels": str(spec.channels),
        "range": f"{spec.range:.6g}",
        "points_per_second": str(round(pps)),
        "rotation_frequency": f"{rate:.6g}",
        "upper_fov": f"{math.degrees(spec.upper_fov):.6g}",
        "lower_fov": f"{math.degrees(spec.lower_fov):.6g}",
        "horizontal_fov": f"{math.degrees(spec.horizontal_fov):.6g}",
        "noise_stddev": f"{spec.noise_stddev:.6g}",
        "dropoff_general_rate": f"{spec.dropoff_general_rate:.6g}",
        "dropoff_intensity_limit": f"{spec.dropoff_intensity_limit:.6g}",
        "dropoff_zero_intensity": f"{spec.dropoff_zero_intensity:.6g}",
        "atmosphere_attenuation_rate": f"{spec.atmosphere_attenuation_rate:.6g}",
        "sensor_tick": f"{1.0 / rate:.6g}",
    }


def bgra_to_image(raw: bytes | np.ndarray, width: int, height: int) -> torch.Tensor:
    """A CARLA camera's raw BGRA bytes as our ``[3, H, W]`` float RGB in [0, 1]."""
    a = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes | bytearray) else raw
    a = np.asarray(a, dtype=np.uint8).reshape(height, width, 4)
    rgb = np.ascontiguousarray(a[:, :, 2::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def instance_ids(raw: bytes | np.ndarray, width: int, height: int) -> torch.Tensor:
    """CARLA's instance segmentation image (tag in R, actor id in G + 256 B) as ``[H, W]``
    int64 ids (0 where the pixel shows no actor)."""
    a = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes | bytearray) else raw
    a = np.asarray(a, dtype=np.uint8).reshape(height, width, 4).astype(np.int64)
    return torch.from_numpy(a[:, :, 1] + 256 * a[:, :, 0])  # BGRA: G is 1, B is 0


def lidar_to_points(raw: bytes | np.ndarray) -> torch.Tensor:
    """A CARLA LiDAR measurement's raw float32 ``(x, y, z, intensity)`` in the sensor's
    left-handed frame as our ``[N, 4]`` points in the LiDAR frame."""
    a = np.frombuffer(raw, dtype=np.float32) if isinstance(raw, bytes | bytearray) else raw
    pts = torch.from_numpy(np.array(a, dtype=np.float32).reshape(-1, 4))
    return carla_points_to_ours(pts)
