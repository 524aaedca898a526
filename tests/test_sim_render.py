"""The embedded simulator's promises: geometry to the pixel, ranges, weather, gradients, seeds."""

import math

import pytest
import torch

from avrobust.core.sensors import CameraSpec, LidarSpec, Mount
from avrobust.core.weather import Weather
from avrobust.sim.roads import RoadLayout
from avrobust.sim.scene import (
    EgoRoute,
    PatchPlacement,
    SceneDescription,
    SignPlacement,
    VehiclePlacement,
)
from avrobust.sim.signs import SIGN_TYPES
from avrobust.sim.simulator import Simulator

CAM = CameraSpec(
    320, 240, math.radians(60), Mount(1.5, 0.0, 1.5, 0.0, math.radians(2), 0.0), noise_stddev=0.0
)
LIDAR = LidarSpec(
    channels=16,
    points_per_second=16 * 512 * 10,
    upper_fov=math.radians(5),
    lower_fov=math.radians(-15),
    noise_stddev=0.01,
)
CLEAR = Weather(cloudiness=10, sun_altitude_angle=50, sun_azimuth_angle=120)


def _scene(**kw) -> SceneDescription:
    base = dict(
        name="t",
        road=RoadLayout("straight", 120, environment="urban"),
        ego=EgoRoute(0.0, -1, 0.0),
        signs=(SignPlacement("stop", 20.0, surface="stop_face"),),
        clutter=0.0,
        seed=3,
    )
    base.update(kw)
    return SceneDescription(**base)


def test_sign_lands_at_its_projected_pixel_box():
    sim = Simulator(_scene(), CAM, None, CLEAR)
    frame = sim.render(0.0).frame
    i = frame.truth.categories.index("traffic_sign")
    rendered = frame.truth.boxes_2d.xyxy[i]
    # Expected: the octagon's vertices, placed by hand, projected with the calibration.
    st = SIGN_TYPES["stop"]
    outline = torch.tensor(st.outline())
    zc = 2.0 + st.face_extent / 2  # lower edge at 2.0 m; the octagon is as tall as it is wide
    # The sign stands at s = 20 on the right, 0.8 m beyond the 3.5 m lane; its face looks back
    # along -x, so a viewer sees its local +y (outline y) on their right, i.e. world -y.
    world = torch.stack(
        [torch.full((8,), 20.0, dtype=torch.float64), -4.3 - outline[:, 0], zc + outline[:, 1]], 1
    )
    ego_y = -1.75
    lidar_frame = world - torch.tensor([0.0, ego_y, 1.9], dtype=torch.float64)
    uv, _ = frame.calibration.project(frame.calibration.lidar_points_to_camera(lidar_frame))
    expected = torch.stack([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    assert rendered.tolist() == pytest.approx(expected.float().tolist(), abs=1.0)
    assert frame.truth.subclasses[i] == "stop"
    assert frame.truth.visible_fraction[i] > 0.95


def test_lidar_return_from_a_wall_comes_back_at_its_range():
    wall = PatchPlacement("wall", "billboard", s=30.0, lateral=-1.75, size=(8.0, 3.0), height=0.0)
    sim = Simulator(_scene(signs=(), patches=(wall,)), None, LIDAR, CLEAR)
    raw = sim.render(0.0)
    carrier = sim.world.objects["wall_carrier"].instance_id
    pts = raw.frame.points[raw.frame.point_instance == carrier]
    assert pts.shape[0] > 50
    # The wall's front is 2 mm in front of s = 30; the LiDAR sits at the ego's origin.
    x = pts[:, 0]
    assert (x - 29.998).abs().max() < 5 * LIDAR.noise_stddev
    assert x.median().item() == pytest.approx(29.998, abs=0.01)


def _contrast(image: torch.Tensor) -> float:
    return float(image.mean(0).std())


def test_fog_lowers_contrast_and_point_count_monotonically():
    contrasts, counts = [], []
    scene = _scene(
        signs=(SignPlacement("stop", 20.0),),
        vehicles=(VehiclePlacement("car", "sedan", 35.0),),
        road=RoadLayout("straight", 150, environment="urban"),
        clutter=1.0,
    )
    for density in (0.0, 30.0, 60.0, 100.0):
        sim = Simulator(scene, CAM, LIDAR, CLEAR.replace(fog_density=density), seed=1)
        raw = sim.render(0.0, truth=False)
        contrasts.append(_contrast(raw.frame.image))
        counts.append(raw.frame.points.shape[0])
    assert contrasts == sorted(contrasts, reverse=True) and contrasts[0] > 1.5 * contrasts[-1]
    assert counts == sorted(counts, reverse=True) and counts[0] > 1.2 * counts[-1]


def test_texture_gradient_flows_only_through_visible_sign_pixels():
    sim = Simulator(_scene(), CAM, None, CLEAR)
    tex = sim.world.materials["stop_face"].texture.clone().requires_grad_(True)
    out = sim.render(0.0, textures={"stop_face": tex}).camera
    on_sign = out.material == sim.world.material_names.index("stop_face")
    assert on_sign.sum() > 50
    (out.image * on_sign).sum().backward()
    assert tex.grad is not None and tex.grad.abs().sum() > 0
    tex.grad = None
    out = sim.render(0.0, textures={"stop_face": tex}).camera
    (out.image * ~on_sign).sum().backward()
    assert tex.grad is None or tex.grad.abs().sum() == 0


def test_occluded_sign_gets_no_gradient():
    # The same sign, first in plain view, then hidden behind a van 10 m ahead in the ego lane.
    open_view = Simulator(_scene(), CAM, None, CLEAR).render(0.0).frame
    assert open_view.surfaces["stop_face"].visible_pixels > 50
    scene = _scene(vehicles=(VehiclePlacement("van", "van", 10.0, lateral_offset=-0.4),))
    sim = Simulator(scene, CAM, None, CLEAR)
    tex = sim.world.materials["stop_face"].texture.clone().requires_grad_(True)
    raw = sim.render(0.0, textures={"stop_face": tex})
    assert raw.frame.surfaces["stop_face"].visible_pixels == 0
    # No pixel depends on the texture, so autograd has nothing to differentiate.
    assert not raw.frame.image.requires_grad


def test_same_seed_same_frame_bit_for_bit():
    cam = CameraSpec(160, 120, math.radians(70), noise_stddev=0.02)
    weather = CLEAR.replace(precipitation=60.0, fog_density=20.0)
    a = Simulator(_scene(clutter=1.0), cam, LIDAR, weather, seed=9).render(0.3, 4).frame
    b = Simulator(_scene(clutter=1.0), cam, LIDAR, weather, seed=9).render(0.3, 4).frame
    c = Simulator(_scene(clutter=1.0), cam, LIDAR, weather, seed=10).render(0.3, 4).frame
    assert torch.equal(a.image, b.image) and torch.equal(a.points, b.points)
    assert not torch.equal(a.image, c.image)


def test_projected_lidar_points_fall_on_the_objects_they_hit():
    scene = _scene(
        vehicles=(
            VehiclePlacement("lead", "suv", 15.0),
            VehiclePlacement("parked", "sedan", 25.0, parked=True),
        ),
        clutter=1.0,
    )
    lidar = LidarSpec(channels=32, points_per_second=32 * 1024 * 10, noise_stddev=0.0)
    sim = Simulator(scene, CAM, lidar, CLEAR)
    f = sim.render(0.0).frame
    uv, _, vis = f.calibration.project_lidar(f.points)
    keep = vis & (f.point_instance > 0)
    px = uv[keep].long()
    seen = f.instance_map[px[:, 1], px[:, 0]]
    agree = (seen == f.point_instance[keep]).float().mean().item()
    assert keep.sum() > 200
    # The two sensors sit 0.4 m apart, so a few points near silhouettes see different things.
    assert agree > 0.9


@pytest.mark.parametrize(
    "spec",
    [
        CAM,
        CameraSpec(640, 480, math.radians(90)),
        CameraSpec(200, 150, math.radians(30), antialias=2),
    ],
    ids=["320x240", "640x480", "antialiased"],
)
def test_glare_reaches_every_pixel_near_the_sun(spec):
    # The glare is computed over a band of image rows found on a coarse grid of rays: whatever
    # the camera's heading and pitch, no pixel within the glare's cut of the sun lies outside it.
    from avrobust.core.conventions import rotation_matrix
    from avrobust.sim.camera import GLARE_CUT

    sim = Simulator(_scene(), spec, None, Weather(sun_altitude_angle=20, sun_azimuth_angle=10))
    cam = sim.camera
    bands = 0
    for yaw in range(0, 360, 20):
        for pitch in (-30, 0, 25):
            rot = rotation_matrix(0.0, math.radians(pitch), math.radians(yaw), torch.float32)
            band = cam._glare_band(sim.light, rot)
            cos = (rot.T @ sim.light.sun_dir) @ cam._rays_body_t
            near = torch.nonzero(cos > GLARE_CUT).flatten()
            if band is None:
                assert near.numel() == 0, (yaw, pitch)
                continue
            bands += 1
            assert band.start % cam._render_intr.width == 0  # whole rows
            if near.numel():
                assert band.start <= int(near.min()) and int(near.max()) < band.stop, (yaw, pitch)
    assert bands >= 3  # the sun was near the view in some of these headings
