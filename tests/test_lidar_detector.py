"""The LiDAR detector and its metrics: rotated IoU against hand-computed cases, AP over 40 recall
points, pillarisation, targets, decoding, gradients to the points, a short training run."""

import math

import pytest
import torch

from avrobust.core.boxes import Box3D
from avrobust.models.box3d_metrics import FrameBoxes, average_precision_40, bev_iou, iou_3d
from avrobust.models.lidar_detector import (
    BEVGrid,
    LidarDetector,
    decode,
    pillar_index,
    yaw_encoding,
)


def _box(x, y, z, length, w, h, yaw=0.0) -> Box3D:
    return Box3D(
        torch.tensor([[x, y, z]], dtype=torch.float64),
        torch.tensor([[length, w, h]], dtype=torch.float64),
        torch.tensor([yaw], dtype=torch.float64),
    )


def test_rotated_iou_hand_computed_cases():
    a = _box(0, 0, 0, 4, 2, 2)
    assert float(bev_iou(a, a)) == pytest.approx(1.0)
    assert float(iou_3d(a, a)) == pytest.approx(1.0)
    assert float(bev_iou(a, _box(10, 0, 0, 4, 2, 2))) == 0.0  # disjoint
    # Turned a quarter: a 4x2 and a 2x4 rectangle share a 2x2 square: 4 / (8 + 8 - 4).
    assert float(bev_iou(a, _box(0, 0, 0, 4, 2, 2, math.pi / 2))) == pytest.approx(4 / 12)
    # Shifted by 1 m along the length: overlap 3x2 = 6, union 10.
    assert float(bev_iou(a, _box(1, 0, 0, 4, 2, 2))) == pytest.approx(0.6)
    # Half a metre higher: the same footprint, heights overlap 1.5 of 2: 6 / (16 + 16 - 6)... in
    # volume: 8 * 1.5 = 12 over 16 + 16 - 12 = 20.
    assert float(iou_3d(a, _box(0, 0, 0.5, 4, 2, 2))) == pytest.approx(0.6)
    # A square turned 45 degrees inside a larger one: a unit square's diamond has area 1.
    sq = _box(0, 0, 0, 2, 2, 1)
    diamond = _box(0, 0, 0, math.sqrt(2), math.sqrt(2), 1, math.pi / 4)
    assert float(bev_iou(sq, diamond)) == pytest.approx(2 / 4)
    # A box is the same box turned half a turn.
    assert float(bev_iou(a, _box(0, 0, 0, 4, 2, 2, math.pi))) == pytest.approx(1.0)


def test_ap40_counts_hits_misses_false_alarms_and_dont_cares():
    truth = Box3D.cat([_box(10, 0, 0, 4, 2, 2), _box(20, 5, 0, 4, 2, 2), _box(30, -5, 0, 4, 2, 2)])
    care = torch.tensor([True, True, False])
    perfect = FrameBoxes(truth, care, truth, torch.tensor([0.9, 0.8, 0.7]))
    ap, n = average_precision_40([perfect], 0.7)
    assert n == 2 and ap == pytest.approx(1.0)  # the don't-care hit is not a false positive
    # One hit, one miss: recall reaches 0.5, precision 1 up to there: AP = 20/40.
    half = FrameBoxes(truth, care, truth[:1], torch.tensor([0.9]))
    assert average_precision_40([half], 0.7)[0] == pytest.approx(0.5)
    # A false alarm scored above both hits: precision 1/2 at recall 1/2 and 2/3 at recall 1;
    # interpolated (the best precision at any recall at least r), 2/3 everywhere.
    ghost = Box3D.cat([_box(50, 0, 0, 4, 2, 2), truth[0], truth[1]])
    noisy = FrameBoxes(truth, care, ghost, torch.tensor([0.95, 0.9, 0.8]))
    assert average_precision_40([noisy], 0.7)[0] == pytest.approx(2 / 3)
    # Scored below both hits, it costs nothing.
    late = FrameBoxes(truth, care, ghost, torch.tensor([0.1, 0.9, 0.8]))
    assert average_precision_40([late], 0.7)[0] == pytest.approx(1.0)
    assert average_precision_40([FrameBoxes(truth, care, Box3D.cat([]), torch.zeros(0))], 0.7) == (
        0.0,
        2,
    )
    assert average_precision_40([], 0.7) == (None, 0)


def test_pillarisation_keeps_every_in_range_point():
    grid = BEVGrid()
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(5000, 4, generator=gen) * torch.tensor([60.0, 60.0, 5.0, 1.0]) - torch.tensor(
        [5.0, 30.0, 3.0, 0.0]
    )
    keep = grid.in_range(pts)
    idx = pillar_index(pts[keep], grid)
    assert idx.min() >= 0 and idx.max() < grid.nx * grid.ny
    # Each point lands in the pillar that contains it.
    ix, iy = idx // grid.ny, idx % grid.ny
    x0 = grid.x_range[0] + ix * grid.pillar
    y0 = grid.y_range[0] + iy * grid.pillar
    p = pts[keep]
    assert ((p[:, 0] >= x0 - 1e-5) & (p[:, 0] < x0 + grid.pillar + 1e-5)).all()
    assert ((p[:, 1] >= y0 - 1e-5) & (p[:, 1] < y0 + grid.pillar + 1e-5)).all()
    # Every kept point reaches the canvas: a pillar is non-empty exactly when a point is in it.
    model = LidarDetector().eval()
    canvas = model.canvas([pts])
    occupied = (canvas[0].abs().sum(0) > 0).flatten()
    assert set(torch.nonzero(occupied).flatten().tolist()) <= set(idx.tolist())
    assert len(set(idx.tolist())) - int(occupied.sum()) <= 0.01 * len(set(idx.tolist()))


def test_gradients_reach_the_point_coordinates():
    model = LidarDetector().eval()
    pts = torch.tensor([[10.0, 0.5, -1.0, 0.5], [10.1, 0.6, -0.5, 0.4], [20.0, -3.0, -1.2, 0.2]])
    pts.requires_grad_(True)
    out = model([pts])
    out["heatmap"][:, 0].sigmoid().max().backward()
    assert pts.grad is not None and pts.grad.abs().sum() > 0


def test_decoding_recovers_a_box():
    grid = BEVGrid()
    h, w = grid.nx // grid.stride, grid.ny // grid.stride
    out = {"heatmap": torch.full((1, 2, h, w), -9.0), "regress": torch.zeros(1, 8, h, w)}
    i, j = 50, 70  # x = 50.25 * 0.4 = 20.1 m; y = -25.6 + 70.75 * 0.4 = 2.7 m
    out["heatmap"][0, 0, i, j] = 4.0
    yaw = 0.3
    enc = yaw_encoding(torch.tensor(yaw))
    out["regress"][0, :, i, j] = torch.tensor(
        [
            0.25,
            0.75,
            -1.0,
            math.log(4.5),
            math.log(1.8),
            math.log(1.5),
            float(enc[0]),
            float(enc[1]),
        ]
    )
    ((boxes, _scores, labels),) = decode(out, grid, 0.5)
    assert labels.tolist() == [0]
    assert torch.allclose(boxes.center[0], torch.tensor([20.1, 2.7, -1.0]), atol=1e-4)
    assert torch.allclose(boxes.size[0], torch.tensor([4.5, 1.8, 1.5]), atol=1e-4)
    assert float(boxes.yaw[0]) == pytest.approx(yaw, abs=1e-5)


@pytest.fixture(scope="module")
def tiny_lidar(tmp_path_factory):
    from avrobust.data.dataset import DatasetConfig, build_dataset

    out = tmp_path_factory.mktemp("lidar")
    build_dataset(
        DatasetConfig(frames=6, seed=21, width=320, height=240, fov=60.0, lidar=True), out
    )
    return out


def test_lidar_sets_hold_boxes_inside_the_camera_wedge(tiny_lidar):
    from avrobust.models.lidar_data import load_lidar_set

    samples = load_lidar_set(tiny_lidar)
    assert len(samples) == 6
    assert sum(len(s.boxes) for s in samples) > 0
    for s in samples:
        assert BEVGrid().in_range(s.points).all()
        # The camera looks ahead with a 60-degree field of view.
        assert abs(s.fov_axis) < 0.2 and s.fov_half == pytest.approx(math.radians(30), abs=1e-6)
        if len(s.boxes):
            # Labelled objects are ones the camera saw: their centres lie in or near the wedge.
            assert s.in_fov(s.boxes.center[:, :2], margin=-math.radians(10)).all()


@pytest.mark.slow
def test_a_short_lidar_training_run_lowers_the_loss_and_weights_load(tmp_path, tiny_lidar):
    from avrobust.core.errors import ConfigError
    from avrobust.models.lidar_adapter import load_lidar_detector
    from avrobust.training.lidar import LidarTrainConfig, train_lidar_detector

    cfg = LidarTrainConfig(
        str(tiny_lidar),
        str(tmp_path / "run"),
        val=str(tiny_lidar),
        epochs=40,
        batch=6,
        crop=64,
        lr=4e-3,
        device="cpu",
        val_samples=1,
    )
    metrics = train_lidar_detector(cfg)
    hist = metrics["history"]
    assert sum(h["loss"] for h in hist[-5:]) < 0.7 * sum(h["loss"] for h in hist[:5])
    assert "clear_by_distance" in metrics["validation"]
    det = load_lidar_detector(tmp_path / "run" / "lidar_detector.pt", score_threshold=0.0)
    assert det.classes == ("car", "pedestrian")
    from avrobust.models.lidar_data import load_lidar_set

    out = det.detect(load_lidar_set(tiny_lidar)[0].points)
    assert out.kind == "3d" and out.boxes.shape[1] == 7
    with pytest.raises(ConfigError, match="other settings"):
        train_lidar_detector(LidarTrainConfig(str(tiny_lidar), str(tmp_path / "run"), epochs=2))


def test_user_3d_detectors_load_through_the_adapter(calib_simple):
    from avrobust.core.errors import ModelError
    from avrobust.models.lidar_adapter import load_lidar_detector

    def mine(points, calibration):
        return torch.tensor([[10.0, 0, -1, 4, 2, 1.5, 0.1]]), torch.tensor([0.9]), torch.tensor([0])

    det = load_lidar_detector(mine, ("car",))
    out = det.detect(torch.zeros(5, 4), calib_simple)
    assert out.kind == "3d" and out.class_names == ("car",) and len(out) == 1
    with pytest.raises(ModelError, match="class names"):
        load_lidar_detector(mine)
    with pytest.raises(ModelError, match=r"\[K, 7\]"):
        load_lidar_detector(
            lambda p, c: (torch.zeros(1, 4), torch.ones(1), torch.zeros(1)), ("car",)
        ).detect(torch.zeros(3, 4))
    with pytest.raises(ModelError, match="no such weights file"):
        load_lidar_detector("missing.pt")


def test_a_3d_detection_is_matched_to_its_target_by_footprint(calib_simple):
    from avrobust.campaign.runner import frame_records
    from avrobust.core.boxes import Box2D
    from avrobust.core.detections import Detections
    from avrobust.core.frame import Frame, GroundTruth

    truth = GroundTruth(
        torch.tensor([3]),
        ["car"],
        ["sedan"],
        _box(20.0, 1.0, -1.0, 4.5, 1.8, 1.5).to("cpu"),
        Box2D(torch.tensor([[0.0, 0, 0, 0]])),  # not visible to the camera: the LiDAR decides
        torch.zeros(1),
        torch.tensor([120]),
    )
    frame = Frame(calib_simple, truth=truth, index=0, timestamp=0.0)

    def dets(x):
        return Detections(
            torch.tensor([[x, 1.0, -1.0, 4.5, 1.8, 1.5, 0.0]]),
            torch.tensor([0.8]),
            torch.tensor([0]),
            "3d",
            ("car", "pedestrian"),
        )

    args = ("job", frame, {"lead": 3}, {"lead": None}, {})
    (hit,) = frame_records(*args, dets(20.3), True, ("car", "pedestrian"), by_category=True)
    assert hit.detected and hit.correct and hit.predicted == "car"
    (miss,) = frame_records(*args, dets(23.0), True, ("car", "pedestrian"), by_category=True)
    assert not miss.detected and not miss.correct


def test_shipped_lidar_detector_finds_the_cars_of_a_generated_frame():
    from avrobust.backends.base import EpisodeSpec
    from avrobust.backends.embedded import EmbeddedBackend
    from avrobust.models.box3d_metrics import bev_iou
    from avrobust.models.lidar_adapter import load_lidar_detector
    from avrobust.models.weights import ASSETS
    from avrobust.scenario.library import load_scenario

    path = ASSETS / "lidar_detector.pt"
    assert path.is_file() and path.stat().st_size < 25e6
    det = load_lidar_detector(path)
    scenario = load_scenario("parked_vehicle")
    with EmbeddedBackend() as backend:
        # Two seconds in, the parked sedan is about 17 m ahead (ego at 9 m/s, car at s = 35).
        spec = EpisodeSpec.from_scenario(scenario, seed=3, camera=None, frames=1, start_time=2.0)
        backend.start(spec)
        frame = next(iter(backend.frames()))
    t = frame.truth
    cars = [
        i
        for i, c in enumerate(t.categories)
        if c == "car"
        and t.num_points[i] >= 30
        and 3 < float(t.boxes_3d.center[i, 0]) < 40
        and abs(float(t.boxes_3d.center[i, 1])) < 15
    ]
    assert cars, "the scene should put a car in front of the LiDAR"
    dets = det(frame)
    assert dets.kind == "3d"
    iou = bev_iou(t.boxes_3d[cars], dets.box3d()) if len(dets) else torch.zeros(len(cars), 0)
    found = (iou.max(1).values >= 0.5) if iou.shape[1] else torch.zeros(len(cars), dtype=torch.bool)
    assert found.all(), (iou, t.boxes_3d[cars].center)
