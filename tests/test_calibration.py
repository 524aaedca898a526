import math

import pytest
import torch

from avrobust.core import Calibration, CameraIntrinsics, ConfigError, make_pose
from avrobust.core.conventions import invert_pose, transform_points


def test_intrinsics_from_fov_matches_carla_definition():
    k = CameraIntrinsics.from_fov(1920, 1080, math.radians(90))
    assert k.fx == pytest.approx(960.0)
    assert (k.cx, k.cy) == (960.0, 540.0)
    assert k.hfov == pytest.approx(math.radians(90))


def test_bad_intrinsics_raise_config_error():
    with pytest.raises(ConfigError, match="field of view"):
        CameraIntrinsics.from_fov(640, 480, math.radians(180))
    with pytest.raises(ConfigError, match="image size"):
        CameraIntrinsics(0, 480, 100, 100, 0, 0)


def test_point_ahead_projects_to_principal_point(calib_simple):
    uv, depth = calib_simple.project(
        calib_simple.lidar_points_to_camera(torch.tensor([[10.0, 0, 0]]))
    )
    assert uv[0].tolist() == pytest.approx([320.0, 240.0])
    assert depth.item() == pytest.approx(10.0)


def test_left_and_up_go_to_smaller_pixel_coordinates(calib_simple):
    # y is left and z up in the LiDAR frame; u grows to the right and v downwards.
    pts = torch.tensor([[10.0, 1.0, 0.0], [10.0, 0.0, 1.0]])
    uv, _ = calib_simple.project(calib_simple.lidar_points_to_camera(pts))
    assert uv[0, 0] == pytest.approx(320 - 32.0)  # fx = 320, 1 m at 10 m
    assert uv[1, 1] == pytest.approx(240 - 32.0)


def test_project_unproject_round_trip(calib_mounted, gen):
    pts = torch.rand(200, 3, generator=gen, dtype=torch.float64) * torch.tensor([40.0, 20, 4])
    pts = pts + torch.tensor([5.0, -10, -1.5])
    cam = calib_mounted.lidar_points_to_camera(pts)
    uv, depth = calib_mounted.project(cam)
    back = calib_mounted.camera_points_to_lidar(calib_mounted.unproject(uv, depth))
    assert torch.allclose(back, pts, atol=1e-5)


def test_lidar_camera_transform_round_trip(calib_mounted, gen):
    pts = torch.randn(100, 3, generator=gen, dtype=torch.float64) * 10
    there = transform_points(calib_mounted.lidar_to_camera, pts)
    back = transform_points(calib_mounted.camera_to_lidar, there)
    assert torch.allclose(back, pts, atol=1e-9)
    assert torch.allclose(
        calib_mounted.lidar_to_camera @ calib_mounted.camera_to_lidar,
        torch.eye(4, dtype=torch.float64),
        atol=1e-12,
    )


def test_lidar_to_camera_accounts_for_both_mounts():
    # Camera 2 m ahead of and 0.5 m below the LiDAR: a LiDAR point 12 m ahead at LiDAR height is
    # 10 m in front of the camera and 0.5 m above it, so it lands above the image centre.
    calib = Calibration(
        CameraIntrinsics.from_fov(640, 480, math.radians(90)),
        camera_pose=make_pose((2.0, 0.0, 1.3)),
        lidar_pose=make_pose((0.0, 0.0, 1.8)),
    )
    uv, depth = calib.project(calib.lidar_points_to_camera(torch.tensor([[12.0, 0.0, 0.0]])))
    assert depth.item() == pytest.approx(10.0)
    assert uv[0].tolist() == pytest.approx([320.0, 240.0 - 320 * 0.5 / 10])


def test_pitched_camera_sees_ground_point_at_centre():
    # A camera 1.5 m high pitched down by atan(1.5/10) looks at the ground 10 m ahead.
    pitch = math.atan2(1.5, 10.0)
    calib = Calibration(
        CameraIntrinsics.from_fov(640, 480, math.radians(90)),
        camera_pose=make_pose((0.0, 0.0, 1.5), pitch=pitch),
    )
    uv, _ = calib.project(calib.lidar_points_to_camera(torch.tensor([[10.0, 0.0, 0.0]])))
    assert uv[0].tolist() == pytest.approx([320.0, 240.0], abs=1e-6)


def test_pixel_rays_pass_through_their_pixels(calib_mounted):
    rays = calib_mounted.pixel_rays().double()  # body frame
    k = calib_mounted.intrinsics
    for j, i in [(0, 0), (k.height - 1, k.width - 1), (123, 456)]:
        body_pt = rays[j, i] * 7.0
        optical = torch.tensor([-body_pt[1], -body_pt[2], body_pt[0]], dtype=torch.float64)
        uv, _ = calib_mounted.project(optical)
        assert uv.tolist() == pytest.approx([i + 0.5, j + 0.5], abs=1e-3)


def test_project_lidar_visibility(calib_simple):
    pts = torch.tensor([[10.0, 0, 0, 0.5], [-10.0, 0, 0, 0.5], [10.0, 50.0, 0, 0.5]])
    _, _, visible = calib_simple.project_lidar(pts)
    assert visible.tolist() == [True, False, False]


def test_projection_is_differentiable(calib_simple):
    pts = torch.tensor([[10.0, 1.0, 0.5]], requires_grad=True)
    uv, _ = calib_simple.project(calib_simple.lidar_points_to_camera(pts))
    uv.sum().backward()
    assert pts.grad is not None and pts.grad.abs().sum() > 0


def test_invert_pose():
    pose = make_pose((1.0, -2.0, 3.0), 0.1, -0.2, 0.3)
    assert torch.allclose(invert_pose(pose) @ pose, torch.eye(4, dtype=torch.float64), atol=1e-12)


def test_bad_pose_shape():
    with pytest.raises(ConfigError, match="4x4"):
        Calibration(CameraIntrinsics.from_fov(10, 10, 1.0), camera_pose=torch.eye(3))
