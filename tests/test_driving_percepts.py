"""Monocular ranging of road users places them where a planner needs them: a parked car's
side within a few decimetres of where it is, from far to near, given the simulator's exact
boxes (what a perfect detector would report)."""

import pytest

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.core.sensors import CameraSpec
from avrobust.driving.percepts import _pixel_ray, from_truth, ground_percept
from avrobust.scenario.library import load_scenario


@pytest.fixture(scope="module")
def parked_car_frames():
    """``(range to the car, frame, its exact box, its true percept)`` as the ego drives up to
    the car parked half on the kerb in ``pedestrian_dart``."""
    sc = load_scenario("pedestrian_dart")
    out = []
    with EmbeddedBackend() as b:
        b.start(EpisodeSpec.from_scenario(sc, camera=CameraSpec(640, 480), lidar=None, frames=25))
        for frame in b.frames():
            i = frame.truth.categories.index("car")
            box = frame.truth.boxes_2d.xyxy[i]
            [truth] = from_truth(frame, ["car"])
            rng = truth.x - float(frame.ego_pose[0, 3])
            if float(box[2]) > 0 and 6.0 <= rng <= 25.0:
                out.append((rng, frame, box, truth))
    return out


def test_a_parked_cars_side_is_placed_within_decimetres_from_25_to_6_m(parked_car_frames):
    assert len(parked_car_frames) >= 15
    for rng, frame, box, truth in parked_car_frames:
        p = ground_percept(frame, box, "car", 1.0)
        assert p is not None
        # Laterally is what passing it needs (the old centre-of-the-lower-edge ranging put
        # it 0.8 m too far out at 6 m); along the road, a pixel row is decimetres there.
        assert abs(p.y - truth.y) < 0.3, rng
        assert abs(p.x - truth.x) < 0.8, rng
        assert (p.length, p.width) == pytest.approx((4.6, 1.85))


def test_a_box_cut_by_the_border_is_placed_by_its_other_side(parked_car_frames):
    # 12 m away the whole car is in view; as if its right side left the image:
    _, frame, box, truth = min(parked_car_frames, key=lambda q: abs(q[0] - 12.0))
    cut = box.clone()
    cut[2] = frame.calibration.intrinsics.width
    p = ground_percept(frame, cut, "car", 1.0)
    assert p is not None and abs(p.y - truth.y) < 0.4


def test_a_lower_edge_at_or_above_the_horizon_says_nothing(parked_car_frames):
    _, frame, box, _ = parked_car_frames[0]
    k = frame.calibration.intrinsics
    # The horizon's row: where the ray through the image's middle column stops pointing down.
    z0, z1 = (float(_pixel_ray(frame, k.cx, v)[1][2]) for v in (0.0, 1.0))
    horizon = -z0 / (z1 - z0)
    for bottom in (horizon - 20.0, horizon + 0.05):  # above it; the ground kilometres away
        edge = box.clone()
        edge[3] = bottom
        assert ground_percept(frame, edge, "car", 1.0) is None, bottom
    edge[3] = horizon + 30.0
    assert ground_percept(frame, edge, "car", 1.0) is not None
