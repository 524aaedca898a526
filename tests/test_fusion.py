"""The camera-LiDAR fusion detectors: painting to the pixel, late-fusion pairing, gradients from
the image to the fused scores, short training runs, weights that name their base models, and
the shipped fusion detectors on a generated frame."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from avrobust.core.boxes import Box3D
from avrobust.core.errors import ModelError
from avrobust.models.camera_detector import CameraDetector
from avrobust.models.late_fusion import FusionHead, pair_features
from avrobust.models.lidar_detector import LidarDetector
from avrobust.models.painting import Painter, paint, score_map
from avrobust.models.weights import ASSETS, save_weights

CAM_CLASSES = ("car", "pedestrian", "traffic_sign")


def test_score_map_covers_pixel_centres_inside_each_box_with_the_best_score():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [20.0, 30.0, 50.0, 45.0], [0, 0, 5, 5]])
    scores = torch.tensor([0.6, 0.9, 0.7])
    labels = torch.tensor([0, 0, 2])  # the sign is not a painted class
    m = score_map(boxes, scores, labels, CAM_CLASSES, ("car", "pedestrian"), (60, 80))
    assert m.shape == (2, 60, 80)
    # Pixel (u, v) is covered when its centre (u + 0.5, v + 0.5) is in the box.
    assert float(m[0, 20, 10]) == pytest.approx(0.6)  # centre (10.5, 20.5): inside
    assert float(m[0, 19, 10]) == 0.0 and float(m[0, 20, 9]) == 0.0
    assert float(m[0, 39, 29]) == pytest.approx(0.9)  # in both: the better score
    assert float(m[0, 39, 29]) == pytest.approx(0.9)
    assert float(m[0, 40, 15]) == 0.0  # centre y 40.5 is below the first box
    assert float(m[0, 2, 2]) == 0.0 and m[1].sum() == 0  # nothing painted for signs or people
    assert int((m[0] > 0).sum()) == 20 * 20 + 30 * 15 - 10 * 10


def test_painting_gives_each_point_the_score_of_the_pixel_it_projects_to(calib_mounted, gen):
    k = calib_mounted.intrinsics
    scores = torch.rand(2, k.height, k.width, generator=gen)
    pts = torch.rand(4000, 4, generator=gen) * torch.tensor([40.0, 30.0, 4.0, 1.0])
    pts = pts - torch.tensor([5.0, 15.0, 2.0, 0.0])  # some behind the camera, some outside
    out = paint(pts, calib_mounted, scores)
    assert out.shape == (4000, 7)
    assert torch.equal(out[:, :4], pts)
    uv, _, visible = calib_mounted.project_lidar(pts.double())
    assert 0 < int(visible.sum()) < 4000
    u, v = uv[visible, 0].floor().long(), uv[visible, 1].floor().long()
    assert torch.allclose(out[visible, 4:6], scores[:, v, u].T)
    assert (out[visible, 6] == 1).all()
    assert (out[~visible, 4:] == 0).all()


def _painting_sample(calib):
    from avrobust.models.lidar_data import LidarSample

    pts = torch.tensor([[10.0, 0.0, 0.0, 0.5], [10.0, -30.0, 0.0, 0.5], [-5.0, 0.0, 0.0, 0.5]])
    none = torch.zeros(0, dtype=torch.long)
    return LidarSample(pts, Box3D.cat([]), none, none, none, 0.0, 1.0, "", "s", calib)


def test_painter_drops_detections_only_when_training(calib_simple, gen):
    # One car box over the whole image: every visible point is painted 0.8 for car.
    dets = {
        "boxes": torch.tensor([[0.0, 0.0, 640.0, 480.0]]),
        "scores": torch.tensor([0.8]),
        "labels": torch.tensor([0]),
    }
    painter = Painter(CAM_CLASSES)
    s = painter(_painting_sample(calib_simple), dets)
    # Ahead: painted; far to the side and behind: outside the image.
    assert s.points[:, 4].tolist() == pytest.approx([0.8, 0.0, 0.0])
    assert s.points[:, 6].tolist() == [1.0, 0.0, 0.0]
    blind = painter(_painting_sample(calib_simple), dets, gen, p_each=0.0, p_all=1.0)
    assert blind.points[:, 4].tolist() == [0.0, 0.0, 0.0]
    assert blind.points[0, 6] == 1.0  # the camera saw the point and found nothing there


def _car_ahead(x: float = 15.0, y: float = 0.0) -> Box3D:
    return Box3D(torch.tensor([[x, y, -0.5]]), torch.tensor([[4.5, 1.8, 1.5]]), torch.zeros(1))


def test_late_fusion_pairs_3d_and_2d_detections_of_one_class(calib_simple):
    boxes = Box3D.cat([_car_ahead(), _car_ahead(-10.0), _car_ahead(30.0, 8.0)])
    scores = torch.tensor([0.7, 0.6, 0.4])
    labels = torch.tensor([0, 0, 0])
    proj, _ = boxes[:1].project(calib_simple)
    dets2d = {
        "boxes": torch.cat([proj.xyxy, proj.xyxy]),
        "scores": torch.tensor([0.9, 0.95]),
        "labels": torch.tensor([0, 1]),  # the same box called a pedestrian does not pair
    }
    feats, owner, visible = pair_features(
        boxes, scores, labels, ("car", "pedestrian"), dets2d, CAM_CLASSES, calib_simple
    )
    assert visible.tolist() == [True, False, True]  # the second car is behind the camera
    assert owner.tolist() == [0, 2]
    assert feats[0].tolist() == pytest.approx([1.0, 0.7, 0.9, 15.0 / 50])
    assert feats[1].tolist() == pytest.approx([-1.0, 0.4, -1.0, math.hypot(30, 8) / 50])


def test_fusion_head_keeps_lidar_scores_out_of_view_and_passes_gradients():
    head = FusionHead()
    scores = torch.tensor([0.7, 0.6, 0.4], requires_grad=True)
    s2 = torch.tensor([0.9], requires_grad=True)
    feats = torch.stack(
        [
            torch.stack([torch.tensor(1.0), scores[0], s2[0], torch.tensor(0.3)]),
            torch.stack([torch.tensor(-1.0), scores[2], torch.tensor(-1.0), torch.tensor(0.6)]),
        ]
    )
    fused = head.fuse(scores, feats, torch.tensor([0, 2]), torch.tensor([True, False, True]))
    assert float(fused[1].detach()) == pytest.approx(0.6)  # unseen by the camera: the LiDAR's score
    fused[0].backward()
    assert s2.grad is not None and float(s2.grad.abs()) > 0


def _live(model: nn.Module) -> nn.Module:
    """Default initialisation leaves an untrained detector's activations vanishing; kaiming
    weights give scores that move."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
    return model.eval()


def test_gradients_flow_from_the_image_through_both_fusion_detectors(calib_simple):
    from avrobust.models.fusion_detectors import LateFusionDetector, PaintingDetector

    camera = _live(CameraDetector())
    gen = torch.Generator().manual_seed(3)  # untrained detectors: a seed whose boxes overlap
    image = torch.rand(3, 480, 640, generator=gen, requires_grad=True)
    pts = torch.rand(3000, 4, generator=gen) * torch.tensor([30.0, 20.0, 2.0, 1.0])
    pts = pts + torch.tensor([3.0, -10.0, -1.5, 0.0])
    painted = PaintingDetector(
        camera, _live(LidarDetector(extra_features=3)), ("car", "pedestrian")
    )
    painted.camera_threshold = painted.lidar_threshold = 0.0
    _, scores, _ = painted(image, pts, calib_simple)
    scores.sum().backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0
    image.grad = None
    late = LateFusionDetector(camera, _live(LidarDetector()), FusionHead(), 0.0, 0.0)
    _, fused, _ = late(image, pts, calib_simple)
    fused.sum().backward()
    assert float(image.grad.abs().sum()) > 0


def test_a_painting_detector_started_from_plain_weights_first_behaves_like_them(tmp_path):
    from avrobust.training.lidar import start_from

    plain = _live(LidarDetector())
    save_weights(tmp_path / "l.pt", plain, "lidar-detector", {})
    painted = LidarDetector(extra_features=3)
    start_from(painted, str(tmp_path / "l.pt"))
    painted.eval()
    gen = torch.Generator().manual_seed(1)
    pts = torch.rand(2000, 4, generator=gen) * torch.tensor([40.0, 40.0, 3.0, 1.0])
    pts = pts - torch.tensor([0.0, 20.0, 2.0, 0.0])
    with_paint = torch.cat([pts, torch.rand(2000, 3, generator=gen)], 1)
    a, b = plain([pts]), painted([with_paint])
    assert torch.allclose(a["heatmap"], b["heatmap"], atol=1e-5)
    with pytest.raises(ModelError, match=r"\[N, 7\]"):
        painted([pts])


@pytest.fixture(scope="module")
def tiny_fusion_set(tmp_path_factory):
    from avrobust.data.dataset import DatasetConfig, build_dataset

    out = tmp_path_factory.mktemp("fusion")
    build_dataset(DatasetConfig(frames=6, seed=31, lidar=True), out)
    return out


@pytest.mark.slow
def test_a_short_painting_training_run_lowers_the_loss_and_its_weights_load(
    tmp_path, tiny_fusion_set
):
    from avrobust.models.fusion_detectors import load_painting
    from avrobust.training.lidar import LidarTrainConfig, train_lidar_detector

    camera = ASSETS / "camera_detector.pt"
    cfg = LidarTrainConfig(
        str(tiny_fusion_set),
        str(tmp_path / "run"),
        epochs=40,
        batch=6,
        crop=64,
        lr=4e-3,
        device="cpu",
        camera=str(camera),
    )
    hist = train_lidar_detector(cfg)["history"]
    assert sum(h["loss"] for h in hist[-5:]) < 0.7 * sum(h["loss"] for h in hist[:5])
    # The camera's detections were cached beside the data for the next run.
    assert list((tiny_fusion_set / "cache").glob("camera_*.pt"))
    model = load_painting(tmp_path / "run" / "fusion_painting.pt")
    assert model.lidar.extra_features == 3 and model.classes == ("car", "pedestrian")
    # The weights name the camera detector they were trained with; another one is refused.
    other = tmp_path / "other_camera.pt"
    save_weights(other, CameraDetector(), "camera-detector", {"classes": list(CAM_CLASSES)})
    with pytest.raises(ModelError, match="other camera weights"):
        load_painting(tmp_path / "run" / "fusion_painting.pt", camera=other)


def test_a_short_late_fusion_fit_lowers_the_loss_and_its_weights_load(tmp_path, tiny_fusion_set):
    from avrobust.models.fusion_detectors import load_late_fusion
    from avrobust.training.late_fusion import LateFusionConfig, train_late_fusion

    metrics = train_late_fusion(
        LateFusionConfig(str(tiny_fusion_set), str(tmp_path), str(tiny_fusion_set), steps=100)
    )
    hist = metrics["history"]
    assert metrics["fit_detections"] > 0
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert set(metrics["validation"]["by_condition"]) == set(metrics["lidar_only"]["by_condition"])
    model = load_late_fusion(tmp_path / "fusion_late.pt")
    assert model.classes == ("car", "pedestrian")


@pytest.mark.parametrize("name", ["fusion-late", "fusion-painting"])
def test_shipped_fusion_detectors_find_the_cars_of_a_generated_frame(name):
    from avrobust.backends.base import EpisodeSpec
    from avrobust.backends.embedded import EmbeddedBackend
    from avrobust.campaign.registry import create
    from avrobust.models.box3d_metrics import bev_iou
    from avrobust.scenario.library import load_scenario

    victim = create("model", {"name": name})
    scenario = load_scenario("parked_vehicle")
    with EmbeddedBackend() as backend:
        # Two seconds in, the parked sedan is about 17 m ahead (ego at 9 m/s, car at s = 35).
        backend.start(EpisodeSpec.from_scenario(scenario, seed=3, frames=1, start_time=2.0))
        frame = next(iter(backend.frames()))
    t = frame.truth
    cars = [
        i
        for i, c in enumerate(t.categories)
        if c == "car"
        and t.num_points[i] >= 30
        and float(t.boxes_2d.height[i]) >= 20
        and 3 < float(t.boxes_3d.center[i, 0]) < 40
    ]
    assert cars, "the scene should put a car in front of both sensors"
    dets = victim(frame)
    assert dets.kind == "3d" and len(dets)
    iou = bev_iou(t.boxes_3d[cars], dets.box3d())
    assert (iou.max(1).values >= 0.5).all(), (iou, t.boxes_3d[cars].center)
    blind = frame.__class__(frame.calibration, points=frame.points)
    with pytest.raises(ModelError, match="camera image and a LiDAR sweep"):
        victim(blind)


def test_train_fusion_commands_report_both_sensors_and_write_weights(tmp_path, tiny_fusion_set):
    from typer.testing import CliRunner

    from avrobust.cli import app

    out = tmp_path / "late"
    args = ["train", "fusion-late", "--data", str(tiny_fusion_set), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--val", str(tiny_fusion_set), "--steps", "20"])
    assert result.exit_code == 0, result.output
    assert "LiDAR alone" in result.output and "late fusion" in result.output
    assert (out / "fusion_late.pt").is_file()
    paint = tmp_path / "paint"
    args = ["train", "fusion-painting", "--data", str(tiny_fusion_set), "--out", str(paint)]
    result = CliRunner().invoke(app, [*args, "--epochs", "1", "--batch", "6", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (paint / "fusion_painting.pt").is_file()
