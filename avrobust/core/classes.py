"""Class vocabularies shared by datasets, models and metrics."""

from __future__ import annotations

import math

from avrobust.core import signs

#: The sign classes, in the order of the sign catalogue (:mod:`avrobust.core.signs`).
SIGN_TYPES: tuple[str, ...] = tuple(signs.SIGN_TYPES)
#: Real signs the classifier never saw (the monitors' semantic shift), and every drawable sign.
UNSEEN_SIGN_TYPES: tuple[str, ...] = tuple(signs.UNSEEN_SIGN_TYPES)
ALL_SIGN_TYPES: tuple[str, ...] = (*SIGN_TYPES, *UNSEEN_SIGN_TYPES)
BACKGROUND = "background"
#: What the sign classifier outputs: every sign type, then background.
SIGN_CLASSES: tuple[str, ...] = (*SIGN_TYPES, BACKGROUND)
#: What the camera detector outputs.
DETECTION_CLASSES: tuple[str, ...] = ("car", "pedestrian", "traffic_sign")


def distance_band(d: float) -> str:
    """The distance bands model cards and reports use."""
    if math.isnan(d):
        return "n/a"
    for hi in (10, 20, 30, 40, 60):
        if d < hi:
            return f"<{hi} m"
    return ">=60 m"
