"""Printer calibration: the chart's markers are found in a photo, and the fit recovers a known
colour distortion from a synthetic photo taken at an angle with noise."""

import cv2
import numpy as np
import pytest
import torch

from avrobust.attacks.printability import load_palette
from avrobust.core.errors import DataError
from avrobust.export.chart import PrinterModel, chart_image, fit_printer_model, write_chart

M = torch.tensor([[0.85, 0.05, 0.02], [0.04, 0.80, 0.06], [0.02, 0.05, 0.75]])
B = torch.tensor([0.06, 0.05, 0.08])


def _photo(palette: torch.Tensor, seed: int = 0) -> np.ndarray:
    """The chart printed through the known model, photographed in perspective with noise."""
    chart = torch.from_numpy(chart_image(palette, 4.0)).permute(2, 0, 1).float() / 255
    printed = PrinterModel(M, B, 0.0)(chart)
    # Paper and marker black go through the printer too, like everything printed.
    img = (printed.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[80, 60], [w + 20, 90], [w - 10, h + 70], [40, h + 40]])
    hom = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(
        img, hom, (w + 140, h + 160), flags=cv2.INTER_LINEAR, borderValue=(90, 110, 100)
    )
    rng = np.random.default_rng(seed)
    noisy = photo.astype(float) + rng.normal(0, 2.0, photo.shape)
    return noisy.clip(0, 255).astype(np.uint8)


def test_fit_recovers_a_known_distortion():
    palette = load_palette("printer30")
    model = fit_printer_model(_photo(palette), palette)
    assert torch.allclose(model.matrix, M, atol=0.03)
    assert torch.allclose(model.offset, B, atol=0.03)
    assert model.residual < 0.02


def test_model_round_trip_and_application(tmp_path):
    model = PrinterModel(M, B, 0.01)
    path = model.save(tmp_path / "printer.json")
    back = PrinterModel.load(path)
    x = torch.rand(3, 4, 4, requires_grad=True)
    y = back(x)
    assert torch.allclose(y, model(x)) and y.shape == x.shape
    y.sum().backward()
    assert x.grad.abs().sum() > 0


def test_chart_files_and_errors(tmp_path):
    palette = load_palette("printer30")
    pdf = write_chart(palette, tmp_path / "chart.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    png = write_chart(palette, tmp_path / "chart.png")
    assert cv2.imread(str(png)) is not None
    blank = np.full((200, 300, 3), 255, np.uint8)
    with pytest.raises(DataError, match=r"markers .* are not visible"):
        fit_printer_model(blank, palette)
    with pytest.raises(DataError, match="not a printer model"):
        PrinterModel.load(tmp_path / "chart.png")
