"""The camera fallback: a road user the LiDAR side lost comes back from the camera, ranged on
the ground near where it is, with an alarm naming it; one the LiDAR side reports is left
alone, and a 3D model's output keeps its format."""

import pytest
import torch

from avrobust.core.detections import Detections
from avrobust.core.errors import ConfigError
from avrobust.driving.modality_fallback import KIND, CameraFallback
from avrobust.driving.percepts import from_detections
from tests.test_driving_percepts import parked_car_frames  # noqa: F401  (the fixture)

CLASSES = ("car", "pedestrian")


@pytest.fixture(scope="module")
def frames(parked_car_frames):  # noqa: F811  (pytest passes the imported fixture)
    """``(frame, index of the car, its true percept)`` with the parked car 8-25 m ahead."""
    return [
        (frame, frame.truth.categories.index("car"), truth)
        for rng, frame, _, truth in parked_car_frames
        if rng >= 8.0
    ]


def _camera_sees(box: torch.Tensor):
    """A camera detector reporting exactly one car in ``box``."""
    return lambda frame: Detections(
        box[None], torch.tensor([0.9]), torch.tensor([0]), "2d", CLASSES
    )


def _lidar(boxes: torch.Tensor) -> Detections:
    n = len(boxes)
    return Detections(boxes.reshape(-1, 7), torch.full((n,), 0.8), torch.zeros(n), "3d", CLASSES)


def test_a_car_the_lidar_lost_comes_back_from_the_camera_where_it_is(frames):
    assert len(frames) >= 8
    for frame, i, truth in frames:
        fb = CameraFallback()
        fb._camera = _camera_sees(frame.truth.boxes_2d.xyxy[i])
        dets, alarms = fb.fall_back(frame, _lidar(torch.zeros(0, 7)))
        assert dets.kind == "3d" and dets.class_names == CLASSES and len(dets) == 1
        assert [(a.kind, a.index) for a in alarms] == [(KIND, 0)]
        [p] = from_detections(frame, dets, ["car"])
        assert abs(p.y - truth.y) < 0.4 and abs(p.x - truth.x) < 1.0


def test_a_car_the_lidar_reports_is_left_alone(frames):
    frame, i, _ = frames[len(frames) // 2]
    fb = CameraFallback()
    fb._camera = _camera_sees(frame.truth.boxes_2d.xyxy[i])
    lidar = _lidar(frame.truth.boxes_3d.as_tensor()[i : i + 1].float())
    dets, alarms = fb.fall_back(frame, lidar)
    assert alarms == [] and dets is lidar


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="min_iou"):
        CameraFallback(min_iou=1.5)
    with pytest.raises(ConfigError, match="max_range_m"):
        CameraFallback(max_range_m=0)
