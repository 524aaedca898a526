"""Class vocabularies shared by datasets, models and metrics."""

from __future__ import annotations

import math

SIGN_TYPES: tuple[str, ...] = (
    "stop",
    "yield",
    "speed_limit_30",
    "speed_limit_50",
    "speed_limit_80",
    "no_entry",
    "pedestrian_crossing",
)
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
