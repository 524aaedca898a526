"""The sign catalogue: each sign class with its shape and real size. Sizes follow the
Vienna-convention signs of European streets (and a 900 mm stop octagon): circular signs 750 mm
across, the yield triangle 900 mm a side, the square crossing sign 600 mm. The simulator draws
their faces (:mod:`avrobust.sim.signs`); defences reason about their sizes.

:data:`SIGN_TYPES` are the classes the shipped sign classifier was trained on.
:data:`UNSEEN_SIGN_TYPES` are real signs it never saw (priority road, general danger, no
parking, ahead only, end of restrictions, and a 60 limit as the near neighbour of the trained
limits): a scenario may place them, and the runtime monitors are scored on whether they flag
them (a semantic shift), never on what the classifier calls them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def regular_polygon(n: int, circumradius: float, rotation: float = 0.0) -> np.ndarray:
    """``[n, 2]`` counter-clockwise vertices of a regular polygon centred at the origin."""
    ang = rotation + np.arange(n) * 2 * math.pi / n
    return np.stack([circumradius * np.cos(ang), circumradius * np.sin(ang)], axis=1)


@dataclass(frozen=True)
class SignType:
    """One sign class: its name, shape, and size in metres (across flats, diameter or side)."""

    name: str
    shape: str  # octagon | triangle_down | triangle_up | circle | square | diamond
    size: float

    def outline(self) -> np.ndarray:
        """``[N, 2]`` outline ``(y, z)`` in metres, centred on the face's bounding box centre."""
        if self.shape == "octagon":
            pts = regular_polygon(8, self.size / 2 / math.cos(math.pi / 8), math.pi / 8)
        elif self.shape == "triangle_down":
            pts = regular_polygon(3, self.size / math.sqrt(3), -math.pi / 2)
        elif self.shape == "circle":
            pts = regular_polygon(32, self.size / 2)
        elif self.shape == "square":
            pts = regular_polygon(4, self.size / math.sqrt(2), math.pi / 4)
        elif self.shape == "diamond":  # a square on its corner; size is its side
            pts = regular_polygon(4, self.size / math.sqrt(2))
        elif self.shape == "triangle_up":
            pts = regular_polygon(3, self.size / math.sqrt(3), math.pi / 2)
        else:  # pragma: no cover - the catalogue below is fixed
            raise ValueError(self.shape)
        centre = (pts.min(0) + pts.max(0)) / 2
        return pts - centre

    @property
    def face_extent(self) -> float:
        """Side of the square the face texture covers, metres (the outline's larger extent)."""
        pts = self.outline()
        return float((pts.max(0) - pts.min(0)).max())


#: Every sign class by name; its order is :data:`avrobust.core.classes.SIGN_TYPES`.
SIGN_TYPES: dict[str, SignType] = {
    s.name: s
    for s in [
        SignType("stop", "octagon", 0.90),
        SignType("yield", "triangle_down", 0.90),
        SignType("speed_limit_30", "circle", 0.75),
        SignType("speed_limit_50", "circle", 0.75),
        SignType("speed_limit_80", "circle", 0.75),
        SignType("no_entry", "circle", 0.75),
        SignType("pedestrian_crossing", "square", 0.60),
    ]
}

#: Real signs outside the classifier's classes (the semantic shift the monitors are scored on).
UNSEEN_SIGN_TYPES: dict[str, SignType] = {
    s.name: s
    for s in [
        SignType("priority_road", "diamond", 0.60),
        SignType("general_danger", "triangle_up", 0.90),
        SignType("no_parking", "circle", 0.75),
        SignType("ahead_only", "circle", 0.75),
        SignType("end_of_restrictions", "circle", 0.75),
        SignType("speed_limit_60", "circle", 0.75),
    ]
}

#: Every sign the simulator can draw and a scenario can place.
ALL_SIGN_TYPES: dict[str, SignType] = {**SIGN_TYPES, **UNSEEN_SIGN_TYPES}
