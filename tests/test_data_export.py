"""Files users take to other tools: KITTI trees, PLY/PCD point clouds, PNG pictures."""

import math

import pytest
import torch

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.core.errors import DataError
from avrobust.core.images import load_png
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.data import kitti
from avrobust.data.pointclouds import read_points, write_points


@pytest.fixture(scope="module")
def frame():
    with EmbeddedBackend() as b:
        b.start(
            EpisodeSpec(
                "urban_stop",
                CameraSpec(320, 180, math.radians(90)),
                LidarSpec(channels=16, points_per_second=16 * 512 * 10),
                start_time=3.0,
            )
        )
        return next(iter(b.frames()))


def test_kitti_round_trip(tmp_path, frame):
    name = kitti.write_frame(tmp_path, frame)
    image = load_png(tmp_path / "image_2" / f"{name}.png")
    assert image.shape == frame.image.shape
    assert (image - frame.image).abs().max() <= 1 / 255 + 1e-6
    pts = kitti.read_points(tmp_path / "velodyne" / f"{name}.bin")
    assert torch.equal(pts, frame.points)
    calib = kitti.read_calib(tmp_path / "calib" / f"{name}.txt", 320, 180)
    assert torch.allclose(calib.lidar_to_camera, frame.calibration.lidar_to_camera, atol=1e-9)
    labels = kitti.read_labels(tmp_path / "label_2" / f"{name}.txt")
    visible = [i for i in range(len(frame.truth)) if frame.truth.boxes_2d.xyxy[i, 2] > 0]
    assert len(labels) == len(visible) > 0
    boxes = kitti.labels_to_boxes(labels, calib)
    truth = frame.truth.boxes_3d[visible]
    assert torch.allclose(boxes.center.float(), truth.center, atol=0.02)
    assert torch.allclose(boxes.size.float(), truth.size, atol=0.01)
    dyaw = torch.remainder(boxes.yaw.float() - truth.yaw + math.pi, 2 * math.pi) - math.pi
    assert dyaw.abs().max() < 0.02


def test_kitti_reader_errors(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match="multiple of 16"):
        kitti.read_points(bad)
    label = tmp_path / "l.txt"
    label.write_text("Car 0 0\n")
    with pytest.raises(DataError, match=r"l\.txt:1: expected 15 or 16 fields"):
        kitti.read_labels(label)
    calib = tmp_path / "c.txt"
    calib.write_text("P2: 1 2 3\n")
    with pytest.raises(DataError, match="P2"):
        kitti.read_calib(calib, 10, 10)


@pytest.mark.parametrize("suffix", [".ply", ".pcd"])
def test_point_cloud_files_round_trip(tmp_path, frame, suffix):
    path = write_points(tmp_path / f"cloud{suffix}", frame.points)
    back = read_points(path)
    assert torch.allclose(back, frame.points, atol=1e-5)


def test_point_cloud_format_error(tmp_path, frame):
    with pytest.raises(DataError, match="unsupported point-cloud format"):
        write_points(tmp_path / "cloud.xyz", frame.points)
