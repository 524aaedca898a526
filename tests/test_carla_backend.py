"""The CARLA backend without a server: conversions with the real carla value types, scenario to
carla objects, road placement on a real ``carla.Map`` from OpenDRIVE, texture resampling into a
real ``carla.TextureColor``, ground truth against hand-computed boxes, and the job life cycle on
a recording stand-in for the server (``tests/carla_standin.py``). A live test runs when
``AVROBUST_CARLA_HOST`` names a server (docs/carla.md)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

carla = pytest.importorskip("carla")

from carla_standin import Client, EnvObject, Recorder, World  # noqa: E402

from avrobust.backends.base import EpisodeSpec  # noqa: E402
from avrobust.backends.carla import convert, textures  # noqa: E402
from avrobust.backends.carla.backend import CarlaBackend, connect  # noqa: E402
from avrobust.backends.carla.road import RoadFrame, opendrive_for  # noqa: E402
from avrobust.backends.carla.truth import Tracked, WorldBox, ground_truth  # noqa: E402
from avrobust.core import make_pose  # noqa: E402
from avrobust.core.calibration import Calibration, CameraIntrinsics  # noqa: E402
from avrobust.core.conventions import from_carla  # noqa: E402
from avrobust.core.errors import BackendError, ConfigError  # noqa: E402
from avrobust.core.sensors import CameraSpec, LidarSpec  # noqa: E402
from avrobust.core.weather import PRESETS  # noqa: E402
from avrobust.scenario.library import load_scenario  # noqa: E402
from avrobust.scenario.schema import MapSpec, PoseSpec, Scenario  # noqa: E402


def test_pose_round_trip_through_carla_transforms():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        xyz = (torch.rand(3, generator=g) * 40 - 20).tolist()
        roll, pitch, yaw = (
            (torch.rand(3, generator=g) - 0.5) * torch.tensor([1.0, 1.0, 6.0])
        ).tolist()
        pose = make_pose(xyz, roll, pitch, yaw).numpy()
        t = convert.pose_to_transform(pose)
        assert isinstance(t, carla.Transform)
        back = convert.transform_to_pose(t).numpy()
        assert np.allclose(back, pose, atol=1e-5)
    # A known one: 10 m ahead, 2 m to our left is CARLA's y = -2; turning left is CARLA yaw < 0.
    t = convert.pose_to_transform(make_pose((10.0, 2.0, 1.0), 0.0, 0.0, math.radians(30)).numpy())
    assert (t.location.x, t.location.y, t.location.z) == pytest.approx((10.0, -2.0, 1.0))
    assert t.rotation.yaw == pytest.approx(-30.0)
    # CARLA's own matrix of the transform agrees with ours, once y is mirrored.
    m = np.array(t.get_matrix())
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    assert np.allclose(
        flip @ m @ flip, make_pose((10.0, 2.0, 1.0), 0, 0, math.radians(30)).numpy(), atol=1e-5
    )


def test_a_known_point_lands_on_the_same_pixel_in_both_conventions():
    """A point 20 m ahead, 3 m right, 1 m up of a camera: CARLA's documented projection (UE4
    x forward, y right, z up to image u right, v down) and ours give the same pixel."""
    k = CameraIntrinsics.from_fov(800, 600, math.radians(90))
    cam_pose = make_pose((1.5, 0.0, 1.6), 0.0, 0.0, 0.0)
    cal = Calibration(k, camera_pose=cam_pose)
    x_c, y_c, z_c = 20.0, 3.0, 1.0  # CARLA camera frame
    f = 800 / (2 * math.tan(math.radians(45)))
    u_carla, v_carla = 400 + f * y_c / x_c, 300 - f * z_c / x_c
    # The same point in our LiDAR frame (LiDAR at the ego origin): camera offset plus the point.
    (px, py, pz), _ = from_carla(x_c, y_c, z_c)
    pts = torch.tensor([[1.5 + px, py, 1.6 + pz, 1.0]])
    uv, _, vis = cal.project_lidar(pts)
    assert vis[0]
    assert uv[0].tolist() == pytest.approx([u_carla, v_carla], abs=1e-3)
    # And CARLA's raw LiDAR points mirror the same way.
    raw = np.array([[x_c, y_c, z_c, 0.3]], np.float32).tobytes()
    assert convert.lidar_to_points(raw).tolist()[0] == pytest.approx([x_c, -y_c, z_c, 0.3])


def test_weather_and_sensor_attributes_for_carla():
    w = convert.weather_parameters(PRESETS["HardRainNoon"])
    assert isinstance(w, carla.WeatherParameters)
    ref = carla.WeatherParameters.HardRainNoon
    for name in ("cloudiness", "precipitation", "precipitation_deposits", "fog_density", "wetness"):
        assert getattr(w, name) == pytest.approx(getattr(ref, name))
    assert w.sun_azimuth_angle == pytest.approx((-PRESETS["HardRainNoon"].sun_azimuth_angle) % 360)
    cam = CameraSpec(1280, 720, math.radians(70), exposure=2.0)
    a = convert.camera_attributes(cam, 10.0)
    assert a["image_size_x"] == "1280" and a["image_size_y"] == "720"
    assert float(a["fov"]) == pytest.approx(70.0) and float(a["exposure_compensation"]) == 1.0
    assert float(a["sensor_tick"]) == pytest.approx(0.1)
    lid = LidarSpec(channels=32, points_per_second=327_680, rotation_frequency=10.0)
    la = convert.lidar_attributes(lid, 20.0)
    # One whole sweep per frame: rotation at the frame rate, the same columns per sweep.
    assert float(la["rotation_frequency"]) == 20.0
    assert int(la["points_per_second"]) == 655_360
    assert float(la["upper_fov"]) == pytest.approx(math.degrees(lid.upper_fov))
    mount = convert.mount_transform(cam.mount)
    assert isinstance(mount, carla.Transform)
    assert mount.location.x == pytest.approx(cam.mount.x)
    assert mount.rotation.pitch == pytest.approx(-math.degrees(cam.mount.pitch))


def test_images_come_out_rgb_and_instance_ids_decode():
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[0, 0] = (10, 20, 30, 255)  # B, G, R, A
    img = convert.bgra_to_image(bgra.tobytes(), 3, 2)
    assert img.shape == (3, 2, 3)
    assert (img[:, 0, 0] * 255).round().tolist() == [30, 20, 10]
    inst = np.zeros((2, 3, 4), np.uint8)
    inst[1, 2] = (0x01, 0x2C, 10, 255)  # B = high byte, G = low byte, R = semantic tag
    ids = convert.instance_ids(inst.tobytes(), 3, 2)
    assert int(ids[1, 2]) == 0x012C and int(ids[0, 0]) == 0


@pytest.mark.parametrize(
    "spec",
    [
        MapSpec(),
        MapSpec(kind="curve", curve_radius=120.0, lanes_per_direction=2),
        MapSpec(origin=PoseSpec(x=30.0, y=-12.0, yaw=-40.0)),
    ],
)
def test_road_positions_on_a_carla_map_match_the_embedded_road(spec):
    from avrobust.sim.roads import RoadLayout

    cmap = carla.Map("avrobust", opendrive_for(spec))
    frame = RoadFrame(cmap, spec)
    road = RoadLayout(spec.kind, spec.length, spec.lanes_per_direction, spec.lane_width,
                      curve_radius=spec.curve_radius)  # fmt: skip
    o = spec.origin or PoseSpec(x=0.0, y=0.0, yaw=0.0)
    c, s_ = math.cos(math.radians(o.yaw)), math.sin(math.radians(o.yaw))
    for s, lateral in [(5.0, -1.75), (60.0, 4.3), (150.0, -6.0)]:
        x, y, _, h = road.to_world(s, lateral)
        want = (o.x + c * x - s_ * y, o.y + s_ * x + c * y)
        got = frame.pose(s, lateral)
        assert got[:2, 3].tolist() == pytest.approx(want, abs=0.02)
        assert math.atan2(got[1, 0], got[0, 0]) == pytest.approx(h + math.radians(o.yaw), abs=1e-3)


def test_intersections_need_a_town():
    sc = load_scenario("intersection")
    with pytest.raises(ConfigError, match="intersection"):
        opendrive_for(sc.map)


def test_texture_resampled_into_a_real_texture_color():
    tex = torch.zeros(3, 4, 8)
    tex[0, :, :4] = 1.0  # left half red, right half blue (as seen from the front)
    tex[2, :, 4:] = 1.0
    mask = torch.ones(1, 4, 8)
    mask[:, 2:] = 0.0  # bottom half not printed: alpha 0
    plain = textures.texture_color(textures.resample(tex, mask, textures.TextureLayout(16, 8)))
    assert isinstance(plain, carla.TextureColor)
    assert (plain.width, plain.height) == (16, 8)
    tl, tr = plain.get(0, 0), plain.get(15, 0)
    assert (tl.r, tl.b, tl.a) == (255, 0, 255) and (tr.r, tr.b) == (0, 255)
    assert plain.get(0, 7).a == 0
    flipped = textures.texture_color(
        textures.resample(tex, mask, textures.TextureLayout(16, 8, flip_u=True, flip_v=True))
    )
    assert flipped.get(0, 0).b == 255 and flipped.get(0, 0).a == 0  # bottom-right came to (0, 0)
    cache = textures.TextureCache()
    assert cache.get(tex, mask, textures.TextureLayout(16, 8)) is cache.get(
        tex.clone(), mask.clone(), textures.TextureLayout(16, 8)
    )


def test_ground_truth_boxes_against_hand_computed_ones():
    k = CameraIntrinsics.from_fov(640, 480, math.radians(90))
    cal = Calibration(k, camera_pose=make_pose((0.0, 0.0, 0.0), 0, 0, 0))
    ego = make_pose((100.0, 50.0, 0.0), 0.0, 0.0, math.radians(90))  # facing world +y
    # A 4 x 2 x 1.5 m car 20 m ahead of the ego (world +y), its long side along +y.
    box = WorldBox((100.0, 70.0, 0.75), (4.0, 2.0, 1.5), math.radians(90))
    points = torch.tensor([[20.0, 0.0, 0.5, 1.0], [20.5, 0.3, 0.2, 1.0], [40.0, 0.0, 0.0, 1.0]])
    gt, _ = ground_truth([Tracked(1, "lead", "car", "sedan", None)], [box], ego, cal, points, None)
    assert gt.boxes_3d.center[0].tolist() == pytest.approx([20.0, 0.0, 0.75], abs=1e-4)
    assert float(gt.boxes_3d.yaw[0]) == pytest.approx(0.0, abs=1e-5)
    assert int(gt.num_points[0]) == 2
    # By hand: the near face at 18 m spans y +-1, z 0..1.5 (camera at the origin, f = 320).
    f = 320.0
    want = [320 - f * 1 / 18, 240 - f * 1.5 / 18, 320 + f * 1 / 18, 240 + f * 0 / 18]
    assert gt.boxes_2d.xyxy[0].tolist() == pytest.approx(want, abs=0.05)
    # With an instance image, the 2D box is the actor's visible pixels.
    inst = torch.zeros(480, 640, dtype=torch.int64)
    inst[225:241, 305:330] = 555
    gt2, id_map = ground_truth(
        [Tracked(1, "lead", "car", "sedan", 555)], [box], ego, cal, points, inst
    )
    assert gt2.boxes_2d.xyxy[0].tolist() == [305, 225, 330, 241]
    assert int(id_map[230, 310]) == 1 and 0 < float(gt2.visible_fraction[0]) <= 1


def _scenario() -> Scenario:
    sc = load_scenario("urban_stop")
    return sc.model_copy(update={"surfaces": [s for s in sc.surfaces if s.kind == "sign_face"]})


def _backend(world: World, **kw) -> CarlaBackend:
    return CarlaBackend("carla-host", 2000, client_factory=Client(world), sensor_timeout=0.5, **kw)


def _world(sc: Scenario, rec: Recorder, **kw) -> World:
    from avrobust.backends.carla.layout import place

    cmap = carla.Map("avrobust", opendrive_for(sc.map))
    frame = RoadFrame(cmap, sc.map)
    signs = []
    for p in place(sc):
        if p.category == "traffic_sign":
            pose = frame.pose(p.s, p.lateral)
            signs.append(EnvObject(f"BP_Stop_{p.name}", pose[0, 3] + 0.4, -pose[1, 3]))
    return World(rec, cmap, signs, **kw)


def test_job_life_cycle_on_the_recording_stand_in():
    sc = _scenario()
    rec = Recorder()
    world = _world(sc, rec)
    ep = EpisodeSpec.from_scenario(sc, frames=3, rate=5.0)
    backend = _backend(world)
    backend.start(ep)
    names = rec.names()
    assert names[0] == "connect" and "generate_opendrive_world" in names
    sync = next(c for c in rec.calls if c[0] == "apply_settings")
    assert sync[1] is True and sync[2] == pytest.approx(0.1)  # 5 Hz: two 0.1 s steps per frame
    assert ("tm_sync", 8000, True) in rec.calls
    spawned = [c[1] for c in rec.calls if c[0] == "spawn"]
    assert spawned[:4] == [
        "vehicle.lincoln.mkz_2020",
        "sensor.camera.rgb",
        "sensor.camera.instance_segmentation",
        "sensor.lidar.ray_cast",
    ]
    frames = list(backend.frames())
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[1].timestamp == pytest.approx(ep.start_time + 0.2)
    f = frames[0]
    assert f.image.shape == (3, ep.camera.height, ep.camera.width)
    assert float(f.image[0].mean()) == pytest.approx(200 / 255, abs=1e-6)  # red came through
    assert f.points.shape == (2, 4) and float(f.points[1, 1]) == pytest.approx(-0.5)
    stop = backend.object_id(sc.targets[0].object)
    assert stop in f.truth.ids.tolist()
    i = f.truth.ids.tolist().index(stop)
    assert f.truth.categories[i] == "traffic_sign" and f.truth.subclasses[i] == "stop"
    ticks = [c for c in rec.calls if c[0] == "tick"]
    assert len(ticks) == 2 * 3 + 2  # two per frame, after two settling ticks
    # The patch goes onto the map's stop sign object, as a real TextureColor.
    surface = sc.surfaces[0]
    backend.apply_texture(surface.name, torch.rand(3, 16, 16), torch.ones(1, 16, 16))
    tex_call = next(c for c in rec.calls if c[0] == "texture")
    assert tex_call[1].startswith("BP_Stop") and isinstance(tex_call[3], carla.TextureColor)
    backend.close()
    order = rec.names()
    restore = max(i for i, c in enumerate(rec.calls) if c[0] == "apply_settings")
    assert rec.calls[restore][1] is False
    stops = [i for i, n in enumerate(order) if n == "stop"]
    destroy = order.index("destroy")
    assert len(stops) == 3 and restore < min(stops) and max(stops) < destroy
    assert sorted(rec.calls[destroy][1]) == sorted(a.id for a in world.actors)
    backend.close()  # twice is harmless
    assert order.count("destroy") == 1


def test_teardown_runs_after_an_error_and_sensor_time_outs_are_clear():
    sc = _scenario()
    rec = Recorder()
    world = _world(sc, rec)
    world.fail_on_tick = 4
    backend = _backend(world)
    backend.start(EpisodeSpec.from_scenario(sc, frames=5, rate=10.0))
    with pytest.raises(RuntimeError, match="time-out"):
        list(backend.frames())
    backend.close()
    assert rec.calls[-1][0] == "destroy"
    assert any(c[0] == "apply_settings" and c[1] is False for c in rec.calls)
    # A sensor that never delivers: a BackendError naming it, then a clean teardown.
    rec2 = Recorder()
    world2 = _world(sc, rec2, silent={"sensor.lidar.ray_cast"})
    backend2 = _backend(world2)
    with pytest.raises(BackendError, match="sensor lidar sent nothing"):
        backend2.start(EpisodeSpec.from_scenario(sc, frames=2, rate=10.0))
        list(backend2.frames())
    backend2.close()
    assert rec2.calls[-1][0] == "destroy"


def test_signs_must_exist_in_the_map_and_servers_must_answer():
    sc = _scenario()
    rec = Recorder()
    world = World(rec, carla.Map("avrobust", opendrive_for(sc.map)), signs=[])
    with pytest.raises(ConfigError, match="no traffic-sign object"):
        _backend(world).start(EpisodeSpec.from_scenario(sc, frames=1))
    assert any(c[0] == "apply_settings" and c[1] is False for c in rec.calls)  # restored
    with pytest.raises(BackendError, match="does not match the client"):
        connect("h", 1, client_factory=Client(World(Recorder(), None), version="0.9.15"))
    with pytest.raises(BackendError, match=r"no CARLA server answers at 127\.0\.0\.1:1"):
        connect("127.0.0.1", 1, timeout=1.0)


def test_campaign_jobs_carry_where_carla_runs_without_changing_their_ids(tmp_path):
    import yaml

    from avrobust.scenario.campaign import expand, load_campaign

    body = {"name": "c", "scenarios": ["urban_stop"], "sweep": {"distance": [20]}}
    a = tmp_path / "a.yaml"
    a.write_text(yaml.safe_dump({**body, "backend": "carla", "carla": {"servers": ["h:2000"]}}))
    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump({**body, "backend": "carla", "carla": {"servers": ["k:2003"]}}))
    ja, jb = expand(load_campaign(a), tmp_path)[0], expand(load_campaign(b), tmp_path)[0]
    assert ja.id == jb.id and ja.carla["servers"] == ["h:2000"]
    assert type(ja).from_json(ja.to_json()) == ja


@pytest.mark.carla_live
@pytest.mark.skipif(not os.environ.get("AVROBUST_CARLA_HOST"), reason="AVROBUST_CARLA_HOST not set")
def test_live_server_stop_sign_with_a_patch():
    """On a real server: a scenario placed at one of Town01's stop signs, a patch applied to
    it, three frames with images, LiDAR and the sign in the ground truth."""
    from avrobust.core.patch import Patch

    host = os.environ["AVROBUST_CARLA_HOST"]
    port = int(os.environ.get("AVROBUST_CARLA_PORT", "2000"))
    client = connect(host, port, 20.0)
    world = client.load_world("Town01")
    sign = next(
        o
        for o in world.get_environment_objects(carla.CityObjectLabel.TrafficSigns)
        if o.name.startswith("BP_Stop")
    )
    wp = world.get_map().get_waypoint(sign.transform.location, project_to_road=True)
    back = wp.previous(30.0)[0].transform
    (x, y, _), (_, _, yaw) = from_carla(
        back.location.x, back.location.y, 0.0, 0.0, 0.0, back.rotation.yaw
    )
    base = load_scenario("urban_stop")
    sc = base.model_copy(
        update={
            "map": base.map.model_copy(
                update={"carla_town": "Town01", "origin": PoseSpec(x=x, y=y, yaw=math.degrees(yaw))}
            ),
            "surfaces": [s for s in base.surfaces if s.kind == "sign_face"],
        }
    )
    patch = Patch.load("assets/patches/stop_to_80.patch")
    with CarlaBackend(host, port, timeout=20.0) as backend:
        backend.start(EpisodeSpec.from_scenario(sc, frames=3))
        backend.apply_texture(sc.surfaces[0].name, patch.texture, patch.mask)
        frames = list(backend.frames())
    assert len(frames) == 3
    assert frames[-1].image is not None and frames[-1].points.shape[0] > 1000
    assert "traffic_sign" in frames[-1].truth.categories


def test_face_sizes_match_the_embedded_signs():
    from avrobust.backends.carla.surfaces import FACE_SIZE
    from avrobust.sim.signs import ALL_SIGN_TYPES

    # Every drawable sign, the unseen ones too, with the real sizes of the catalogue.
    assert set(FACE_SIZE) == set(ALL_SIGN_TYPES)
    assert FACE_SIZE["stop"] == pytest.approx(0.90)
    assert FACE_SIZE["speed_limit_60"] == pytest.approx(0.75)
    assert FACE_SIZE["pedestrian_crossing"] == pytest.approx(0.60)
    assert FACE_SIZE["priority_road"] == pytest.approx(0.60 * 2**0.5)


def test_sign_face_surface_views_in_carla_frames():
    sc = _scenario()
    world = _world(sc, Recorder())
    backend = _backend(world)
    backend.start(EpisodeSpec.from_scenario(sc, frames=2))
    frames = list(backend.frames())
    surface = sc.surfaces[0]
    sign_id = backend.object_id(surface.object)
    backend.close()
    view = frames[-1].surfaces[surface.name]
    q = view.quad
    # Top-left, top-right, bottom-right, bottom-left as seen from the front.
    assert q[1, 0] > q[0, 0] and q[2, 0] > q[3, 0]
    assert q[3, 1] > q[0, 1] and q[2, 1] > q[1, 1]
    assert view.visible_pixels > 0 and view.size_m == (0.9, 0.9)
    assert view.object_id == sign_id
    # The face (the scenario's plate at the map sign) overlaps the map sign's ground-truth box.
    truth = frames[-1].truth
    x1, y1, x2, y2 = truth.boxes_2d.xyxy[truth.ids.tolist().index(sign_id)].tolist()
    u, v = q.mean(0).tolist()
    assert x1 - 20 <= u <= x2 + 20 and y1 - 20 <= v <= y2 + 20


def test_a_dropped_connection_is_reconnected_once():
    sc = _scenario()
    rec = Recorder()
    world = _world(sc, rec)

    class Flaky(Client):
        dropped = False

        def get_world(self):
            if not Flaky.dropped:
                Flaky.dropped = True
                raise RuntimeError("connection lost")
            return self.world

    backend = CarlaBackend("h", 2000, client_factory=Flaky(world), sensor_timeout=0.5)
    backend.start(EpisodeSpec.from_scenario(sc, frames=1))
    backend.close()
    assert rec.names().count("connect") == 2
