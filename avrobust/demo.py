"""``avrobust demo``: the whole tool end to end, small: on the embedded simulator with the shipped
models, optimise a sticker attack (stop read as speed limit 80) and a hiding patch (the stop
sign goes undetected) on the urban stop sign, run a campaign of clean and attacked drive-bys
across distance and weather, write the safety assessment report and true-size print files of
both patches. The same code paths as a full campaign (``attack``, ``run``, ``report``,
``export patch``), with fewer steps, views and jobs.

Rerunning with the same ``--out`` resumes: finished patches are reused and finished jobs are
skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from avrobust.core.patch import Patch
from avrobust.report.document import Table

SCENARIO = "urban_stop"
SURFACE = "stop_sign"


@dataclass
class DemoConfig:
    """Sizes of the demo; the defaults finish within 10 minutes on two CPU cores."""

    sticker_steps: int = 200
    hide_steps: int = 60
    train_distances: tuple[float, ...] = (10.0, 15.0, 20.0, 25.0, 30.0)
    train_angles: tuple[float, ...] = (0.0, 20.0)
    train_weathers: tuple[str, ...] = ("ClearNoon", "Fog")
    weathers: tuple[str, ...] = ("ClearNoon", "Fog")
    distances: tuple[float, ...] = (20.0, 35.0)
    frames: int = 20
    workers: int = 2
    camera: tuple[int, int] = (640, 480)
    models: tuple[str, ...] = ("sign-pipeline", "camera-detector")
    # The patches hold about 3 texels per cm; 100 dpi (39 px per cm) loses nothing and writes
    # a 90 cm poster in seconds, where 300 dpi takes half a minute.
    print_dpi: int = 100


@dataclass
class DemoResult:
    out: Path
    patches: dict[str, Path] = field(default_factory=dict)
    prints: dict[str, Path] = field(default_factory=dict)
    campaign: Path | None = None
    run_dir: Path | None = None
    report_html: Path | None = None
    report_pdf: Path | None = None
    tables: dict[str, Table] = field(default_factory=dict)  # the report's, by key

    @property
    def verdict(self) -> list[list[str]]:
        """The report's verdict rows: stack, criterion, measured, PASS/FAIL/UNTESTED."""
        return self.tables["verdict"].rows if "verdict" in self.tables else []


class Stages:
    """Callbacks the demo reports progress through (the CLI draws them as bars)."""

    def start(self, name: str, total: int | None) -> None: ...

    def advance(self, name: str, n: int = 1, info: str = "") -> None: ...

    def done(self, name: str, info: str = "") -> None: ...


def _camera(cfg: DemoConfig):
    from avrobust.core.sensors import CameraSpec

    return CameraSpec(cfg.camera[0], cfg.camera[1], math.radians(90))


def _progress(stages: Stages, label: str) -> dict:
    """The attack runners' callbacks, reporting to ``label: render views`` and
    ``label: optimise``."""
    return {
        "on_step": lambda s, loss, rate: stages.advance(
            f"{label}: optimise", 1, f"loss {loss:.2f} success {rate:.0%}"
        ),
        "progress": lambda n: stages.advance(f"{label}: render views", n),
    }


def _sticker(cfg: DemoConfig, path: Path, stages: Stages) -> Patch:
    from avrobust.attacks.masks import sticker_mask
    from avrobust.attacks.sign_sticker import StickerAttack
    from avrobust.evaluation.sign_attack import Sweep, run_sign_attack
    from avrobust.models.adapters import load_classifier
    from avrobust.models.victims import weights_provenance
    from avrobust.models.weights import ASSETS

    weights = ASSETS / "sign_classifier.pt"
    sweep = Sweep(cfg.train_distances, cfg.train_angles, cfg.train_weathers, (0.0,))
    stages.start("sticker: render views", len(sweep.viewpoints()))
    stages.start("sticker: optimise", cfg.sticker_steps)
    attack = StickerAttack(
        load_classifier(weights), "stop", "speed_limit_80", steps=cfg.sticker_steps, seed=0
    )
    patch = run_sign_attack(
        SCENARIO,
        SURFACE,
        attack,
        sticker_mask("rp2_bars"),
        sweep,
        _camera(cfg),
        **_progress(stages, "sticker"),
        victim={"model": "sign-classifier", **weights_provenance(classifier=weights)},
    )
    patch.save(path)
    return patch


def _hiding(cfg: DemoConfig, path: Path, stages: Stages) -> Patch:
    from avrobust.attacks.detector_patch import DetectorPatchAttack
    from avrobust.attacks.masks import sticker_mask
    from avrobust.evaluation.detector_attack import run_detector_attack
    from avrobust.evaluation.viewpoints import Sweep
    from avrobust.models.camera_detector import load_camera_detector
    from avrobust.models.victims import weights_provenance
    from avrobust.models.weights import ASSETS

    weights = ASSETS / "camera_detector.pt"
    sweep = Sweep(cfg.train_distances, (0.0,), cfg.train_weathers, (0.0,))
    stages.start("hiding patch: render views", len(sweep.viewpoints()))
    stages.start("hiding patch: optimise", cfg.hide_steps)
    attack = DetectorPatchAttack(
        load_camera_detector(weights), "hide", "traffic_sign", steps=cfg.hide_steps, seed=0
    )
    patch = run_detector_attack(
        SCENARIO,
        SURFACE,
        attack,
        sticker_mask("poster"),
        sweep,
        _camera(cfg),
        **_progress(stages, "hiding patch"),
        victim={"model": "camera-detector", **weights_provenance(detector=weights)},
    )
    patch.save(path)
    return patch


def campaign_text(cfg: DemoConfig, sticker: Path, hiding: Path) -> str:
    """The demo's campaign file (patch paths absolute so it runs from anywhere)."""
    campaign = {
        "name": "demo",
        "description": (
            "The avrobust demo: does a sticker attack (stop read as speed limit 80) or a hiding "
            "poster on the urban stop sign fool the sign-recognition stack (detector, then "
            "classifier) or the camera detector, approaching from "
            f"{' and '.join(f'{d:g}' for d in cfg.distances)} m in "
            f"{' and '.join(cfg.weathers)}?"
        ),
        "scenarios": [SCENARIO],
        "sweep": {"weather": list(cfg.weathers), "distance": list(cfg.distances)},
        "models": [{"name": m} for m in cfg.models],
        "attacks": [
            {"name": "none"},
            {"name": "patch", "params": {"file": str(sticker.resolve()), "surface": SURFACE}},
            {"name": "patch", "params": {"file": str(hiding.resolve()), "surface": SURFACE}},
        ],
        # Each patch beside the same mask in plain grey: what occlusion alone does.
        "controls": ["grey"],
        "episode": {"frames": cfg.frames, "rate": 10},
        "sensors": {
            "camera": {"width": cfg.camera[0], "height": cfg.camera[1], "fov": 90},
            "lidar": None,
        },
        "acceptance": [
            {"metric": "attack_success", "max": 0.05, "within_m": 30, "weather": ["ClearNoon"]},
            {"metric": "attack_success", "max": 0.2},
            {"metric": "encounter_failure", "max": 0.0},
            {"metric": "clean_miss", "max": 0.1, "within_m": 30},
        ],
        "seed": 11,
    }
    return yaml.safe_dump(campaign, sort_keys=False)


def run_demo(
    out: str | Path, cfg: DemoConfig | None = None, stages: Stages | None = None
) -> DemoResult:
    from avrobust import runtime
    from avrobust.campaign.run import run_campaign
    from avrobust.export.print_sheet import export_patch
    from avrobust.report.build import write_report

    runtime.apply()  # the allocator (torch is loaded already; the CLI applied the rest)
    cfg = cfg or DemoConfig()
    stages = stages or Stages()
    out = Path(out)
    res = DemoResult(out)
    makers = {"stop_to_80_sticker": _sticker, "hide_stop_poster": _hiding}
    for name, make in makers.items():
        path = out / "patches" / f"{name}.patch"
        if not path.is_file():  # a rerun reuses the patches made before
            path.parent.mkdir(parents=True, exist_ok=True)
            make(cfg, path, stages)
        res.patches[name] = path
        res.prints[name], _ = export_patch(path, out / "print" / f"{name}.pdf", dpi=cfg.print_dpi)
    res.campaign = out / "campaign.yaml"
    res.campaign.write_text(
        campaign_text(cfg, res.patches["stop_to_80_sticker"], res.patches["hide_stop_poster"]),
        encoding="utf-8",
    )
    res.run_dir = out / "run"
    stages.start("campaign: jobs", None)
    summary = run_campaign(
        res.campaign,
        res.run_dir,
        "local",
        cfg.workers,
        on_outcome=lambda o, j: stages.advance("campaign: jobs", 1, f"{o.num_frames} frames"),
        on_start=lambda todo, skipped: stages.start("campaign: jobs", todo),
    )
    stages.done("campaign: jobs", f"{summary.done} done, {summary.failed} failed")
    stages.start("report", None)
    files = write_report(
        res.run_dir, out / "report", progress=lambda s: stages.advance("report", 0, s)
    )
    stages.done("report")
    res.report_html, res.report_pdf = files.html, files.pdf
    res.tables = files.document.tables()
    return res
