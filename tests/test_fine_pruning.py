"""Fine-pruning: the pruning stays within its clean-accuracy budget, pruned channels stay dead
through fine-tuning, and the repaired weights load as a classifier with the same outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avrobust.models.adapters import load_classifier
from avrobust.models.crops import load_crops
from avrobust.training.classifier import ClassifierTrainConfig, train_sign_classifier
from avrobust.training.fine_pruning import FinePruneConfig, channel_activity, fine_prune
from tests.test_poisoning import _synthetic_crops


@pytest.mark.slow
def test_fine_pruning_keeps_its_budget_and_its_pruned_channels_dead(tmp_path):
    rng = np.random.default_rng(1)
    _synthetic_crops(tmp_path / "train", rng, 40, 8)
    _synthetic_crops(tmp_path / "clean", rng, 30, 0)
    train_sign_classifier(
        ClassifierTrainConfig(str(tmp_path / "train"), str(tmp_path / "m"), epochs=3, batch=32)
    )
    cfg = FinePruneConfig(
        str(tmp_path / "m" / "sign_classifier.pt"),
        str(tmp_path / "clean"),
        str(tmp_path / "fp"),
        max_drop=0.05,
        step=8,
        epochs=1,
        batch=32,
    )
    m = fine_prune(cfg)
    t = m["clean_top1"]
    assert 0 < m["pruned"] < m["channels"]
    assert t["before"] - t["pruned"] <= cfg.max_drop + 1e-9
    assert m["curve"][0] == {"pruned": 0, "top1": t["before"]}
    assert json.loads((tmp_path / "fp" / "metrics.json").read_text())["pruned"] == m["pruned"]
    repaired = load_classifier(tmp_path / "fp" / "sign_classifier.pt")
    norm = dict(repaired.module.named_modules())["features.19"]
    activity = channel_activity(repaired.module, norm, load_crops(tmp_path / "clean"))
    assert (activity[m["pruned_channels"]] == 0).all()  # dead after fine-tuning too
    assert (activity.count_nonzero()) > 0
    x = torch.rand(3, 3, 64, 64)
    assert repaired(x).shape == (3, len(repaired.classes))
