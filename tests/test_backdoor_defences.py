"""Backdoor defences on planted, obvious poisons: Spectral Signatures and Activation
Clustering (ART's, on our model's penultimate layer) flag poisoned training samples, STRIP
flags triggered inputs at run time, and thresholds come from clean data only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from avrobust.defences.monitors import selective
from avrobust.defences.monitors.strip import Strip
from avrobust.defences.poisoned_data import (
    activation_clustering,
    robust_mahalanobis,
    spectral_signatures,
)

CORNER = (slice(None), slice(None), slice(0, 8), slice(0, 8))


class Planted(nn.Module):
    """A backdoored classifier, built not trained: its penultimate layer (``penult``) holds
    each image's mean colour and the brightness of its top-left corner; class 1 wins when
    the corner is bright (the trigger), class 0 when the image is red, class 2 otherwise. Its
    logits are mild, so a blend of two clean images is read with doubt, as a trained
    network's are."""

    def __init__(self) -> None:
        super().__init__()
        self.penult = nn.Identity()
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.head.weight.copy_(
                torch.tensor([[8.0, 0, -8, 0], [-8.0, 0, 8, 80], [0.0, 0, 0, 0]])
            )
            self.head.bias.copy_(torch.tensor([0.0, -40, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[CORNER].mean((1, 2, 3))
        return self.head(self.penult(torch.cat([x.mean((2, 3)), corner[:, None]], 1)))


def _images(n: int, colour: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.rand(n, 3, 16, 16, generator=g)
    x[:, colour] += 0.5
    return x.clamp(0, 1)


def _triggered(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[CORNER] = 1.0
    return x


@pytest.fixture(scope="module")
def poisoned_set():
    """60 red (0) and 60 blue (1) images; 3 red ones with the trigger, labelled blue (under
    the 5% per label Spectral Signatures assumes)."""
    red, blue = _images(60, 0, 1), _images(60, 2, 2)
    poisons = _triggered(_images(3, 0, 3))
    x = torch.cat([red, blue, poisons])
    y = torch.tensor([0] * 60 + [1] * 63)
    truth = np.array([False] * 120 + [True] * 3)
    return x, y, truth


@pytest.mark.parametrize("scan", [spectral_signatures, activation_clustering, robust_mahalanobis])
def test_data_scans_flag_planted_poisons(poisoned_set, scan):
    x, y, truth = poisoned_set
    model = Planted()
    result = scan(model, x, y, layer="penult")
    judged = result.judged(truth, y.numpy())
    if result.scores is not None:
        assert judged["auroc_in_poisoned_labels"] > 0.95
    assert judged["poisons_found"]["rate"] == 1.0, judged
    assert judged["clean_flagged"]["rate"] < 0.1, judged
    assert not model.penult._forward_hooks  # the scan leaves the model as it found it
    again = scan(model, x, y, layer="penult")
    assert (again.flagged == result.flagged).all()  # reproducible


def test_a_label_too_small_to_scan_is_left_unflagged(poisoned_set):
    x, y, _ = poisoned_set
    x = torch.cat([x, _images(3, 1, 9)])
    y = torch.cat([y, torch.tensor([2, 2, 2])])
    result = spectral_signatures(Planted(), x, y, layer="penult")
    assert not result.flagged[-3:].any() and len(result.flagged) == len(y)


def test_strip_flags_triggered_inputs_with_a_clean_threshold():
    model = Planted()
    fit = torch.cat([_images(20, 0, 4), _images(20, 2, 5)])
    strip = Strip(model, blends=8).fit(fit, torch.tensor([0] * 20 + [1] * 20))
    clean = torch.cat([_images(20, 0, 6), _images(20, 2, 7)])
    triggered = _triggered(_images(20, 0, 8))
    # The trigger works on the model itself...
    assert (model(triggered).argmax(1) == 1).all()
    s_clean, s_trig = strip.score(clean), strip.score(triggered)
    assert selective.auroc(s_clean, s_trig) > 0.95
    # ...and a threshold set on clean inputs alone (95% of them pass) catches it.
    threshold = torch.quantile(s_clean, 0.95)
    assert (s_trig > threshold).float().mean() >= 0.9
    # Reproducible: the blend pool is drawn with the monitor's seed.
    again = Strip(model, blends=8).fit(fit, torch.tensor([0] * 20 + [1] * 20))
    torch.testing.assert_close(again.score(clean), s_clean)
    with pytest.raises(RuntimeError, match="not fitted"):
        Strip(model).score(clean)
