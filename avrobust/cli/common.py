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


def _rate(r: dict) -> str:
    return f"{r['k']}/{r['n']} {r['rate']:.0%} [{r['low']:.0%}, {r['high']:.0%}]"


def share_text(share: float, n: int) -> str:
    """A share of ``n`` independent trials as ``k/n p% [low, high]`` (95% Wilson)."""
    from avrobust.core.stats import rate

    if not n:
        return "-"
    return _rate(rate(round(share * n), n).to_dict())


def success_table(ev, title: str, groups) -> None:
    """Success through the compositor and re-rendered, overall (with its 95% interval) and by
    condition; then the matched controls on the same views and the effect over the strongest."""
    table = Table(title=title)
    for col in ("condition", "views", "compositor", "re-rendered"):
        table.add_column(col)
    rendered = getattr(ev, "rendered", None)
    table.add_row(
        "all",
        str(ev.clean_correct),
        f"{ev.compositor_success:.0%}",
        _rate(rendered) if rendered else f"{ev.rendered_success:.0%}",
    )
    for group in groups:
        for k, v in group.items():
            table.add_row(
                k, str(v["views"]), f"{v['compositor']:.0%}", share_text(v["rendered"], v["views"])
            )
    console.print(table)
    controls = getattr(ev, "controls", None)
    if not controls:
        return
    table = Table(title="matched controls: the same mask on the same views, not optimised")
    for col in ("fill", "re-rendered success (95% Wilson)"):
        table.add_column(col)
    table.add_row("the attack", _rate(rendered))
    for name, r in controls.items():
        table.add_row(name, _rate(r))
    console.print(table)
    effect = ev.effect
    verdict = (
        "distinguishable from it"
        if effect["distinguishable"]
        else "[bold red]not distinguishable from its control[/]"
    )
    console.print(
        f"adversarial effect: {effect['difference']:+.0%} over the strongest control "
        f"({effect['control']}), McNemar p = {effect['p']:.2g}; {verdict}"
    )


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
