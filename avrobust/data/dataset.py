"""Training data from the simulator: randomised scenes rendered into a KITTI tree plus a set of
sign crops for classification.

Each sample ``i`` is one frame of a scene drawn at random from ``seed`` and ``i`` alone (road
layout, signs with their classes, placements, heights and angles, vehicles, pedestrians, weather,
time of day, camera tilt), so a dataset is reproducible, can be extended, and an interrupted
build resumes where it stopped. Written per sample:

* ``image_2/NAME.png``, ``label_2/NAME.txt``, ``calib/NAME.txt`` (and ``velodyne/NAME.bin`` with
  a LiDAR): the KITTI layout (:mod:`avrobust.data.kitti`);
* ``meta/NAME.json``: the scene's conditions (weather preset, sun, fog, rain, distances);
* ``crops/NAME_K.png`` (64x64) and a line per crop in ``crops/NAME.csv``: every sign at least
  ``min_crop_px`` tall with its class, plus background patches of the same sizes (class
  ``background``). ``crops.csv`` gathers them when the build ends.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avrobust.backends.base import EpisodeSpec
from avrobust.core.classes import (
    ALL_SIGN_TYPES,
    BACKGROUND,
    SIGN_CLASSES,
    SIGN_TYPES,
    UNSEEN_SIGN_TYPES,
    distance_band,
)
from avrobust.core.errors import ConfigError
from avrobust.core.files import atomic_write
from avrobust.core.frame import Frame
from avrobust.core.images import save_png
from avrobust.core.sensors import LidarSpec
from avrobust.core.weather import PRESETS
from avrobust.data import kitti
from avrobust.data.crops import square_crop
from avrobust.scenario.schema import Scenario

# Weather presets and how often they are drawn: mostly clear and cloudy, with every adverse
# condition the evaluation sweeps (the model card reports each).
WEATHER_MIX = {
    "ClearNoon": 0.2,
    "CloudyNoon": 0.12,
    "ClearSunset": 0.1,
    "WetCloudyNoon": 0.08,
    "SoftRainNoon": 0.08,
    "HardRainNoon": 0.06,
    "Fog": 0.08,
    "DenseFog": 0.04,
    "Dusk": 0.08,
    "ClearNight": 0.08,
    "WetNight": 0.04,
    "CloudySunset": 0.04,
}


@dataclass(frozen=True)
class DatasetConfig:
    """What to build.

    Attributes:
        frames: samples to render. seed: the dataset's seed (samples derive theirs from it).
        width, height, fov: camera (degrees). lidar: also write LiDAR sweeps.
        max_sign_distance: signs are placed up to this many metres ahead.
        min_crop_px: smallest sign (box height, pixels) that becomes a crop.
        weathers: preset names and weights (default :data:`WEATHER_MIX`).
        sign_types: the classes signs are drawn from: the trained ones (default), or real signs
            the classifier never saw (``UNSEEN_SIGN_TYPES``) to score runtime monitors on.
    """

    frames: int = 1000
    seed: int = 0
    width: int = 640
    height: int = 480
    fov: float = 90.0
    lidar: bool = False
    max_sign_distance: float = 60.0
    min_crop_px: int = 12
    weathers: dict[str, float] = field(default_factory=lambda: dict(WEATHER_MIX))
    scenarios: tuple[str, ...] = ()
    backend: str = "embedded"
    sign_types: tuple[str, ...] = SIGN_TYPES

    def __post_init__(self) -> None:
        object.__setattr__(self, "sign_types", tuple(str(x) for x in self.sign_types))
        bad = [t for t in self.sign_types if t not in ALL_SIGN_TYPES]
        if bad or not self.sign_types:
            raise ConfigError(
                f"unknown sign types {bad}" if bad else "no sign types",
                field="--sign-types",
                allowed=", ".join(("trained", "unseen", *ALL_SIGN_TYPES)),
            )
        unknown = [w for w in self.weathers if w not in PRESETS]
        if unknown:
            raise ConfigError(
                f"unknown weather presets {unknown}", field="weathers", allowed=", ".join(PRESETS)
            )
        if self.frames < 1:
            raise ConfigError("frames must be at least 1", field="--frames")
        object.__setattr__(self, "scenarios", tuple(str(x) for x in self.scenarios))


def random_scenario(cfg: DatasetConfig, index: int) -> tuple[Scenario, dict]:
    """The scene of sample ``index`` and its conditions (plain data)."""
    rng = np.random.default_rng([cfg.seed, index])
    kind = rng.choice(["straight", "straight", "curve", "intersection"])
    env = rng.choice(["urban", "urban", "rural", "highway"]) if kind != "intersection" else "urban"
    lanes = int(rng.integers(1, 3)) if env != "highway" else int(rng.integers(2, 4))
    sidewalk = 0.0 if env == "highway" else float(rng.choice([0.0, 2.0, 3.0, 4.0]))
    if env == "urban" and sidewalk == 0.0:
        sidewalk = 3.0
    length = 220.0
    radius = float(rng.choice([-1, 1]) * rng.uniform(120, 400))
    s0 = float(rng.uniform(5, 30))
    signs = []
    for k in range(int(rng.integers(1, 5))):
        signs.append(
            {
                "name": f"sign_{k}",
                "type": str(rng.choice(cfg.sign_types)),
                # Most signs near enough to be read (a 0.75 m sign is 12 px tall at 20 m here).
                "s": s0
                + float(
                    rng.uniform(4, 30)
                    if rng.random() < 0.7
                    else rng.uniform(30, cfg.max_sign_distance)
                ),
                "side": "right" if rng.random() < 0.75 else "left",
                "offset": float(rng.uniform(0.2, 2.5)),
                "height": float(rng.uniform(1.4, 2.8)),
                "yaw": float(rng.uniform(-30, 30)),
            }
        )
    vehicles = []
    for k in range(int(rng.integers(0, 6))):
        lane = int(rng.choice([-1, 1])) * int(rng.integers(1, lanes + 1))
        vehicles.append(
            {
                "name": f"vehicle_{k}",
                "body": str(rng.choice(["sedan", "suv", "van"])),
                "s": s0 + float(rng.uniform(6, 80)),
                "lane": lane,
                "lateral_offset": float(rng.uniform(-0.4, 0.4)),
                "colour": int(rng.integers(0, 8)),
                "parked": bool(lane < 0 and rng.random() < 0.3),
            }
        )
    pedestrians = []
    for k in range(int(rng.integers(0, 4))):
        side = rng.choice([-1, 1])
        pedestrians.append(
            {
                "name": f"pedestrian_{k}",
                "s": s0 + float(rng.uniform(6, 60)),
                "lateral": float(side * (lanes * 3.5 + rng.uniform(-4.0, 2.5))),
                "heading": float(rng.uniform(-180, 180)),
                "height": float(rng.uniform(1.5, 1.95)),
            }
        )
    names = list(cfg.weathers)
    p = np.array([cfg.weathers[n] for n in names], dtype=float)
    preset = str(rng.choice(names, p=p / p.sum()))
    weather = {"preset": preset, "sun_azimuth_angle": float(rng.uniform(0, 360))}
    scenario = Scenario.model_validate(
        {
            "name": f"sample_{index:06d}",
            "map": {
                "kind": kind,
                "length": length,
                "lanes_per_direction": lanes,
                "sidewalk_width": sidewalk,
                "kerb_height": 0.15 if sidewalk else 0.0,
                "curve_radius": radius,
                "environment": env,
                "clutter": float(rng.uniform(0.5, 1.5)),
            },
            "ego": {
                "lane": -1,
                "start": s0,
                "speed": 0.0,
                "lateral_offset": float(rng.uniform(-0.5, 0.5)),
            },
            "sensors": {
                "camera": {
                    "width": cfg.width,
                    "height": cfg.height,
                    "fov": cfg.fov,
                    "noise_stddev": float(rng.uniform(0.0, 0.03)),
                    "mount": {
                        "x": 1.5,
                        "z": float(rng.uniform(1.3, 1.7)),
                        "pitch": float(rng.uniform(0.0, 4.0)),
                        "yaw": float(rng.uniform(-8.0, 8.0)),
                    },
                },
                "lidar": None,
            },
            "signs": signs,
            "vehicles": vehicles,
            "pedestrians": pedestrians,
            "weather": weather,
            "episode": {"frames": 1},
            "seed": int(rng.integers(0, 2**31 - 1)),
        }
    )
    return scenario, {"weather": preset, **weather}


def scenario_variant(cfg: DatasetConfig, base: Scenario, index: int) -> tuple[Scenario, dict]:
    """Sample ``index`` drawn from a user's scenario: one frame at a random time of its
    episode (so at a random distance along the route), every sign of a random class with its
    placement jittered, vehicles and pedestrians moved along the road and repainted, a
    weather preset and sun from the mix, the dataset's camera with a jittered mount."""
    rng = np.random.default_rng([cfg.seed, index, 2])
    d = base.model_dump(mode="json")
    ep = d["episode"]
    d["episode"] = {
        "frames": 1,
        "rate": ep["rate"],
        "start_time": ep["start_time"] + float(rng.uniform(0, ep["frames"] / ep["rate"])),
    }
    for sign in d["signs"]:
        sign["type"] = str(rng.choice(cfg.sign_types))
        sign["s"] = max(0.0, sign["s"] + float(rng.uniform(-3, 3)))
        sign["offset"] = float(np.clip(sign["offset"] + rng.uniform(-0.5, 0.5), -3, 10))
        sign["height"] = float(np.clip(sign["height"] + rng.uniform(-0.4, 0.6), 0.3, 6))
        sign["yaw"] = float(np.clip(sign["yaw"] + rng.uniform(-15, 15), -90, 90))
    for v in d["vehicles"]:
        if v.get("s") is not None:
            v["s"] = max(0.0, v["s"] + float(rng.uniform(-8, 8)))
        v["colour"] = int(rng.integers(0, 8))
    for p in d["pedestrians"]:
        if p.get("s") is not None:
            p["s"] = max(0.0, p["s"] + float(rng.uniform(-5, 5)))
        p["height"] = float(rng.uniform(1.5, 1.95))
    names = list(cfg.weathers)
    w = np.array([cfg.weathers[n] for n in names], dtype=float)
    preset = str(rng.choice(names, p=w / w.sum()))
    d["weather"] = {"preset": preset, "sun_azimuth_angle": float(rng.uniform(0, 360))}
    cam = d["sensors"].get("camera") or {}
    mount = cam.get("mount") or {"x": 1.5, "z": 1.5}
    mount["pitch"] = float(mount.get("pitch", 0.0) + rng.uniform(-1.5, 1.5))
    mount["yaw"] = float(mount.get("yaw", 0.0) + rng.uniform(-5, 5))
    d["sensors"]["camera"] = {
        **cam,
        "width": cfg.width,
        "height": cfg.height,
        "fov": cfg.fov,
        "mount": mount,
    }
    d["sensors"]["lidar"] = (d["sensors"].get("lidar") or {}) if cfg.lidar else None
    d["targets"] = []  # the expected classes changed with the signs
    d["name"] = f"{base.name}-{index:06d}"
    d["seed"] = int(rng.integers(0, 2**31 - 1))
    return Scenario.model_validate(d), {"weather": preset, "base": base.name, **d["weather"]}


def sample_scenario(cfg: DatasetConfig, index: int) -> tuple[Scenario, dict]:
    """The scene of sample ``index``: procedural, or a variant of one of ``cfg.scenarios``
    (taken in turn)."""
    if not cfg.scenarios:
        return random_scenario(cfg, index)
    from avrobust.scenario.library import load_scenario

    base = load_scenario(cfg.scenarios[index % len(cfg.scenarios)])
    return scenario_variant(cfg, base, index)


def sign_crops(
    frame: Frame, rng: np.random.Generator, min_px: int
) -> list[tuple[torch.Tensor, str, dict]]:
    """Crops of the frame's visible signs and as many background patches."""
    t = frame.truth
    out = []
    boxes = []
    for i, cat in enumerate(t.categories):
        b = t.boxes_2d.xyxy[i]
        height = float(b[3] - b[1])
        if cat != "traffic_sign" or height < min_px or float(t.visible_fraction[i]) < 0.6:
            continue
        boxes.append(b)
        c = t.boxes_3d.center[i]
        # A sign's face looks along its box's +x; seen from behind (or nearly edge-on) it shows
        # only its metal back, which a recogniser must call background.
        yaw = float(t.boxes_3d.yaw[i])
        to_sensor = -c[:2] / torch.linalg.vector_norm(c[:2]).clamp(min=1e-6)
        facing = math.cos(yaw) * float(to_sensor[0]) + math.sin(yaw) * float(to_sensor[1])
        label = t.subclasses[i] if facing > math.cos(math.radians(70)) else BACKGROUND
        out.append(
            (
                square_crop(frame.image, b),
                label,
                {
                    "box_height": height,
                    "distance": float(torch.linalg.vector_norm(c[:2])),
                    "visible_fraction": float(t.visible_fraction[i]),
                },
            )
        )
    _, h, w = frame.image.shape
    occupied = [bb for bb in t.boxes_2d.xyxy if float(bb[2] - bb[0]) > 0]
    for _ in range(max(1, len(boxes))):
        side = float(rng.uniform(min_px, min(h, w) / 4))
        for _try in range(20):
            x, y = rng.uniform(0, w - side), rng.uniform(0, h * 0.75 - side)
            cand = torch.tensor([x, y, x + side, y + side])
            if all(
                float(
                    torch.minimum(cand[2:], o[2:])
                    .sub(torch.maximum(cand[:2], o[:2]))
                    .clamp(min=0)
                    .prod()
                )
                == 0
                for o in occupied
            ):
                out.append(
                    (
                        square_crop(frame.image, cand),
                        BACKGROUND,
                        {"box_height": side, "distance": float("nan"), "visible_fraction": 1.0},
                    )
                )
                break
    return out


def build_sample(cfg: DatasetConfig, index: int, out: Path) -> int:
    """Render and write sample ``index``; returns the number of crops written."""
    name = f"{index:06d}"
    scenario, conditions = sample_scenario(cfg, index)
    lidar = None
    if cfg.lidar:
        lidar = scenario.sensors.lidar.to_spec() if scenario.sensors.lidar else LidarSpec()
    spec = EpisodeSpec.from_scenario(scenario, lidar=lidar, seed=scenario.seed)
    from avrobust.backends.factory import make_backend

    backend = make_backend(cfg.backend)
    try:
        backend.start(spec)
        frame = next(iter(backend.frames()))
    finally:
        backend.close()
    frame.index = index
    kitti.write_frame(out, frame, name)
    rng = np.random.default_rng([cfg.seed, index, 1])
    crops = sign_crops(frame, rng, cfg.min_crop_px)
    rows = []
    for k, (crop, label, info) in enumerate(crops):
        file = f"{name}_{k}.png"
        save_png(out / "crops" / file, crop)
        rows.append(
            {"file": file, "label": label, "sample": name, "weather": conditions["weather"], **info}
        )
    with atomic_write(out / "meta" / f"{name}.json", "w") as fh:
        json.dump(
            {
                "scenario": scenario.model_dump(mode="json"),
                "conditions": conditions,
                "crops": len(rows),
            },
            fh,
        )
    # Written last: its presence marks the sample complete (a resumed build skips it).
    with atomic_write(out / "crops" / f"{name}.csv", "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=CROP_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


CROP_FIELDS = ["file", "label", "sample", "weather", "box_height", "distance", "visible_fraction"]


def _build_range(args: tuple[DatasetConfig, list[int], str]) -> int:
    cfg, indices, out = args
    torch.set_num_threads(1)
    return sum(build_sample(cfg, i, Path(out)) for i in indices)


def build_dataset(
    cfg: DatasetConfig,
    out: str | Path,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Build (or finish building) a dataset; ``progress`` is called with each finished
    sample count. Returns counts of samples and crops."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "dataset.json"
    settings = {k: v for k, v in cfg.__dict__.items() if k != "frames"}
    settings["scenarios"] = list(cfg.scenarios)
    settings["sign_types"] = list(cfg.sign_types)
    for name in cfg.scenarios:  # fail now, naming the file, not in a worker later
        from avrobust.scenario.library import load_scenario

        load_scenario(name)
    if config_path.exists():
        stored = json.loads(config_path.read_text())
        # Folders built before these settings existed hold their defaults.
        stored = {
            "scenarios": [],
            "backend": "embedded",
            "sign_types": list(SIGN_TYPES),
            **stored,
        }
        if stored != settings:
            raise ConfigError(
                "this folder holds a dataset built with other settings; use "
                "another --out or the same settings",
                file=config_path,
            )
    else:
        with atomic_write(config_path, "w") as fh:
            json.dump(settings, fh, indent=2)
    todo = [i for i in range(cfg.frames) if not (out / "crops" / f"{i:06d}.csv").exists()]
    if progress:
        progress(cfg.frames - len(todo))
    if workers <= 1:
        for i in todo:
            build_sample(cfg, i, out)
            if progress:
                progress(1)
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        from avrobust import runtime

        chunks = [todo[k : k + 8] for k in range(0, len(todo), 8)]
        # Each spawned worker applies the process settings first, before torch loads there.
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=runtime.apply
        ) as pool:
            for chunk, _ in zip(
                chunks, pool.map(_build_range, [(cfg, c, str(out)) for c in chunks]), strict=True
            ):
                if progress:
                    progress(len(chunk))
    return gather_crops(out, cfg.frames)


def gather_crops(out: Path, frames: int) -> dict[str, int]:
    """Write ``crops.csv`` from the per-sample files; returns the counts."""
    rows = []
    for i in range(frames):
        part = out / "crops" / f"{i:06d}.csv"
        if part.exists():
            with open(part) as fh:
                rows += list(csv.DictReader(fh))
    with atomic_write(out / "crops.csv", "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=CROP_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    by_label: dict[str, int] = {}
    for r in rows:
        by_label[r["label"]] = by_label.get(r["label"], 0) + 1
    return {"samples": frames, "crops": len(rows), **by_label}


def parse_sign_types(text: str) -> tuple[str, ...]:
    """``trained``, ``unseen`` or a comma-separated list of sign types."""
    named = {"trained": SIGN_TYPES, "unseen": UNSEEN_SIGN_TYPES}
    return tuple(
        t
        for part in text.split(",")
        if part.strip()
        for t in named.get(part.strip(), (part.strip(),))
    )


__all__ = [
    "SIGN_CLASSES",
    "DatasetConfig",
    "build_dataset",
    "distance_band",
    "parse_sign_types",
    "random_scenario",
]
