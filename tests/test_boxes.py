import math

import pytest
import torch

from avrobust.core import Box2D, Box3D, Calibration, CameraIntrinsics, make_pose


def test_corners_axis_aligned():
    box = Box3D(
        torch.tensor([[10.0, 2.0, 1.0]]), torch.tensor([[4.0, 2.0, 1.5]]), torch.tensor([0.0])
    )
    c = box.corners()[0]
    assert c.shape == (8, 3)
    assert c[0].tolist() == pytest.approx([12.0, 3.0, 0.25])  # front-left bottom
    assert c[6].tolist() == pytest.approx([8.0, 1.0, 1.75])  # rear-right top
    assert c[:, 0].min() == pytest.approx(8.0) and c[:, 0].max() == pytest.approx(12.0)


def test_corners_rotated_90_degrees_swap_length_and_width():
    box = Box3D(torch.zeros(1, 3), torch.tensor([[4.0, 2.0, 1.0]]), torch.tensor([math.pi / 2]))
    c = box.corners()[0]
    assert c[:, 0].abs().max() == pytest.approx(1.0, abs=1e-6)
    assert c[:, 1].abs().max() == pytest.approx(2.0, abs=1e-6)
    # The front-left corner (+l/2, +w/2) turns to (-w/2, +l/2).
    assert c[0, :2].tolist() == pytest.approx([-1.0, 2.0], abs=1e-6)


def test_box_in_front_of_camera_projects_to_hand_computed_pixels(calib_simple):
    # fx = 320, centre (320, 240). The near face is at x = 9 m, half extent 1 m.
    box = Box3D(torch.tensor([[10.0, 0.0, 0.0]]), torch.tensor([[2.0, 2.0, 2.0]]), torch.zeros(1))
    b2, valid = box.project(calib_simple)
    d = 320.0 / 9.0
    assert valid.tolist() == [True]
    assert b2.xyxy[0].tolist() == pytest.approx([320 - d, 240 - d, 320 + d, 240 + d], abs=1e-3)


def test_offset_box_projects_to_the_pixel():
    calib = Calibration(
        CameraIntrinsics.from_fov(1280, 720, math.radians(90)),
        camera_pose=make_pose((1.0, 0.0, 1.5)),
        lidar_pose=make_pose((0.0, 0.0, 1.8)),
    )
    # A car-sized box 20 m ahead of the LiDAR, 3 m to the left, resting on the road (z = -1.8).
    box = Box3D(
        torch.tensor([[20.0, 3.0, -1.8 + 0.75]]), torch.tensor([[4.5, 1.8, 1.5]]), torch.zeros(1)
    )
    b2, _ = box.project(calib)
    # By hand, in the camera body frame (camera at ego (1, 0, 1.5), LiDAR at ego z 1.8): the
    # box spans x 16.75..21.25, y 2.1..3.9, z -1.5 (road)..0 (roof, at camera height).
    # u = 640 - 640 * y / x and v = 360 - 640 * z / x, extremes at the near or far face.
    near, far = 16.75, 21.25
    u1 = 640 - 640 * 3.9 / near
    u2 = 640 - 640 * 2.1 / far
    v1 = 360.0
    v2 = 360 + 640 * 1.5 / near
    assert b2.xyxy[0].tolist() == pytest.approx([u1, v1, u2, v2], abs=0.5)


def test_box_behind_camera_is_invalid(calib_simple):
    box = Box3D(torch.tensor([[-10.0, 0.0, 0.0]]), torch.ones(1, 3), torch.zeros(1))
    b2, valid = box.project(calib_simple)
    assert valid.tolist() == [False]
    assert b2.xyxy.abs().sum() == 0


def test_box_straddling_the_camera_is_clipped_at_the_near_plane(calib_simple):
    # A long box from x = -5 to x = 5 at y = 2 (left): clipping at depth 0.1 keeps it finite and
    # its right edge is where the near face at x = 5 puts it... the left edge runs off-image.
    box = Box3D(torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([[10.0, 1.0, 1.0]]), torch.zeros(1))
    b2, valid = box.project(calib_simple, near=0.1)
    assert valid.item()
    xyxy = b2.xyxy[0]
    assert torch.isfinite(xyxy).all()
    assert xyxy[2].item() == pytest.approx(320 - 320 * 1.5 / 5.0, abs=1e-3)
    assert xyxy[0] < -1000  # runs far off the left edge, as it should
    clipped = b2.clip(640, 480)
    assert clipped.xyxy[0, 0] == 0


def test_contains_respects_yaw():
    box = Box3D(torch.zeros(1, 3), torch.tensor([[4.0, 1.0, 1.0]]), torch.tensor([math.pi / 2]))
    pts = torch.tensor([[0.0, 1.8, 0.0], [1.8, 0.0, 0.0]])
    assert box.contains(pts)[0].tolist() == [True, False]


def test_transform_moves_centre_and_yaw():
    box = Box3D(torch.tensor([[1.0, 0.0, 0.0]]), torch.ones(1, 3), torch.zeros(1))
    pose = make_pose((0.0, 0.0, 1.0), yaw=math.pi / 2)
    moved = box.transform(pose)
    assert moved.center[0].tolist() == pytest.approx([0.0, 1.0, 1.0], abs=1e-6)
    assert moved.yaw.item() == pytest.approx(math.pi / 2)


def test_box2d_properties_and_mismatch_error():
    b = Box2D(torch.tensor([[10.0, 20.0, 30.0, 60.0]]))
    assert b.width.item() == 20 and b.height.item() == 40 and b.area.item() == 800
    with pytest.raises(ValueError, match="one center"):
        Box3D(torch.zeros(2, 3), torch.ones(1, 3), torch.zeros(2))
