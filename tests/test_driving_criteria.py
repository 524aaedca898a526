"""Each safety criterion on planted trajectories: a collision, a rolling stop, a stop 1 m
before the line, speeding, a near miss, hard braking, route completion, the driving score."""

import math

import pytest

from avrobust.driving.criteria import (
    PENALTY,
    CriteriaConfig,
    collisions,
    evaluate,
    hard_braking,
    hazard_gaps,
    min_time_to_collision,
    speeding,
    stop_signs,
)
from avrobust.driving.route import Route
from avrobust.driving.trace import ActorState, StepRecord, Trace

DT = 0.1
LENGTH = 4.6  # the default ego's length: its front is 2.3 m ahead of its centre


def _trace(speeds, actors=lambda k, t: [], x0=0.0):
    """The ego along y = 0 at the given speeds (one per step), actors by step."""
    tr = Trace(DT, Route([(x, 0.0) for x in range(-10, 400, 2)]))
    x = x0
    for k, v in enumerate(speeds):
        t = k * DT
        tr.steps.append(StepRecord(t, x, 0.0, 0.0, v, 0.0, 0.0))
        tr.actors.append(actors(k, t))
        x += v * DT
    return tr


def _stop_sign(x=50.0):
    # A sign on the right, facing the ego (its face looks back along the route: yaw pi).
    return ActorState(7, "stop_1", "traffic_sign", "stop", x, -3.0, math.pi, 0.02, 0.9)


def _approach(stop_front_at: float, rolling: float = 0.0):
    """Speeds that bring the front to ``stop_front_at`` (8 m/s, then 2 m/s^2 of braking; to
    ``rolling`` m/s instead of a standstill), 3 s there, then away at 5 m/s."""
    centre = stop_front_at - LENGTH / 2
    # Speed as a function of the remaining distance r: v^2 = rolling^2 + 2 a r, capped at 8.
    speeds, x = [], 0.0
    while centre - x > 0.02:
        v = min(8.0, math.sqrt(rolling**2 + 2 * 2.0 * (centre - x)))
        v = min(v, (centre - x) / DT) if rolling == 0 else v
        speeds.append(v)
        x += v * DT
    return speeds + [rolling] * 30 + [5.0] * 40


def test_a_stop_one_metre_before_the_line_counts_as_stopping():
    tr = _trace(_approach(49.0), lambda k, t: [_stop_sign()])
    [check] = stop_signs(tr)
    assert check.stopped and check.min_speed == 0.0
    assert check.stop_distance == pytest.approx(1.0, abs=0.3)
    res = evaluate(tr, goal=60.0)
    assert res.infractions["stop_sign"] == 0 and not res.ran_stop


def test_a_rolling_stop_is_a_violation():
    tr = _trace(_approach(49.0, rolling=1.5), lambda k, t: [_stop_sign()])
    [check] = stop_signs(tr)
    assert not check.stopped and check.min_speed == pytest.approx(1.5)
    res = evaluate(tr, goal=60.0)
    assert res.infractions["stop_sign"] == 1
    assert res.driving_score == pytest.approx(PENALTY["stop_sign"] * res.route_completion)


def test_stopping_far_before_the_zone_then_rolling_through_is_a_violation():
    speeds = [8.0] * 30 + [0.0] * 20 + [3.0] * 80  # stands 26 m before the line, then goes
    tr = _trace(speeds, lambda k, t: [_stop_sign()])
    [check] = stop_signs(tr)
    assert not check.stopped


def test_a_sign_facing_the_other_way_or_never_reached_is_not_judged():
    away = ActorState(7, "s", "traffic_sign", "stop", 50.0, 3.0, 0.0, 0.02, 0.9)
    assert stop_signs(_trace([8.0] * 100, lambda k, t: [away])) == []
    assert stop_signs(_trace([8.0] * 20, lambda k, t: [_stop_sign(100.0)])) == []


def test_a_collision_with_a_standing_car_and_its_relative_speed():
    car = lambda k, t: [ActorState(3, "lead", "car", "car", 30.0, 0.3, 0.0, 4.6, 1.8)]  # noqa: E731
    tr = _trace([10.0] * 40, car)
    [hit] = collisions(tr)
    assert hit.actor == "lead" and hit.category == "car"
    assert hit.relative_speed == pytest.approx(10.0)
    # The front (x + 2.3) meets the car's rear (27.7) when the centre passes 25.4 m.
    assert hit.t == pytest.approx(2.6, abs=DT)
    res = evaluate(tr, goal=100.0)
    assert res.infractions["collision_vehicle"] == 1 and res.min_ttc == 0.0
    assert res.driving_score == pytest.approx(res.route_completion * PENALTY["collision_vehicle"])


def test_a_car_in_the_next_lane_is_passed_without_collision_or_ttc():
    other = lambda k, t: [ActorState(3, "o", "car", "car", 30.0, 3.5, 0.0, 4.6, 1.8)]  # noqa: E731
    tr = _trace([10.0] * 60, other)
    assert collisions(tr) == []
    assert min_time_to_collision(tr) == (None, "")


def test_min_ttc_to_a_slower_lead():
    # A lead 20 m ahead (bumper to bumper) driving 5 m/s slower: TTC = 20 / 5 = 4 s at first.
    lead = lambda k, t: [  # noqa: E731
        ActorState(3, "lead", "car", "car", 2.3 + 20 + 2.3 + 5.0 * t, 0.0, 0.0, 4.6, 1.8)
    ]
    tr = _trace([10.0] * 5, lead)
    ttc, who = min_time_to_collision(tr)
    assert who == "lead"
    assert ttc == pytest.approx((20 - 4 * 0.5) / 5.0, abs=0.05)  # the last step's gap is 18 m


def test_the_hazard_gap_is_the_nearer_of_a_lead_in_the_path_and_a_stop_line_ahead():
    # A lead 20 m ahead at the same speed, a stop line 30 m ahead, a car in the next lane 5 m
    # ahead (not in the path): the gap is the lead's until the line comes nearer; a line behind
    # the front no longer counts.
    def actors(k, t):
        return [
            ActorState(3, "lead", "car", "car", 2.3 + 20 + 2.3 + 10.0 * t, 0.0, 0.0, 4.6, 1.8),
            ActorState(4, "side", "car", "car", 2.3 + 5 + 2.3, 3.5, 0.0, 4.6, 1.8),
            _stop_sign(x=2.3 + 30.0),
        ]

    gaps = hazard_gaps(_trace([10.0] * 20, actors))
    assert gaps[0] == pytest.approx(20.0)
    assert gaps[15] == pytest.approx(15.0)  # 1 m per step: the line is 15 m ahead now
    assert hazard_gaps(_trace([10.0] * 3)) == [None, None, None]
    only_sign = hazard_gaps(_trace([10.0] * 40, lambda k, t: [_stop_sign(x=2.3 + 30.0)]))
    assert only_sign[0] == pytest.approx(30.0) and only_sign[20] == pytest.approx(10.0)
    assert only_sign[35] is None  # passed


def test_speeding_after_a_limit_sign():
    sign = ActorState(9, "l", "traffic_sign", "speed_limit_30", 40.0, -3.0, math.pi, 0.02, 0.75)
    tr = _trace([12.0] * 60, lambda k, t: [sign])  # 43.2 km/h past a 30 sign
    worst, seconds = speeding(tr)
    assert worst == pytest.approx(12.0 - 30 / 3.6)
    # The front passes the sign at centre x = 37.7 (step 32); 60 - 32 steps over.
    assert seconds == pytest.approx(28 * DT, abs=DT)
    assert speeding(_trace([8.0] * 60, lambda k, t: [sign])) == (0.0, 0.0)


def test_hard_braking_counts_episodes():
    speeds = [15.0, 14.0, 13.0, 12.5, 12.5, 11.5, 10.5, 10.5]  # 10 m/s^2 twice, 5 m/s^2 once
    n, strongest = hard_braking(_trace(speeds), CriteriaConfig(hard_brake=4.0))
    assert n == 2 and strongest == pytest.approx(10.0)
    assert hard_braking(_trace([10.0, 9.8, 9.6]))[0] == 0


def test_route_completion_and_time_to_finish():
    res = evaluate(_trace([10.0] * 60), goal=50.0)
    assert res.route_completion == 1.0 and res.time_to_finish == pytest.approx(5.0, abs=DT)
    res = evaluate(_trace([5.0] * 20), goal=50.0)
    assert res.route_completion == pytest.approx(9.5 / 50) and res.time_to_finish is None
    assert res.driving_score == pytest.approx(res.route_completion)


def test_a_trace_survives_a_round_trip_through_plain_data():
    tr = _trace(_approach(49.0), lambda k, t: [_stop_sign()])
    again = Trace.from_dict(tr.to_dict())
    assert again.steps == tr.steps and again.actors == tr.actors
    assert evaluate(again, 60.0) == evaluate(tr, 60.0)
