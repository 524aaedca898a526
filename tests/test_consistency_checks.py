"""The temporal and cross-modal consistency checks: each catches a planted, obvious attack
(a brief hiding, a one-frame phantom, a class flip; a camera phantom with no LiDAR return or
of an impossible size, a LiDAR phantom the camera does not see), leaves the model's output
format unchanged, and raises its alarms where the campaign runner stores them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from test_defences import CAR, SENSOR_HEIGHT, _cast

from avrobust.core.boxes import Box3D
from avrobust.core.calibration import Calibration, CameraIntrinsics
from avrobust.core.detections import Detections
from avrobust.defences.cross_modal import CrossModalCheck
from avrobust.defences.temporal import TemporalCheck

# Camera and LiDAR at the same place (identity poses): the LiDAR frame is the camera body frame.
CALIB = Calibration(CameraIntrinsics.from_fov(640, 480, math.radians(90)))
SIGNS = ("stop", "speed_limit_80")


def _frame(t: float, points=None, image=None):
    return SimpleNamespace(timestamp=t, calibration=CALIB, points=points, image=image)


def _replay(check, outputs: list[Detections]):
    """Run ``check`` over a sequence of model outputs (10 Hz); each frame's output, alarms."""
    feed = iter(outputs)
    defended = check.wrap(lambda frame: next(feed))
    out = []
    for i in range(len(outputs)):
        dets = defended(_frame(i * 0.1))
        out.append((dets, defended.take_alarms()))
    return out


def _sign(i: int, label: int = 0) -> Detections:
    """A sign approaching: its box grows and drifts right, 10 Hz."""
    box = torch.tensor([[300.0 + 2 * i, 200.0, 340.0 + 4 * i, 240.0 + 2 * i]])
    return Detections(box, [0.9], [label], "2d", SIGNS)


def test_a_brief_hiding_is_coasted_over_and_raises_vanished():
    seq = [_sign(i) if i != 7 else Detections.empty("2d", SIGNS) for i in range(10)]
    out = _replay(TemporalCheck(), seq)
    dets, alarms = out[7]
    assert len(dets) == 1 and dets.labels.tolist() == [0]
    # Coasted at the constant-velocity prediction: where the sign would have been.
    assert torch.allclose(dets.boxes[0], _sign(7).boxes[0], atol=0.5)
    assert [a.kind for a in alarms] == ["vanished"]
    assert all(not a for _, a in out[:7])  # nothing flagged while the sign was steady


def test_an_object_is_reported_after_confirmation_and_a_one_frame_phantom_never():
    big = Detections(torch.tensor([[200.0, 150.0, 300.0, 350.0]]), [0.9], [1], "2d", SIGNS)
    seq = [_sign(i) for i in range(6)]
    seq[3] = Detections(torch.cat([_sign(3).boxes, big.boxes]), [0.9, 0.9], [0, 1], "2d", SIGNS)
    out = _replay(TemporalCheck(confirm=2), seq)
    assert len(out[0][0]) == 0 and len(out[1][0]) == 1  # confirmed at its second frame
    assert len(out[3][0]) == 1 and out[3][0].labels.tolist() == [0]  # the phantom is not
    assert [a.kind for a in out[3][1]] == ["appeared"]  # large, mid-image, from nowhere


def test_a_class_flip_is_outvoted_and_raises_class_flip():
    seq = [_sign(i, label=1 if i in (8, 9) else 0) for i in range(12)]
    out = _replay(TemporalCheck(), seq)
    assert all(d.labels.tolist() == [0] for d, _ in out[1:])
    assert [a.kind for a in out[8][1]] == ["class_flip"]
    assert "stop -> speed_limit_80" in out[8][1][0].detail
    # Without the vote the flip goes through; the alarm still sounds.
    raw = _replay(TemporalCheck(vote=False), seq)
    assert raw[8][0].labels.tolist() == [1] and raw[8][1]


def test_the_temporal_check_keeps_3d_outputs_and_gates_impossible_jumps():
    def car(x: float) -> Detections:
        return Detections(
            torch.tensor([[x, 0.0, -1.1, 4.5, 1.8, 1.5, 0.0]]), [0.8], [0], "3d", ("car", "ped")
        )

    seq = [car(20.0 - 0.5 * i) for i in range(5)] + [car(40.0)]  # 20 m in 0.1 s: a new object
    out = _replay(TemporalCheck(coast=0), seq)
    dets = out[4][0]
    assert dets.kind == "3d" and dets.class_names == ("car", "ped") and dets.boxes.shape == (1, 7)
    assert len(out[5][0]) == 0  # the jumped box is unconfirmed, the old track not coasted
    with pytest.raises(Exception, match="confirm"):
        TemporalCheck(confirm=0)


# --- cross-modal ----------------------------------------------------------------------------


def _camera_box(box: Box3D) -> torch.Tensor:
    proj, _ = box.project(CALIB)
    return proj.xyxy[0]


def test_a_camera_car_on_a_lidar_car_is_kept_and_phantoms_are_dropped():
    points = _cast(CAR)  # a car 10 m ahead, the road, a wall at 60 m
    # Open sky to the left, just above the horizon (inside the LiDAR's vertical view): no return.
    uv, _, _ = CALIB.project_lidar(points)
    gap = (uv[:, 0] > 80) & (uv[:, 0] < 160) & (uv[:, 1] > 150) & (uv[:, 1] < 235)
    points = points[~gap]
    real = _camera_box(CAR)
    sky = torch.tensor([100.0, 170.0, 140.0, 230.0])
    on_wall = torch.tensor([300.0, 180.0, 340.0, 220.0])  # a 'car' drawn 40 px tall at 60 m
    dets = Detections(torch.stack([real, sky, on_wall]), [0.9, 0.9, 0.9], [0, 0, 0], "2d", ("car",))
    defended = CrossModalCheck().wrap(lambda f: dets)
    out = defended(_frame(0.0, points))
    assert out.kind == "2d" and out.class_names == ("car",)
    assert out.boxes.tolist() == [real.tolist()]
    kinds = sorted(a.kind for a in defended.take_alarms())
    assert kinds == ["implausible_size", "no_lidar_return"]


def test_a_lidar_phantom_without_camera_support_is_dropped():
    ghost = Box3D([[20.0, 4.0, -SENSOR_HEIGHT + 0.75]], [[4.5, 1.8, 1.5]], [0.0])
    dets = Detections(torch.cat([CAR.as_tensor(), ghost.as_tensor()]), [0.9, 0.8], [0, 0], "3d",
                      ("car", "pedestrian"))  # fmt: skip
    check = CrossModalCheck(min_iou=0.3)
    # The camera witness sees the real car only (slightly off, as a detector would).
    seen = Detections(_camera_box(CAR)[None] + 3.0, [0.9], [0], "2d", ("car", "pedestrian"))
    check._camera = lambda frame: seen
    image = torch.zeros(3, 480, 640)
    support = check.camera_support(_frame(0.0, _cast(CAR), image), dets)
    assert support[0] > 0.8 and support[1] == 0.0
    defended = check.wrap(lambda f: dets)
    out = defended(_frame(0.0, _cast(CAR), image))
    assert out.kind == "3d" and out.boxes.shape == (1, 7)
    assert torch.allclose(out.boxes[0], CAR.as_tensor()[0])
    assert [a.kind for a in defended.take_alarms()] == ["no_camera_support"]
    # Out of the camera's view (behind): unjudged, kept.
    behind = Box3D([[-15.0, 0.0, -1.1]], [[4.5, 1.8, 1.5]], [0.0])
    back = Detections(behind.as_tensor(), [0.9], [0], "3d", ("car", "pedestrian"))
    assert check.camera_support(_frame(0.0, None, image), back) == [None]


def test_the_checks_are_campaign_defences_whose_alarms_the_store_keeps(tmp_path):
    from avrobust.campaign import registry
    from avrobust.campaign.records import AlarmRecord, JobOutcome
    from avrobust.campaign.store import ResultsStore

    t = registry.create("defence", {"name": "temporal-check", "params": {"coast": 5}})
    c = registry.create("defence", {"name": "cross-modal-check", "params": {"min_iou": 0.5}})
    assert isinstance(t, TemporalCheck) and t.coast == 5
    assert isinstance(c, CrossModalCheck) and c.min_iou == 0.5
    with ResultsStore(tmp_path) as store:
        outcome = JobOutcome("j1", alarms=[AlarmRecord("j1", 3, "temporal-check", "vanished", "x")])
        store.record(outcome)
        assert store.query('SELECT frame, "check", kind FROM alarms') == [
            (3, "temporal-check", "vanished")
        ]


# --- void (shadow) check ----------------------------------------------------------------------


def test_the_void_check_flags_removed_returns_not_dropout():
    from avrobust.defences.shadow import VoidCheck

    pose = torch.eye(4, dtype=torch.float64)
    pose[2, 3] = SENSOR_HEIGHT  # the ego frame's origin is on the road
    calib = Calibration(CALIB.intrinsics, lidar_pose=pose)
    lidar = {
        "channels": 32,
        "points_per_second": 32 * 720 * 10,
        "rotation_frequency": 10.0,
        "upper_fov": math.radians(10),
        "lower_fov": math.radians(-30),
    }
    check = VoidCheck(lidar=lidar)
    dets = Detections.empty("3d", ("car",))
    defended = check.wrap(lambda f: dets)

    def alarms(points):
        out = defended(SimpleNamespace(points=points, point_ring=None, calibration=calib))
        assert out is dets  # the check never changes the output
        return defended.take_alarms()

    solid = _cast(CAR)
    assert alarms(solid) == []
    g = torch.Generator().manual_seed(5)
    rain = solid[torch.rand(len(solid), generator=g) > 0.25]  # a quarter of the returns lost
    assert alarms(rain) == []
    grown = Box3D(CAR.center, CAR.size + 0.1, CAR.yaw)  # its returns lie on its surface
    removed = solid[~grown.contains(solid[:, :3])[0]]  # the car's returns taken away
    (alarm,) = alarms(removed)
    assert alarm.kind == "void" and "bearing +0 deg" in alarm.detail


@pytest.mark.slow
def test_clean_library_frames_pass_the_camera_side_and_void_checks():
    """The stated false-positive rates (docs/defences.md): the cross-modal check drops none
    of the camera detector's true detections of clean library frames, the void check sees no
    void in clear weather or heavy rain."""
    from torchvision.ops import box_iou

    from avrobust.core.sensors import LidarSpec
    from avrobust.defences.shadow import VoidCheck
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.models.victims import CameraDetectorVictim
    from avrobust.scenario.library import load_scenario

    camera, check, voids = CameraDetectorVictim(), CrossModalCheck(), VoidCheck()
    true_dets = dropped = 0
    for sc in ("pedestrian_crossing", "urban_stop"):
        cam = load_scenario(sc).sensors.camera.to_spec()
        views = Sweep((10.0, 20.0), (0.0,), ("ClearNoon", "HardRainNoon"), (0.0,))
        for frame in render_sweep(sc, views, cam, lidar=LidarSpec()).frames:
            dets = camera(frame)
            truth = frame.truth
            keep = torch.zeros(len(dets), dtype=torch.bool)
            for i in range(len(dets)):
                name = dets.class_names[int(dets.labels[i])]
                same = [j for j, c in enumerate(truth.categories) if c == name]
                if same:
                    iou = box_iou(dets.boxes[i : i + 1], truth.boxes_2d.xyxy[same])
                    keep[i] = float(iou.max()) >= 0.5
            true = dets.filter(keep)
            out, _ = check._check_2d(frame, true)
            true_dets, dropped = true_dets + len(true), dropped + len(true) - len(out)
            defended = voids.wrap(lambda f: None)
            defended(frame)
            assert defended.take_alarms() == []
    assert true_dets >= 20
    assert dropped <= 0.05 * true_dets


@pytest.mark.slow
def test_a_clean_drive_by_raises_no_temporal_alarm_and_keeps_the_lead_car():
    """On a clean library drive-by the temporal check raises no alarm and reports the lead
    car in every frame after its confirmation."""
    from avrobust.backends.base import EpisodeSpec
    from avrobust.backends.factory import make_backend
    from avrobust.models.box3d_metrics import bev_iou
    from avrobust.models.victims import LidarDetectorVictim
    from avrobust.scenario.library import load_scenario

    scenario = load_scenario("lead_vehicle")
    backend = make_backend("embedded")
    backend.start(EpisodeSpec.from_scenario(scenario, frames=8, seed=3))
    defended = TemporalCheck(confirm=2).wrap(LidarDetectorVictim())
    lead = backend.object_id(scenario.targets[0].object)
    found = []
    try:
        for frame in backend.frames():
            dets = defended(frame)
            assert defended.take_alarms() == []
            i = frame.truth.ids.tolist().index(lead)
            iou = bev_iou(dets.box3d(), frame.truth.boxes_3d[i : i + 1]) if len(dets) else None
            found.append(iou is not None and float(iou.max()) >= 0.5)
    finally:
        backend.close()
    assert found[0] is False and all(found[1:])  # confirmed at its second frame


def test_filling_the_road_behind_a_removed_car_hides_the_void():
    """The adaptive attack on the void check: the removed rays that point at the road get the
    road returns they would have had, and the void check sees nothing."""
    from avrobust.attacks.lidar.in_campaign import road_returns
    from avrobust.attacks.lidar.sweep import ray_index
    from avrobust.core.sensors import LidarSpec
    from avrobust.defences.shadow import find_voids

    spec = LidarSpec(channels=32, points_per_second=32 * 720 * 10, rotation_frequency=10.0,
                     upper_fov=math.radians(10), lower_fov=math.radians(-30))  # fmt: skip
    pose = torch.eye(4, dtype=torch.float64)
    pose[2, 3] = SENSOR_HEIGHT
    calib = Calibration(CALIB.intrinsics, lidar_pose=pose)
    solid = _cast(CAR)
    grown = Box3D(CAR.center, CAR.size + 0.1, CAR.yaw)
    on_car = grown.contains(solid[:, :3])[0]
    removed_rays = ray_index(solid[on_car], spec)
    road, rays = road_returns(spec, removed_rays, SENSOR_HEIGHT)
    assert 0 < len(rays) <= len(removed_rays)
    assert torch.allclose(road[:, 2], torch.full((len(road),), -SENSOR_HEIGHT), atol=1e-4)
    assert (road[:, 0] > CAR.center[0, 0] - CAR.size[0, 0] / 2).all()  # under or behind it
    filled = torch.cat([solid[~on_car], road])

    def frame(points):
        return SimpleNamespace(points=points, point_ring=None, calibration=calib)

    assert len(find_voids(frame(solid[~on_car]), spec, 16, 45.0)) == 1
    assert find_voids(frame(filled), spec, 16, 45.0) == []


def _stop_frames(height: float = 2.0):
    """The urban stop sign at 8 and 12 m with LiDAR, its lower edge ``height`` above the road."""
    from avrobust.core.sensors import LidarSpec
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    sc = load_scenario("urban_stop")
    signs = [s.model_copy(update={"height": height}) if s.name == "stop_1" else s for s in sc.signs]
    sc = sc.model_copy(update={"signs": signs})
    views = Sweep((8.0, 12.0), (0.0,), ("ClearNoon",), (0.0,))
    return render_sweep(sc, views, sc.sensors.camera.to_spec(), lidar=LidarSpec()).frames


def _read_as(frame, name: str) -> Detections:
    t = frame.truth
    i = t.subclasses.index("stop")  # the scene's one stop sign
    return Detections(t.boxes_2d.xyxy[i : i + 1], [0.9], [SIGN_NAMES.index(name)], "2d", SIGN_NAMES)


SIGN_NAMES = ("stop", "speed_limit_80", "car")


def test_a_sign_read_as_another_class_or_mounted_low_is_flagged():
    """A stop sign's 0.90 m face read as a speed limit (0.75 m) is dropped with ``sign_size``;
    a stop sign whose lower edge is 0.3 m above the road, with ``sign_mounting``; read as
    itself at its real height it passes. Without the rule (the default) both pass."""
    check = CrossModalCheck(sign_rule=True)
    for frame in _stop_frames():
        kept, alarms = check._check_2d(frame, _read_as(frame, "stop"))
        assert len(kept) == 1 and alarms == []
        kept, alarms = check._check_2d(frame, _read_as(frame, "speed_limit_80"))
        assert len(kept) == 0 and [a.kind for a in alarms] == ["sign_size"]
        kept, _ = CrossModalCheck(sign_rule=False)._check_2d(
            frame, _read_as(frame, "speed_limit_80")
        )
        assert len(kept) == 1
    for frame in _stop_frames(height=0.3):
        kept, alarms = check._check_2d(frame, _read_as(frame, "stop"))
        assert len(kept) == 0 and [a.kind for a in alarms] == ["sign_mounting"]
        assert "0.3 m above the road" in alarms[0].detail
