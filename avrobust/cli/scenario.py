"""``avrobust scenario list/validate/import/render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from avrobust.cli.base import app, console

scenario_app = typer.Typer(
    help="Scenarios: list, validate, import OpenSCENARIO, render a frame.", no_args_is_help=True
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


@scenario_app.command("import")
def scenario_import(
    xosc: Annotated[Path, typer.Argument(help="OpenSCENARIO 1.0 file (.xosc).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Scenario file to write (.yaml).")],
    opendrive: Annotated[
        Path | None, typer.Option(help="OpenDRIVE file for lane and road positions.")
    ] = None,
) -> None:
    """Import the common subset of an OpenSCENARIO file; list what it does not support."""
    import warnings

    from avrobust.scenario.openscenario import import_openscenario, write_yaml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = import_openscenario(xosc, opendrive)
    for item in result.unsupported:
        console.print(f"[yellow]not imported[/] {item}", highlight=False)
    console.print(f"wrote {write_yaml(result, out)}")


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
    width: Annotated[int, typer.Option(help="Image width in pixels.", min=1, max=8192)] = 1280,
    height: Annotated[int, typer.Option(help="Image height in pixels.", min=1, max=8192)] = 720,
    seed: Annotated[int, typer.Option(help="Seed of sensor noise and weather effects.")] = 0,
    kitti: Annotated[bool, typer.Option("--kitti", help="Also write a KITTI tree.")] = False,
) -> None:
    """Render one frame: camera, boxes, LiDAR bird's-eye view, LiDAR on the camera image."""
    from avrobust.report.preview import render_preview

    with console.status(f"rendering {scene} at t={time:g} s"):
        files = render_preview(
            scene, out, time, weather, width, height, seed=seed, kitti_export=kitti
        )
    for name, path in files.items():
        console.print(f"{name:>16}: {path}")
