"""The CARLO-style free-space check: it rejects a planted phantom whose volume the laser sees
through, keeps a solid object, passes the true detections of clean library frames at its
stated false-positive rate, and as a defence leaves the model's output format unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from avrobust.core.boxes import Box3D
from avrobust.core.detections import Detections
from avrobust.defences.free_space import FreeSpaceCheck, free_space, keep_mask

SENSOR_HEIGHT = 1.9


def _cast(box: Box3D | None, extra: torch.Tensor | None = None) -> torch.Tensor:
    """A 32 x 720 LiDAR sweep of a flat road (z = -1.9 in the sensor frame) and a wall at 60 m,
    with ``box`` solid when given; ``extra`` points replace the rays nearest to them."""
    el = torch.linspace(math.radians(-30), math.radians(10), 32)
    az = torch.linspace(-math.pi, math.pi, 721)[:-1]
    e, a = torch.meshgrid(el, az, indexing="ij")
    d = torch.stack([torch.cos(e) * torch.cos(a), torch.cos(e) * torch.sin(a), torch.sin(e)], -1)
    d = d.reshape(-1, 3)
    t = torch.full((d.shape[0],), float("inf"))
    down = d[:, 2] < 0
    t[down] = -SENSOR_HEIGHT / d[down, 2]
    fwd = d[:, 0] > 0
    t[fwd] = torch.minimum(t[fwd], 60.0 / d[fwd, 0])
    if box is not None:  # slab test against an axis-aligned box
        lo = box.center[0] - box.size[0] / 2
        hi = box.center[0] + box.size[0] / 2
        inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
        t1, t2 = (lo - 0) * inv, (hi - 0) * inv
        tmin = torch.minimum(t1, t2).max(1).values
        tmax = torch.maximum(t1, t2).min(1).values
        hit = (tmax >= tmin) & (tmin > 0)
        t[hit] = torch.minimum(t[hit], tmin[hit])
    pts = d * t[:, None]
    keep = torch.isfinite(t) & (t < 100)
    pts = torch.cat([pts, torch.full((pts.shape[0], 1), 0.5)], 1)
    if extra is not None:  # spoofed returns replace the genuine ones along the same rays
        dirs = extra[:, :3] / torch.linalg.vector_norm(extra[:, :3], dim=1, keepdim=True)
        nearest = (dirs @ d.T).argmax(1)
        pts[nearest] = extra
    return pts[keep]


CAR = Box3D([[10.0, 0.0, -SENSOR_HEIGHT + 0.75]], [[4.5, 1.8, 1.5]], [0.0])


def test_a_solid_car_is_kept_and_a_planted_phantom_is_rejected():
    solid = _cast(CAR)
    fs = free_space(solid, CAR)
    assert int(fs.through[0]) == 0 and int(fs.stopped[0]) > 30
    assert keep_mask(solid, CAR).tolist() == [True]
    # The phantom: 60 returns on the rear face of the same box, the road and wall behind it.
    g = torch.Generator().manual_seed(0)
    face = torch.stack(
        [
            torch.full((60,), 7.75),
            (torch.rand(60, generator=g) - 0.5) * 1.6,
            -SENSOR_HEIGHT + 0.2 + torch.rand(60, generator=g) * 1.2,
            torch.full((60,), 0.5),
        ],
        1,
    )
    spoofed = _cast(None, face)
    fs = free_space(spoofed, CAR)
    assert float(fs.ratio[0]) > 0.5  # most rays aimed into it fly on
    assert keep_mask(spoofed, CAR).tolist() == [False]


def test_too_little_evidence_is_not_a_rejection():
    far_box = Box3D([[90.0, 30.0, 0.0]], [[0.6, 0.6, 1.7]], [0.0])  # beyond every return
    assert keep_mask(_cast(None), far_box, min_rays=8).tolist() == [True]


def test_the_defence_keeps_the_output_format():
    check = FreeSpaceCheck()

    class Frame:
        points = _cast(CAR)

    def model3d(frame):
        return Detections(
            torch.cat([CAR.as_tensor(), torch.tensor([[30.0, 20.0, -1.1, 4.5, 1.8, 1.5, 0.0]])]),
            torch.tensor([0.9, 0.8]),
            torch.tensor([0, 0]),
            "3d",
            ("car", "pedestrian"),
        )

    out = check.wrap(model3d)(Frame())
    assert out.kind == "3d" and out.class_names == ("car", "pedestrian")
    assert out.boxes.shape[1] == 7 and len(out) >= 1
    two_d = Detections(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), [0.5], [0], "2d", ("car",))
    assert check.wrap(lambda f: two_d)(Frame()) is two_d  # not its business: unchanged


@pytest.mark.slow
def test_true_detections_of_clean_library_frames_pass_at_the_stated_rate():
    """The check's stated false-positive rate is at most 5% of true detections."""
    from avrobust.core.sensors import LidarSpec
    from avrobust.evaluation.lidar_attack import load_victims
    from avrobust.evaluation.lidar_defence import CheckSamples, free_space_judge, genuine_samples
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    victim = load_victims(("lidar-detector",))["lidar-detector"]
    samples = CheckSamples(free_space_judge())
    spec = LidarSpec()
    for sc in ("lead_vehicle", "parked_vehicle"):
        cam = load_scenario(sc).sensors.camera.to_spec()
        frames = render_sweep(
            sc, Sweep((12.0, 25.0), (0.0,), ("ClearNoon",), (0.0,)), cam, lidar=spec
        )
        genuine_samples(victim, frames, samples)
    point = samples.point(0.4)
    assert point["genuine"] >= 4
    assert point["false_positive_rate"] <= 0.05


def test_registered_as_a_campaign_defence():
    from avrobust.campaign import registry

    d = registry.create("defence", {"name": "free-space-check", "params": {"threshold": 0.6}})
    assert isinstance(d, FreeSpaceCheck) and d.threshold == 0.6


@pytest.mark.slow
def test_the_adaptive_spoofer_spends_its_budget_where_the_check_looks():
    from avrobust.attacks.lidar.adaptive import spoof_past_free_space
    from avrobust.attacks.lidar.objective import FrameObjective
    from avrobust.attacks.lidar.sweep import LidarSweep
    from avrobust.attacks.lidar.threat import LidarThreat, angle_window
    from avrobust.core.boxes import in_window
    from avrobust.core.sensors import LidarSpec
    from avrobust.evaluation.lidar_attack import load_victims
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    spec = LidarSpec()
    cam = load_scenario("lead_vehicle").sensors.camera.to_spec()
    frame = render_sweep(
        "lead_vehicle", Sweep((25.0,), (0.0,), ("ClearNoon",), (0.0,)), cam, lidar=spec
    ).frames[0]
    victim = load_victims(("lidar-detector",))["lidar-detector"]
    sweep = LidarSweep.from_frame(frame, spec)
    threat = LidarThreat(points=60, azimuth=angle_window(9.75, 0.0, 1.5, 3.0))
    res = spoof_past_free_space(FrameObjective(victim, frame), sweep, spec, threat, 9.75, steps=5)
    dirs = spec.ray_directions()[res.rays]
    assert len(res.rays) == 60 and bool(in_window(dirs, res.phantom).all())
    spoofed = dirs * res.ranges[:, None]
    assert bool(res.phantom.contains(spoofed)[0].all())  # every return counts as stopped


def test_input_transformations_change_the_image_not_the_output_format():
    import dataclasses

    from avrobust.core.calibration import Calibration, CameraIntrinsics
    from avrobust.core.errors import ConfigError
    from avrobust.core.frame import Frame
    from avrobust.defences.preprocess import jpeg, jpeg_defence, median, median_defence

    g = torch.Generator().manual_seed(1)
    img = torch.full((3, 48, 64), 0.5)
    salt = img.clone()
    salt[:, 10, 10] = 1.0  # one bright pixel: a median filter removes it, JPEG blurs it
    assert float(median(salt, 3)[:, 10, 10].max()) == pytest.approx(0.5)
    noisy = (img + 0.2 * torch.rand(img.shape, generator=g)).clamp(0, 1)
    out = jpeg(noisy, 30)
    assert out.shape == noisy.shape and 0 < float((out - noisy).abs().mean()) < 0.2
    frame = Frame(Calibration(CameraIntrinsics.from_fov(64, 48, math.radians(90))), image=salt)
    seen = {}

    def model(f):
        seen["image"] = f.image
        return Detections(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), [0.5], [0], "2d", ("car",))

    for defence in (jpeg_defence(75), median_defence(3)):
        dets = defence.wrap(model)(frame)
        assert dets.kind == "2d" and dets.class_names == ("car",)
        assert not torch.equal(seen["image"], frame.image)  # the model saw the transformed image
    assert median_defence(3).wrap(model)(dataclasses.replace(frame, image=None)) is not None
    with pytest.raises(ConfigError):
        median_defence(4)
    with pytest.raises(ConfigError):
        jpeg_defence(0)


def test_local_gradient_smoothing_flattens_a_patch_and_leaves_smooth_areas():
    from avrobust.core.errors import ConfigError
    from avrobust.defences.preprocess import lgs_defence, local_gradient_smoothing

    g = torch.Generator().manual_seed(2)
    img = torch.full((3, 120, 160), 0.5)
    img[:, :, 80:] = 0.7  # one clean edge: sparse gradient, not a patch
    img[:, 40:80, 20:60] = (torch.rand(3, 40, 40, generator=g) > 0.5).float()  # a noisy patch
    out = local_gradient_smoothing(img)
    assert float((out - img)[:, 40:80, 20:60].abs().mean()) > 0.2
    assert torch.equal(out[:, :30, 100:], img[:, :30, 100:])  # far from both: untouched
    assert float((out - img)[:, :, 75:85].abs().mean()) < 0.05
    with pytest.raises(ConfigError):
        lgs_defence(threshold=1.5)


def test_attacks_pass_jpeg_by_bpda_and_the_median_by_its_own_gradient():
    from avrobust.defences.preprocess import jpeg_defence, lgs_defence, median_defence

    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 32, 32, generator=g, requires_grad=True)
    for defence in (jpeg_defence(50), lgs_defence()):
        y = defence.differentiable(x)
        assert torch.allclose(y, defence._transform(x.detach()), atol=1e-6)  # forward: exact
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(grad, torch.ones_like(x))  # backward: the identity
    y = median_defence(3).differentiable(x)
    (grad,) = torch.autograd.grad(y[:, 10, 10].sum(), x)
    assert int((grad != 0).sum()) == 3  # one chosen input per channel


def test_the_compositor_applies_a_transform_at_image_resolution_before_cropping():
    from avrobust.attacks.compositor import composite, composite_in_crop
    from avrobust.core.surface import SurfaceView
    from avrobust.data.crops import square_crop
    from avrobust.defences.preprocess import median

    quad = torch.tensor([[101.0, 53.0], [301.0, 61.0], [283.0, 203.0], [121.0, 181.0]])
    view = SurfaceView(
        "s", 1, quad, torch.ones(240, 400), torch.ones(3), torch.zeros(3), (1.0, 1.0), 10.0, 0.0
    )
    g = torch.Generator().manual_seed(4)
    image, tex = torch.rand(3, 240, 400, generator=g), torch.rand(3, 64, 64, generator=g)
    mask = torch.ones(1, 64, 64)
    box = torch.tensor([141.0, 71.0, 261.0, 186.0])

    def blur(x):
        return median(x, 3)

    full = square_crop(blur(composite(image, tex, mask, view)), box)
    local = composite_in_crop(image, tex, mask, view, box, transform=blur)
    assert torch.allclose(full, local, atol=5e-5)


def test_defend_plot_draws_roc_curves_and_names_a_bad_file(tmp_path):
    import json

    import cv2
    from typer.testing import CliRunner

    from avrobust.cli import app

    points = [
        {"threshold": t, "detection_rate": d, "false_positive_rate": f}
        for t, d, f in ((0.2, 0.5, 0.0), (0.4, 0.9, 0.01), (0.6, 1.0, 0.05))
    ]
    good = tmp_path / "spoof.json"
    good.write_text(json.dumps({"check": "free-space-check", "victim": "lidar-detector",
                                "method": "white-box", "points": points}))  # fmt: skip
    out = tmp_path / "roc.png"
    res = CliRunner().invoke(app, ["defend", "plot", str(good), "-o", str(out)])
    assert res.exit_code == 0, res.output
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 400
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = CliRunner().invoke(app, ["defend", "plot", str(bad), "-o", str(out)])
    # The command raises a DataError naming the file; `avrobust` prints it and exits 2.
    assert res.exit_code != 0 and "bad.json" in str(res.exception)
    assert "not a defend result" in str(res.exception)


def test_every_alarm_kind_a_defence_raises_is_mapped_to_sotif():
    """The report files each alarm under its SOTIF triggering conditions and threat: every
    kind raised in the defences' code must have its row."""
    import re
    from pathlib import Path

    import avrobust.defences as pkg
    from avrobust.core.alarm_kinds import ALARM_KINDS
    from avrobust.defences.monitors.wrapper import KIND, UNREADABLE
    from avrobust.driving import modality_fallback

    raised = {KIND, UNREADABLE, modality_fallback.KIND}
    for f in Path(pkg.__file__).parent.rglob("*.py"):
        text = f.read_text()
        raised |= set(re.findall(r'Alarm\(\s*"(\w+)"', text))
        raised |= set(re.findall(r'return "(\w+)", f"', text))  # sign_geometry's (kind, detail)
    assert {"see_through", "void", "class_flip", "sign_size", "doubted_sign"} <= raised
    assert raised <= set(ALARM_KINDS), raised - set(ALARM_KINDS)
    for k in ALARM_KINDS.values():
        assert k.insufficiency and k.triggering and k.threat
