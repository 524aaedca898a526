"""Regenerate the pictures in docs/images/ (1280x720 frames of the built-in scenes)."""

from __future__ import annotations

from pathlib import Path

import cv2

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.core.images import to_rgb8
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.core.weather import PRESETS
from avrobust.report.views import bev_image, lidar_overlay

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
SHOTS = [
    ("urban_stop", 2.5, "ClearNoon"),
    ("intersection", 7.0, "WetCloudyNoon"),
    ("urban_stop", 2.5, "ClearNight"),
    ("rural_speed_limit", 3.0, "Fog"),
    ("lead_vehicle", 2.0, "ClearSunset"),
    ("highway", 1.0, "HardRainNoon"),
]


def save_jpeg(path: Path, rgb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])


def main() -> None:
    for scene, t, weather in SHOTS:
        with EmbeddedBackend() as b:
            b.start(
                EpisodeSpec(
                    scene, CameraSpec(1280, 720), LidarSpec(), PRESETS[weather], start_time=t
                )
            )
            frame = next(iter(b.frames()))
        rgb = to_rgb8(frame.image)
        save_jpeg(OUT / f"{scene}_{weather}.jpg", rgb)
        if (scene, weather) == ("urban_stop", "ClearNoon"):
            save_jpeg(
                OUT / f"{scene}_lidar_on_camera.jpg",
                lidar_overlay(rgb, frame.points, frame.calibration),
            )
            save_jpeg(
                OUT / f"{scene}_bev.jpg",
                bev_image(frame.points, frame.truth.boxes_3d, frame.truth.categories),
            )
        print("wrote", scene, weather)


if __name__ == "__main__":
    main()
