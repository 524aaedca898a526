"""Printer colour calibration: a chart of the palette with ArUco markers to print, and the fit
of a colour model from a photo of the printed chart.

The model is affine in RGB: ``printed = clamp(M @ intended + b)`` (a 3x3 matrix and an offset,
least squares over the palette's swatches). It captures what a printer and camera do to colour
to first order (gamut compression, casts, paper white); attacks can optimise through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from avrobust.core.errors import DataError
from avrobust.core.files import atomic_write

MARKER_MM = 20.0
SWATCH_MM = 24.0
GAP_MM = 4.0
COLUMNS = 6
DICT = cv2.aruco.DICT_4X4_50


@dataclass(frozen=True)
class ChartGeometry:
    """Where things are on the chart, in millimetres from its top-left corner."""

    width_mm: float
    height_mm: float
    markers: dict[int, tuple[float, float]]  # marker id -> top-left corner
    swatches: list[tuple[float, float]]  # top-left corner of each swatch, palette order


def geometry(n_colours: int) -> ChartGeometry:
    rows = -(-n_colours // COLUMNS)
    grid_w = COLUMNS * SWATCH_MM + (COLUMNS - 1) * GAP_MM
    grid_h = rows * SWATCH_MM + (rows - 1) * GAP_MM
    margin = MARKER_MM + 3 * GAP_MM
    w, h = grid_w + 2 * margin, grid_h + 2 * margin
    q = GAP_MM  # a white quiet zone around each marker, which detectors need
    markers = {
        0: (q, q),
        1: (w - MARKER_MM - q, q),
        2: (w - MARKER_MM - q, h - MARKER_MM - q),
        3: (q, h - MARKER_MM - q),
    }
    swatches = [
        (
            margin + (i % COLUMNS) * (SWATCH_MM + GAP_MM),
            margin + (i // COLUMNS) * (SWATCH_MM + GAP_MM),
        )
        for i in range(n_colours)
    ]
    return ChartGeometry(w, h, markers, swatches)


def chart_image(palette: torch.Tensor, px_per_mm: float = 4.0) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB picture of the chart (white paper, swatches, markers)."""
    g = geometry(palette.shape[0])
    h, w = round(g.height_mm * px_per_mm), round(g.width_mm * px_per_mm)
    img = np.full((h, w, 3), 255, np.uint8)
    d = cv2.aruco.getPredefinedDictionary(DICT)
    m = round(MARKER_MM * px_per_mm)
    for mid, (x, y) in g.markers.items():
        marker = cv2.aruco.generateImageMarker(d, mid, m)
        x0, y0 = round(x * px_per_mm), round(y * px_per_mm)
        img[y0 : y0 + m, x0 : x0 + m] = marker[..., None]
    s = round(SWATCH_MM * px_per_mm)
    colours = (palette.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    for (x, y), c in zip(g.swatches, colours, strict=True):
        x0, y0 = round(x * px_per_mm), round(y * px_per_mm)
        img[y0 : y0 + s, x0 : x0 + s] = c
    return img


def write_chart(palette: torch.Tensor, out: str | Path, fmt: str | None = None) -> Path:
    """The chart as a PDF at true size (A4) or a PNG at 300 dpi."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    g = geometry(palette.shape[0])
    if fmt == "png":
        from PIL import Image

        from avrobust.core.files import atomic_path

        with atomic_path(out) as tmp:
            Image.fromarray(chart_image(palette, 300 / 25.4)).save(tmp, dpi=(300, 300))
        return out
    if fmt != "pdf":
        raise DataError(f"unknown chart format {fmt!r}", file=out, allowed="pdf, png")
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    from avrobust.core.files import atomic_path
    from avrobust.export.print_sheet import _image_reader

    with atomic_path(out) as tmp:
        c = canvas.Canvas(str(tmp), pagesize=(210 * mm, 297 * mm), pageCompression=0)
        x0, y0 = (210 - g.width_mm) / 2, (297 - g.height_mm) / 2
        c.drawImage(
            _image_reader(chart_image(palette, 12.0)),
            x0 * mm,
            y0 * mm,
            width=g.width_mm * mm,
            height=g.height_mm * mm,
        )
        c.setFont("Helvetica", 8)
        c.drawString(
            15 * mm,
            285 * mm,
            f"avrobust colour chart: {palette.shape[0]} colours. "
            "Print at 100%, photograph flat in even light, then: avrobust printer fit",
        )
        c.showPage()
        c.save()
    return out


@dataclass
class PrinterModel:
    """``printed = clamp(matrix @ intended + offset)`` with RGB in [0, 1]."""

    matrix: torch.Tensor  # [3, 3]
    offset: torch.Tensor  # [3]
    residual: float  # RMS error of the fit over the swatches, [0, 1] units

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """Apply to ``[..., 3, H, W]`` images (differentiable)."""
        out = torch.einsum("ij,...jhw->...ihw", self.matrix.to(rgb), rgb)
        return (out + self.offset.to(rgb).view(3, 1, 1)).clamp(0, 1)

    def save(self, path: str | Path) -> Path:
        with atomic_write(path, "w") as fh:
            json.dump(
                {
                    "matrix": self.matrix.tolist(),
                    "offset": self.offset.tolist(),
                    "residual": self.residual,
                },
                fh,
                indent=2,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> PrinterModel:
        try:
            d = json.loads(Path(path).read_text())
            return cls(torch.tensor(d["matrix"]), torch.tensor(d["offset"]), float(d["residual"]))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise DataError(f"not a printer model ({exc})", file=path) from None


def sample_chart(photo: np.ndarray, n_colours: int) -> np.ndarray:
    """``[n, 3]`` colours in [0, 1] measured at the swatches' centres of a photo (RGB uint8)."""
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    detector = cv2.aruco.ArucoDetector(
        cv2.aruco.getPredefinedDictionary(DICT), cv2.aruco.DetectorParameters()
    )
    corners, ids, _ = detector.detectMarkers(gray)
    found = (
        {} if ids is None else {int(i): c[0] for i, c in zip(ids.flatten(), corners, strict=True)}
    )
    missing = [m for m in range(4) if m not in found]
    if missing:
        raise DataError(
            f"the chart's markers {missing} are not visible in the photo",
            field="photo",
            allowed="a photo showing the whole chart",
        )
    g = geometry(n_colours)
    src, dst = [], []
    for mid, (x, y) in g.markers.items():
        for k, (dx, dy) in enumerate(
            ((0, 0), (MARKER_MM, 0), (MARKER_MM, MARKER_MM), (0, MARKER_MM))
        ):
            src.append((x + dx, y + dy))
            dst.append(found[mid][k])
    hom, _ = cv2.findHomography(np.float32(src), np.float32(dst))
    out = []
    half = SWATCH_MM * 0.25  # sample the middle half of each swatch
    for x, y in g.swatches:
        cx, cy = x + SWATCH_MM / 2, y + SWATCH_MM / 2
        pts = np.float32(
            [
                [cx + dx, cy + dy]
                for dx in np.linspace(-half, half, 7)
                for dy in np.linspace(-half, half, 7)
            ]
        )
        px = cv2.perspectiveTransform(pts[None], hom)[0]
        ij = np.round(px).astype(int)
        ij[:, 0] = ij[:, 0].clip(0, photo.shape[1] - 1)
        ij[:, 1] = ij[:, 1].clip(0, photo.shape[0] - 1)
        out.append(np.median(photo[ij[:, 1], ij[:, 0]].astype(float), axis=0) / 255.0)
    return np.array(out)


def fit_printer_model(photo: np.ndarray | str | Path, palette: torch.Tensor) -> PrinterModel:
    """Fit :class:`PrinterModel` from a photo of the printed chart of ``palette``."""
    if not isinstance(photo, np.ndarray):
        path = Path(photo)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError("not a readable image", file=path)
        photo = bgr[..., ::-1].copy()
    measured = sample_chart(photo, palette.shape[0])
    intended = palette.numpy().astype(float)
    x = np.concatenate([intended, np.ones((len(intended), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(x, measured, rcond=None)  # [4, 3]
    pred = x @ sol
    residual = float(np.sqrt(((pred - measured) ** 2).mean()))
    return PrinterModel(
        torch.tensor(sol[:3].T, dtype=torch.float32),
        torch.tensor(sol[3], dtype=torch.float32),
        residual,
    )
