"""LiDAR attacks: rays recovered from returns, the threat model enforced, spoofed returns on the
victim's own rays, keep weights that act as removal, and short attacks on a rendered frame that
beat their random baselines."""

from __future__ import annotations

import math

import pytest
import torch

from avrobust.attacks.lidar.sweep import LidarSweep, ray_index
from avrobust.attacks.lidar.threat import LidarThreat, angle_window
from avrobust.core.errors import AttackError, ConfigError
from avrobust.core.sensors import LidarSpec
from avrobust.models.lidar_detector import LidarDetector

SPEC = LidarSpec()


def _returns(rays: torch.Tensor, ranges: torch.Tensor) -> LidarSweep:
    pts = SPEC.ray_directions()[rays] * ranges[:, None]
    return LidarSweep(torch.cat([pts, torch.full((len(rays), 1), 0.5)], 1), rays)


def test_rays_are_recovered_from_the_returns_with_or_without_the_ring(gen):
    rays = torch.randperm(SPEC.channels * SPEC.columns, generator=gen)[:5000]
    sweep = _returns(rays, 2 + 60 * torch.rand(5000, generator=gen))
    assert torch.equal(ray_index(sweep.points, SPEC, rays // SPEC.columns), rays)
    assert torch.equal(ray_index(sweep.points, SPEC), rays)


def test_replacing_keeps_one_return_per_ray_and_removal_drops_them():
    sweep = _returns(torch.tensor([10, 11, 12]), torch.tensor([5.0, 6.0, 7.0]))
    moved = sweep.replace(torch.tensor([11, 13]), torch.zeros(2, 4))
    assert sorted(moved.ray.tolist()) == [10, 11, 12, 13]
    assert torch.equal(moved.points[moved.ray == 10], sweep.points[:1])
    assert moved.points[moved.ray == 11].abs().sum() == 0
    assert sweep.remove(torch.tensor([10, 12])).ray.tolist() == [11]


def _window_rays(az: float, n: int) -> torch.Tensor:
    """``n`` rays of the middle lasers at azimuth ``az`` degrees and the columns after it."""
    col = int((math.radians(az) + math.pi) / (2 * math.pi) * SPEC.columns)
    return torch.tensor([16 * SPEC.columns + col + k for k in range(n)])


def test_the_threat_model_refuses_every_way_of_exceeding_it():
    clean = _returns(_window_rays(0.0, 5), torch.full((5,), 20.0))
    threat = LidarThreat(points=3, azimuth=(-5.0, 5.0), range=(2.0, 30.0))
    rays = _window_rays(0.0, 3)
    ok = clean.replace(rays, _returns(rays, torch.tensor([8.0, 8.5, 9.0])).points)
    assert threat.check(clean, ok, SPEC) == 3
    more = _window_rays(0.0, 4)
    too_many = clean.replace(more, _returns(more, torch.full((4,), 8.0)).points)
    with pytest.raises(AttackError, match="over the budget"):
        threat.check(clean, too_many, SPEC)
    aside = _window_rays(40.0, 1)
    with pytest.raises(AttackError, match="angular window"):
        threat.check(clean, clean.replace(aside, _returns(aside, torch.tensor([8.0])).points), SPEC)
    with pytest.raises(AttackError, match="outside"):
        far = clean.replace(rays[:1], _returns(rays[:1], torch.tensor([35.0])).points)
        threat.check(clean, far, SPEC)
    off = _returns(rays[:1], torch.tensor([8.0])).points + torch.tensor([0.0, 0.05, 0.0, 0.0])
    with pytest.raises(AttackError, match="off its ray"):
        threat.check(clean, clean.replace(rays[:1], off), SPEC)
    removal = LidarThreat(points=3, azimuth=(-5.0, 5.0), mode="remove")
    assert removal.check(clean, clean.remove(rays[:2]), SPEC) == 2
    with pytest.raises(AttackError, match="created or moved"):
        removal.check(clean, ok, SPEC)
    with pytest.raises(ConfigError, match="mode"):
        LidarThreat(mode="append")  # type: ignore[arg-type]
    assert "at most 3 returns replaced" in threat.describe()


def test_keep_weights_of_one_change_nothing_and_of_zero_remove_the_point(gen):
    model = LidarDetector().eval()
    pts = torch.rand(800, 4, generator=gen) * torch.tensor([40.0, 40.0, 3.0, 1.0])
    pts = pts - torch.tensor([0.0, 20.0, 2.0, 0.0])
    base = model.canvas([pts])
    assert torch.equal(model.canvas([pts], weights=[torch.ones(800)]), base)
    w = torch.ones(800)
    w[:100] = 0
    assert torch.allclose(model.canvas([pts], weights=[w]), model.canvas([pts[100:]]))


@pytest.fixture(scope="module")
def lead_frames():
    """The lead-vehicle scenario with its lead car at 30 m and at 15 m, camera and LiDAR."""
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    camera = load_scenario("lead_vehicle").sensors.camera.to_spec()
    grid = Sweep((30.0, 15.0), (0.0,), ("ClearNoon",), (0.0,))
    return render_sweep("lead_vehicle", grid, camera, lidar=SPEC).frames


@pytest.fixture(scope="module")
def shipped_lidar():
    from avrobust.models.lidar_detector import load_lidar_model
    from avrobust.models.weights import ASSETS

    return load_lidar_model(ASSETS / "lidar_detector.pt")


def test_white_box_spoofing_on_the_victims_rays_beats_random_placement(lead_frames, shipped_lidar):
    from avrobust.attacks.lidar.objective import FrameObjective, found_near
    from avrobust.attacks.lidar.spoof import spoof

    frame = lead_frames[0]
    obj = FrameObjective(shipped_lidar, frame)
    sweep = LidarSweep.from_frame(frame, SPEC)
    assert not found_near(obj.detect(sweep.points), 0, 7.5, 0.0, 2.0)
    threat = LidarThreat(points=60, azimuth=angle_window(7.5, 0.0, 1.5, 3.0))
    rand = spoof(obj, sweep, SPEC, threat, 7.5, method="random")
    white = spoof(obj, sweep, SPEC, threat, 7.5, method="white-box", steps=20)
    assert white.score > rand.score + 0.2
    assert found_near(obj.detect(white.sweep.points), 0, 7.5, 0.0, 2.0)
    assert not found_near(obj.detect(rand.sweep.points), 0, 7.5, 0.0, 2.0)
    # The created returns lie on the rays they replace, within the budget and the window.
    assert threat.check(sweep, white.sweep, SPEC) <= 60
    created = torch.isin(white.sweep.ray, white.rays)
    p = white.sweep.points[created, :3]
    dirs = SPEC.ray_directions()[white.sweep.ray[created]]
    assert torch.allclose(p, dirs * p.norm(dim=1, keepdim=True), atol=1e-4)
    assert len(white.sweep.ray.unique()) == len(white.sweep)  # one return per ray


def test_an_object_beyond_the_detectors_grid_scores_zero_and_removal_leaves_it(
    lead_frames, shipped_lidar
):
    # In closed loop a pedestrian 60 m ahead is off the detector's grid: nothing the attack
    # removes can change what the detector reports there (it used to crash on an empty argmax).
    from avrobust.attacks.lidar.objective import FrameObjective
    from avrobust.attacks.lidar.remove import remove
    from avrobust.core.boxes import Box3D

    frame = lead_frames[0]
    obj = FrameObjective(shipped_lidar, frame)
    sweep = LidarSweep.from_frame(frame, SPEC)
    far = shipped_lidar.grid.x_range[1] + 20.0
    assert float(obj.score(sweep.points, far, 0.0, None)) == 0.0
    box = Box3D(torch.tensor([[far, 0.0, 0.9]]), torch.tensor([[0.3, 0.6, 1.8]]), torch.zeros(1))
    for method in ("random", "white-box"):
        res = remove(obj, sweep, SPEC, LidarThreat(points=50, mode="remove"), box, method)
        assert res.score == 0.0


def test_removal_hides_a_car_within_its_budget_and_random_removal_does_not(
    lead_frames, shipped_lidar
):
    from avrobust.attacks.lidar.objective import FrameObjective, overlaps
    from avrobust.attacks.lidar.remove import object_returns, remove
    from avrobust.evaluation.lidar_attack import target_box

    frame = lead_frames[1]
    box = target_box(frame, "car")
    obj = FrameObjective(shipped_lidar, frame)
    sweep = LidarSweep.from_frame(frame, SPEC)
    assert overlaps(obj.detect(sweep.points), None, box)
    x, y = float(box.center[0, 0]), float(box.center[0, 1])
    n = len(object_returns(sweep, box, SPEC, LidarThreat(azimuth=(-180.0, 180.0), mode="remove")))
    budget = int(0.85 * n)
    threat = LidarThreat(points=budget, azimuth=angle_window(x, y, 2.5, 3.0), mode="remove")
    white = remove(obj, sweep, SPEC, threat, box, "white-box")
    rand = remove(obj, sweep, SPEC, threat, box, "random")
    assert len(white.removed) <= budget and len(rand.removed) <= budget
    assert not overlaps(obj.detect(white.sweep.points), None, box)
    assert white.score < rand.score
    # Nothing but the object's returns went: every other return is untouched.
    assert set(white.removed.tolist()) <= set(
        sweep.ray[object_returns(sweep, box, SPEC, threat)].tolist()
    )


def test_removal_in_a_campaign_hides_the_lead_car_frame_by_frame(tmp_path):
    from avrobust.campaign.run import run_campaign
    from avrobust.campaign.store import ResultsStore

    p = tmp_path / "removal.yaml"
    p.write_text(
        "name: removal\nscenarios: [lead_vehicle]\nsweep: {distance: [15]}\n"
        "models: [{name: lidar-detector}]\n"
        "attacks: [{name: none}, {name: lidar-remove, params: {points: 400}}]\n"
        "episode: {frames: 2, rate: 10}\n"
        "sensors: {camera: {width: 320, height: 240, fov: 90}}\n"
    )
    out = tmp_path / "run"
    assert run_campaign(p, out).done == 2
    with ResultsStore(out, create=False) as store:
        rows = store.query(
            "SELECT j.attack, f.detected FROM frames f JOIN jobs j ON f.job_id = j.id "
            "WHERE f.target = 'lead' ORDER BY j.attack"
        )
    clean = [d for a, d in rows if '"none"' in a]
    attacked = [d for a, d in rows if "lidar-remove" in a]
    assert clean == [1, 1] and attacked == [0, 0], rows


def test_spoofing_in_a_campaign_is_scored_as_a_phantom_the_model_should_not_report(tmp_path):
    """The phantom is a target of its own: right when not reported. The clean job has no
    phantom; the shipped LiDAR detector reports the white-box phantom in every frame (a failed
    drive-by) and judges the real lead car as before."""
    from avrobust.campaign.run import run_campaign
    from avrobust.campaign.store import ResultsStore

    p = tmp_path / "spoof.yaml"
    p.write_text(
        "name: spoof\nscenarios: [lead_vehicle]\nsweep: {distance: [30]}\n"
        "models: [{name: lidar-detector}]\n"
        "attacks: [{name: none}, {name: lidar-spoof, params: {distance: 7.5, steps: 15}}]\n"
        "episode: {frames: 3, rate: 10}\n"
        "sensors: {camera: {width: 320, height: 240, fov: 90}}\n"
    )
    out = tmp_path / "run"
    assert run_campaign(p, out).done == 2
    with ResultsStore(out, create=False) as store:
        rows = store.query(
            "SELECT j.attack, f.target, f.detected, f.correct, f.distance, f.lidar_points "
            "FROM frames f JOIN jobs j ON f.job_id = j.id ORDER BY j.attack, f.frame"
        )
        enc = store.query(
            "SELECT j.attack, e.target, e.failed FROM encounters e JOIN jobs j ON e.job_id = j.id"
        )
    clean = [r for r in rows if '"none"' in r[0]]
    phantom = [r for r in rows if "lidar-spoof" in r[0] and r[1] == "phantom"]
    assert clean and all(r[1] != "phantom" for r in clean)
    assert len(phantom) == 3
    for _, _, detected, correct, distance, points in phantom:
        assert detected == 1 and correct == 0
        assert distance == pytest.approx(7.5 + 2.25, abs=0.01) and 0 < points <= 60
    assert ["lidar-spoof" in a for a, t, f in enc if t == "phantom" and f == 1] == [True]
    bad = tmp_path / "bad.yaml"
    bad.write_text(p.read_text().replace("distance: 7.5", "category: bicycle"))
    assert run_campaign(bad, tmp_path / "bad_run").failed == 1  # the clean job still runs
    with ResultsStore(tmp_path / "bad_run", create=False) as store:
        (error,) = store.query("SELECT error FROM jobs WHERE status = 'failed'")[0]
    assert "bicycle" in error and "category" in error


def _mesh():
    import numpy as np
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_box(1.0, 0.8, 0.5).translate((5.0, -0.4, 0.2))
    mesh = mesh.subdivide_midpoint(1)
    v = torch.tensor(np.asarray(mesh.vertices), dtype=torch.float64)
    return mesh, v, torch.tensor(np.asarray(mesh.triangles), dtype=torch.long)


def test_ray_triangle_ranges_match_open3d_to_the_millimetre(gen):
    import numpy as np
    import open3d as o3d

    from avrobust.attacks.lidar.raycast import first_hit

    mesh, v, f = _mesh()
    dirs = torch.randn(3000, 3, generator=gen, dtype=torch.float64) * torch.tensor(
        [0.05, 0.2, 0.2], dtype=torch.float64
    ) + torch.tensor([1.0, 0.0, 0.06], dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    t, tri = first_hit(torch.zeros_like(dirs), dirs, v, f)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    rays = np.concatenate([np.zeros((3000, 3)), dirs.numpy()], 1).astype(np.float32)
    ref = torch.from_numpy(scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()).double()
    assert 100 < int(torch.isfinite(ref).sum()) < 3000  # some hit, some miss
    assert torch.equal(torch.isfinite(t), torch.isfinite(ref))
    hit = torch.isfinite(t)
    assert float((t[hit] - ref[hit]).abs().max()) < 1e-3
    assert (tri[~hit] == -1).all() and (tri[hit] >= 0).all()


def test_ray_triangle_gradients_match_finite_differences():
    from avrobust.attacks.lidar.raycast import first_hit

    _, v, f = _mesh()
    dirs = torch.tensor(
        [[1.0, 0.02, 0.07], [1.0, -0.05, 0.1], [1.0, 0.06, 0.05]], dtype=torch.float64
    )
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    origins = torch.zeros_like(dirs)

    def ranges(vertices):
        return first_hit(origins, dirs, vertices, f)[0]

    assert torch.isfinite(ranges(v)).all()
    verts = v.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(ranges, (verts,), eps=1e-6, atol=1e-5)


def test_lidar_attack_commands_write_cases_and_pictures(tmp_path):
    import json

    import cv2
    from typer.testing import CliRunner

    from avrobust.cli import app

    one = ["--victims", "lidar-detector", "--weathers", "ClearNoon", "--laterals", "0"]
    out = tmp_path / "spoof.json"
    spoof = ["attack", "lidar-spoof", "--out", str(out), "--pictures", str(tmp_path), *one]
    frames = ["--distances", "30", "--phantoms", "7.5", "--methods", "random,white-box"]
    result = CliRunner().invoke(app, [*spoof, *frames, "--steps", "5"])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == ["random", "white-box"]
    assert all(r["changed"] <= 60 for r in rows)
    picture = cv2.imread(str(tmp_path / "spoof_lidar-detector.png"))
    assert picture is not None and picture.shape[1] > 2 * picture.shape[0]
    remove = ["attack", "lidar-remove", "--out", str(tmp_path / "r.json"), *one]
    result = CliRunner().invoke(app, [*remove, "--distances", "20", "--budgets", "30"])
    assert result.exit_code == 0, result.output
    assert "hiding the lead car" in result.output
    bad = CliRunner().invoke(
        app, ["attack", "lidar-remove", "--out", "x.json", "--victims", "nope"]
    )
    assert "unknown victim" in str(bad.exception)


def test_transfer_attacks_are_made_on_the_surrogate_and_judged_by_the_victim(
    lead_frames, shipped_lidar
):
    """A defence's non-adaptive number: the attack made against the undefended model. Made
    against the victim itself, the transfer is the white-box attack, case for case."""
    from avrobust.core.errors import ConfigError
    from avrobust.evaluation.lidar_attack import load_victims, removal_frames, spoof_frames
    from avrobust.evaluation.viewpoints import SweepFrames, Viewpoint
    from avrobust.models.weights import ASSETS

    named = f"lidar-detector={ASSETS / 'lidar_detector.pt'}"
    victims = load_victims((named,))
    assert list(victims) == [named]
    frames = SweepFrames([Viewpoint(15.0, 0.0, "ClearNoon", 0.0)], [lead_frames[1]])
    methods = ("white-box", "transfer")
    run = spoof_frames(victims, frames, SPEC, (7.5,), methods, steps=10, surrogate=shipped_lidar)
    white, transfer = run.rows
    assert (white.method, transfer.method) == methods
    assert white.success == transfer.success and transfer.score == pytest.approx(white.score)
    run = removal_frames(victims, frames, SPEC, (40,), methods, surrogate=shipped_lidar)
    white, transfer = run.rows
    assert white.changed == transfer.changed and transfer.score == pytest.approx(white.score)
    with pytest.raises(ConfigError, match="surrogate"):
        spoof_frames(victims, frames, SPEC, (7.5,), ("transfer",), steps=2)


def test_the_frustum_attack_puts_a_car_at_the_wrong_depth_inside_the_cameras_view(lead_frames):
    from avrobust.attacks.lidar.objective import FrameObjective, found_near
    from avrobust.attacks.lidar.spoof import frustum_phantom, phantom_box, spoof
    from avrobust.evaluation.lidar_attack import load_victims, target_box
    from avrobust.models.box3d_metrics import bev_iou

    frame = lead_frames[1]
    real = target_box(frame, "car")
    x, y = frustum_phantom(real, -5.0)
    r_real = float(real.center[0, :2].norm())
    assert math.hypot(x, y) == pytest.approx(r_real - 5.0)
    assert math.atan2(y, x) == pytest.approx(math.atan2(real.center[0, 1], real.center[0, 0]))
    # Inside the camera's view of the real car: the two boxes overlap in the image.
    phantom = phantom_box("car", x, y, float(real.center[0, 2] - real.size[0, 2] / 2))
    a, _ = phantom.project(frame.calibration)
    b, _ = real.project(frame.calibration)
    assert float(bev_iou(phantom, real)) == 0.0
    from torchvision.ops import box_iou

    assert float(box_iou(a.xyxy, b.xyxy)) > 0.2
    late = load_victims(("fusion-late",))["fusion-late"]
    obj = FrameObjective(late, frame)
    sweep = LidarSweep.from_frame(frame, SPEC)
    threat = LidarThreat(points=60, azimuth=angle_window(x, y, 1.5, 3.0))
    res = spoof(obj, sweep, SPEC, threat, x, y, method="white-box", steps=10)
    assert found_near(obj.detect(res.sweep.points), 0, x, y, 2.0)


def _host_view(frame, victim):
    from avrobust.attacks.lidar.adv_object import HostView
    from avrobust.attacks.lidar.objective import FrameObjective
    from avrobust.evaluation.lidar_attack import target_box

    return HostView(
        FrameObjective(victim, frame), LidarSweep.from_frame(frame, SPEC), target_box(frame, "car")
    )


def test_an_object_cast_differentiably_lands_where_open3d_recasts_it(lead_frames, shipped_lidar):
    from avrobust.attacks.lidar.adv_object import (
        AdversarialObject,
        host_pose,
        insert_object,
        recast_object,
        roof_box,
    )

    view = _host_view(lead_frames[1], shipped_lidar)
    obj = AdversarialObject(*roof_box())
    verts = obj.placed(host_pose(view.box))
    mine = insert_object(view.sweep, SPEC, verts, obj.faces, obj.reflectivity)
    ref = recast_object(view.sweep, SPEC, verts, obj.faces, obj.reflectivity)
    assert len(mine) == len(ref) and set(mine.ray.tolist()) == set(ref.ray.tolist())
    a = mine.points[mine.ray.argsort()]
    b = ref.points[ref.ray.argsort()]
    assert float((a - b).abs().max()) < 1e-3

    def ranges(s: LidarSweep) -> torch.Tensor:
        r = torch.full((SPEC.channels * SPEC.columns,), float("inf"))
        r[s.ray] = s.points[:, :3].norm(dim=1)
        return r

    # The LiDAR sees the box on the roof: nearer returns on the rays it occludes, none farther
    # (few: at 15 m the box's top is level with the LiDAR and one or two lasers hit it).
    before, after = ranges(view.sweep), ranges(mine)
    assert int((after < before - 1e-4).sum()) >= 5
    assert not bool((after > before + 1e-4).any())


def test_adversarial_objects_export_meshes_that_open(tmp_path):
    import open3d as o3d

    from avrobust.attacks.lidar.adv_object import AdversarialObject, roof_box

    obj = AdversarialObject(*roof_box(), max_offset=0.1)
    obj.offsets = torch.full_like(obj.base, 0.5)  # clamped to the stated 0.1 m
    assert float((obj.vertices() - obj.base).abs().max()) <= 0.1 + 1e-6
    for suffix in (".obj", ".ply", ".stl"):
        mesh = o3d.io.read_triangle_mesh(str(obj.save(tmp_path / f"box{suffix}")))
        assert len(mesh.triangles) == len(obj.faces)
    with pytest.raises(ConfigError, match=r"\.obj, \.ply or \.stl"):
        obj.save(tmp_path / "box.glb")


def test_an_object_stays_on_its_mount_and_inside_its_bounds():
    from avrobust.attacks.lidar.adv_object import AdversarialObject, rear_carrier

    obj = AdversarialObject(*rear_carrier(), max_offset=1.0, mount="rear")
    obj.offsets = torch.randn_like(obj.base, generator=torch.Generator().manual_seed(0)) * 2
    v = obj.vertices()
    # Nothing inside the host (its rear face is x = 0) or below the hitch.
    assert float(v[:, 0].max()) <= 0.0 and float(v[:, 2].min()) >= 0.0
    assert float((v - obj.base).abs().max()) <= 1.0 + 1e-6
    obj.bounds = ((-0.5, 0.0), (-0.9, 0.9), (0.0, 1.2))
    v = obj.vertices()
    for k, (lo, hi) in enumerate(obj.bounds):
        assert lo - 1e-6 <= float(v[:, k].min()) and float(v[:, k].max()) <= hi + 1e-6


def test_optimising_the_object_lowers_the_victims_score_for_its_host(lead_frames, shipped_lidar):
    from avrobust.attacks.lidar.adv_object import AdversarialObject, optimise_object, roof_box

    obj = AdversarialObject(*roof_box(), max_offset=0.3)
    history = optimise_object(obj, [_host_view(lead_frames[1], shipped_lidar)], SPEC, steps=8)
    assert history[-1] < history[0]
    assert float(obj.offsets.abs().max()) <= 0.3 + 1e-6


def test_methods_are_objects_and_their_names_build_them():
    from avrobust.attacks.lidar.remove import GradientRemoval, RandomRemoval, removal_method
    from avrobust.attacks.lidar.spoof import GradientSpoof, QuerySpoof, RandomSpoof, spoof_method

    assert spoof_method("white-box", steps=7, lr=0.1) == GradientSpoof(steps=7, lr=0.1)
    assert spoof_method("black-box", steps=9) == QuerySpoof(steps=9)
    assert spoof_method("random") == RandomSpoof()
    mine = QuerySpoof(steps=3, sigma=0.2)
    assert spoof_method(mine) is mine
    assert removal_method("white-box", per_round=4) == GradientRemoval(per_round=4)
    assert removal_method("random") == RandomRemoval()
    with pytest.raises(ConfigError, match="random, black-box, white-box"):
        spoof_method("gradient")
    with pytest.raises(ConfigError, match="random, white-box"):
        removal_method("black-box")


def test_a_lidar_attack_gives_the_victim_back_as_it_was(lead_frames, shipped_lidar):
    """An attack on a model being trained (adversarial training) leaves it in training mode
    with trainable weights and no gradient in them."""
    from avrobust.attacks.lidar.objective import FrameObjective
    from avrobust.attacks.lidar.spoof import GradientSpoof, spoof

    model = shipped_lidar.train()
    try:
        frame = lead_frames[0]
        sweep = LidarSweep.from_frame(frame, SPEC)
        threat = LidarThreat(points=20, azimuth=angle_window(10.0, 0.0, 2.0, 3.0))
        spoof(FrameObjective(model, frame), sweep, SPEC, threat, 10.0, method=GradientSpoof(3))
        assert all(m.training for m in model.modules())
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
    finally:
        model.eval()
