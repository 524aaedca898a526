"""Pictures of the adversarial object for people checking it by eye: for one held-out view and
one victim, a row per variant (no object, grey object, textured object): the camera image as
re-rendered with the sweep projected on it, and the bird's-eye view with the victim's
detections (white) and the host's box (class colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avrobust.attacks.lidar.objective import FrameObjective, Victim
from avrobust.core.frame import Frame
from avrobust.core.images import save_png, to_rgb8
from avrobust.evaluation.lidar_attack import target_box
from avrobust.report.lidar_attack_views import _label, _slug
from avrobust.report.views import bev_image, lidar_overlay

RES = 0.05  # metres per BEV pixel: the object is a metre or two across


def variant_row(victim: Victim, frame: Frame, title: str) -> np.ndarray:
    """Camera (with the sweep) | BEV with the victim's detections and the host's box."""
    import cv2

    dets = FrameObjective(victim, frame).detect(frame.points)
    box = target_box(frame, "car")
    x = float(box.center[0, 0])
    bev = bev_image(frame.points, box, ["car"], (x - 8.0, x + 6.0), (-7.0, 7.0), RES, dets[0])
    bev = _label(bev, f"{len(dets[0])} detections")
    cam = lidar_overlay(to_rgb8(frame.image), frame.points, frame.calibration, radius=1)
    h = bev.shape[0]
    cam = cv2.resize(cam, (round(cam.shape[1] * h / cam.shape[0]), h))
    return np.concatenate([_label(cam, title), bev], axis=1)


def object_pictures(
    rendered: dict[str, list[Frame]], victims: dict[str, Victim], view: int, folder: Path
) -> list[Path]:
    """One picture per victim of held-out view ``view``, a row per variant."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, victim in victims.items():
        rows = [
            variant_row(victim, frames[view], f"{name}: {variant}")
            for variant, frames in rendered.items()
        ]
        paths.append(folder / f"object_{_slug(name)}.png")
        save_png(paths[-1], np.concatenate(rows, axis=0))
    return paths
