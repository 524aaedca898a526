"""Smaller pieces of the simulator: weather presets, sensor specs, atlas, meshes, backend."""

import math

import numpy as np
import pytest
import torch

from avrobust.backends.base import Backend, EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.core.errors import ConfigError
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.core.weather import PRESETS, Weather
from avrobust.scenario.library import load_scenario, scenario_names
from avrobust.sim.atlas import TextureAtlas, sample_texture
from avrobust.sim.meshes import box, polygon_plate, regular_polygon


def test_weather_presets_match_the_carla_package():
    carla = pytest.importorskip("carla")
    for name, ours in PRESETS.items():
        theirs = getattr(carla.WeatherParameters, name, None)
        if theirs is None:
            continue  # our own presets (Fog, Dusk, ...)
        for field in Weather.field_names():
            assert getattr(ours, field) == pytest.approx(getattr(theirs, field), abs=1e-4), (
                name,
                field,
            )


def test_weather_rejects_out_of_range_values():
    with pytest.raises(ValueError, match="fog_density"):
        Weather(fog_density=150)


def test_lidar_spec_follows_carla_conventions():
    spec = LidarSpec(channels=32, points_per_second=327_680, rotation_frequency=10.0)
    assert spec.columns == 1024
    el = spec.elevations()
    assert el[0] == pytest.approx(spec.upper_fov) and el[-1] == pytest.approx(spec.lower_fov)
    d = spec.ray_directions()
    assert d.shape == (32 * 1024, 3)
    assert torch.allclose(d.norm(dim=1), torch.ones(len(d)), atol=1e-6)
    attrs = spec.to_carla_attributes()
    assert attrs["channels"] == "32" and attrs["upper_fov"] == "10" and attrs["lower_fov"] == "-30"


def test_lidar_spec_attributes_are_accepted_by_carla_types():
    carla = pytest.importorskip("carla")
    # A value type built from our numbers round-trips through the carla package.
    loc = carla.Location(x=LidarSpec().mount.x, y=-LidarSpec().mount.y, z=LidarSpec().mount.z)
    assert loc.z == pytest.approx(1.9)


def test_camera_spec_attributes():
    attrs = CameraSpec(800, 600, math.radians(110)).to_carla_attributes()
    assert attrs["image_size_x"] == "800" and attrs["fov"] == "110"


def test_atlas_returns_texel_values_at_texel_centres():
    g = torch.Generator().manual_seed(0)
    textures = [torch.rand(3, 8, 16, generator=g), torch.rand(3, 32, 32, generator=g)]
    atlas = TextureAtlas(textures)
    tex = textures[0]
    # uv of texel (row 3, col 5) centre, in the atlas's texel-centre convention.
    u, v = 5 / (16 - 1), 3 / (8 - 1)
    got = atlas.sample(torch.tensor([0]), torch.tensor([[u, v]]))[:, 0]
    assert torch.allclose(got, tex[:, 3, 5], atol=1e-5)
    # Wrapping: u + 1 samples the same place.
    again = atlas.sample(torch.tensor([0]), torch.tensor([[u + 1.0, v + 2.0]]))[:, 0]
    assert torch.allclose(again, got, atol=1e-5)


def test_sample_texture_is_differentiable():
    tex = torch.rand(3, 4, 4, requires_grad=True)
    out = sample_texture(tex, torch.tensor([[0.5, 0.5], [0.1, 0.9]]))
    out.sum().backward()
    assert tex.grad.abs().sum() > 0


def test_box_mesh_is_closed_and_sized():
    m = box((4.0, 2.0, 1.5))
    lo, hi = m.bounds()
    assert np.allclose(lo, [-2, -1, 0]) and np.allclose(hi, [2, 1, 1.5])
    assert m.num_triangles == 12


def test_sign_plate_uv_covers_its_bounding_square():
    front, _ = polygon_plate(regular_polygon(8, 0.5, math.pi / 8))
    uv = front.uvs.reshape(-1, 2)
    assert uv.min() >= -1e-6 and uv.max() <= 1 + 1e-6


def test_every_library_scenario_builds_and_renders():
    names = scenario_names()
    assert len(names) >= 8
    small_lidar = LidarSpec(channels=8, points_per_second=8 * 256 * 10)
    for name in names:
        spec = EpisodeSpec.from_scenario(
            load_scenario(name), camera=CameraSpec(96, 64), lidar=small_lidar, frames=2
        )
        with EmbeddedBackend() as backend:
            assert isinstance(backend, Backend)
            backend.start(spec)
            frames = list(backend.frames())
        assert len(frames) == 2, name
        assert frames[0].image.shape == (3, 64, 96)
        assert frames[0].points.shape[1] == 4 and frames[0].points.shape[0] > 100
        scenario = load_scenario(name)
        placed = len(scenario.signs) + len(scenario.vehicles) + len(scenario.pedestrians)
        # A scenario with nothing placed (empty_road, the phantom's stage) has no truth to show.
        assert (len(frames[0].truth) > 0) == (placed > 0), name


def test_apply_texture_changes_the_rendered_surface():
    spec = EpisodeSpec("urban_stop", CameraSpec(320, 240, math.radians(40)), None, start_time=5.0)
    with EmbeddedBackend() as backend:
        backend.start(spec)
        clean = backend.render(0).frame
        mask = clean.surfaces["stop_sign"].mask > 0.5
        assert mask.sum() > 20
        backend.apply_texture(
            "stop_sign", torch.zeros(3, 16, 16) + torch.tensor([0, 1.0, 0])[:, None, None]
        )
        green = backend.render(0).frame
    diff = (green.image - clean.image).abs().sum(0)
    assert diff[mask].mean() > 0.2  # the sign face turned green
    # Elsewhere only auto exposure reacts (the image's mean brightness changed a little).
    assert diff[~mask].max() < 0.01


def test_unknown_surface_and_scene_are_clear_errors():
    with EmbeddedBackend() as backend:
        with pytest.raises(ConfigError, match="no scenario named 'atlantis'"):
            backend.start(EpisodeSpec("atlantis"))
        backend.start(EpisodeSpec("urban_stop", CameraSpec(32, 32), None))
        with pytest.raises(ConfigError, match="no attack surface named 'moon'"):
            backend.apply_texture("moon", torch.zeros(3, 4, 4))
