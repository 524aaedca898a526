"""A fitted monitor behind a perception model, as the consistency checks are: the model's
detections pass unchanged and every sign detection whose crop the monitor doubts beyond the
calibrated threshold raises a ``doubted_sign`` alarm, and (with ``unreadable``) every detected
sign the classifier calls background an ``unreadable_sign`` one; each names its detection. They
are stored beside the results so alarm rates on clean and attacked frames come from the same
batches, and the closed loop's fail-safe reacts to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from avrobust.core.classes import BACKGROUND, SIGN_TYPES
from avrobust.core.components import Alarm, Monitor
from avrobust.core.detections import Detections
from avrobust.core.frame import Frame
from avrobust.defences.defended import Defended

KIND = "doubted_sign"
UNREADABLE = "unreadable_sign"


#: Crops at least this tall are judged: the monitors are calibrated on the dataset's crops,
#: which start there; a smaller sign is beyond what the classifier can be asked to read.
MIN_PX = 12.0


def monitor_step(
    monitor: Monitor, threshold: float, unreadable: bool = False, min_px: float = MIN_PX
) -> Callable[[Frame, Detections | None], tuple[Detections | None, list[Alarm]]]:
    """The :class:`Defended` step: score the classifier crop of each sign detection at least
    ``min_px`` tall."""
    from avrobust.models.victims import crop_boxes

    def step(frame: Frame, dets: Detections | None) -> tuple[Detections | None, list[Alarm]]:
        if dets is None or len(dets) == 0 or frame.image is None:
            return dets, []
        names = [dets.class_names[int(k)] for k in dets.labels]
        tall = (dets.boxes[:, 3] - dets.boxes[:, 1] >= min_px).tolist()
        signs = [i for i, n in enumerate(names) if n in SIGN_TYPES and tall[i]]
        alarms = [
            Alarm(UNREADABLE, f"a detected sign read as background at x {_x(dets, i)} px", i)
            for i, n in enumerate(names)
            if unreadable and n == BACKGROUND and tall[i]
        ]
        if not signs:
            return dets, alarms
        with torch.no_grad():
            scores = monitor.score(crop_boxes(frame.image, dets.boxes[signs]))
        alarms += [
            Alarm(KIND, f"{monitor.name} {s:.3g} > {threshold:.3g} on a {names[i]} box at "
                  f"x {_x(dets, i)} px", i)
            for i, s in zip(signs, scores.tolist(), strict=True)
            if s > threshold
        ]  # fmt: skip
        return dets, alarms

    return step


def _x(dets: Detections, i: int) -> str:
    return f"{float(dets.boxes[i, 0]):.0f}-{float(dets.boxes[i, 2]):.0f}"


def monitored(
    model: Callable[[Any], Any],
    monitor: Monitor,
    threshold: float,
    unreadable: bool = False,
    min_px: float = MIN_PX,
) -> Defended:
    """``model`` with ``monitor`` watching its sign detections (alarms via ``take_alarms``)."""
    return Defended(model, monitor_step(monitor, threshold, unreadable, min_px))
