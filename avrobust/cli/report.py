"""``avrobust report`` (the safety assessment report of a run) and ``avrobust demo`` (the
end-to-end demo). Top-level commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from avrobust.cli.base import app, console


@app.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (avrobust run --out).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for report.html and report.pdf.")
    ],
    pdf: Annotated[bool, typer.Option(help="Also write report.pdf.")] = True,
) -> None:
    """Write the safety assessment report of a run: a self-contained report.html (opens
    offline) and report.pdf, from the run's results store."""
    from avrobust.report.build import write_report

    with console.status("report") as status:
        files = write_report(run_dir, out, pdf, progress=lambda s: status.update(s))
    _print_table(console, files.document.tables().get("verdict"), "verdict")
    console.print(f"report: {files.html}" + (f" and {files.pdf}" if files.pdf else ""))


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything.")] = Path(
        "out/demo"
    ),
    workers: Annotated[int, typer.Option(help="Parallel campaign jobs.", min=1)] = 2,
) -> None:
    """The whole tool end to end in under 10 minutes on two CPU cores: optimise a sticker
    attack and a hiding patch on the urban stop sign, run clean and attacked drive-bys
    across distance and weather, write the report and true-size print files. Rerun with
    the same --out to resume."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from avrobust.demo import DemoConfig, Stages, run_demo

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )

    class Bars(Stages):
        def __init__(self) -> None:
            self.tasks: dict[str, int] = {}

        def start(self, name, total):
            if name in self.tasks:
                progress.update(self.tasks[name], total=total)
            else:
                self.tasks[name] = progress.add_task(name, total=total, info="")

        def advance(self, name, n=1, info=""):
            progress.update(self.tasks[name], advance=n, info=info)

        def done(self, name, info=""):
            t = self.tasks[name]
            total = progress.tasks[t].total
            progress.update(t, total=total or 1, completed=total or 1, info=info)

    with progress:
        res = run_demo(out, DemoConfig(workers=workers), Bars())
    _print_table(console, res.tables.get("matrix"), "attack success (frames; drive-bys failed)")
    _print_table(console, res.tables.get("verdict"), "verdict")
    console.print("[bold]demo outputs[/]")
    console.print(f"  report:       {res.report_html}\n                {res.report_pdf}")
    for name, path in res.prints.items():
        console.print(f"  print file:   {path} ({name})")
    console.print(f"  campaign:     {res.campaign}\n  run:          {res.run_dir}")


def _print_table(console: Console, table, title: str) -> None:
    """One of the report's tables in the terminal, PASS / FAIL / UNTESTED cells coloured."""
    from rich.table import Table

    if table is None:
        return
    out = Table(title=title)
    for h in table.header:
        out.add_column(h)
    colour = {"PASS": "green", "FAIL": "red", "UNTESTED": "yellow"}
    for row in table.rows:
        out.add_row(*(f"[{colour[c]}]{c}[/]" if c in colour else c for c in row))
    console.print(out)
