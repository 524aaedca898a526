"""Shared fixtures. Tests build their own small data; none downloads or trains shipped models."""

from __future__ import annotations

import math

import avrobust.runtime

# The settings every avrobust process the command line starts runs under (OpenMP threads that
# stop spinning sooner, the allocator that keeps its memory): before torch is imported, so that
# two test workers sharing two cores do not spin against each other.
avrobust.runtime.apply()

import pytest  # noqa: E402
import torch  # noqa: E402

from avrobust.core import Calibration, CameraIntrinsics, make_pose  # noqa: E402


@pytest.fixture
def calib_simple() -> Calibration:
    """640x480, 90 degree camera at the LiDAR's origin, both axes aligned with the ego."""
    return Calibration(CameraIntrinsics.from_fov(640, 480, math.radians(90)))


@pytest.fixture
def calib_mounted() -> Calibration:
    """A camera on the windscreen pitched down 5 degrees and a roof LiDAR, as on a real car."""
    return Calibration(
        CameraIntrinsics.from_fov(800, 600, math.radians(70)),
        camera_pose=make_pose((1.6, 0.1, 1.5), roll=0.01, pitch=math.radians(5), yaw=0.02),
        lidar_pose=make_pose((0.0, 0.0, 1.9), yaw=math.radians(1.0)),
    )


@pytest.fixture
def gen() -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(1234)
    return g


@pytest.fixture(scope="session")
def tiny_lidar_set(tmp_path_factory):
    """Eight small camera-and-LiDAR training frames (the adversarial training tests)."""
    from avrobust.data.dataset import DatasetConfig, build_dataset

    out = tmp_path_factory.mktemp("tiny_lidar_set")
    build_dataset(
        DatasetConfig(frames=8, seed=31, width=320, height=240, fov=60.0, lidar=True), out
    )
    return out


@pytest.fixture
def lively_detector():
    """An untrained camera detector whose activations do not fade with depth (He
    initialisation), so that its scores respond to a texture (the attack tests)."""
    from avrobust.models.camera_detector import CameraDetector

    torch.manual_seed(0)
    detector = CameraDetector().eval()
    for m in detector.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.nn.init.constant_(detector.heatmap.bias, 0.0)
    return detector
