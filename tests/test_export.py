"""Print files: the true size is in the file's own geometry, rasters carry dpi and a profile."""

import re

import pytest
import torch

from avrobust.core.errors import ConfigError
from avrobust.core.patch import Patch
from avrobust.export.print_sheet import export_patch

PT_PER_MM = 72 / 25.4


def _patch(w=0.3, h=0.2) -> Patch:
    g = torch.Generator().manual_seed(0)
    return Patch(torch.rand(3, 60, 90, generator=g), torch.ones(1, 60, 90), (w, h), "test")


def _images(pdf: bytes) -> list[tuple[float, float]]:
    """Widths and heights (mm) of the images drawn on the pages, from the content streams."""
    found = re.findall(rb"([\d.]+) 0 0 ([\d.]+) [\d.]+ [\d.]+ cm\s*/FormXob\S* Do", pdf)
    return [(float(a) / PT_PER_MM, float(b) / PT_PER_MM) for a, b in found]


def test_pdf_measures_the_requested_size(tmp_path):
    path, lay = export_patch(_patch(), tmp_path / "p.pdf", width_cm=15.0)
    sizes = _images(path.read_bytes())
    patch_w, patch_h = max(sizes)  # the patch; the others are the ArUco markers (12 mm)
    assert patch_w == pytest.approx(150.0, abs=0.1)
    assert patch_h == pytest.approx(100.0, abs=0.1)
    assert sorted(sizes)[0] == pytest.approx((12.0, 12.0), abs=0.1)
    assert lay.tiles == (1, 1)


def test_large_patches_tile_and_add_up_to_the_size(tmp_path):
    path, lay = export_patch(_patch(0.5, 0.4), tmp_path / "big.pdf", dpi=100, page="Letter")
    assert lay.tiles == (3, 2)
    data = path.read_bytes()
    tiles = [s for s in _images(data) if s[0] > 20]
    assert len(tiles) == 6
    assert sum(w for w, _ in tiles) == pytest.approx(500.0 * 2, abs=0.3)  # 3 columns x 2 rows
    assert sum(h for _, h in tiles) == pytest.approx(400.0 * 3, abs=0.3)


def test_raster_has_dpi_profile_and_pixel_size(tmp_path):
    from PIL import Image

    for fmt in ("png", "tiff"):
        path, _ = export_patch(_patch(), tmp_path / f"p.{fmt}", width_cm=10.0, dpi=200)
        img = Image.open(path)
        assert img.size == (round(100 / 25.4 * 200), round(100 * 2 / 3 / 25.4 * 200))
        assert tuple(round(v) for v in img.info["dpi"]) == (200, 200)
        assert img.info.get("icc_profile")


def test_masked_areas_print_white(tmp_path):
    from PIL import Image

    p = _patch()
    p.mask[:, :, :45] = 0
    path, _ = export_patch(p, tmp_path / "m.png", width_cm=9.0, dpi=100)
    img = Image.open(path).convert("RGB")
    w, h = img.size
    assert img.getpixel((2, h // 2)) == (255, 255, 255)
    assert img.getpixel((w - 3, h // 2)) != (255, 255, 255)


def test_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="dpi"):
        export_patch(_patch(), tmp_path / "x.pdf", dpi=10)
    with pytest.raises(ConfigError, match="unknown print format"):
        export_patch(_patch(), tmp_path / "x.svg")
    with pytest.raises(ConfigError, match="page size"):
        export_patch(_patch(), tmp_path / "x.pdf", page="A3")
