"""A sign's class must agree with its physical size and mounting height.

The LiDAR gives the sign's depth; with the camera box that gives the face's height in metres,
and the box's lower edge unprojected at that depth, set against the road returns around the
sign's foot, gives the height of the lower edge above the road. A stop sign read as a speed
limit keeps the stop sign's 0.90 m face (a speed-limit disc is 0.75 m), and a sign printed on a
poster at knee height or on the road is mounted where no sign is. Both are what a sticker
attack and an appearing attack cannot change.
"""

from __future__ import annotations

import torch

from avrobust.core.signs import SIGN_TYPES


def face_height(name: str) -> float:
    """The face's height, metres, of a sign class (its outline's vertical extent)."""
    pts = SIGN_TYPES[name].outline()
    return float(pts[:, 1].max() - pts[:, 1].min())


FACE_HEIGHT = {name: face_height(name) for name in SIGN_TYPES}
# Lower edge above the road, metres: the Vienna Convention and the MUTCD mount roadside signs
# at 1.5-2.2 m (lower on islands and for repeated signs; gantries higher).
MOUNT_RANGE = (1.0, 6.0)
GROUND_RADIUS = 6.0  # metres around the sign's foot searched for road returns


def lower_edge_height(frame, box: torch.Tensor, depth: float) -> float:
    """Metres from the road up to the lower edge of the sign in 2D ``box`` ``[4]`` whose face
    the LiDAR puts at ``depth`` metres from the camera (nan when no road return lies near its
    foot). The face's height is the cross-modal check's own measure (``Support.height_m``)."""
    calib = frame.calibration
    foot_px = torch.tensor(
        [[(float(box[0]) + float(box[2])) / 2, float(box[3])]], dtype=torch.float64
    )
    foot = calib.camera_points_to_lidar(calib.unproject(foot_px, torch.tensor([depth])))[0]
    pts = frame.points[:, :3].double()
    near = torch.linalg.vector_norm(pts[:, :2] - foot[:2], dim=1) <= GROUND_RADIUS
    # Returns near the foot and not above it: mostly road (a sign standing on the road finds
    # its road level with its lower edge).
    below = pts[near & (pts[:, 2] < foot[2] + 0.5), 2]
    if len(below) < 5:
        return float("nan")
    return float(foot[2]) - float(torch.quantile(below, 0.2))


def geometry_alarm(
    name: str,
    height_m: float,
    lower_edge_m: float,
    depth: float,
    fy: float,
    tolerance: float,
    pixel_error: float,
) -> tuple[str, str] | None:
    """``(kind, detail)`` when the class disagrees with the sign's face height or its lower
    edge's height above the road (metres), else None. The size may differ from the class's by
    ``tolerance`` of it plus what ``pixel_error`` pixels of box error make at this depth."""
    expected = FACE_HEIGHT[name]
    slack = tolerance * expected + pixel_error * depth / fy
    if abs(height_m - expected) > slack:
        return "sign_size", f"{name} is {expected:.2f} m tall, this face {height_m:.2f} m"
    lo, hi = MOUNT_RANGE
    if lower_edge_m == lower_edge_m and not lo <= lower_edge_m <= hi:
        return "sign_mounting", f"{name} with its lower edge {lower_edge_m:.1f} m above the road"
    return None
