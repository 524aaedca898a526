"""``avrobust export patch/chart`` and ``avrobust printer fit``: print files at true size."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avrobust.cli.base import app, console

export_app = typer.Typer(help="Print files of patches at true size.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("patch")
def export_patch_cmd(
    patch: Annotated[Path, typer.Argument(help="Patch file (.patch).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.pdf, .png, .tiff).")],
    width_cm: Annotated[
        float | None, typer.Option(help="Printed width (default: the patch's own).")
    ] = None,
    dpi: Annotated[int, typer.Option(help="Resolution of the printed image.", min=1)] = 300,
    fmt: Annotated[
        str | None, typer.Option("--format", help="pdf, png or tiff (default: from --out).")
    ] = None,
    page: Annotated[str, typer.Option(help="A4 or Letter (PDF).")] = "A4",
) -> None:
    """Write a patch at its true physical size, with crop marks, scale bar and markers."""
    from avrobust.export.print_sheet import export_patch

    path, lay = export_patch(patch, out, width_cm, dpi, fmt, page)
    pages = lay.tiles[0] * lay.tiles[1]
    console.print(
        f"{path}: {lay.width_mm / 10:.2f} x {lay.height_mm / 10:.2f} cm at {lay.dpi} dpi"
        + (f", {pages} {lay.page} pages" if path.suffix == ".pdf" else "")
    )


@export_app.command("chart")
def export_chart_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Chart file (.pdf or .png).")],
    palette: Annotated[str, typer.Option(help="Palette name or CSV file.")] = "printer30",
) -> None:
    """Print the palette as a colour chart with ArUco markers (for avrobust printer fit)."""
    from avrobust.attacks.printability import load_palette
    from avrobust.export.chart import write_chart

    console.print(str(write_chart(load_palette(palette), out)))


printer_app = typer.Typer(help="Printer colour calibration.", no_args_is_help=True)
app.add_typer(printer_app, name="printer")


@printer_app.command("fit")
def printer_fit(
    photo: Annotated[Path, typer.Argument(help="Photo of the printed chart.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Printer model to write (.json).")],
    palette: Annotated[str, typer.Option(help="The palette the chart was printed from.")] = (
        "printer30"
    ),
) -> None:
    """Find the chart in a photo, sample its swatches and fit the printer colour model."""
    from avrobust.attacks.printability import load_palette
    from avrobust.export.chart import fit_printer_model

    model = fit_printer_model(photo, load_palette(palette))
    model.save(out)
    console.print(f"{out}: RMS error {model.residual:.3f} over the swatches")
