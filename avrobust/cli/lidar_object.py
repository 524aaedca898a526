"""``avrobust attack lidar-object``: the adversarial object (a rear carrier or roof box on the
scenario's first target) shaped against a LiDAR-using victim and textured against the camera
detector, judged on held-out views re-rendered in the embedded simulator with it, and written
as a textured mesh for fabrication. Registered on the ``attack`` command group by
``avrobust.cli``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from avrobust.cli.base import attack_app, console
from avrobust.cli.common import floats
from avrobust.cli.lidar import ALL_VICTIMS, WEATHERS, split_names


def _table(console: Console, results: dict) -> None:
    rows = results.get("re-rendered, held_out", {})
    if not rows:
        return
    variants = list(next(iter(rows.values())))
    table = Table(title="host hidden on held-out views re-rendered with the object")
    table.add_column("victim")
    for v in variants:
        table.add_column(v, justify="right")
    recast = results["re-cast, camera clean"]["held_out"]
    table.add_column("shape only, re-cast", justify="right")
    for victim, row in rows.items():
        table.add_row(victim, *(row[v] for v in variants), recast.get(victim, ""))
    console.print(table)


@attack_app.command("lidar-object")
def lidar_object(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder: mesh, texture, results, pictures.")
    ],
    scenario: Annotated[str, typer.Option(help="Scenario whose first target hosts it.")] = (
        "lead_vehicle"
    ),
    victim: Annotated[str, typer.Option(help="Victim the shape is optimised against.")] = (
        "fusion-late"
    ),
    victims: Annotated[str, typer.Option(help="Comma-separated victims judged.")] = ALL_VICTIMS,
    mount: Annotated[str, typer.Option(help="rear (tow-hitch carrier) or roof (box).")] = "rear",
    size: Annotated[str, typer.Option(help="Base shape: depth, width, height, m.")] = (
        "0.3,1.8,1.4"
    ),
    max_offset: Annotated[float, typer.Option(help="Vertex offset bound, m.")] = 0.8,
    bounds: Annotated[
        str | None,
        typer.Option(help="Box the vertices stay in: x0:x1,y0:y1,z0:z1 (mount frame, m)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Shape steps (0: keep --offsets).", min=0)] = 150,
    offsets: Annotated[
        Path | None, typer.Option(help="Start from these vertex offsets (.offsets.pt).")
    ] = None,
    texture_steps: Annotated[
        int, typer.Option(help="Camera texture steps (0: grey).", min=0)
    ] = 120,
    distances: Annotated[str, typer.Option(help="Held-out distances of the host, m.")] = (
        "10,12.5,15,17.5,20"
    ),
    weathers: Annotated[str, typer.Option(help="Held-out weather presets.")] = WEATHERS,
    laterals: Annotated[str, typer.Option(help="Held-out ego lateral offsets, m.")] = "-0.5,0.5",
    pictures: Annotated[bool, typer.Option(help="Write a picture per victim.")] = True,
) -> None:
    """Shape an object on the scenario's first target against a LiDAR-using victim, give
    it a printable texture against the camera detector (MSF-ADV), and report for every
    victim the share of held-out views, re-rendered with the object, where it loses the
    host."""
    from avrobust.core.errors import ConfigError
    from avrobust.evaluation.lidar_attack import load_victims
    from avrobust.evaluation.object_attack import (
        ObjectAttackSetup,
        run_object_attack,
        save_run,
    )
    from avrobust.evaluation.viewpoints import Sweep

    dims = floats(size, "size")
    if len(dims) != 3:
        raise ConfigError("give depth, width and height", field="size")
    box = None
    if bounds:
        box = tuple(floats(b.replace(":", ","), "bounds") for b in bounds.split(","))
        if len(box) != 3 or any(len(b) != 2 or b[0] > b[1] for b in box):
            raise ConfigError(f"expected x0:x1,y0:y1,z0:z1, got {bounds!r}", field="bounds")
    names = split_names(victims)
    if victim not in names:
        names = (*names, victim)
    models = load_victims(names)
    setup = ObjectAttackSetup(
        scenario=scenario,
        victim=victim,
        mount=mount,
        size=dims,
        max_offset=max_offset,
        bounds=box,
        steps=steps,
        offsets=offsets,
        texture_steps=texture_steps,
        test=Sweep(
            floats(distances, "distances"),
            (0.0,),
            split_names(weathers),
            floats(laterals, "laterals"),
        ),
    )
    with _stages() as advance:
        run = run_object_attack(setup, models, advance)
    _table(console, run.results)
    for kind, path in save_run(run, out).items():
        console.print(f"{kind}: {path}")
    if pictures:
        from avrobust.report.object_views import object_pictures

        view = _example_view(run, victim)
        for p in object_pictures(run.rendered, models, view, out / "pictures"):
            console.print(f"picture: {p}")


@contextlib.contextmanager
def _stages():
    """A rich progress bar per stage (steps done, ETA); yields ``advance(stage, done,
    total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    tasks: dict[str, int] = {}
    with Progress(
        "[bold]{task.description}", BarColumn(), MofNCompleteColumn(), "ETA",
        TimeRemainingColumn(),
    ) as bars:  # fmt: skip

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield advance


def _example_view(run, victim: str) -> int:
    """The first held-out view where the textured object hides the host from ``victim``
    and the grey one does not (what the texture adds), else where the object (textured,
    or grey without a texture) hides it, else the first view; from the run's judgement."""
    from avrobust.evaluation.object_attack import GREY, TEXTURED

    hidden = run.hidden.get(victim)
    if not hidden:
        return 0
    last = hidden.get(TEXTURED, hidden[GREY])
    both = [t and not g for t, g in zip(last, hidden[GREY], strict=True)]
    for flags in (both, last):
        if any(flags):
            return flags.index(True)
    return 0
