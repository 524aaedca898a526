"""The Typer app and the command groups several modules add commands to."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

import avrobust

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


attack_app = typer.Typer(
    help="Physical attacks: optimise, then evaluate by re-rendering.", no_args_is_help=True
)
app.add_typer(attack_app, name="attack")
