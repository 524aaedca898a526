"""The adversarial object in the simulator: fixed to its host where the attack placed it, seen
by both sensors, its texture differentiable exactly on its own pixels, exported with its
texture, and a short camera-side optimisation that lowers the detector's score."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from avrobust.attacks.lidar.adv_object import AdversarialObject, host_pose, rear_carrier
from avrobust.core.errors import ConfigError, DataError
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.evaluation.lidar_attack import target_box
from avrobust.evaluation.object_attack import host_box_2d
from avrobust.evaluation.viewpoints import Sweep, view_backend
from avrobust.scenario.library import load_scenario

CAMERA = CameraSpec(width=320, height=240)
LIDAR = LidarSpec()
VIEW = next(iter(Sweep((12.0,), (0.0,), ("ClearNoon",), (0.0,)).viewpoints()))


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("lead_vehicle")


@pytest.fixture(scope="module")
def carrier() -> AdversarialObject:
    return AdversarialObject(*rear_carrier((0.3, 1.6, 1.0), 1), mount="rear")


def _render(scenario, attachments, truth=True):
    with view_backend(scenario, VIEW, CAMERA, LIDAR, attachments) as backend:
        ids = {n: backend.object_id(n) for n in ("lead", *[a.name for a in attachments])}
        return backend.render(0, truth=truth).frame, ids


def test_an_attachment_rides_on_its_host_where_the_attack_places_it(scenario, carrier):
    att = carrier.attachment("lead", torch.rand(3, 8, 8, generator=torch.Generator()))
    clean, _ = _render(scenario, [])
    frame, ids = _render(scenario, [att])
    mine = ids[att.name]
    # The host's ground truth is its own: the same 3D box with the object behind it.
    assert torch.allclose(target_box(frame, "car").center, target_box(clean, "car").center)
    # LiDAR: returns from the object, all inside the box around the vertices placed by the
    # attack's own host pose (from the 3D truth box), give or take the range noise (five
    # standard deviations: with a hundred returns, a few lie beyond two or three).
    on = frame.point_instance == mine
    assert int(on.sum()) >= 20
    placed = carrier.placed(host_pose(target_box(clean, "car"), "rear"))
    pts = frame.points[on, :3]
    tol = 5 * LIDAR.noise_stddev
    assert bool((pts >= placed.min(0).values - tol).all())
    assert bool((pts <= placed.max(0).values + tol).all())
    # Camera: the object's pixels sit inside the host's clean 2D box, covering its lower part.
    ys, xs = torch.nonzero(frame.instance_map == mine, as_tuple=True)
    box = host_box_2d(clean, ids["lead"])
    assert len(xs) >= 100
    assert box[0] - 1 <= xs.min() and xs.max() <= box[2] + 1
    assert ys.max() <= box[3] + 1 and ys.min() > box[1]


def test_the_object_texture_gradient_lives_exactly_on_its_visible_pixels(scenario, carrier):
    att = carrier.attachment("lead")
    frame, ids = _render(scenario, [att])
    on = (frame.instance_map == ids[att.name]).float()
    with view_backend(scenario, VIEW, CAMERA, LIDAR, [att]) as backend:
        tex = torch.full((3, 8, 8), 0.5, requires_grad=True)
        backend.textures = {att.name: tex}
        image = backend.render(0, truth=False).frame.image
        (inside,) = torch.autograd.grad((image * on).sum(), tex, retain_graph=True)
        (outside,) = torch.autograd.grad((image * (1 - on)).sum(), tex, allow_unused=True)
    assert float(inside.abs().sum()) > 0
    assert outside is None or float(outside.abs().sum()) == 0.0


def test_an_attachment_needs_a_host_in_the_scene(scenario, carrier):
    bad = carrier.attachment("no_such_car")
    with pytest.raises(ConfigError, match="no_such_car") as err:
        _render(scenario, [bad])
    assert err.value.field == "host"
    bonnet = dataclasses.replace(carrier.attachment("lead"), mount="bonnet")
    with pytest.raises(ConfigError, match="bonnet") as err:
        _render(scenario, [bonnet])
    assert err.value.field == "mount"


def test_a_textured_object_exports_as_obj_with_its_texture(tmp_path, carrier):
    import open3d as o3d

    tex = torch.rand(3, 12, 20, generator=torch.Generator().manual_seed(3))
    path = carrier.save(tmp_path / "carrier.obj", tex)
    assert path.with_suffix(".mtl").is_file()
    mesh = o3d.io.read_triangle_mesh(str(path), True)
    assert mesh.has_textures() and len(mesh.triangles) == len(carrier.faces)
    image = np.asarray(mesh.textures[0])
    assert np.array_equal(image, (tex * 255).round().byte().permute(1, 2, 0).numpy())
    # OBJ counts v up from the image's bottom: the stored coordinates are flipped.
    uv = np.asarray(mesh.triangle_uvs).reshape(-1, 3, 2)
    want = carrier.uvs()
    assert np.allclose(uv[..., 0], want[..., 0], atol=1e-5)
    assert np.allclose(uv[..., 1], 1 - want[..., 1], atol=1e-5)
    with pytest.raises(ConfigError, match=r"\.obj"):
        carrier.save(tmp_path / "carrier.ply", tex)


def test_a_short_texture_optimisation_lowers_the_detectors_score(
    scenario, carrier, lively_detector
):
    from avrobust.attacks.eot import EOT
    from avrobust.attacks.lidar.object_texture import ObjectTextureAttack, ObjectView

    att = carrier.attachment("lead")
    clean, ids = _render(scenario, [])
    backend = view_backend(scenario, VIEW, CAMERA, None, [att])
    views = [ObjectView(backend, host_box_2d(clean, ids["lead"]))]
    attack = ObjectTextureAttack(lively_detector, steps=8, batch=1, eot="none", lr=0.5)
    grey = torch.full((3, 16, 20), 0.5)
    with torch.no_grad():
        before = attack.scores(views, att.name, grey, EOT("none"), 0)
        texture, history = attack(views, att.name, (16, 20))
        after = attack.scores(views, att.name, texture, EOT("none"), 0)
    backend.close()
    assert texture.shape == (3, 16, 20) and 0 <= float(texture.min()) <= float(texture.max()) <= 1
    assert len(history) == 8
    assert float(after[0]) < float(before[0])


@pytest.mark.slow
def test_the_object_attack_command_writes_mesh_texture_results_and_pictures(tmp_path):
    import json

    import cv2
    import open3d as o3d
    from typer.testing import CliRunner

    from avrobust.cli import app

    args = ["attack", "lidar-object", "--out", str(tmp_path), "--size", "0.3,1.6,1.0",
            "--steps", "2", "--texture-steps", "2", "--victims", "lidar-detector,fusion-late",
            "--distances", "12", "--weathers", "ClearNoon", "--laterals", "0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "object.results.json").read_text())
    judged = results["re-rendered, held_out"]
    assert set(judged) == {"camera", "lidar-detector", "fusion-late"}
    assert list(judged["fusion-late"]) == ["no object", "grey object", "textured object"]
    assert judged["fusion-late"]["no object"].endswith("/1 found")
    assert set(results["re-cast, camera clean"]["held_out"]) == {"lidar-detector", "fusion-late"}
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "object.obj"), True)
    assert mesh.has_textures() and np.asarray(mesh.textures[0]).shape == (56, 72, 3)
    assert torch.load(tmp_path / "object.offsets.pt").shape[1] == 3
    # The texture as a true-size print: the base shape's rear face, 1.6 m wide, 1.0 m tall.
    from avrobust.core.patch import Patch

    patch = Patch.load(tmp_path / "object.patch")
    assert patch.size_m == pytest.approx((1.6, 1.0)) and patch.texture.shape == (3, 56, 72)
    for victim in ("lidar-detector", "fusion-late"):
        picture = cv2.imread(str(tmp_path / "pictures" / f"object_{victim}.png"))
        assert picture is not None and picture.shape[0] > 3 * 200  # a row per variant


def test_a_saved_object_loads_back_as_the_same_attachment(tmp_path, carrier):
    from avrobust.attacks.lidar.object_in_campaign import load_attachment

    tex = torch.rand(3, 12, 20, generator=torch.Generator().manual_seed(4))
    path = carrier.save(tmp_path / "carrier.obj", tex)
    loaded = load_attachment(path, "lead", "rear")
    made = carrier.attachment("lead", tex)
    assert loaded.host == "lead" and loaded.mount == "rear" and len(loaded.faces) == len(made.faces)
    # Same triangles in space (Open3D may renumber vertices) and in the texture.
    corners = loaded.vertices[loaded.faces]
    assert np.allclose(corners, made.vertices[made.faces], atol=1e-5)
    assert np.allclose(loaded.uvs, made.uvs, atol=1e-5)
    assert float((loaded.texture - tex).abs().max()) <= 0.5 / 255 + 1e-6
    grey = load_attachment(path, "lead", textured=False)
    assert float(grey.texture.std()) == 0.0
    with pytest.raises(DataError):
        load_attachment(tmp_path / "none.obj", "lead")


def test_the_object_in_a_campaign_rides_with_the_lead_car_in_every_frame(tmp_path, carrier):
    """Both sensors see the object in every frame: the lead car behind it loses LiDAR returns,
    and a CARLA campaign with the object is refused with a reason."""
    from avrobust.backends.factory import make_backend
    from avrobust.campaign.run import run_campaign
    from avrobust.campaign.store import ResultsStore

    carrier.save(tmp_path / "carrier.obj", torch.rand(3, 8, 8))
    p = tmp_path / "object.yaml"
    p.write_text(
        "name: object\nscenarios: [lead_vehicle]\nsweep: {distance: [12]}\n"
        "models: [{name: none}]\n"
        f"attacks: [{{name: none}}, {{name: adversarial-object, params: {{mesh: "
        f"{tmp_path / 'carrier.obj'}}}}}]\n"
        "episode: {frames: 2, rate: 10}\n"
        "sensors: {camera: {width: 320, height: 240, fov: 90}}\n"
    )
    out = tmp_path / "run"
    assert run_campaign(p, out).done == 2
    with ResultsStore(out, create=False) as store:
        rows = store.query(
            "SELECT j.attack, f.lidar_points, f.visible_fraction FROM frames f "
            "JOIN jobs j ON f.job_id = j.id WHERE f.target = 'lead' ORDER BY j.attack, f.frame"
        )
    clean = [r for r in rows if '"none"' in r[0]]
    hidden = [r for r in rows if "adversarial-object" in r[0]]
    assert len(clean) == len(hidden) == 2
    for (_, pts_clean, vis_clean), (_, pts, vis) in zip(clean, hidden, strict=True):
        assert pts < pts_clean and vis < vis_clean
    with pytest.raises(ConfigError, match="embedded"):
        make_backend("carla", {}, [carrier.attachment("lead")])


def test_offsets_that_do_not_fit_the_shape_are_refused_before_any_work(tmp_path):
    from avrobust.evaluation.object_attack import ObjectAttackSetup, run_object_attack

    victims = {"fusion-late": None}
    wrong = tmp_path / "wrong.offsets.pt"
    torch.save(torch.zeros(5, 3), wrong)
    with pytest.raises(ConfigError, match="do not fit") as err:
        run_object_attack(ObjectAttackSetup(offsets=wrong, texture_steps=0), victims)
    assert err.value.field == "offsets"
    junk = tmp_path / "junk.pt"
    junk.write_text("not a tensor")
    with pytest.raises(DataError, match=r"junk\.pt"):
        run_object_attack(ObjectAttackSetup(offsets=junk, texture_steps=0), victims)
