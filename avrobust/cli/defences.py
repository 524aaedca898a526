"""``avrobust defend free-space | cross-modal``: measure a LiDAR-side check against spoofing
(attack success with and without it) and on clean frames (false positives), over a range of
thresholds. Top-level commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from avrobust.cli.base import app, console
from avrobust.cli.common import count_bar, floats, share_text

CLEAN_SCENARIOS = "lead_vehicle,parked_vehicle,pedestrian_crossing,highway,urban_stop"

# Options every spoofing measurement takes, declared once for its commands.
Out = Annotated[Path, typer.Option("--out", "-o", help="JSON file of the results.")]
Victim = Annotated[str, typer.Option(help="lidar-detector, fusion-late or fusion-painting.")]
Weathers = Annotated[str, typer.Option(help="Weather presets (frames).")]
Laterals = Annotated[str, typer.Option(help="Ego lateral offsets, m.")]
Clean = Annotated[str, typer.Option(help="Scenarios for the false-positive rate.")]
CleanDistances = Annotated[str, typer.Option(help="Distances to each scenario's target.")]


defend_app = typer.Typer(help="Measure defences.", no_args_is_help=True)
app.add_typer(defend_app, name="defend")


@defend_app.command("free-space")
def free_space_cmd(
    out: Out,
    victim: Victim = "lidar-detector",
    distances: Annotated[str, typer.Option(help="Phantom distances, m.")] = "5,7.5,10",
    weathers: Weathers = "ClearNoon,HardRainNoon,Fog",
    laterals: Laterals = "-0.6,0,0.6",
    clean: Clean = CLEAN_SCENARIOS,
    clean_distances: CleanDistances = "10,20,30",
    method: Annotated[
        str, typer.Option(help="Spoofing: white-box, black-box, or adaptive (knows the check).")
    ] = "white-box",
    thresholds: Annotated[
        str, typer.Option(help="Free-space ratios to report.")
    ] = "0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
) -> None:
    """Spoof phantoms against a LiDAR victim, then judge each phantom and each true
    detection of clean frames with the free-space check: attack success with and without
    it and its false-positive rate, per threshold (a ROC curve)."""
    from avrobust.evaluation.lidar_defence import free_space_judge

    measure(out, free_space_judge(), victim, "spoof", method, distances, weathers, laterals,
            clean, clean_distances, thresholds)  # fmt: skip


@defend_app.command("cross-modal")
def cross_modal_cmd(
    out: Out,
    victim: Victim = "lidar-detector",
    attack: Annotated[
        str,
        typer.Option(
            help="spoof (a phantom straight ahead) or frustum (inside the real car's camera "
            "box at the wrong depth: the attack that knows this check)."
        ),
    ] = "spoof",
    distances: Annotated[
        str, typer.Option(help="spoof: phantom distances, m; frustum: shifts off the car.")
    ] = "5,7.5,10",
    weathers: Weathers = "ClearNoon,HardRainNoon,Fog",
    laterals: Laterals = "-0.6,0,0.6",
    clean: Clean = CLEAN_SCENARIOS,
    clean_distances: CleanDistances = "10,20,30",
    method: Annotated[str, typer.Option(help="white-box or black-box.")] = "white-box",
    thresholds: Annotated[
        str, typer.Option(help="Minimum camera IoUs to report.")
    ] = "0.1,0.2,0.3,0.4,0.5,0.6",
    camera_score: Annotated[
        float, typer.Option(help="Score threshold of the camera witness's detections.")
    ] = 0.3,
) -> None:
    """Spoof phantoms against a LiDAR victim, then judge each phantom and each true
    detection of clean frames by its camera support (the cross-modal check): attack
    success with and without it and its false-positive rate, per minimum IoU."""
    from avrobust.evaluation.lidar_defence import cross_modal_judge

    if attack not in ("spoof", "frustum"):
        raise typer.BadParameter("--attack must be spoof or frustum")
    judge = cross_modal_judge(score_threshold=camera_score)
    measure(out, judge, victim, attack, method, distances, weathers, laterals, clean,
            clean_distances, thresholds)  # fmt: skip


@defend_app.command("plot")
def plot_cmd(
    results: Annotated[list[Path], typer.Argument(help="JSON files of defend runs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file of the ROC curves.")],
) -> None:
    """Draw the ROC curves of one or more `avrobust defend` results (one curve each:
    attacks caught against true detections dropped, per threshold)."""
    from avrobust.core.errors import DataError
    from avrobust.core.files import atomic_write
    from avrobust.report.figures import roc

    curves, checks = {}, []
    for path in results:
        try:
            data = json.loads(path.read_text())
            points = data["points"]
            label = f"{data.get('method', '?')} {data.get('attack', 'spoof')}"
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"not a defend result ({exc})", file=path) from None
        checks.append(data.get("check", "free-space-check"))
        curves[f"{label} ({path.stem})"] = points
    title = f"{', '.join(dict.fromkeys(checks))} against {data.get('victim', '?')}"
    with atomic_write(out) as fh:
        fh.write(roc(curves, title))
    console.print(f"ROC curves: {out}")


def measure(out: Path, judge, victim: str, attack: str, method: str, distances: str,
            weathers: str, laterals: str, clean: str, clean_distances: str,
            thresholds: str) -> None:  # fmt: skip
    """Spoofing cases and clean frames judged by ``judge``; the options as typed."""
    from avrobust.core.sensors import LidarSpec
    from avrobust.evaluation.lidar_attack import load_victims
    from avrobust.evaluation.lidar_defence import CheckSamples, genuine_samples, spoof_samples
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    model = load_victims((victim,))[victim]
    spec = LidarSpec()
    names = tuple(w for w in weathers.split(",") if w)
    distances, laterals = floats(distances, "--distances"), floats(laterals, "--laterals")
    clean_distances = floats(clean_distances, "--clean-distances")
    thresholds = floats(thresholds, "--thresholds")
    samples = CheckSamples(judge)
    camera = load_scenario("lead_vehicle").sensors.camera.to_spec()
    frames = render_sweep(
        "lead_vehicle", Sweep((25.0,), (0.0,), names, laterals), camera, lidar=spec
    )
    with count_bar(attack) as bar:
        task = bar.add_task(attack, total=len(frames.frames) * len(distances))
        spoof_samples(model, frames, spec, samples, distances, method,
                      progress=lambda n: bar.advance(task, n), attack=attack)  # fmt: skip
    with count_bar("clean frames") as bar:
        task = bar.add_task("clean", total=None)
        for sc in (s for s in clean.split(",") if s):
            cam = load_scenario(sc).sensors.camera
            fr = render_sweep(
                sc,
                Sweep(clean_distances, (0.0,), names, laterals),
                cam.to_spec() if cam is not None else camera,
                lidar=spec,
            )
            genuine_samples(model, fr, samples, progress=lambda n: bar.advance(task, n))
    points = [samples.point(t) for t in thresholds]
    table = Table(
        title=f"{judge.name} against {method} {attack} attack on {victim} (95% Wilson intervals)"
    )
    for h in (
        "threshold",
        "attack success",
        "with check",
        "phantoms caught",
        "false positives",
    ):
        table.add_column(h)
    for p in points:
        table.add_row(
            f"{p['threshold']:.2f}",
            share_text(p["success_undefended"], p["cases"]),
            share_text(p["success_defended"], p["cases"]),
            f"{p['detection_rate']:.0%}",
            share_text(p["false_positive_rate"], p["genuine"]),
        )
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"check": judge.name, "victim": victim, "attack": attack,
                               "method": method, "points": points,
                               "spoofed": samples.spoofed, "genuine": samples.genuine,
                               "cases": samples.cases}, indent=1))  # fmt: skip
    console.print(f"results: {out}")
