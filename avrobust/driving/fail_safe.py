"""Fail-safe behaviour: what the car does when its runtime monitors doubt what it perceives.

Two reactions, each configurable per campaign (the ``fail_safe`` parameter of a monitoring
defence) and each recorded in the decision's cause when it changes what the car does:

* a sign the monitor doubts, or one the classifier cannot name (``doubted_sign``,
  ``unreadable_sign`` alarms), is taken as the most restrictive plausible class (``stop``, by
  default) before the policy sees it: a misread sign then costs a stop, not a violation;
* alarms in at least ``persist`` of the last ``window`` frames start a minimal-risk manoeuvre:
  slow to ``mrm_speed`` (0: stop in the lane) at ``mrm_decel`` until the alarms clear.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from avrobust.core.components import Alarm
from avrobust.core.detections import Detections
from avrobust.core.fail_safe import SIGN_ALARMS, FailSafe
from avrobust.driving.dynamics import EgoState, VehicleLimits
from avrobust.driving.percepts import Percept
from avrobust.driving.policy import Decision, DrivingPolicy
from avrobust.driving.route import Route

__all__ = ["FailSafe", "FailSafePolicy", "changed_by_fail_safe", "relabel_doubted"]

TAKEN_AS = ": taken as "  # in a relabelled percept's note, so in the cause it leads to
MRM = "minimal_risk"


def changed_by_fail_safe(step) -> bool:
    """Whether a recorded step's decision was the fail-safe's (a relabelled sign caused it, or
    the minimal-risk manoeuvre): the time it takes from availability."""
    return step.manoeuvre == MRM or TAKEN_AS in step.cause


def relabel_doubted(
    dets: Detections | None, alarms: Sequence[Alarm], as_class: str | None
) -> tuple[Detections | None, dict[int, str]]:
    """``dets`` with every detection a sign alarm names relabelled ``as_class``, and a note per
    relabelled index (``"doubted_sign, read speed_limit_80: taken as stop"``)."""
    if dets is None or as_class is None or as_class not in dets.class_names:
        return dets, {}
    target = dets.class_names.index(as_class)
    notes: dict[int, str] = {}
    labels = dets.labels.clone()
    for a in alarms:
        if a.kind in SIGN_ALARMS and a.index is not None and 0 <= a.index < len(dets):
            read = dets.class_names[int(labels[a.index])]
            notes[a.index] = f"{a.kind}, read {read}{TAKEN_AS}{as_class}"
            labels[a.index] = target
    if not notes:
        return dets, {}
    return replace(dets, labels=labels), notes


class FailSafePolicy:
    """``inner`` (any driving policy) with the minimal-risk manoeuvre on persistent alarms.
    The closed loop hands it each frame's alarms (:meth:`note_alarms`) before ``decide``."""

    def __init__(self, inner: DrivingPolicy, config: FailSafe) -> None:
        self.inner, self.config = inner, config
        self.name = f"{inner.name}+fail-safe"
        self._recent: deque[tuple[str, ...]] = deque(maxlen=config.window)

    def reset(self, route: Route, cruise_speed: float, limits: VehicleLimits) -> None:
        self._recent.clear()
        self.inner.reset(route, cruise_speed, limits)

    def note_alarms(self, alarms: Sequence[Alarm]) -> None:
        self._recent.append(tuple(sorted({a.kind for a in alarms})))

    def active(self) -> tuple[str, ...] | None:
        """The alarm kinds that hold the manoeuvre on now, or None."""
        cfg = self.config
        hits = [k for k in self._recent if k]
        if cfg.persist == 0 or len(hits) < cfg.persist:
            return None
        return tuple(sorted({x for k in hits for x in k}))

    def decide(self, state: EgoState, percepts: Sequence[Percept]) -> Decision:
        d = self.inner.decide(state, percepts)
        kinds = self.active()
        if kinds is None:
            return d
        cfg = self.config
        # Never faster than the inner policy wants; brake to the stated speed, then hold it.
        accel = d.command.accel
        if state.speed > cfg.mrm_speed + 0.1:
            accel = min(accel, -cfg.mrm_decel)
        elif cfg.mrm_speed == 0.0:
            accel = min(accel, -cfg.mrm_decel) if state.speed > 0 else min(accel, 0.0)
        else:
            accel = min(accel, 0.5 * (cfg.mrm_speed - state.speed))
        n = sum(1 for k in self._recent if k)
        return Decision(
            replace(d.command, accel=accel),
            MRM,
            min(d.target_speed, cfg.mrm_speed),
            f"fail-safe: {'/'.join(kinds)} in {n} of the last {len(self._recent)} frames",
            "monitor",
            d.cause_gap,
        )
