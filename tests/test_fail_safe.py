"""The fail-safe: doubted signs taken as the restrictive class before the policy sees them, a
minimal-risk manoeuvre on persistent alarms (planted alarm sequences), its configuration
checked, and the sign-monitor defence that carries it."""

from __future__ import annotations

import pytest
import torch

from avrobust.core.classes import SIGN_CLASSES
from avrobust.core.components import Alarm
from avrobust.core.detections import Detections
from avrobust.core.errors import ConfigError
from avrobust.core.fail_safe import FailSafe
from avrobust.driving.dynamics import BicycleModel, Command, EgoState, VehicleLimits
from avrobust.driving.fail_safe import FailSafePolicy, relabel_doubted
from avrobust.driving.policy import Decision
from avrobust.driving.route import Route


def _dets(*names: str) -> Detections:
    n = len(names)
    boxes = torch.tensor([[10.0 * i, 0, 10.0 * i + 30, 30] for i in range(n)])
    labels = torch.tensor([SIGN_CLASSES.index(x) for x in names])
    return Detections(boxes, torch.full((n,), 0.8), labels, "2d", SIGN_CLASSES)


def test_doubted_and_unreadable_signs_are_taken_as_the_restrictive_class():
    dets = _dets("speed_limit_80", "background", "yield")
    alarms = [
        Alarm("doubted_sign", "odin", 0),
        Alarm("unreadable_sign", "bg", 1),
        Alarm("vanished", "a frame-level alarm", None),
    ]
    out, notes = relabel_doubted(dets, alarms, "stop")
    names = [SIGN_CLASSES[int(k)] for k in out.labels]
    assert names == ["stop", "stop", "yield"]
    assert notes == {
        0: "doubted_sign, read speed_limit_80: taken as stop",
        1: "unreadable_sign, read background: taken as stop",
    }
    assert SIGN_CLASSES[int(dets.labels[0])] == "speed_limit_80"  # the input is not modified
    assert relabel_doubted(dets, alarms, None) == (dets, {})
    assert relabel_doubted(dets, [], "stop") == (dets, {})
    assert relabel_doubted(None, alarms, "stop") == (None, {})


class _Cruise:
    """An inner policy that always wants to speed up."""

    name = "cruise"

    def reset(self, route, cruise_speed, limits):
        self.resets = getattr(self, "resets", 0) + 1

    def decide(self, state, percepts):
        return Decision(Command(1.0), "cruise", 12.0, "", "")


def _drive(alarm_frames: list[bool], config: FailSafe, v0: float = 10.0):
    lim = VehicleLimits()
    policy = FailSafePolicy(_Cruise(), config)
    policy.reset(Route([(float(x), 0.0) for x in range(0, 400, 2)]), 10.0, lim)
    model, state, out = BicycleModel(lim), EgoState(0.0, 0.0, 0.0, v0), []
    for alarmed in alarm_frames:
        policy.note_alarms([Alarm("doubted_sign", "", 0)] if alarmed else [])
        d = policy.decide(state, [])
        out.append((state.speed, d))
        state = model.step(state, d.command, 0.1)
    return out


def test_sparse_alarms_change_nothing():
    out = _drive(
        [True, False, True, False, False, True, False, False] * 3, FailSafe(persist=3, window=5)
    )
    assert all(d.manoeuvre == "cruise" and d.command.accel == 1.0 for _, d in out)


def test_persistent_alarms_start_the_minimal_risk_manoeuvre_and_stop_the_car():
    out = _drive([False] * 3 + [True] * 60, FailSafe(persist=3, window=5, mrm_decel=3.0))
    first = next(i for i, (_, d) in enumerate(out) if d.manoeuvre == "minimal_risk")
    assert first == 5  # the third alarm frame
    d = out[first][1]
    assert d.command.accel <= -3.0 and d.cause_source == "monitor"
    assert d.cause == "fail-safe: doubted_sign in 3 of the last 5 frames"
    assert out[-1][0] == pytest.approx(0.0, abs=0.05)  # stopped, and held there
    assert all(d.target_speed == 0.0 for _, d in out[first:])


def test_the_manoeuvre_slows_to_the_stated_speed_and_ends_when_alarms_clear():
    out = _drive([True] * 60 + [False] * 30, FailSafe(persist=2, window=4, mrm_speed=5.0))
    speeds = [v for v, _ in out]
    assert min(speeds[:60]) == pytest.approx(5.0, abs=0.4)
    assert speeds[59] == pytest.approx(5.0, abs=0.4)
    assert out[-1][1].manoeuvre == "cruise"  # window frames without alarms: the inner policy


def test_fail_safe_settings_are_checked():
    assert FailSafe.from_params(None) is None
    assert FailSafe.from_params({"persist": 2}).persist == 2
    with pytest.raises(ConfigError, match="doubted_sign"):
        FailSafe(doubted_sign="no_such_sign")
    with pytest.raises(ConfigError, match="persist"):
        FailSafe(persist=12, window=10)
    with pytest.raises(ConfigError, match="unknown fail_safe keys"):
        FailSafe.from_params({"persistence": 2})


def test_the_sign_monitor_defence_is_built_from_a_campaign_and_checks_its_model():
    from avrobust.campaign.registry import create as build
    from avrobust.campaign.registry import load_builtin_components

    load_builtin_components()
    params = {
        "threshold": -0.5,
        "method": "msp",
        "fail_safe": {"doubted_sign": "stop", "persist": 4},
    }
    defence = build("defence", {"name": "sign-monitor", "params": params})
    assert defence.raises_alarms and defence.fail_safe() == FailSafe(persist=4)
    assert defence.provenance()["method"] == "msp"
    with pytest.raises(ConfigError, match="fit"):
        build("defence", {"name": "sign-monitor", "params": {"threshold": 1.0, "method": "knn"}})
    with pytest.raises(ConfigError, match="sign classifier"):
        defence.wrap(build("model", {"name": "camera-detector"}))
    none = build("defence", {"name": "none"})
    assert none.fail_safe() is None


@pytest.mark.slow
def test_in_closed_loop_the_fail_safe_stops_the_car_the_sticker_fooled():
    """The shipped sticker makes the sign pipeline run the stop (40 m, clear noon); with a
    monitor that doubts every sign judged (MSP above -1) and the fail-safe, the doubted
    readings are taken as stop, the car stops at the line, the alarms are stored and the
    decision says why. (12 s of driving: the stop, or the violation, is over by 8 s.)"""
    from avrobust.campaign.closed_loop import run_drive
    from avrobust.scenario.campaign import apply_conditions
    from avrobust.scenario.library import load_scenario

    where = {"weather": "ClearNoon", "distance": 40}
    sc = apply_conditions(load_scenario("stop_cross_traffic"), where)
    sc = sc.model_copy(update={"driving": sc.driving.model_copy(update={"time_limit": 12.0})})
    patch = {"file": "assets/patches/stop_to_80.patch", "surface": "stop_sign"}
    sticker = {"name": "patch", "params": patch}
    undefended = run_drive(sc, {"name": "sign-pipeline"}, sticker, {"name": "none"})
    assert undefended.result.infractions["stop_sign"] == 1
    monitor = {"threshold": -1.0, "method": "msp", "fail_safe": {"doubted_sign": "stop"}}
    doubt_all = {"name": "sign-monitor", "params": monitor}
    out = run_drive(sc, {"name": "sign-pipeline"}, sticker, doubt_all)
    assert out.result.infractions["stop_sign"] == 0
    assert [s["stopped"] for s in out.result.to_dict()["stops"]] == [True]
    kinds = {a.kind for a in out.job.alarms}
    assert "doubted_sign" in kinds
    assert any("taken as stop" in s.cause for s in out.trace.steps)


def test_the_report_counts_the_time_the_fail_safe_decided():
    from types import SimpleNamespace

    from avrobust.driving.trace import StepRecord, Trace
    from avrobust.report.sections_driving import _fail_safe

    def drive(attack, causes):
        steps = [StepRecord(0.1 * k, 0, 0, 0, 5, 0, 0, m, 5, c) for k, (m, c) in enumerate(causes)]
        trace = Trace(0.1, Route([(0.0, 0.0), (100.0, 0.0)]), steps=steps)
        job = SimpleNamespace(status="done", scenario="s", model="sign-pipeline",
                              defence="sign-monitor", attack=attack)  # fmt: skip
        return job, SimpleNamespace(trace=trace.to_dict())

    taken = ("stop_sign", "stop at 9 m (model; doubted_sign, read speed_limit_80: taken as stop)")
    clean = [drive("none", [("cruise", "")] * 10), drive("none", [("cruise", "")] * 10)]
    data = SimpleNamespace(drives=clean)
    assert _fail_safe(data) is None  # it never acted: no table
    data.drives = [*clean, drive("patch", [("cruise", ""), taken, taken, ("minimal_risk", "x")])]
    table = _fail_safe(data)  # one scenario and defence: those columns go to the caption
    assert table.header[:2] == ["model", "attack"]
    rows = {r[1]: r for r in table.rows}
    assert rows["patch"][3].startswith("1/1") and rows["patch"][4] == "75.0%"
    assert rows["none"][3].startswith("0/2") and rows["none"][5] == "100.0%"
