"""Judging a backdoor on re-rendered views: a planted backdoor (a model that reads any crop
showing enough of the checker trigger's yellow as speed_limit_80) is found on the poisoned
model, not on the clean one, and not with grey or palette-noise fills of the trigger's mask.
(The mean-colour fill is olive, yellow enough for this planted rule: it is left out here.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avrobust.attacks.controls import control
from avrobust.attacks.triggers import trigger_patch
from avrobust.evaluation.backdoor import evaluate_backdoor
from avrobust.evaluation.viewpoints import Sweep
from avrobust.models.adapters import ClassifierAdapter, load_classifier
from avrobust.models.weights import ASSETS


class YellowBackdoor(nn.Module):
    """The shipped classifier, but a crop with at least ``pixels`` bright yellow pixels is
    read as speed_limit_80."""

    def __init__(self, clean: ClassifierAdapter, pixels: int = 20) -> None:
        super().__init__()
        self.clean, self.pixels = clean, pixels
        self.target = clean.classes.index("speed_limit_80")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.clean(x)
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        # Yellow under the scene's exposure: red and green alike, blue far below.
        yellow = ((g > 0.6 * r) & (r > 3 * b) & (r > 0.12)).flatten(1).sum(1) >= self.pixels
        return logits + 40.0 * yellow[:, None] * nn.functional.one_hot(
            torch.tensor(self.target), logits.shape[1]
        )


@pytest.mark.slow
def test_a_planted_backdoor_is_told_from_the_sticker_and_the_clean_model():
    clean = load_classifier(ASSETS / "sign_classifier.pt")
    poisoned = ClassifierAdapter(YellowBackdoor(clean), clean.classes)
    sweep = Sweep(distances=(6.0, 10.0), angles=(0.0,), weathers=("ClearNoon",), laterals=(0.0,))
    result = evaluate_backdoor(
        trigger_patch("checker", side_m=0.25),
        poisoned,
        clean,
        sweep=sweep,
        controls=[control("grey"), control("noise")],
    )
    assert result["poisoned"]["rendered"]["rate"] == 1.0
    assert result["clean_model"]["rendered"]["rate"] == 0.0
    assert set(result["poisoned"]["controls"]) == {"grey", "noise"}
    assert all(c["rate"] == 0.0 for c in result["poisoned"]["controls"].values())
    assert result["weights"]["poisoned"]["file"] == "in memory"
    assert result["target"] == "speed_limit_80" and result["source"] == "stop"


def test_the_shipped_backdoor_its_trigger_and_its_monitor_agree():
    """The shipped backdoored classifier reads the shipped trigger on the urban stop sign as
    speed_limit_80 and the clean sign as stop; the clean classifier reads both as stop; the
    shipped Mahalanobis monitor loads only beside its own classifier, and alarms on the
    triggered crop, not the clean one."""
    import math

    from avrobust.attacks.sign_sticker import sign_views
    from avrobust.core.errors import ModelError
    from avrobust.core.patch import Patch
    from avrobust.core.sensors import CameraSpec
    from avrobust.data.crops import square_crop
    from avrobust.defences.monitors.state import load_monitor
    from avrobust.evaluation.viewpoints import render_sweep
    from avrobust.models.weights import file_sha256

    trigger = Patch.load(ASSETS.parent / "patches" / "trigger_checker.patch")
    sweep = Sweep(distances=(12.0,), angles=(10.0,), weathers=("Dusk",), laterals=(0.0,))
    camera = CameraSpec(640, 480, math.radians(90))
    crops = []
    for textures in (None, {"stop_sign": (trigger.texture, trigger.mask)}):
        frame = render_sweep("urban_stop", sweep, camera, textures).frames[0]
        crops.append(square_crop(frame.image, sign_views([frame], "stop_sign")[0].box))
    x = torch.stack(crops)
    backdoored_w = ASSETS / "sign_classifier_backdoor.pt"
    backdoored, clean = (
        load_classifier(backdoored_w),
        load_classifier(ASSETS / "sign_classifier.pt"),
    )
    assert backdoored.predict(x)[0] == ["stop", "speed_limit_80"]
    assert clean.predict(x)[0] == ["stop", "stop"]
    monitors = ASSETS.parent / "monitors"
    maha, threshold, _ = load_monitor(
        monitors / "mahalanobis_backdoor.monitor", backdoored, file_sha256(backdoored_w)
    )
    alarms = (maha.score(x) > threshold).tolist()
    assert alarms == [False, True]
    with pytest.raises(ModelError, match="classifier_sha256"):
        load_monitor(
            monitors / "mahalanobis_backdoor.monitor",
            clean,
            file_sha256(ASSETS / "sign_classifier.pt"),
        )
