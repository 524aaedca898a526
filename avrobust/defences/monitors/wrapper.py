"""A fitted monitor behind a perception model, as the consistency checks are: the model's
detections pass unchanged and every sign detection whose crop the monitor doubts beyond the
calibrated threshold raises a ``doubted_sign`` alarm, stored beside the results so alarm rates
on clean and attacked frames come from the same batches (the driving policy's fail-safe reacts
to the same alarms)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from avrobust.core.classes import SIGN_TYPES
from avrobust.core.components import Alarm, Monitor
from avrobust.core.detections import Detections
from avrobust.core.frame import Frame
from avrobust.defences.defended import Defended

KIND = "doubted_sign"


def monitor_step(
    monitor: Monitor, threshold: float
) -> Callable[[Frame, Detections | None], tuple[Detections | None, list[Alarm]]]:
    """The :class:`Defended` step: score the classifier crop of each sign detection."""
    from avrobust.models.victims import crop_boxes

    def step(frame: Frame, dets: Detections | None) -> tuple[Detections | None, list[Alarm]]:
        if dets is None or len(dets) == 0 or frame.image is None:
            return dets, []
        names = [dets.class_names[int(k)] for k in dets.labels]
        signs = [i for i, n in enumerate(names) if n in SIGN_TYPES]
        if not signs:
            return dets, []
        with torch.no_grad():
            scores = monitor.score(crop_boxes(frame.image, dets.boxes[signs]))
        alarms = [
            Alarm(KIND, f"{monitor.name} {float(s):.3g} > {threshold:.3g} on a {names[i]} "
                  f"box at x {float(dets.boxes[i, 0]):.0f}-{float(dets.boxes[i, 2]):.0f} px")
            for i, s in zip(signs, scores.tolist(), strict=True)
            if s > threshold
        ]  # fmt: skip
        return dets, alarms

    return step


def monitored(model: Callable[[Any], Any], monitor: Monitor, threshold: float) -> Defended:
    """``model`` with ``monitor`` watching its sign detections (alarms via ``take_alarms``)."""
    return Defended(model, monitor_step(monitor, threshold))
