"""Files users take to other tools: KITTI trees, PLY/PCD point clouds, PNG pictures."""

import math

import numpy as np
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
    label.write_text("Car 0 0 0 1 2 3 4 1.5 1.6 nan 1 2 10 0\n")
    with pytest.raises(DataError, match=r"l\.txt:1: dimensions\.length: not a finite number"):
        kitti.read_labels(label)
    calib.write_text(KITTI_CALIB.replace("4.575831e+01", "inf"))
    with pytest.raises(DataError, match=r"c\.txt:3: P2: not a finite number"):
        kitti.read_calib(calib, 10, 10)


@pytest.mark.parametrize("suffix", [".ply", ".pcd"])
def test_point_cloud_files_round_trip(tmp_path, frame, suffix):
    path = write_points(tmp_path / f"cloud{suffix}", frame.points)
    back = read_points(path)
    assert torch.allclose(back, frame.points, atol=1e-5)


def test_point_cloud_format_error(tmp_path, frame):
    with pytest.raises(DataError, match="unsupported point-cloud format"):
        write_points(tmp_path / "cloud.xyz", frame.points)


# KITTI object training sample 000000's calibration (the devkit's layout and values): P2 has a
# fourth column (camera 2 is 6 cm from the reference camera) and R0_rect is not the identity.
KITTI_CALIB = """P0: 7.070493e+02 0.000000e+00 6.040814e+02 0.000000e+00 0.000000e+00 7.070493e+02 1.805066e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
P1: 7.070493e+02 0.000000e+00 6.040814e+02 -3.797842e+02 0.000000e+00 7.070493e+02 1.805066e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
P2: 7.070493e+02 0.000000e+00 6.040814e+02 4.575831e+01 0.000000e+00 7.070493e+02 1.805066e+02 -3.454157e-01 0.000000e+00 0.000000e+00 1.000000e+00 4.981016e-03
P3: 7.070493e+02 0.000000e+00 6.040814e+02 -3.341081e+02 0.000000e+00 7.070493e+02 1.805066e+02 2.330660e+00 0.000000e+00 0.000000e+00 1.000000e+00 3.201153e-03
R0_rect: 9.999128e-01 1.009263e-02 -8.511932e-03 -1.012729e-02 9.999406e-01 -4.037671e-03 8.470675e-03 4.123522e-03 9.999556e-01
Tr_velo_to_cam: 6.927964e-03 -9.999722e-01 -2.757829e-03 -2.457729e-02 -1.162982e-03 2.749836e-03 -9.999955e-01 -6.127237e-02 9.999753e-01 6.931141e-03 -1.143899e-03 -3.321029e-01
Tr_imu_to_velo: 9.999976e-01 7.553071e-04 -2.035826e-03 -8.086759e-01 -7.854027e-04 9.998898e-01 -1.482298e-02 3.195559e-01 2.024406e-03 1.482454e-02 9.998881e-01 -7.997231e-01
"""  # noqa: E501


def test_kitti_projection_equals_the_devkit_one(tmp_path):
    """x = P2 @ R0_rect @ Tr_velo_to_cam @ X, to 0.01 px, for points 5-70 m ahead."""
    path = tmp_path / "000000.txt"
    path.write_text(KITTI_CALIB)
    calib = kitti.read_calib(path, 1242, 375)
    rows = {
        k: np.array([float(v) for v in line.split()])
        for k, _, line in (ln.partition(":") for ln in KITTI_CALIB.splitlines())
    }
    p2 = rows["P2"].reshape(3, 4)
    r0 = np.eye(4)
    r0[:3, :3] = rows["R0_rect"].reshape(3, 3)
    tr = np.vstack([rows["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]])
    g = torch.Generator().manual_seed(0)
    pts = torch.stack(
        [
            torch.rand(200, generator=g, dtype=torch.float64) * 65 + 5,
            (torch.rand(200, generator=g, dtype=torch.float64) - 0.5) * 20,
            (torch.rand(200, generator=g, dtype=torch.float64) - 0.5) * 4,
        ],
        1,
    )
    homo = np.hstack([pts.numpy(), np.ones((len(pts), 1))])
    x = (p2 @ r0 @ tr @ homo.T).T
    want = x[:, :2] / x[:, 2:3]
    uv, depth = calib.project(calib.lidar_points_to_camera(pts))
    assert np.abs(uv.numpy() - want).max() < 0.01
    assert np.allclose(depth.numpy(), x[:, 2], atol=1e-6)


def test_a_kitti_tree_without_avrobust_metadata_takes_the_camera_size_from_its_images(
    tmp_path, frame
):
    from avrobust.models.lidar_data import load_lidar_set

    kitti.write_frame(tmp_path, frame)  # no dataset.json: a tree as KITTI ships it
    (sample,) = load_lidar_set(tmp_path)
    k = sample.calibration.intrinsics
    assert (k.width, k.height) == (frame.image.shape[2], frame.image.shape[1])
    (tmp_path / "dataset.json").write_text('{"width": "wide"}')
    with pytest.raises(DataError, match=r"dataset\.json: width"):
        load_lidar_set(tmp_path)
