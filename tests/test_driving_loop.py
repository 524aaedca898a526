"""The closed loop in the embedded simulator and on the CARLA recording stand-in: the oracle
stops for the stop sign and finishes, the same seed gives the same trajectory bit for bit, and
on CARLA the ego's transform is set from the driving model before each tick."""

import itertools

import pytest
import torch

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


@pytest.mark.parametrize(
    ("scenario", "unseen", "hit"),
    [
        ("lead_brake", "car", "lead"),
        ("pedestrian_dart", "pedestrian", "walker"),
        ("stop_cross_traffic", "traffic_sign", "cross"),
    ],
)
def test_closed_loop_hazards_are_real(scenario, unseen, hit):
    # The oracle gets through each library hazard without contact; a stack blind to the one
    # category that matters there collides with the actor the scenario put in its way.
    sc = load_scenario(scenario)
    setup = DriveSetup.from_scenario(sc)
    results = {}
    for label, cats in (("oracle", ALL), ("blind", tuple(c for c in ALL if c != unseen))):
        with EmbeddedBackend() as b:
            b.start(EpisodeSpec.from_scenario(sc, camera=None, lidar=None))
            trace = drive(b, setup, lambda f, cats=cats: from_truth(f, cats), ReferencePolicy())
        results[label] = evaluate(trace, setup.goal)
    assert not results["oracle"].collided
    assert [c.actor for c in results["blind"].collisions] == [hit]
    if unseen == "traffic_sign":
        assert results["oracle"].stops[0].stopped and results["blind"].ran_stop


def test_behaviour_profiles_brake_and_start_walking():
    from avrobust.scenario.behaviour import SpeedProfile

    brake = SpeedProfile(12.0, 0.0, 7.0, time=5.0)
    assert brake.speed(5.0) == 12.0 and brake.speed(6.0) == pytest.approx(5.0)
    assert brake.distance(5.0) == pytest.approx(60.0)
    # 12 m/s to a standstill at 7 m/s^2: 144 / 14 metres more, then it stands.
    assert brake.distance(30.0) == pytest.approx(60.0 + 144 / 14)
    walk = SpeedProfile(0.0, 1.8, 3.0, ego_within=30.0)
    walk.check(1.0, (0.0, 0.0), (40.0, 0.0))
    assert walk.fired is None and walk.distance(2.0) == 0.0
    walk.check(2.0, (15.0, 0.0), (40.0, 0.0))
    walk.check(3.0, (40.0, 0.0), (40.0, 0.0))  # fires once, at the first frame that holds
    assert walk.fired == 2.0
    assert walk.distance(4.0) == pytest.approx(0.54 + 1.8 * (2.0 - 0.6))


def test_a_triggered_pedestrian_walks_in_both_backends():
    from tests.carla_standin import Recorder
    from tests.test_carla_backend import _backend, _world

    sc = load_scenario("pedestrian_dart")
    sc = sc.model_copy(update={"map": sc.map.model_copy(update={"length": 120.0})})
    far = torch.eye(4, dtype=torch.float64)
    near = far.clone()
    near[0, 3] = 45.0
    with EmbeddedBackend() as b:
        b.start(EpisodeSpec.from_scenario(sc, camera=None, lidar=None))
        walker = b.object_id("walker")
        ys = []
        for k, pose in enumerate([far, far, near, near, near]):
            f = b.frame_at(k, pose)
            i = f.truth.ids.tolist().index(walker)
            ys.append(float(f.truth.boxes_3d.center[i, 1] + f.ego_pose[1, 3]))
    assert ys[0] == ys[1] == ys[2]  # fired at frame 2 (t = 0.2 s): walking after it
    assert ys[4] > ys[3] > ys[2]
    backend = _backend(_world(sc, Recorder()))
    backend.start(EpisodeSpec.from_scenario(sc))
    try:
        before = backend._pose_of("walker", 1.0)
        backend.frame_at(2, near.clone())
        after = backend._pose_of("walker", 1.0)
    finally:
        backend.close()
    assert before[1, 3] == pytest.approx(-6.0)  # on the kerb until the trigger
    assert after[1, 3] > before[1, 3]  # crossing to the left after it


def test_a_sign_box_cut_by_any_image_border_is_not_ranged():
    # Ranging by width needs the whole sign: a near sign leaves the top or the side of the
    # image, and the detector's box of what is left stops a few pixels short of the border.
    from avrobust.core.sensors import CameraSpec
    from avrobust.driving.percepts import sign_percept

    sc = load_scenario("stop_cross_traffic")
    with EmbeddedBackend() as b:
        b.start(EpisodeSpec.from_scenario(sc, camera=CameraSpec(200, 100), lidar=None, frames=1))
        [frame] = list(b.frames())
    whole = sign_percept(frame, torch.tensor([120.0, 30.0, 140.0, 50.0]), "stop", 0.9)
    assert whole is not None and whole.kind == "stop"
    # 0.9 m across in 20 px at fx = 100 (90 degrees over 200 px): 4.5 m ahead of the camera.
    ego = frame.ego_pose[:2, 3].tolist()
    assert 4.0 < ((whole.x - ego[0]) ** 2 + (whole.y - ego[1]) ** 2) ** 0.5 < 7.0
    for cut in ([120.0, 1.5, 140.0, 20.0], [185.0, 30.0, 198.5, 50.0], [0.5, 30, 15, 50]):
        assert sign_percept(frame, torch.tensor(cut), "stop", 0.9) is None, cut
    assert sign_percept(frame, torch.tensor([120.0, 30.0, 140.0, 50.0]), "graffiti", 0.9) is None
