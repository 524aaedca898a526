"""``avrobust scenario render``: pictures of one frame of a scene so a person can check that the
camera and the LiDAR agree, plus the frame's data files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.core.errors import ConfigError
from avrobust.core.images import save_png, to_rgb8
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.core.weather import PRESETS as WEATHER_PRESETS
from avrobust.core.weather import Weather
from avrobust.data import kitti
from avrobust.data.pointclouds import write_points
from avrobust.report.views import bev_image, draw_boxes, lidar_overlay
from avrobust.scenario.library import load_scenario


def resolve_weather(name: str | Weather) -> Weather:
    if isinstance(name, Weather):
        return name
    if name not in WEATHER_PRESETS:
        raise ConfigError(
            f"unknown weather preset {name!r}", field="weather", allowed=", ".join(WEATHER_PRESETS)
        )
    return WEATHER_PRESETS[name]


def render_preview(
    scene: str,
    out: str | Path,
    time: float = 0.0,
    weather: str | Weather | None = None,
    width: int = 1280,
    height: int = 720,
    lidar: LidarSpec | None = None,
    seed: int = 0,
    kitti_export: bool = False,
) -> dict[str, Path]:
    """Render the frame of scenario ``scene`` (a library name or a file) at ``time`` seconds, in
    its own weather unless ``weather`` names a preset, and write, under ``out``:
    ``camera.png``, ``camera_boxes.png`` (ground-truth 2D boxes), ``bev.png`` (LiDAR from above
    with 3D boxes), ``lidar_on_camera.png`` (points projected onto the image), ``points.ply``,
    and with ``kitti_export`` a one-frame KITTI tree in ``kitti/``.

    Returns:
        the written files by name.
    """
    out = Path(out)
    if width < 16 or height < 16:
        raise ConfigError("image size must be at least 16x16", field="--width/--height")
    base = EpisodeSpec.from_scenario(load_scenario(scene))
    episode = replace(
        base,
        camera=replace(base.camera or CameraSpec(), width=width, height=height),
        lidar=lidar or base.lidar or LidarSpec(),
        weather=base.weather if weather is None else resolve_weather(weather),
        frames=1,
        start_time=time,
        seed=seed,
    )
    with EmbeddedBackend() as backend:
        backend.start(episode)
        frame = next(iter(backend.frames()))
    rgb = to_rgb8(frame.image)
    t = frame.truth
    names = [f"{c}:{s}" if s else c for c, s in zip(t.categories, t.subclasses, strict=True)]
    written = {
        "camera": save_png(out / "camera.png", rgb),
        "camera_boxes": save_png(out / "camera_boxes.png", draw_boxes(rgb, t.boxes_2d, names)),
        "bev": save_png(out / "bev.png", bev_image(frame.points, t.boxes_3d, t.categories)),
        "lidar_on_camera": save_png(
            out / "lidar_on_camera.png", lidar_overlay(rgb, frame.points, frame.calibration)
        ),
        "points": write_points(out / "points.ply", frame.points),
    }
    if kitti_export:
        kitti.write_frame(out / "kitti", frame)
        written["kitti"] = out / "kitti"
    return written
