"""``avrobust doctor``: check the installation."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from avrobust.cli.base import app, console, err_console


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
