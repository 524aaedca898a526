"""Helpers the command modules share: number lists, progress bars, success tables."""

from __future__ import annotations

import contextlib

from rich.table import Table

from avrobust.cli.base import console


def floats(text: str, name: str) -> tuple[float, ...]:
    from avrobust.core.errors import ConfigError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}", field=name) from None


def success_table(ev, title: str, groups) -> None:
    table = Table(title=title)
    for col in ("condition", "views", "compositor", "re-rendered"):
        table.add_column(col)
    table.add_row(
        "all", str(ev.clean_correct), f"{ev.compositor_success:.0%}", f"{ev.rendered_success:.0%}"
    )
    for group in groups:
        for k, v in group.items():
            table.add_row(k, str(v["views"]), f"{v['compositor']:.0%}", f"{v['rendered']:.0%}")
    console.print(table)


class _Cases:
    """A progress bar over attack cases (``total(n)`` once, then ``tick(k)``)."""

    def __init__(self, progress, task) -> None:
        self.progress, self.task = progress, task

    def total(self, n: int) -> None:
        self.progress.update(self.task, total=n)

    def __call__(self, k: int = 1) -> None:
        self.progress.advance(self.task, k)


def count_bar(label: str):
    """A rich progress bar that counts items, with an ETA."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        f"[bold]{label}", BarColumn(), MofNCompleteColumn(), "ETA", TimeRemainingColumn(),
        console=console,
    )  # fmt: skip


@contextlib.contextmanager
def case_progress(label: str):
    with count_bar(label) as progress:
        yield _Cases(progress, progress.add_task(label, total=None))
