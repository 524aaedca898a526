"""A perception model behind a defence: called like the model, with the same output format,
and keeping the alarms the defence raised (a consistency check that flags what it cannot
fix). The campaign runner takes the alarms after each frame and stores them beside the
results, so a check's detection rate (alarms on attacked frames) and false-positive rate
(alarms on clean frames) come from the same batches as everything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avrobust.core.components import Alarm

__all__ = ["Alarm", "Defended"]


Step = Callable[[Any, Any], tuple[Any, list[Alarm]]]


class Defended:
    """``model`` behind ``step(frame, detections) -> (detections, alarms)``; one per job, so a
    step may keep state across the job's frames (a tracker)."""

    def __init__(self, model: Callable[[Any], Any], step: Step) -> None:
        self.model, self._step = model, step
        self._alarms: list[Alarm] = []

    def __call__(self, frame: Any) -> Any:
        dets, alarms = self._step(frame, self.model(frame))
        self._alarms.extend(alarms)
        return dets

    def take_alarms(self) -> list[Alarm]:
        """The alarms raised since the last call (normally: in the last frame)."""
        out, self._alarms = self._alarms, []
        return out
