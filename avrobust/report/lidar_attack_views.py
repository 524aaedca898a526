"""Pictures of LiDAR attacks for people checking them by eye: the camera image with the attacked
sweep projected on it, and bird's-eye views of the clean and the attacked sweep with the
victim's detections (white), the phantom or target box (class colour) and the attacker's
returns (red: created; red rings in the clean view: suppressed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from avrobust.attacks.lidar.objective import FrameObjective
from avrobust.attacks.lidar.remove import remove
from avrobust.attacks.lidar.spoof import PHANTOM_SIZE, spoof
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.attacks.lidar.threat import LidarThreat, angle_window
from avrobust.core.boxes import Box3D
from avrobust.core.images import save_png, to_rgb8
from avrobust.evaluation.lidar_attack import target_box
from avrobust.report.views import bev_image, lidar_overlay

X_RANGE, Y_RANGE, RES = (-2.0, 34.0), (-12.0, 12.0), 0.075
RED = (255, 40, 40)


def _mark(img: np.ndarray, pts: torch.Tensor, filled: bool) -> None:
    for x, y in pts[:, :2].tolist():
        col = round((Y_RANGE[1] - y) / RES)
        row = round((X_RANGE[1] - x) / RES)
        if 0 <= col < img.shape[1] and 0 <= row < img.shape[0]:
            cv2.circle(img, (col, row), 3, RED, -1 if filled else 1, cv2.LINE_AA)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 12 + 9 * len(text)), 28), (0, 0, 0), -1)
    cv2.putText(out, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def attack_picture(
    obj: FrameObjective,
    clean: LidarSweep,
    attacked: LidarSweep,
    box: Box3D,
    category: str,
    title: str,
    created_rays: torch.Tensor | None = None,
) -> np.ndarray:
    """Camera with the attacked sweep | clean BEV | attacked BEV, one row; ``created_rays``:
    the rays whose returns the attacker created."""
    frame = obj.frame
    gone = torch.isin(clean.ray, attacked.ray, invert=True)
    created = torch.isin(attacked.ray, created_rays if created_rays is not None else clean.ray[:0])
    panels = []
    for name, sweep in (("clean", clean), ("attacked", attacked)):
        dets = obj.detect(sweep.points)
        img = bev_image(sweep.points, box, [category], X_RANGE, Y_RANGE, RES, dets[0])
        if name == "clean":
            _mark(img, clean.points[gone], filled=False)
        else:
            _mark(img, attacked.points[created], filled=True)
        panels.append(_label(img, f"{name}: {len(dets[0])} detections"))
    cam = lidar_overlay(to_rgb8(frame.image), attacked.points, frame.calibration, radius=1)
    uv, _, vis = frame.calibration.project_lidar(attacked.points[created].double())
    for u, v in uv[vis].round().int().tolist():
        cv2.circle(cam, (u, v), 3, RED, -1, cv2.LINE_AA)
    h = panels[0].shape[0]
    cam = cv2.resize(cam, (round(cam.shape[1] * h / cam.shape[0]), h))
    row = np.concatenate([_label(cam, title), *panels], axis=1)
    return row


def _example(run, name: str, top_budget: bool = False):
    """A victim's first successful white-box case (at its largest budget when asked), else
    its first such case; ``None`` when it has none."""
    rows = [r for r in run.rows if r.victim == name and r.method == "white-box"]
    if top_budget and rows:
        top = max(r.budget for r in rows)
        rows = [r for r in rows if r.budget == top]
    return next((r for r in rows if r.success), rows[0]) if rows else None


def _slug(victim: str) -> str:
    """A file-name part for a victim named ``NAME`` or ``NAME=WEIGHTS``."""
    name, _, weights = victim.partition("=")
    return name + (f"_{Path(weights).stem}" if weights else "")


def _victim_title(victim: str) -> str:
    """A short title for a victim named ``NAME`` or ``NAME=WEIGHTS``."""
    name, _, weights = victim.partition("=")
    return name + (f" ({Path(weights).stem})" if weights else "")


def spoof_pictures(models, frames, spec, run, folder: Path, category: str = "car") -> list[Path]:
    """One picture per victim, of :func:`_example`'s case."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, victim in models.items():
        r = _example(run, name)
        if r is None:
            continue
        obj = FrameObjective(victim, frames.frames[r.frame])
        sweep = LidarSweep.from_frame(obj.frame, spec)
        x = r.distance + PHANTOM_SIZE[category][0] / 2
        threat = LidarThreat(points=r.budget, azimuth=angle_window(x, 0.0, 1.5, 3.0))
        res = spoof(obj, sweep, spec, threat, x, 0.0, category, "white-box")
        title = f"{_victim_title(name)}: {r.budget} spoofed points, phantom's rear {r.distance:g} m"
        paths.append(folder / f"spoof_{_slug(name)}.png")
        save_png(
            paths[-1], attack_picture(obj, sweep, res.sweep, res.phantom, category, title, res.rays)
        )
    return paths


def removal_pictures(models, frames, spec, run, folder: Path) -> list[Path]:
    """One picture per victim, of :func:`_example`'s case at the largest budget."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, victim in models.items():
        r = _example(run, name, top_budget=True)
        if r is None:
            continue
        obj = FrameObjective(victim, frames.frames[r.frame])
        box = target_box(obj.frame, "car")
        sweep = LidarSweep.from_frame(obj.frame, spec)
        x, y = float(box.center[0, 0]), float(box.center[0, 1])
        half = float(box.size[0, :2].norm()) / 2
        threat = LidarThreat(points=r.budget, azimuth=angle_window(x, y, half, 3.0), mode="remove")
        res = remove(obj, sweep, spec, threat, box, "white-box")
        title = (
            f"{_victim_title(name)}: {len(res.removed)} of {r.budget} returns removed, "
            f"car {x:.0f} m"
        )
        paths.append(folder / f"remove_{_slug(name)}.png")
        save_png(paths[-1], attack_picture(obj, sweep, res.sweep, box, "car", title))
    return paths
