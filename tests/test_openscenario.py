"""OpenSCENARIO 1.0 import: each supported element, lenient reading, unsupported elements listed."""

import math
from pathlib import Path

import pytest

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.core.conventions import from_carla, to_carla
from avrobust.core.errors import ConfigError
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.scenario.library import load_scenario
from avrobust.scenario.openscenario import import_openscenario, write_yaml

FIX = Path(__file__).parent / "fixtures" / "xosc"


def test_carla_round_trip_and_known_values():
    loc, rot = from_carla(10.0, 2.0, 1.0, 5.0, 10.0, 90.0)
    assert loc == (10.0, -2.0, 1.0)
    assert rot == pytest.approx((math.radians(5), -math.radians(10), -math.radians(90)))
    back_loc, back_rot = to_carla(*loc, *rot)
    assert back_loc == (10.0, 2.0, 1.0) and back_rot == pytest.approx((5.0, 10.0, 90.0))


def test_carla_frame_file_entities_speeds_and_weather():
    with pytest.warns(UserWarning, match="not imported") as record:
        result = import_openscenario(FIX / "carla_world.xosc")
    assert len(record) == 1  # one warning lists everything
    sc = result.scenario
    # "CARLA:" header: y and yaw are mirrored into our right-handed frame.
    assert (sc.ego.pose.x, sc.ego.pose.y) == (190.0, -133.0) and sc.ego.speed == 10.0
    (lead,) = sc.vehicles
    assert (lead.pose.x, lead.pose.y, lead.speed, lead.body) == (220.0, -133.0, 8.0, "suv")
    (walker,) = sc.pedestrians
    assert walker.pose.yaw == pytest.approx(90.0, abs=1e-3)
    w = sc.weather.to_weather()
    assert w.sun_azimuth_angle == pytest.approx(math.degrees(0.5))
    assert w.sun_altitude_angle == pytest.approx(math.degrees(0.6))
    assert w.cloudiness == pytest.approx(65.0)
    assert (w.fog_density, w.fog_distance) == (100.0, 400.0)
    assert (w.precipitation, w.wetness) == (pytest.approx(30.0), pytest.approx(30.0))
    assert sc.map.carla_town == "Town01"
    un = "\n".join(result.unsupported)
    for item in (
        "Storyboard/Story",
        "RoadCondition",
        "StopTrigger",
        "SceneGraphFile",
        "entity cone: MiscObject",
    ):
        assert item in un


def test_lane_and_road_positions_resolve_through_opendrive():
    result = import_openscenario(FIX / "lane_positions.xosc")
    sc = result.scenario
    assert result.unsupported == []
    assert (sc.ego.pose.x, sc.ego.pose.y, sc.ego.pose.yaw) == pytest.approx((20.0, -1.75, 0.0))
    ahead, oncoming = sc.vehicles
    assert (ahead.pose.x, ahead.pose.y) == pytest.approx((50.0, -1.25))  # offset 0.5 m left
    assert ahead.body == "van"
    assert (oncoming.pose.x, oncoming.pose.y) == pytest.approx((120.0, 1.75))
    assert abs(oncoming.pose.yaw) == pytest.approx(180.0)
    (walker,) = sc.pedestrians
    assert (walker.pose.x, walker.pose.y) == pytest.approx((60.0, -6.0))


def test_town_without_opendrive_is_a_clear_error():
    with pytest.raises(ConfigError, match="OpenDRIVE"):
        import_openscenario(FIX / "town_lane_positions.xosc")
    result = import_openscenario(FIX / "town_lane_positions.xosc", opendrive=FIX / "straight.xodr")
    assert len(result.scenario.vehicles) == 2


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.xosc"
    bad.write_text("<OpenSCENARIO><Entities></OpenSCENARIO>")
    with pytest.raises(ConfigError, match="not well-formed XML"):
        import_openscenario(bad)
    noego = tmp_path / "noego.xosc"
    noego.write_text(
        "<OpenSCENARIO><Entities><ScenarioObject name='a'><Vehicle "
        "vehicleCategory='car'/></ScenarioObject></Entities></OpenSCENARIO>"
    )
    with pytest.raises(ConfigError, match="no ego vehicle"):
        import_openscenario(noego)


def test_imported_scenario_renders_with_relative_geometry(tmp_path):
    result = import_openscenario(FIX / "lane_positions.xosc")
    path = write_yaml(result, tmp_path / "imported.yaml")
    sc = load_scenario(path)  # the written file is a valid scenario
    spec = EpisodeSpec.from_scenario(
        sc, camera=CameraSpec(160, 120), lidar=LidarSpec(channels=16, points_per_second=81920)
    )
    with EmbeddedBackend() as backend:
        backend.start(spec)
        frame = next(iter(backend.frames()))
        ahead = backend.object_id("ahead")
    i = frame.truth.ids.tolist().index(ahead)
    centre = frame.truth.boxes_3d.center[i]
    # 30 m ahead of the ego along the road, 0.5 m to its left.
    assert float(centre[0]) == pytest.approx(30.0, abs=0.05)
    assert float(centre[1]) == pytest.approx(0.5, abs=0.05)
    # .xosc files load directly too.
    assert load_scenario(FIX / "lane_positions.xosc").name == "lane_positions"
