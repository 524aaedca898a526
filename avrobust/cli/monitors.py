"""``avrobust defend monitors``: the sign classifier's runtime monitors fitted, calibrated and
measured on held-out crops, unseen sign types and re-rendered stickers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from avrobust.cli.base import console
from avrobust.cli.common import _rate, count_bar
from avrobust.cli.defences import defend_app


def _r(r: dict | None) -> str:
    return "-" if r is None else _rate(r)


@defend_app.command("monitors")
def monitors_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file of the results.")],
    fit: Annotated[Path, typer.Option(help="Clean crops the monitors are fitted on.")],
    calibration: Annotated[Path, typer.Option(help="Clean crops that set the thresholds.")],
    test: Annotated[Path, typer.Option(help="Clean crops they are measured on.")],
    unseen: Annotated[
        Path | None, typer.Option(help="Crops of unseen sign types (--sign-types unseen).")
    ] = None,
    patch: Annotated[
        list[Path] | None, typer.Option(help="Sign sticker patch files (repeat).")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Sign classifier weights (default: shipped).")
    ] = None,
    monitors: Annotated[
        str | None, typer.Option(help="Comma-separated monitors (default: all).")
    ] = None,
    risk: Annotated[float, typer.Option(help="Selective risk to certify.", min=0.0001)] = 0.02,
    save: Annotated[
        Path | None,
        typer.Option(
            help="Folder to save each monitor in as fitted, with its 95%-coverage threshold "
            "(NAME.monitor: the sign-monitor defence's file)."
        ),
    ] = None,
) -> None:
    """Fit each monitor on --fit, set its thresholds on --calibration (95% coverage, and the
    loosest one whose selective risk is certified under --risk), and measure on --test, the
    unseen signs and each sticker beside its controls."""
    from avrobust.core.files import atomic_write
    from avrobust.evaluation.monitor_study import run_monitor_study
    from avrobust.evaluation.patch_file import HELD_OUT

    patches = list(patch or [])
    views = len(HELD_OUT.viewpoints()) * 5 * len(patches)  # clean, sticker, three controls
    with count_bar("renders") as progress:
        task = progress.add_task("sticker views", total=max(views, 1))
        result = run_monitor_study(
            fit,
            calibration,
            test,
            unseen,
            patches,
            weights,
            monitors=[m for m in (monitors or "").split(",") if m] or None,
            risk=risk,
            progress=lambda n: progress.advance(task, n),
            save_dir=save,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as fh:
        json.dump(result, fh, indent=2)
    print_monitors(result)
    console.print(f"results: {out}")


def print_monitors(result: dict) -> None:
    """The ranking table, best AURC first: selective risk at 90/95/99% coverage, calibrated
    false alarms and the shifts flagged at the 95%-coverage threshold."""
    table = Table(title="Sign classifier monitors (95%-coverage threshold; 95% Wilson)")
    stickers = sorted({s for m in result["monitors"] for s in m.get("stickers", {})})
    cols = ["monitor", "AURC", "risk@90/95/99%", "clean false alarms", "errors flagged"]
    cols += ["unseen flagged", "unseen AUROC"] * ("unseen" in result["sizes"])
    cols += [f"{s} successes flagged" for s in stickers]
    for c in cols:
        table.add_column(c)
    for m in sorted(result["monitors"], key=lambda m: m["clean"]["aurc"]):
        c = m["clean"]
        risk = c["selective_risk"]
        row = [
            m["monitor"],
            f"{c['aurc']:.4f}",
            "/".join(f"{100 * risk[k]:.1f}" for k in ("90%", "95%", "99%")) + "%",
            _r(c["false_alarms"]["95%"]),
            _r(c["errors_flagged"]),
        ]
        if "unseen" in m:
            row += [_r(m["unseen"]["flagged"]), f"{m['unseen']['auroc']:.3f}"]
        row += [_r(m["stickers"][s]["success_flagged"]) for s in stickers]
        table.add_row(*row)
    console.print(table)
