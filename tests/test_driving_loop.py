"""The closed loop in the embedded simulator and on the CARLA recording stand-in: the oracle
stops for the stop sign and finishes, the same seed gives the same trajectory bit for bit, and
on CARLA the ego's transform is set from the driving model before each tick."""

import itertools

import pytest

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.driving.criteria import evaluate
from avrobust.driving.loop import DriveSetup, drive
from avrobust.driving.percepts import from_truth
from avrobust.driving.policy import ReferencePolicy
from avrobust.scenario.library import load_scenario

ALL = ("car", "pedestrian", "traffic_sign")


def _urban_stop(goal=80.0):
    sc = load_scenario("urban_stop")
    return sc.model_copy(update={"driving": sc.driving.model_copy(update={"goal": goal})})


def _oracle_drive(sc):
    setup = DriveSetup.from_scenario(sc)
    with EmbeddedBackend() as b:
        b.start(EpisodeSpec.from_scenario(sc, camera=None, lidar=None))
        return setup, drive(b, setup, lambda f: from_truth(f, ALL), ReferencePolicy())


def test_the_oracle_stops_at_the_stop_sign_passes_the_parked_suv_and_finishes():
    sc = _urban_stop()
    setup, trace = _oracle_drive(sc)
    res = evaluate(trace, setup.goal)
    [stop] = res.stops
    assert stop.sign == "stop_1" and stop.stopped
    assert 0.0 <= stop.stop_distance <= 3.0
    assert not res.collided and res.route_completion == 1.0
    assert res.driving_score == 1.0
    names = {a.name for step in trace.actors for a in step}
    assert {"stop_1", "parked_1", "oncoming", "walker"} <= names


def test_the_same_scenario_drives_the_same_trajectory_bit_for_bit():
    sc = _urban_stop(goal=40.0)
    _, a = _oracle_drive(sc)
    _, b = _oracle_drive(sc)
    assert a.steps == b.steps and a.actors == b.actors


def test_no_perception_runs_the_stop_sign():
    sc = _urban_stop()
    setup = DriveSetup.from_scenario(sc)
    with EmbeddedBackend() as b:
        b.start(EpisodeSpec.from_scenario(sc, camera=None, lidar=None))
        trace = drive(b, setup, lambda f: from_truth(f, ("car", "pedestrian")), ReferencePolicy())
    assert evaluate(trace, setup.goal).ran_stop


def test_drive_setup_defaults_and_overrides():
    sc = load_scenario("urban_stop")
    d = DriveSetup.from_scenario(sc)
    assert d.goal == pytest.approx(8.0 * 6.0) and d.time_limit == pytest.approx(22.0)
    assert d.cruise_speed == 8.0 and d.rate == 10.0
    assert DriveSetup.from_scenario(_urban_stop(90.0)).goal == 90.0


def test_carla_closed_loop_sets_the_ego_from_the_driving_model_before_each_tick():
    from tests.carla_standin import Recorder
    from tests.test_carla_backend import _backend, _scenario, _world

    sc = _scenario()
    rec = Recorder()
    backend = _backend(_world(sc, rec))
    ep = EpisodeSpec.from_scenario(sc, rate=10.0)
    backend.start(ep)
    ego_id = backend._ego.id
    try:
        lane = backend.ego_lane()
        # The lane runs along the scenario's road (lane -1, y = -1.75 in our frame) to its end.
        assert lane[0] == pytest.approx([0.0, -1.75], abs=0.2)
        assert lane[-1][0] == pytest.approx(sc.map.length, abs=1.5)
        setup = DriveSetup(goal=5.0, time_limit=1.0, rate=10.0, cruise_speed=8.0, start_speed=8.0)
        start = len(rec.calls)
        trace = drive(backend, setup, lambda f: from_truth(f, ALL), ReferencePolicy())
    finally:
        backend.close()
    calls = rec.calls[start:]
    ego_moves = [c for c in calls if c[0] == "set_transform" and c[1] == ego_id]
    ticks = [i for i, c in enumerate(calls) if c[0] == "tick"]
    assert len(trace.steps) == len(ego_moves) >= 5
    # Each step: the ego is placed where the model has it (CARLA's y is ours mirrored), then
    # the world ticks.
    for step, move in zip(trace.steps, ego_moves, strict=True):
        assert move[2] == pytest.approx(step.x, abs=1e-4)
        assert move[3] == pytest.approx(-step.y, abs=1e-4)
    first_move = next(i for i, c in enumerate(calls) if c[0] == "set_transform")
    assert first_move < ticks[0]
    moves_idx = [i for i, c in enumerate(calls) if c in ego_moves]
    for a, b in itertools.pairwise(moves_idx):
        assert any(a < t < b for t in ticks)  # a tick between consecutive placements
