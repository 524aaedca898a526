"""``avrobust attack lidar-spoof`` and ``attack lidar-remove``: LiDAR attacks on still frames of
a scenario against the shipped LiDAR and fusion detectors, with a success table, a JSON file of
every case and pictures. Commands of the ``attack`` group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from avrobust.cli.base import attack_app, console
from avrobust.cli.common import case_progress as progress
from avrobust.cli.common import floats

# Options both commands take.
Out = Annotated[Path, typer.Option("--out", "-o", help="JSON file of every case.")]
Victims = Annotated[
    str, typer.Option(help="Comma-separated victims; NAME=WEIGHTS for other weights.")
]
Surrogate = Annotated[
    str,
    typer.Option(help="Model the transfer method attacks (NAME or NAME=WEIGHTS)."),
]
Weathers = Annotated[str, typer.Option(help="Weather presets (frames).")]
Laterals = Annotated[str, typer.Option(help="Ego lateral offsets, m (frames).")]
Pictures = Annotated[
    Path | None, typer.Option(help="Folder for a BEV and camera picture per victim.")
]
ALL_VICTIMS = "lidar-detector,fusion-late,fusion-painting"
WEATHERS = "ClearNoon,CloudyNoon,Dusk"


def with_control(methods: tuple[str, ...]) -> tuple[str, ...]:
    """``methods`` with the random control first when it is missing: every optimised number
    is shown beside the same budget spent at random."""
    return methods if "random" in methods else ("random", *methods)


def split_names(text: str) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated option."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _setup(victims: str, scenario: str, distances, weathers: str, laterals: str, floats, console):
    """The victims, and the scenario's clean frames (camera and LiDAR) at each distance to its
    first target, weather and lateral offset."""
    from avrobust.core.errors import ConfigError
    from avrobust.core.sensors import LidarSpec
    from avrobust.evaluation.lidar_attack import load_victims
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    models = load_victims(split_names(victims))
    sc = load_scenario(scenario)
    if sc.sensors.camera is None:
        raise ConfigError("the scenario needs a camera (fusion victims use it)", field="sensors")
    lidar = sc.sensors.lidar.to_spec() if sc.sensors.lidar is not None else LidarSpec()
    grid = Sweep(distances, (0.0,), split_names(weathers), floats(laterals, "laterals"))
    with console.status(f"rendering {len(grid.viewpoints())} frames"):
        frames = render_sweep(scenario, grid, sc.sensors.camera.to_spec(), lidar=lidar)
    return models, frames, lidar


def _surrogate(name: str, methods: tuple[str, ...]):
    """The surrogate victim, loaded only when the transfer method asks for it."""
    from avrobust.evaluation.lidar_attack import load_victims

    return load_victims((name,))[name] if "transfer" in methods else None


def _table(console: Console, run, title: str, budget_column: bool) -> None:
    """Success per victim, method and budget with its 95% Wilson interval, and for each
    optimised method its effect over the random control on the same cases."""
    effects = run.effects()
    table = Table(title=title)
    for col in (
        "victim", "method", *(["budget"] if budget_column else []), "success (95% Wilson)",
        "over the random control",
    ):  # fmt: skip
        table.add_column(col)
    seen = []
    for r in run.rows:
        key = (r.victim, r.method, r.budget)
        if key in seen:
            continue
        seen.append(key)
        rate = run.rate(victim=r.victim, method=r.method, budget=r.budget)
        eff = effects.get(f"{r.victim}/{r.method}/{r.budget}")
        versus = "(the control)" if r.method == "random" else "-"
        if eff is not None:
            versus = f"{eff['difference']:+.0%}, McNemar p = {eff['p']:.2g}"
            if not eff["distinguishable"]:
                versus += " [bold red]not distinguishable[/]"
        cells = [r.victim, r.method, *([str(r.budget)] if budget_column else [])]
        table.add_row(*cells, str(rate), versus)
    console.print(table)
    if run.skipped:
        console.print(f"skipped (precondition not met in the clean sweep): {run.skipped}")


def _save(out: Path, run, console: Console) -> None:
    from avrobust.core.files import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as fh:
        json.dump(run.to_dict(), fh, indent=1)
    console.print(f"every case: {out}")


@attack_app.command("lidar-spoof")
def lidar_spoof(
    out: Out,
    scenario: Annotated[str, typer.Option(help="Scenario whose frames are attacked.")] = (
        "lead_vehicle"
    ),
    victims: Victims = ALL_VICTIMS,
    phantoms: Annotated[
        str, typer.Option(help="Distances of the phantom's rear face from the LiDAR, m.")
    ] = "5,7.5,10",
    points: Annotated[int, typer.Option(help="Spoofed returns per sweep (budget).", min=1)] = 60,
    methods: Annotated[
        str,
        typer.Option(
            help="random, black-box, white-box, adaptive (knows the free-space check), "
            "transfer (white-box against --surrogate)."
        ),
    ] = "random,black-box,white-box",
    steps: Annotated[int, typer.Option(help="Optimisation steps or queries.", min=1)] = 60,
    distances: Annotated[
        str, typer.Option(help="Distances of the scenario's target (frames).")
    ] = "30,40",
    weathers: Weathers = WEATHERS,
    laterals: Laterals = "-0.5,0.5",
    pictures: Pictures = None,
    surrogate: Surrogate = "lidar-detector",
    category: Annotated[str, typer.Option(help="Phantom: car or pedestrian.")] = "car",
) -> None:
    """Spoof a phantom car (or pedestrian) ahead within a point budget, replacing returns
    along the victim's rays; report the share of frames where each victim sees it."""
    from avrobust.evaluation.lidar_attack import spoof_frames

    models, frames, lidar = _setup(
        victims, scenario, floats(distances, "distances"), weathers, laterals, floats, console
    )
    ph, ms = floats(phantoms, "phantoms"), with_control(split_names(methods))
    with progress("cases") as tick:
        tick.total(len(models) * len(frames.frames) * len(ph) * len(ms))
        run = spoof_frames(
            models, frames, lidar, ph, ms, points, steps, category, progress=tick,
            surrogate=_surrogate(surrogate, ms),
        )  # fmt: skip
    _table(console, run, f"spoofing a {category} with {points} points", False)
    _save(out, run, console)
    if pictures:
        from avrobust.report.lidar_attack_views import spoof_pictures

        for p in spoof_pictures(models, frames, lidar, run, pictures, category):
            console.print(f"picture: {p}")


@attack_app.command("lidar-frustum")
def lidar_frustum(
    out: Out,
    scenario: Annotated[str, typer.Option(help="Scenario whose first target is used.")] = (
        "lead_vehicle"
    ),
    victims: Victims = ALL_VICTIMS,
    shifts: Annotated[str, typer.Option(help="Phantom's range minus the target's, metres.")] = "-5",
    points: Annotated[int, typer.Option(help="Spoofed returns per sweep (budget).", min=1)] = 60,
    methods: Annotated[str, typer.Option(help="random, black-box, white-box.")] = (
        "black-box,white-box"
    ),
    steps: Annotated[int, typer.Option(help="Optimisation steps or queries.", min=1)] = 60,
    distances: Annotated[str, typer.Option(help="Distances of the target, metres.")] = "15,20,25",
    weathers: Weathers = WEATHERS,
    laterals: Laterals = "-0.5,0.5",
) -> None:
    """The frustum attack on fusion: spoof a car inside the camera's view of a real one
    at a shifted depth, so camera and LiDAR agree on the image but not on the range;
    report the share of frames where each victim reports the car at the wrong depth."""
    from avrobust.evaluation.lidar_attack import frustum_frames

    models, frames, lidar = _setup(
        victims, scenario, floats(distances, "distances"), weathers, laterals, floats, console
    )
    sh, ms = floats(shifts, "shifts"), with_control(split_names(methods))
    with progress("cases") as tick:
        tick.total(len(models) * len(frames.frames) * len(sh) * len(ms))
        run = frustum_frames(models, frames, lidar, sh, ms, points, steps, progress=tick)
    _table(console, run, f"a car at a shifted depth, {points} points", False)
    _save(out, run, console)


@attack_app.command("lidar-remove")
def lidar_remove(
    out: Out,
    scenario: Annotated[str, typer.Option(help="Scenario whose first target is hidden.")] = (
        "lead_vehicle"
    ),
    victims: Victims = ALL_VICTIMS,
    budgets: Annotated[str, typer.Option(help="Removed returns per sweep (budgets).")] = (
        "60,120,250"
    ),
    methods: Annotated[
        str, typer.Option(help="random, white-box, transfer (white-box against --surrogate).")
    ] = "random,white-box",
    distances: Annotated[str, typer.Option(help="Distances of the target, metres.")] = (
        "10,12.5,15,17.5,20"
    ),
    weathers: Weathers = WEATHERS,
    laterals: Laterals = "-0.5,0.5",
    pictures: Pictures = None,
    surrogate: Surrogate = "lidar-detector",
) -> None:
    """Hide the scenario's first target (a car) by suppressing its returns within a
    budget; report the share of frames where each victim loses it."""
    from avrobust.evaluation.lidar_attack import removal_frames

    models, frames, lidar = _setup(
        victims, scenario, floats(distances, "distances"), weathers, laterals, floats, console
    )
    bs = tuple(int(b) for b in floats(budgets, "budgets"))
    ms = with_control(split_names(methods))
    with progress("cases") as tick:
        tick.total(len(models) * len(frames.frames) * len(bs) * len(ms))
        run = removal_frames(
            models, frames, lidar, bs, ms, progress=tick, surrogate=_surrogate(surrogate, ms)
        )
    _table(console, run, "hiding the lead car", True)
    _save(out, run, console)
    if pictures:
        from avrobust.report.lidar_attack_views import removal_pictures

        for p in removal_pictures(models, frames, lidar, run, pictures):
            console.print(f"picture: {p}")
