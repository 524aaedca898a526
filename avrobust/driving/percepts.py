"""What the driving policy reads: percepts, the objects a perception stack reports, placed in
the world frame. From a model's detections (3D boxes directly; 2D boxes by monocular ranging,
as camera-only stacks do) or, for the oracle run and for categories the model under test does not
perceive, from the frame's ground truth.

Monocular ranging: a sign's distance from its known size (``fx * size / box width``, the
catalogue's sizes); a car's or pedestrian's from the ground plane under its box's lower edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch

from avrobust.core.classes import SIGN_TYPES as SIGN_NAMES
from avrobust.core.conventions import BODY_TO_OPTICAL, transform_points
from avrobust.core.detections import Detections
from avrobust.core.frame import Frame
from avrobust.core.signs import SIGN_TYPES

# Footprints for a category reported without a 3D box (2D detections): metres.
FOOTPRINT = {"car": (4.6, 1.85), "pedestrian": (0.6, 0.6), "traffic_sign": (0.2, 0.9)}
ROAD_USERS = ("car", "pedestrian")


@dataclass(frozen=True)
class Percept:
    """One reported object: ``category`` (car, pedestrian, traffic_sign), ``kind`` (a sign's
    type, else the category), world centre ``x, y`` and heading ``yaw`` (radians), footprint
    ``length, width`` metres, ``score``, and ``source``: ``model`` or ``truth``. A percept
    ranged from one sensor (a sign by its known size) also says from where: ``origin``, the
    sensor's world ``(x, y)``, ``range_sigma``, the 1-sigma error of its range (metres), and
    ``ranged_size``, the size it was ranged with, so a tracker can weigh it and re-range it
    once it knows the sign's type. ``note``: what a fail-safe changed about it (a doubted sign
    taken as another class), carried into the decision it causes."""

    category: str
    kind: str
    x: float
    y: float
    yaw: float
    length: float
    width: float
    score: float = 1.0
    source: str = "model"
    origin: tuple[float, float] | None = None
    range_sigma: float = 0.0
    ranged_size: float | None = None
    note: str = ""

    def describe(self, ego_x: float, ego_y: float) -> str:
        d = math.hypot(self.x - ego_x, self.y - ego_y)
        what = self.kind if self.kind != self.category else self.category
        note = f"; {self.note}" if self.note else ""
        return f"{what} at {d:.1f} m ({self.source}, score {self.score:.2f}{note})"


def _pixel_ray(frame: Frame, u: float, v: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(origin, direction)`` in the ego frame of the ray through pixel ``(u, v)``; the
    direction's optical depth component is 1 (so ``origin + z * dir`` lies at depth z)."""
    cal = frame.calibration
    k = cal.intrinsics
    optical = torch.tensor([(u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0], dtype=torch.float64)
    body = optical @ BODY_TO_OPTICAL
    pose = cal.camera_pose
    return pose[:3, 3], pose[:3, :3] @ body


def _to_world(frame: Frame, ego_xy: torch.Tensor) -> tuple[float, float]:
    p = transform_points(frame.ego_pose, torch.cat([ego_xy[:2], ego_xy.new_zeros(1)]))
    return float(p[0]), float(p[1])


def _ego_yaw(frame: Frame) -> float:
    return math.atan2(float(frame.ego_pose[1, 0]), float(frame.ego_pose[0, 0]))


BORDER_MARGIN = 0.01  # of the image width: a sign box this near the border counts as cut
# A detector's box edges jitter by about a pixel plus a few per cent of the box (measured on
# the sign pipeline's boxes: widths of one sign 6 m away spread +-8% frame to frame).
BOX_JITTER_PX, BOX_JITTER_REL = 1.0, 0.05


def _cut(box: torch.Tensor, k) -> tuple[bool, bool, bool, bool]:
    """Whether box ``[4]`` touches the image's left, top, right and bottom border: within
    ``BORDER_MARGIN`` of the image width (at least 2 pixels), since a detector's box of a cut
    object stops a few pixels short of the border."""
    m = max(2.0, BORDER_MARGIN * k.width)
    x0, y0, x1, y1 = (float(v) for v in box)
    return x0 <= m, y0 <= m, x1 >= k.width - m, y1 >= k.height - m


def sign_percept(frame: Frame, box: torch.Tensor, kind: str, score: float) -> Percept | None:
    """A sign of type ``kind`` in 2D box ``[4]``, ranged by its known width."""
    width_px = float(box[2] - box[0])
    k = frame.calibration.intrinsics
    # A box cut by the image border (any side: near signs leave the top of the image too) is
    # narrower than the sign, so its range would be too long; a detector's box of a cut sign
    # stops a few pixels short of the border, hence the margin.
    if kind not in SIGN_TYPES or width_px < 1 or any(_cut(box, k)):
        return None
    size = SIGN_TYPES[kind].size
    depth = k.fx * size / width_px
    origin, ray = _pixel_ray(frame, float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2)
    x, y = _to_world(frame, origin + depth * ray)
    # Range goes as 1 / width: its relative error is the width's.
    sigma = depth * float(ray.norm()) * (BOX_JITTER_PX / width_px + BOX_JITTER_REL)
    return Percept(
        "traffic_sign",
        kind,
        x,
        y,
        _ego_yaw(frame) + math.pi,
        *FOOTPRINT["traffic_sign"],
        score,
        origin=_to_world(frame, origin),
        range_sigma=sigma,
        ranged_size=size,
    )


MAX_GROUND_RANGE = 150.0  # metres: a lower edge nearer the horizon than this says nothing
# Metres from an object's near face to the lowest point a camera sees of it: a car's rear
# tyres, not its bumper, meet the road (measured on the simulator's sedan: a metre, 9-21 m).
CONTACT_SETBACK = {"car": 0.9, "pedestrian": 0.0}


def _optical_to_ego(frame: Frame, xo: float, zo: float) -> torch.Tensor | None:
    """The ground point at optical lateral ``xo`` and depth ``zo`` (metres), in the ego frame;
    None when the camera looks away from the ground there."""
    pose = frame.calibration.camera_pose
    origin, rot = pose[:3, 3], pose[:3, :3]
    base = rot @ (torch.tensor([xo, 0.0, zo], dtype=torch.float64) @ BODY_TO_OPTICAL)
    down = rot @ (torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64) @ BODY_TO_OPTICAL)
    if abs(float(down[2])) < 1e-9:
        return None
    yo = -(float(origin[2]) + float(base[2])) / float(down[2])  # optical y that meets z = 0
    return origin + base + yo * down


def ground_percept(frame: Frame, box: torch.Tensor, category: str, score: float) -> Percept | None:
    """A car or pedestrian in 2D box ``[4]``, as a footprint aligned with the camera (a road
    user on the road ahead). The lower edge is its nearest ground contact, so it gives the
    near face's depth (less ``CONTACT_SETBACK``). Each side edge is the bearing of the side it
    outlines, at the near face's depth or, for a side turned towards the camera, at the far
    face's (one length further), so the box's edges place both sides; with a side cut by the
    image border, the other side and the footprint's width place it. None when the lower edge
    lies at or above the horizon, or beyond ``MAX_GROUND_RANGE``.

    (The centre of the lower edge, pushed half a length along its ray, put a car off to one
    side further out the nearer it came: 0.8 m at 6 m, from the simulator's exact boxes.)"""
    origin, ray = _pixel_ray(frame, float(box[0] + box[2]) / 2, float(box[3]))
    if ray[2] >= -1e-6:
        return None
    z_near = -float(origin[2]) / float(ray[2])  # the ray's optical depth component is 1
    if not 0 < z_near <= MAX_GROUND_RANGE:
        return None
    z_near = max(z_near - CONTACT_SETBACK.get(category, 0.0), 0.1)
    length, width = FOOTPRINT[category]
    k = frame.calibration.intrinsics
    a0, a1 = (float(box[0]) - k.cx) / k.fx, (float(box[2]) - k.cx) / k.fx
    left = a0 * (z_near + length) if a0 > 0 else a0 * z_near
    right = a1 * z_near if a1 > 0 else a1 * (z_near + length)
    cut_left, _, cut_right, _ = _cut(box, k)
    if cut_left and not cut_right:
        xo = right - width / 2
    elif cut_right and not cut_left:
        xo = left + width / 2
    else:
        xo = (left + right) / 2
    centre = _optical_to_ego(frame, xo, z_near + length / 2)
    if centre is None:
        return None
    x, y = _to_world(frame, centre)
    return Percept(category, category, x, y, _ego_yaw(frame), length, width, score)


def from_detections(
    frame: Frame,
    dets: Detections | None,
    categories: Iterable[str],
    notes: dict[int, str] | None = None,
) -> list[Percept]:
    """Percepts of the ``categories`` a model reports in ``dets`` (2D boxes ranged from the
    camera, 3D boxes from the LiDAR frame). Sign classes count as ``traffic_sign`` percepts of
    that kind; a bare ``traffic_sign`` label (no type) says nothing a driver can act on.
    ``notes``: per detection index, what a fail-safe changed about it (kept on its percept)."""
    if dets is None or len(dets) == 0:
        return []
    wanted = set(categories)
    out: list[Percept] = []
    if dets.kind == "3d":
        boxes = dets.box3d().transform(frame.calibration.lidar_pose.to(torch.float64))
        boxes = boxes.transform(frame.ego_pose.to(torch.float64))
        for i in range(len(dets)):
            name = dets.class_names[int(dets.labels[i])]
            if name not in wanted or name not in ROAD_USERS:
                continue
            c, size = boxes.center[i], boxes.size[i]
            out.append(
                Percept(
                    name,
                    name,
                    float(c[0]),
                    float(c[1]),
                    float(boxes.yaw[i]),
                    float(size[0]),
                    float(size[1]),
                    float(dets.scores[i]),
                )
            )
        return out
    for i in range(len(dets)):
        name = dets.class_names[int(dets.labels[i])]
        score = float(dets.scores[i])
        if name in SIGN_NAMES and "traffic_sign" in wanted:
            p = sign_percept(frame, dets.boxes[i], name, score)
        elif name in ROAD_USERS and name in wanted:
            p = ground_percept(frame, dets.boxes[i], name, score)
        else:
            p = None
        if p is not None:
            out.append(replace(p, note=notes[i]) if notes and i in notes else p)
    return out


def from_truth(frame: Frame, categories: Iterable[str]) -> list[Percept]:
    """Percepts of the ``categories`` from the frame's ground truth: every object of them
    within the truth's range, visible or not (the oracle sees through occlusion, as scenario
    runners' privileged agents do)."""
    truth = frame.truth
    if truth is None or len(truth) == 0:
        return []
    wanted = set(categories)
    world = truth.boxes_3d.transform(frame.calibration.lidar_pose.to(torch.float64))
    world = world.transform(frame.ego_pose.to(torch.float64))
    out = []
    for i, cat in enumerate(truth.categories):
        if cat not in wanted:
            continue
        kind = truth.subclasses[i] if cat == "traffic_sign" else cat
        if cat == "traffic_sign" and kind not in SIGN_TYPES:
            continue
        c, size = world.center[i], world.size[i]
        out.append(
            Percept(
                cat,
                kind,
                float(c[0]),
                float(c[1]),
                float(world.yaw[i]),
                float(size[0]),
                float(size[1]),
                1.0,
                "truth",
            )
        )
    return out
