"""The avrobust command line: parse, call the library, print. Nothing imports this module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import avrobust
from avrobust.core.errors import AvrobustError

app = typer.Typer(
    name="avrobust",
    help="Robustness testbed for driving perception against physical adversarial attacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"avrobust {avrobust.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Robustness testbed for driving perception against physical adversarial attacks."""


@app.command()
def doctor(
    carla: Annotated[
        str | None,
        typer.Option(
            "--carla", metavar="HOST:PORT", help="Also check that a CARLA server answers."
        ),
    ] = None,
    carla_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the CARLA server.")
    ] = 2.0,
) -> None:
    """Check the installation: library versions, torch device, CARLA client and server."""
    from avrobust.doctor import diagnose

    checks = diagnose(carla, carla_timeout)
    table = Table(title="avrobust doctor", show_header=True)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for c in checks:
        status = (
            "[green]ok[/]" if c.ok else ("[red]FAIL[/]" if c.required else "[yellow]missing[/]")
        )
        table.add_row(c.name, status, c.detail)
    console.print(table)
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        err_console.print(f"[red]problems:[/] {', '.join(failed)}")
        raise typer.Exit(1)


scenario_app = typer.Typer(
    help="Scenes and scenarios: list them, render a frame.", no_args_is_help=True
)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("list")
def scenario_list() -> None:
    """List the scenario library (``scenarios/``, or ``$AVROBUST_SCENARIOS``)."""
    from avrobust.scenario.library import load_scenario, scenario_names

    table = Table(show_header=True, box=None)
    table.add_column("scenario")
    table.add_column("description", overflow="fold")
    for name in scenario_names():
        table.add_row(name, load_scenario(name).description.strip())
    console.print(table)


@scenario_app.command("validate")
def scenario_validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files (.yaml or .xosc).")],
) -> None:
    """Check scenario files; print every problem with its file, line and field."""
    from avrobust.scenario.library import validate_files

    results = validate_files(files)
    for path, problem in results.items():
        if problem is None:
            console.print(f"[green]ok[/]    {path}")
        else:
            console.print(f"[red]error[/] {problem}", highlight=False, soft_wrap=True)
    if any(p is not None for p in results.values()):
        raise typer.Exit(2)


@scenario_app.command("render")
def scenario_render(
    scene: Annotated[str, typer.Argument(help="Scenario name or file (avrobust scenario list).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pictures.")] = Path(
        "out/render"
    ),
    time: Annotated[float, typer.Option(help="Seconds into the episode.")] = 0.0,
    weather: Annotated[
        str | None, typer.Option(help="Weather preset instead of the scenario's (CARLA names).")
    ] = None,
    width: Annotated[int, typer.Option(help="Image width in pixels.")] = 1280,
    height: Annotated[int, typer.Option(help="Image height in pixels.")] = 720,
    seed: Annotated[int, typer.Option(help="Seed of sensor noise and weather effects.")] = 0,
    kitti: Annotated[bool, typer.Option("--kitti", help="Also write a KITTI tree.")] = False,
) -> None:
    """Render one frame: camera, boxes, LiDAR bird's-eye view, LiDAR on the camera image."""
    from avrobust.evaluation.preview import render_preview

    with console.status(f"rendering {scene} at t={time:g} s"):
        files = render_preview(
            scene, out, time, weather, width, height, seed=seed, kitti_export=kitti
        )
    for name, path in files.items():
        console.print(f"{name:>16}: {path}")


def main() -> None:
    """Console-script entry: user errors print one line and exit 2, without a traceback."""
    try:
        app()
    except AvrobustError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
