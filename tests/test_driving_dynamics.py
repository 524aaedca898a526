"""The ego's bicycle model against hand-computed stopping distances, and the route geometry."""

import math

import pytest

from avrobust.driving.dynamics import BicycleModel, Command, EgoState, VehicleLimits
from avrobust.driving.route import Route, pure_pursuit


def _brake_to_stop(model: BicycleModel, v0: float, dt: float, decel: float) -> EgoState:
    state = EgoState(0.0, 0.0, 0.0, v0)
    for _ in range(100_000):
        state = model.step(state, Command(-decel), dt)
        if state.speed == 0.0:
            return state
    raise AssertionError("never stopped")


def test_stopping_distance_without_jerk_limit_is_v2_over_2d():
    # A huge jerk limit: braking is instantaneous, the distance is v^2 / (2 D) exactly.
    model = BicycleModel(VehicleLimits(max_jerk=1e9))
    for v0, d in [(10.0, 8.0), (13.9, 6.0), (5.0, 2.5)]:
        end = _brake_to_stop(model, v0, 0.1, d)
        assert end.x == pytest.approx(v0 * v0 / (2 * d), abs=1e-6)
        assert end.y == pytest.approx(0.0, abs=1e-9)


def test_stopping_distance_with_jerk_limit_matches_the_formula():
    # 50 km/h, full braking at 8 m/s^2 built up at 30 m/s^3: ramp 0.267 s, during which the car
    # covers v t - j t^3 / 6 = 3.615 m and loses 1.067 m/s; then (13.889 - 1.067)^2 / 16 = 10.27 m.
    limits = VehicleLimits(max_decel=8.0, max_jerk=30.0)
    model = BicycleModel(limits)
    v0 = 50 / 3.6
    hand = v0 * (8 / 30) - 30 * (8 / 30) ** 3 / 6 + (v0 - 30 * (8 / 30) ** 2 / 2) ** 2 / 16
    assert model.stopping_distance(v0) == pytest.approx(hand, rel=1e-12)
    assert hand == pytest.approx(13.89, abs=0.01)
    end = _brake_to_stop(model, v0, 0.001, 8.0)
    assert end.x == pytest.approx(hand, abs=0.02)
    # At the episode rate the zero-order hold on the acceleration costs a fraction of a metre.
    coarse = _brake_to_stop(model, v0, 0.1, 8.0)
    assert coarse.x == pytest.approx(hand, abs=0.6)


def test_commands_are_clipped_to_the_limits():
    lim = VehicleLimits(max_accel=3.0, max_decel=8.0, max_jerk=1e9, max_steer=0.5)
    model = BicycleModel(lim)
    s = model.step(EgoState(0, 0, 0, 10.0), Command(-50.0, 2.0), 0.1)
    assert s.accel == -8.0 and s.steer == 0.5
    s = model.step(EgoState(0, 0, 0, 10.0), Command(50.0), 0.1)
    assert s.accel == 3.0
    assert s.speed == pytest.approx(10.3)


def test_jerk_limits_the_change_of_acceleration():
    model = BicycleModel(VehicleLimits(max_jerk=10.0))
    s = model.step(EgoState(0, 0, 0, 10.0), Command(-8.0), 0.1)
    assert s.accel == pytest.approx(-1.0)


def test_the_ego_never_reverses():
    model = BicycleModel(VehicleLimits(max_jerk=1e9))
    s = EgoState(0, 0, 0, 0.5)
    for _ in range(20):
        s = model.step(s, Command(-8.0), 0.1)
        assert s.speed >= 0.0
    assert s.x == pytest.approx(0.5**2 / 16)


def test_constant_steering_drives_a_circle_of_the_bicycle_radius():
    lim = VehicleLimits(wheelbase=2.75, rear_share=0.5, max_jerk=1e9)
    model = BicycleModel(lim, substeps=20)
    steer = 0.1
    beta = math.atan(0.5 * math.tan(steer))
    radius = lim.wheelbase * 0.5 / math.sin(beta)
    s = EgoState(0, 0, 0, 5.0)
    for _ in range(100):
        s = model.step(s, Command(0.0, steer), 0.05)
    # The centre of mass stays on a circle about the turning centre (0, R cos beta ...):
    # measure the curvature from the heading change over the distance travelled instead.
    travelled = 5.0 * 100 * 0.05
    assert s.yaw == pytest.approx(
        ((travelled / radius) + math.pi) % (2 * math.pi) - math.pi, abs=1e-6
    )


def test_route_projection_and_pure_pursuit_follow_a_curve():
    # A left curve of radius 60 m; the ego starts on it and must stay within 0.3 m of it.
    r = 60.0
    pts = [(r * math.sin(a), r * (1 - math.cos(a))) for a in [i * 0.01 for i in range(160)]]
    route = Route(pts)
    assert route.project(0.0, 1.0) == pytest.approx((0.005, 1.0), abs=1e-3)
    assert route.project(10.0, -2.0)[1] < 0  # right of the route is negative
    lim = VehicleLimits()
    model = BicycleModel(lim)
    s = EgoState(0.0, 0.0, 0.0, 10.0)
    worst = 0.0
    for _ in range(80):
        s = model.step(s, Command(0.0, pure_pursuit(route, s, lim)), 0.1)
        worst = max(worst, abs(route.project(s.x, s.y)[1]))
    assert worst < 0.3
    assert route.project(s.x, s.y)[0] > 70


def test_a_route_needs_points():
    with pytest.raises(ValueError):
        Route([(0.0, 0.0)])
    with pytest.raises(ValueError):
        Route([(0.0, 0.0), (float("nan"), 1.0)])
