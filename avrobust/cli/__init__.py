"""The avrobust command line: parse, call the library, print. Nothing imports this package.

Each module holds one command group (``scenario``, ``runs``, ``train``, ``attack``, ...) and
registers its commands on :data:`avrobust.cli.base.app`; :mod:`.commands` imports them all. This
module stays light so that :func:`main` applies the process settings before torch loads.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry: applies the process settings (:func:`avrobust.runtime.apply`),
    runs the command; user errors print one line and exit 2, without a traceback."""
    import signal
    import sqlite3

    from avrobust import runtime

    runtime.apply()
    # SIGTERM (a scheduler, `kill`) stops like Ctrl-C: the finished jobs are kept and the run
    # says how to resume.
    signal.signal(signal.SIGTERM, _interrupt)
    from avrobust.cli.commands import app, err_console
    from avrobust.core.errors import AvrobustError

    try:
        app()
    except AvrobustError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a path that is a file, read-only, full disk: say which, no traceback
        where = exc.filename if exc.filename is not None else "output"
        what = exc.strerror or str(exc)
        err_console.print(f"[bold red]error:[/] {where}: {what}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except sqlite3.OperationalError as exc:  # "database or disk is full", "readonly database"
        err_console.print(
            f"[bold red]error:[/] results store: {exc}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def __getattr__(name: str):
    # ``from avrobust.cli import app`` (tests, Typer's CliRunner) gets the app with every
    # command registered, without importing the command modules when only main() is needed.
    if name == "app":
        from avrobust.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
