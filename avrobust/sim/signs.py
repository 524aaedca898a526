"""Traffic sign face artwork for the catalogue of :mod:`avrobust.core.signs` (classes, shapes,
real sizes, re-exported here), the trained classes and the unseen ones alike. Faces are
drawn with OpenCV at twice the texture size and downsampled, so edges are anti-aliased.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from avrobust.core.signs import ALL_SIGN_TYPES, SIGN_TYPES, SignType, regular_polygon

__all__ = ["ALL_SIGN_TYPES", "SIGN_TYPES", "draw_face"]

RED = (0.78, 0.06, 0.07)
WHITE = (0.93, 0.93, 0.91)
BLACK = (0.04, 0.04, 0.04)
BLUE = (0.05, 0.25, 0.62)
YELLOW = (0.97, 0.76, 0.05)


def _px(points: np.ndarray, extent: float, size: int) -> np.ndarray:
    """Outline metres ``(y, z)`` to texture pixels ``(x, y)`` (the mapping of ``polygon_plate``)."""
    x = (points[:, 0] / extent + 0.5) * size
    y = (0.5 - points[:, 1] / extent) * size
    return np.stack([x, y], 1)


def _c(rgb) -> tuple[int, int, int]:
    """A colour in [0, 1] as the 8-bit triple OpenCV draws with (text needs 8-bit images)."""
    return tuple(round(255 * float(v)) for v in rgb)


def _text(
    img: np.ndarray,
    text: str,
    centre: tuple[float, float],
    height: float,
    colour,
    thickness_ratio: float = 0.14,
    width_limit: float | None = None,
) -> None:
    font = cv2.FONT_HERSHEY_DUPLEX
    (w, h), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = height / h
    if width_limit is not None:
        scale = min(scale, width_limit / w)
    thick = max(1, round(height * thickness_ratio))
    (w, h), _ = cv2.getTextSize(text, font, scale, thick)
    org = (round(centre[0] - w / 2), round(centre[1] + h / 2))
    cv2.putText(img, text, org, font, scale, _c(colour), thick, cv2.LINE_AA)


def draw_face(sign: SignType | str, size: int = 256) -> np.ndarray:
    """The face texture of a sign, ``[3, size, size]`` float32; outside the outline is grey metal
    (the mesh does not show it)."""
    if isinstance(sign, str):
        sign = ALL_SIGN_TYPES[sign]
    big = size * 2
    img = np.full((big, big, 3), 140, np.uint8)
    ext = sign.face_extent
    outline = sign.outline()
    poly = _px(outline, ext, big)
    cx, cy = big / 2, big / 2
    if sign.shape == "octagon":
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], _c(WHITE), cv2.LINE_AA)
        inner = _px(outline * 0.92, ext, big)
        cv2.fillPoly(img, [np.round(inner).astype(np.int32)], _c(RED), cv2.LINE_AA)
        _text(img, "STOP", (cx, cy), big * 0.26, WHITE, 0.16, width_limit=big * 0.74)
    elif sign.shape == "triangle_down":
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], _c(RED), cv2.LINE_AA)
        inner = _px(outline * 0.68, ext, big)
        cv2.fillPoly(img, [np.round(inner).astype(np.int32)], _c(WHITE), cv2.LINE_AA)
    elif sign.shape == "triangle_up":  # general danger: red rim, white field, black "!"
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], _c(RED), cv2.LINE_AA)
        inner = _px(outline * 0.72, ext, big)
        cv2.fillPoly(img, [np.round(inner).astype(np.int32)], _c(WHITE), cv2.LINE_AA)
        _text(img, "!", (cx, cy + big * 0.1), big * 0.36, BLACK, 0.22)
    elif sign.shape == "diamond":  # priority road: white rim, yellow field
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], _c(WHITE), cv2.LINE_AA)
        inner = _px(outline * 0.7, ext, big)
        cv2.fillPoly(img, [np.round(inner).astype(np.int32)], _c(YELLOW), cv2.LINE_AA)
    elif sign.shape == "circle" and sign.name in _ROUND_DRAWERS:
        _ROUND_DRAWERS[sign.name](img, cx, cy, big / 2 * (sign.size / ext))
    elif sign.shape == "circle":
        r = big / 2 * (sign.size / ext)
        if sign.name == "no_entry":
            cv2.circle(img, (round(cx), round(cy)), round(r), _c(RED), -1, cv2.LINE_AA)
            bw, bh = r * 1.3, r * 0.36
            cv2.rectangle(
                img,
                (round(cx - bw / 2), round(cy - bh / 2)),
                (round(cx + bw / 2), round(cy + bh / 2)),
                _c(WHITE),
                -1,
                cv2.LINE_AA,
            )
        else:
            cv2.circle(img, (round(cx), round(cy)), round(r), _c(RED), -1, cv2.LINE_AA)
            cv2.circle(img, (round(cx), round(cy)), round(r * 0.78), _c(WHITE), -1, cv2.LINE_AA)
            number = sign.name.rsplit("_", 1)[-1]
            _text(img, number, (cx, cy), r * 0.72, BLACK, 0.13, width_limit=r * 1.2)
    elif sign.shape == "square":
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], _c(WHITE), cv2.LINE_AA)
        inner = _px(outline * 0.9, ext, big)
        cv2.fillPoly(img, [np.round(inner).astype(np.int32)], _c(BLUE), cv2.LINE_AA)
        tri = _px(
            regular_polygon(3, ext * 0.42, math.pi / 2) + np.array([0, -0.05 * ext]), ext, big
        )
        cv2.fillPoly(img, [np.round(tri).astype(np.int32)], _c(WHITE), cv2.LINE_AA)
        _draw_walker(img, cx, cy + big * 0.03, big * 0.30)
    small = cv2.resize(img.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1))


def _circle(img: np.ndarray, cx: float, cy: float, r: float, colour) -> None:
    cv2.circle(img, (round(cx), round(cy)), round(r), _c(colour), -1, cv2.LINE_AA)


def _line(img: np.ndarray, a, b, colour, thickness: float) -> None:
    pa, pb = (round(a[0]), round(a[1])), (round(b[0]), round(b[1]))
    cv2.line(img, pa, pb, _c(colour), max(1, round(thickness)), cv2.LINE_AA)


def _no_parking(img: np.ndarray, cx: float, cy: float, r: float) -> None:
    """Blue field, red rim, one red slash from upper left to lower right."""
    _circle(img, cx, cy, r, RED)
    _circle(img, cx, cy, r * 0.8, BLUE)
    d = r * 0.8 * math.sqrt(0.5)
    _line(img, (cx - d, cy - d), (cx + d, cy + d), RED, r * 0.18)


def _ahead_only(img: np.ndarray, cx: float, cy: float, r: float) -> None:
    """Blue disc with a white arrow pointing up."""
    _circle(img, cx, cy, r, WHITE)
    _circle(img, cx, cy, r * 0.93, BLUE)
    _line(img, (cx, cy + r * 0.6), (cx, cy - r * 0.2), WHITE, r * 0.2)
    head = np.array(
        [[cx, cy - r * 0.65], [cx - r * 0.35, cy - r * 0.15], [cx + r * 0.35, cy - r * 0.15]]
    )
    cv2.fillPoly(img, [np.round(head).astype(np.int32)], _c(WHITE), cv2.LINE_AA)


def _end_of_restrictions(img: np.ndarray, cx: float, cy: float, r: float) -> None:
    """White disc, thin dark rim, five thin dark stripes from lower left to upper right."""
    _circle(img, cx, cy, r, BLACK)
    _circle(img, cx, cy, r * 0.95, WHITE)
    d = math.sqrt(0.5)
    for k in (-2, -1, 0, 1, 2):
        off = k * r * 0.12
        half = math.sqrt(max(0.0, (r * 0.9) ** 2 - off**2))
        ox, oy = off * d, off * d
        _line(
            img,
            (cx + ox - half * d, cy + oy + half * d),
            (cx + ox + half * d, cy + oy - half * d),
            BLACK,
            r * 0.06,
        )


_ROUND_DRAWERS = {
    "no_parking": _no_parking,
    "ahead_only": _ahead_only,
    "end_of_restrictions": _end_of_restrictions,
}


def _draw_walker(img: np.ndarray, cx: float, cy: float, h: float) -> None:
    """A pedestrian pictogram of height ``h`` centred at ``(cx, cy)``."""
    k = _c(BLACK)
    t = max(2, round(h * 0.09))
    head = (round(cx + 0.05 * h), round(cy - 0.40 * h))
    cv2.circle(img, head, round(0.09 * h), k, -1, cv2.LINE_AA)
    hip = (cx - 0.02 * h, cy + 0.12 * h)
    neck = (cx + 0.03 * h, cy - 0.27 * h)
    segs = [
        (neck, hip),
        (hip, (cx - 0.2 * h, cy + 0.48 * h)),
        (hip, (cx + 0.18 * h, cy + 0.48 * h)),
        ((cx + 0.02 * h, cy - 0.18 * h), (cx - 0.2 * h, cy + 0.02 * h)),
        ((cx + 0.02 * h, cy - 0.18 * h), (cx + 0.22 * h, cy - 0.02 * h)),
    ]
    for a, b in segs:
        cv2.line(img, (round(a[0]), round(a[1])), (round(b[0]), round(b[1])), k, t, cv2.LINE_AA)
