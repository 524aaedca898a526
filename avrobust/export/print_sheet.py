"""Print files of a patch at its true physical size: PDF (vector page, image placed to the
tenth of a millimetre, crop marks, a scale bar, the patch's name and hash, ArUco markers for
finding the print in photos, tiled over several A4 or Letter pages with alignment marks when the
patch is larger than a page), and PNG or TIFF (raster at the requested dpi, with the dpi and an
sRGB colour profile embedded).

Areas outside the sticker mask print white: cut the stickers out along them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from avrobust.core.errors import ConfigError
from avrobust.core.files import atomic_path
from avrobust.core.patch import Patch

MM_PER_INCH = 25.4
PAGES_MM = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}
MARGIN_MM = 18.0  # room for crop marks, markers and text on every side
ARUCO_MM = 12.0


@dataclass(frozen=True)
class PrintLayout:
    width_mm: float
    height_mm: float
    dpi: int
    page: str
    tiles: tuple[int, int]  # columns, rows


def printable_image(patch: Patch, width_px: int, height_px: int) -> np.ndarray:
    """``[H, W, 3]`` uint8: the texture resampled to the print's pixels, white outside the
    mask (antialiased downsampling, nearest-looking upsampling avoided: bilinear)."""
    tex = patch.texture[None]
    mask = patch.mask[None]
    size = (height_px, width_px)
    down = height_px < tex.shape[2] or width_px < tex.shape[3]
    tex = F.interpolate(tex, size=size, mode="bilinear", align_corners=False, antialias=down)
    mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False, antialias=down)
    img = tex * mask + (1 - mask)
    arr = (img[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr)


def layout(patch: Patch, width_cm: float | None, dpi: int, page: str) -> PrintLayout:
    if dpi < 72 or dpi > 2400:
        raise ConfigError(f"dpi must be within 72-2400, got {dpi}", field="--dpi")
    if page not in PAGES_MM:
        raise ConfigError(
            f"unknown page size {page!r}", field="--page", allowed=", ".join(PAGES_MM)
        )
    w_mm = (patch.size_m[0] * 1000.0) if width_cm is None else width_cm * 10.0
    if w_mm <= 0:
        raise ConfigError("the width must be positive", field="--width-cm")
    h_mm = w_mm * patch.size_m[1] / patch.size_m[0]
    pw, ph = PAGES_MM[page]
    cols = math.ceil(w_mm / (pw - 2 * MARGIN_MM))
    rows = math.ceil(h_mm / (ph - 2 * MARGIN_MM))
    return PrintLayout(w_mm, h_mm, dpi, page, (cols, rows))


def _aruco(marker_id: int, px: int = 120) -> np.ndarray:
    d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    img = cv2.aruco.generateImageMarker(d, marker_id, px)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)


def _image_reader(arr: np.ndarray):
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    # A PIL image directly: a PNG round trip first cost seconds per tile on large prints.
    return ImageReader(Image.fromarray(arr))


def write_pdf(
    patch: Patch, out: str | Path, width_cm: float | None = None, dpi: int = 300, page: str = "A4"
) -> tuple[Path, PrintLayout]:
    """A PDF whose patch image measures exactly ``width_cm`` wide (default: the patch's own
    physical width), tiled over pages when needed."""
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    lay = layout(patch, width_cm, dpi, page)
    px_w = max(1, round(lay.width_mm / MM_PER_INCH * dpi))
    px_h = max(1, round(lay.height_mm / MM_PER_INCH * dpi))
    full = printable_image(patch, px_w, px_h)
    pw, ph = PAGES_MM[page]
    cols, rows = lay.tiles
    tile_w, tile_h = lay.width_mm / cols, lay.height_mm / rows
    digest = patch.sha256()[:12]
    out = Path(out)
    with atomic_path(out) as tmp:
        # Uncompressed page streams: a reader (and the tests) can check the geometry as text.
        c = canvas.Canvas(str(tmp), pagesize=(pw * mm, ph * mm), pageCompression=0)
        c.setTitle(f"avrobust patch {patch.name} ({digest})")
        for r in range(rows):
            for col in range(cols):
                x0 = (pw - tile_w) / 2
                y0 = (ph - tile_h) / 2
                # The tile's pixels (rows count from the top of the patch).
                a = round(col * px_w / cols)
                b = round((col + 1) * px_w / cols)
                t = round(r * px_h / rows)
                u = round((r + 1) * px_h / rows)
                c.drawImage(
                    _image_reader(full[t:u, a:b]),
                    x0 * mm,
                    y0 * mm,
                    width=tile_w * mm,
                    height=tile_h * mm,
                )
                _crop_marks(c, x0, y0, tile_w, tile_h)
                _markers(c, x0, y0, tile_w, tile_h, 4 * (r * cols + col))
                _scale_bar(c, 10.0, 8.0)
                c.setFont("Helvetica", 7)
                label = (
                    f"avrobust patch '{patch.name}' sha256 {digest}  "
                    f"{lay.width_mm / 10:.2f} x {lay.height_mm / 10:.2f} cm at 100% scale"
                    f"  ({dpi} dpi)"
                )
                if cols * rows > 1:
                    label += f"  tile column {col + 1}/{cols}, row {r + 1}/{rows}"
                c.drawString(10 * mm, (ph - 8) * mm, label)
                c.drawString(
                    10 * mm,
                    (ph - 12) * mm,
                    "Print at 100% (no 'fit to page'). Check the 10 cm scale bar.",
                )
                c.showPage()
        c.save()
    return out, lay


def _crop_marks(
    c, x0: float, y0: float, w: float, h: float, gap: float = 2.0, length: float = 6.0
) -> None:
    from reportlab.lib.units import mm

    c.setLineWidth(0.25)
    for x, sx in ((x0, -1), (x0 + w, 1)):
        for y, sy in ((y0, -1), (y0 + h, 1)):
            c.line(x * mm, (y + sy * gap) * mm, x * mm, (y + sy * (gap + length)) * mm)
            c.line((x + sx * gap) * mm, y * mm, (x + sx * (gap + length)) * mm, y * mm)


def _markers(c, x0: float, y0: float, w: float, h: float, first_id: int) -> None:
    """Four ArUco markers (4x4 dictionary) just outside the corners; ids first_id..+3 going
    clockwise from the top left, so a photo of the print can be rectified."""
    from reportlab.lib.units import mm

    s = ARUCO_MM
    spots = [
        (x0 - s - 3, y0 + h + 3),
        (x0 + w + 3, y0 + h + 3),
        (x0 + w + 3, y0 - s - 3),
        (x0 - s - 3, y0 - s - 3),
    ]
    for k, (x, y) in enumerate(spots):
        c.drawImage(
            _image_reader(_aruco((first_id + k) % 50)), x * mm, y * mm, width=s * mm, height=s * mm
        )


def _scale_bar(c, x: float, y: float, length_mm: float = 100.0) -> None:
    from reportlab.lib.units import mm

    c.setLineWidth(0.4)
    c.line(x * mm, y * mm, (x + length_mm) * mm, y * mm)
    for k in range(0, int(length_mm) + 1, 10):
        tick = 3.0 if k % 50 == 0 else 1.8
        c.line((x + k) * mm, y * mm, (x + k) * mm, (y + tick) * mm)
    c.setFont("Helvetica", 6)
    c.drawString((x + length_mm + 2) * mm, (y - 0.5) * mm, f"{length_mm / 10:g} cm")


def write_raster(
    patch: Patch, out: str | Path, width_cm: float | None = None, dpi: int = 300, fmt: str = "png"
) -> tuple[Path, PrintLayout]:
    """PNG or TIFF at ``dpi`` with the dpi and an sRGB profile embedded."""
    from PIL import Image, ImageCms

    lay = layout(patch, width_cm, dpi, "A4")
    px_w = max(1, round(lay.width_mm / MM_PER_INCH * dpi))
    px_h = max(1, round(lay.height_mm / MM_PER_INCH * dpi))
    img = Image.fromarray(printable_image(patch, px_w, px_h))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = Path(out)
    with atomic_path(out) as tmp:
        kind = {"png": "PNG", "tiff": "TIFF", "tif": "TIFF"}[fmt]
        img.save(tmp, format=kind, dpi=(dpi, dpi), icc_profile=icc)
    return out, lay


def export_patch(
    patch: Patch | str | Path,
    out: str | Path,
    width_cm: float | None = None,
    dpi: int = 300,
    fmt: str | None = None,
    page: str = "A4",
) -> tuple[Path, PrintLayout]:
    """Write a print file; the format comes from ``fmt`` or the file's suffix."""
    if not isinstance(patch, Patch):
        patch = Patch.load(patch)
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt == "pdf":
        return write_pdf(patch, out, width_cm, dpi, page)
    if fmt in ("png", "tiff", "tif"):
        return write_raster(patch, out, width_cm, dpi, fmt)
    raise ConfigError(f"unknown print format {fmt!r}", field="--format", allowed="pdf, png, tiff")


__all__ = ["PrintLayout", "export_patch", "layout", "printable_image", "torch"]
