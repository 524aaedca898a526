"""The avrobust command line: parse, call the library, print. Nothing imports this module."""

from __future__ import annotations

import sys
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
