"""Patches against the camera detector: windows, regions, gradients, the optimisation moving
the detector's scores the way the goal asks, and success counting."""

import pytest
import torch

from avrobust.attacks.detector_patch import (
    DetectorPatchAttack,
    detector_window,
    patch_views,
    region_cells,
)
from avrobust.core.errors import ConfigError
from avrobust.core.sensors import CameraSpec
from avrobust.evaluation.detector_attack import goal_met
from avrobust.evaluation.viewpoints import Sweep, render_sweep
from avrobust.models.camera_detector import CameraDetector

CAMERA = CameraSpec(width=320, height=240)


@pytest.fixture(scope="module")
def lead_frames():
    sweep = Sweep(distances=(8.0, 12.0), angles=(0.0,), weathers=("ClearNoon",), laterals=(0.0,))
    return render_sweep("lead_vehicle", sweep, CAMERA)


def test_windows_hold_the_box_with_context_in_multiples_of_32():
    box = torch.tensor([300.0, 200.0, 340.0, 230.0])
    x0, y0, x1, y1 = detector_window(box, (480, 640))
    assert (x1 - x0) % 32 == 0 and (y1 - y0) % 32 == 0
    assert x0 <= 300 and x1 >= 340 and y0 <= 200 and y1 >= 230
    # Near the border the window slides inside the image.
    x0, y0, x1, y1 = detector_window(torch.tensor([0.0, 0.0, 20.0, 20.0]), (480, 640))
    assert (x0, y0) == (0, 0)
    # A box larger than the minimum gets twice its size, within the image.
    x0, y0, x1, y1 = detector_window(torch.tensor([100.0, 100.0, 500.0, 300.0]), (480, 640))
    assert x1 - x0 == 640 and y1 - y0 == 416
    c0, r0, c1, r1 = region_cells(torch.tensor([40.0, 40.0, 80.0, 60.0]), (0, 0, 256, 192))
    assert c0 <= 40 // 4 - 1 and c1 >= 80 // 4 + 1 and r0 <= 9 and r1 >= 16


def test_views_carry_the_host_box_or_the_patch_box(lead_frames):
    hide = patch_views(lead_frames.frames, "lead_rear", "hide")
    appear = patch_views(lead_frames.frames, "lead_rear", "appear")
    assert len(hide) == len(appear) == 2
    for h, a in zip(hide, appear, strict=True):
        # The rear patch lies inside the vehicle's box.
        assert a.box[0] >= h.box[0] - 1 and a.box[2] <= h.box[2] + 1
        assert (a.box[2] - a.box[0]) < (h.box[2] - h.box[0])


def test_gradients_reach_the_texture_and_the_goal_moves_the_scores(lead_frames, lively_detector):
    detector = lively_detector
    views = patch_views(lead_frames.frames, "lead_rear", "appear")
    base = lead_frames.surface_textures["lead_rear"]
    mask = torch.ones(1, *base.shape[1:])
    attack = DetectorPatchAttack(detector, "appear", "car", steps=12, lr=0.5, batch=2, eot="none")
    tex = base.clone().requires_grad_(True)
    from avrobust.attacks.eot import EOT

    scores = attack.view_scores(views, tex, mask, EOT("none"), 0)
    scores.sum().backward()
    assert tex.grad is not None and tex.grad.abs().sum() > 0
    with torch.no_grad():
        before = attack.view_scores(views, base, mask, EOT("none"), 0)
    patch = attack(views, base, mask, (1.4, 0.6))
    with torch.no_grad():
        after = attack.view_scores(views, patch.texture, mask, EOT("none"), 0)
    assert after.mean() > before.mean() + 0.2
    assert patch.provenance["goal"] == "appear" and patch.size_m == (1.4, 0.6)
    # The attack also runs when called under no_grad.
    hide = DetectorPatchAttack(detector, "hide", "car", steps=12, lr=0.5, batch=2, eot="none")
    hviews = patch_views(lead_frames.frames, "lead_rear", "hide")
    with torch.no_grad():
        before = hide.view_scores(hviews, base, mask, EOT("none"), 0)
        hidden = hide(hviews, base, mask, (1.4, 0.6)).texture
        after = hide.view_scores(hviews, hidden, mask, EOT("none"), 0)
    assert after.mean() < 0.5 * before.mean()


def test_bad_goals_and_categories_are_config_errors():
    with pytest.raises(ConfigError, match="goal"):
        DetectorPatchAttack(CameraDetector(), "vanish", "car")
    with pytest.raises(ConfigError, match="unknown category 'truck'"):
        DetectorPatchAttack(CameraDetector(), "hide", "truck")


def test_goal_met_counts_as_campaigns_do(lead_frames):
    (view,) = patch_views(lead_frames.frames[:1], "lead_rear", "hide")
    box = view.box
    found = {"boxes": box[None], "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}
    assert not goal_met(found, view, "hide", 0, 0.3)
    assert goal_met(found, view, "hide", 1, 0.3)  # another class is not the car
    weak = {**found, "scores": torch.tensor([0.2])}
    assert goal_met(weak, view, "hide", 0, 0.3)
    shifted = {**found, "boxes": (box + torch.tensor([200.0, 0, 200, 0]))[None]}
    assert goal_met(shifted, view, "hide", 0, 0.3)


def test_the_attack_holds_the_detector_still_and_gives_it_back(lead_frames, lively_detector):
    """A detector handed over in training mode comes back in training mode with trainable
    weights, and the attack changed neither its weights nor its batch-norm statistics."""
    detector = lively_detector.train()
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    views = patch_views(lead_frames.frames, "lead_rear", "hide")
    base = lead_frames.surface_textures["lead_rear"]
    attack = DetectorPatchAttack(detector, "hide", "car", steps=2, batch=2, eot="none")
    attack(views, base, torch.ones(1, *base.shape[1:]), (1.4, 0.6))
    assert detector.training and all(m.training for m in detector.modules())
    assert all(p.requires_grad and p.grad is None for p in detector.parameters())
    after = detector.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_shared_optimiser_checks_its_settings():
    from avrobust.attacks.texture_optimiser import TextureOptimiser

    with pytest.raises(ConfigError, match="schedule"):
        TextureOptimiser(schedule="linear")
    with pytest.raises(ConfigError, match="texture_res"):
        DetectorPatchAttack(CameraDetector(), "hide", "car", texture_res=1)
    with pytest.raises(ConfigError, match="lr"):
        TextureOptimiser(lr=0.0)
