"""Camera attack building blocks: compositor geometry and gradients, EOT replay, printability,
and a short sign attack that beats the clean rate after re-rendering."""

import math

import pytest
import torch

from avrobust.attacks.compositor import composite, composite_in_crop, texture_to_image
from avrobust.attacks.eot import EOT
from avrobust.attacks.masks import sticker_mask
from avrobust.attacks.printability import load_palette, nps, snap_to_palette, total_variation
from avrobust.core.errors import ConfigError, DataError
from avrobust.core.surface import SurfaceView
from avrobust.data.crops import square_crop

QUAD = torch.tensor([[100.0, 50.0], [300.0, 60.0], [280.0, 200.0], [120.0, 180.0]])


def _view(h=240, w=400, quad=QUAD) -> SurfaceView:
    return SurfaceView(
        "s", 1, quad, torch.ones(h, w), torch.ones(3), torch.zeros(3), (1.0, 1.0), 10.0, 0.0
    )


def test_texture_corners_land_on_the_quad_corners():
    h, w = 64, 128
    m = texture_to_image(QUAD, h, w).double()
    # Texture corners in continuous coordinates are index -0.5 .. size - 0.5.
    corners = torch.tensor(
        [[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]],
        dtype=torch.float64,
    )
    mapped = corners @ m.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    assert torch.allclose(mapped + 0.5, QUAD.double(), atol=1e-3)


def test_composited_texture_covers_the_quad_to_the_pixel():
    image = torch.zeros(3, 240, 400)
    # A texture at least as fine as the quad on screen (as the sign faces are, 256 px).
    out = composite(image, torch.ones(3, 256, 256), torch.ones(1, 256, 256), _view())
    covered = out[0] > 0.5
    for (x, y), (dx, dy) in zip(QUAD.tolist(), [(1, 1), (-1, 1), (-1, -1), (1, -1)], strict=True):
        inside = (int(x + 2 * dx), int(y + 2 * dy))
        outside = (int(x - 2 * dx), int(y - 2 * dy))
        assert covered[inside[1], inside[0]], (x, y)
        assert not covered[outside[1], outside[0]], (x, y)


def test_relighting_and_visibility_mask():
    view = _view()
    view.mask[:, :200] = 0  # the left half is occluded
    view.gain = torch.tensor([0.5, 0.5, 0.5])
    view.offset = torch.tensor([0.1, 0.1, 0.1])
    out = composite(torch.zeros(3, 240, 400), torch.ones(3, 8, 8), torch.ones(1, 8, 8), view)
    assert out[:, 120, 150].abs().max() == 0  # occluded: untouched
    assert torch.allclose(out[:, 120, 250], torch.full((3,), 0.6))


def test_gradients_reach_the_texture_only_through_the_mask():
    tex = torch.rand(3, 16, 16, requires_grad=True)
    mask = torch.zeros(1, 16, 16)
    mask[:, :, :8] = 1
    out = composite(torch.rand(3, 240, 400), tex, mask, _view())
    out.sum().backward()
    assert tex.grad[:, :, :7].abs().sum() > 0
    assert tex.grad[:, :, 9:].abs().sum() == 0


@pytest.mark.parametrize(
    "box",
    [[140.0, 70.0, 260.0, 185.0], [141.0, 71.0, 261.0, 186.0], [11.0, 171.0, 131.0, 236.0]],
    ids=["even", "odd", "at the border"],
)
def test_crop_compositor_equals_composite_then_crop(box):
    # Odd window positions once left a partial pooling block that stretched the crop.
    image = torch.rand(3, 240, 400)
    tex = torch.rand(3, 64, 64)
    mask = sticker_mask("rp2_bars", 64)
    box = torch.tensor(box)
    full = square_crop(composite(image, tex, mask, _view()), box)
    local = composite_in_crop(image, tex, mask, _view(), box)
    assert torch.allclose(full, local, atol=5e-5)


def test_eot_is_replayable_and_differentiable():
    eot = EOT("standard")
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    a, b, c = eot(x, 7), eot(x, 7), eot(x, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(KeyError, match="unknown EOT preset"):
        EOT("stormy")


def test_nps_is_zero_for_palette_colours_and_positive_otherwise():
    palette = load_palette("printer30")
    assert palette.shape == (30, 3)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 30, (16, 16), generator=g)
    tex = palette[idx].permute(2, 0, 1)
    assert nps(tex, palette).item() == pytest.approx(0.0, abs=1e-12)
    noisy = torch.rand(3, 16, 16, generator=g)
    assert nps(noisy, palette) > 0
    assert nps(snap_to_palette(noisy, palette), palette).item() == pytest.approx(0.0, abs=1e-12)
    assert total_variation(torch.ones(3, 8, 8)) == 0 and total_variation(noisy) > 0


def test_palette_and_mask_errors(tmp_path):
    with pytest.raises(DataError, match="no palette"):
        load_palette("nonexistent")
    bad = tmp_path / "p.csv"
    bad.write_text("r,g,b\n1,2,x\n")
    with pytest.raises(DataError, match=r"p\.csv:2"):
        load_palette(bad)
    with pytest.raises(ConfigError, match="unknown sticker mask"):
        sticker_mask("smiley")
    assert sticker_mask("rp2_bars").mean() < 0.25
    # The hiding patch stays within a quarter of a stop octagon (0.828 of the face square).
    centre = sticker_mask("centre_patch")
    assert centre.mean() / (2 * (2**0.5 - 1)) <= 0.25 and centre[0, 128, 128] == 1


@pytest.mark.slow
def test_short_sign_attack_beats_the_clean_rate_after_re_rendering():
    from avrobust.attacks.sign_sticker import StickerAttack
    from avrobust.core.sensors import CameraSpec
    from avrobust.evaluation.sign_attack import Sweep, evaluate_sign_patch, run_sign_attack
    from avrobust.models.adapters import load_classifier
    from avrobust.models.weights import ASSETS

    clf = load_classifier(ASSETS / "sign_classifier.pt")
    cam = CameraSpec(320, 240, math.radians(45), noise_stddev=0.0)
    sweep = Sweep(distances=(8.0, 14.0), angles=(0.0,), weathers=("ClearNoon",), laterals=(0.0,))
    patch = run_sign_attack(
        "urban_stop",
        "stop_sign",
        StickerAttack(clf, "stop", None, steps=20, batch=2, eot="light", eot_draws=1),
        sticker_mask("poster"),
        sweep,
        cam,
    )
    ev = evaluate_sign_patch(patch, clf, "urban_stop", "stop_sign", "stop", None, sweep, cam)
    # Clean, the classifier reads every view as a stop sign (success 0 by construction).
    assert ev.clean_correct == 2
    assert ev.rendered_success > 0.0 and ev.compositor_success > 0.0
    assert patch.provenance["attack"] == "sign-sticker" and patch.palette is not None


def test_pgd_respects_its_budget_and_fools_a_linear_model():
    from avrobust.attacks.digital import PGD, fgsm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x = torch.rand(16, 3, 8, 8)
    y = model(x).argmax(1)
    for norm, eps in (("linf", 8 / 255), ("l2", 0.5)):
        adv = PGD(model, eps=eps, alpha=eps / 4, steps=20, norm=norm)(
            x, y, torch.Generator().manual_seed(1)
        )
        d = (adv - x).flatten(1)
        size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
        assert (size <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
        assert (model(adv).argmax(1) != y).float().mean() > (0.0 if norm == "l2" else 0.3)
    one = fgsm(model, eps=8 / 255)(x, y)
    assert (one - x).abs().max() <= 8 / 255 + 1e-6
    target = torch.zeros_like(y)
    hit = PGD(model, eps=0.3, alpha=0.05, steps=30, targeted=True)(x, target)
    assert (model(hit).argmax(1) == 0).float().mean() > (model(x).argmax(1) == 0).float().mean()
    with pytest.raises(ConfigError, match="norm"):
        PGD(model, norm="l1")


def test_the_pipeline_objective_keeps_the_sign_detected():
    """Against the detector-plus-classifier stack a misread only counts while the detector
    still finds the sign: a grey poster fools the classifier but hides the sign, so it is no
    success; the detector's term adds to the loss and its gradient reaches the texture."""
    from avrobust.attacks.eot import EOT
    from avrobust.attacks.sign_sticker import StickerAttack, sign_views
    from avrobust.core.sensors import CameraSpec
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.models.adapters import load_classifier
    from avrobust.models.camera_detector import load_camera_detector
    from avrobust.models.weights import ASSETS

    clf = load_classifier(ASSETS / "sign_classifier.pt")
    det = load_camera_detector(ASSETS / "camera_detector.pt")
    sweep = Sweep(distances=(8.0, 12.0), angles=(0.0,), weathers=("ClearNoon",), laterals=(0.0,))
    frames = render_sweep("urban_stop", sweep, CameraSpec(640, 480, math.radians(90)))
    views = sign_views(frames.frames, "stop_sign")
    base = frames.surface_textures["stop_sign"]
    mask = torch.ones(1, *base.shape[1:])
    alone = StickerAttack(clf, "stop", None, eot="none", eot_draws=1)
    both = StickerAttack(clf, "stop", None, eot="none", eot_draws=1, detector=det)
    eot = EOT("none")
    tex = base.clone().requires_grad_(True)
    loss_alone, _ = alone.objective(views, tex, mask, eot, 0)
    loss_both, met = both.objective(views, tex, mask, eot, 0)
    assert loss_both > loss_alone and not met.any()  # the clean sign: detected, read as stop
    (loss_both - loss_alone).backward()
    assert tex.grad is not None and tex.grad.abs().sum() > 0
    grey = torch.full_like(base, 0.5)
    _, met_alone = alone.objective(views, grey, mask, eot, 0)
    _, met_both = both.objective(views, grey, mask, eot, 0)
    assert met_alone.all() and not met_both.any()
    with pytest.raises(ConfigError, match="traffic_sign"):
        from avrobust.models.camera_detector import CameraDetector

        StickerAttack(clf, "stop", detector=CameraDetector(classes=("car",)))


def test_frozen_holds_once_when_nested_and_gives_the_model_back_at_the_outer_end():
    from avrobust.attacks.frozen import frozen

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
    model[0].weight.requires_grad_(False)  # the caller's own choice, kept
    with frozen(model):
        with frozen(model, model[1]):
            assert not model.training and not any(p.requires_grad for p in model.parameters())
        # The inner block (same model, one of its parts) leaves it held for the outer one.
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def test_autoattack_stays_in_budget_and_breaks_at_least_what_pgd_breaks():
    """RobustBench's robust accuracy through torchattacks' standard AutoAttack: within the
    budget, in [0, 1], and no higher than PGD's on the same inputs (it runs APGD-CE first,
    then three more attacks on what is left)."""
    from avrobust.attacks.digital import PGD, AutoAttack

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    )
    x = torch.rand(24, 3, 8, 8)
    y = model(x).argmax(1)
    eps = 2 / 255
    aa = AutoAttack(model, eps=eps, n_classes=4, seed=0)(x, y)
    assert (aa - x).abs().max() <= eps + 1e-5 and aa.min() >= 0 and aa.max() <= 1
    pgd = PGD(model, eps=eps, alpha=eps / 4, steps=20)(x, y, torch.Generator().manual_seed(1))
    with torch.no_grad():
        robust_aa = (model(aa).argmax(1) == y).float().mean()
        robust_pgd = (model(pgd).argmax(1) == y).float().mean()
    assert robust_aa <= robust_pgd
    assert robust_aa < 1.0
    assert model.training  # the model is given back in the mode it came in
    with pytest.raises(ConfigError, match="eps"):
        AutoAttack(model, eps=0.0)


def test_the_adaptive_objective_keeps_the_monitor_under_its_threshold():
    """Against a runtime monitor a misread only counts where the monitor passes the crop: a
    grey poster fools the classifier but a monitor that doubts it (MSP at a strict threshold)
    makes it no success; the monitor's hinge adds to the loss, its gradient reaches the
    texture, and it is zero where the monitor is content."""
    from avrobust.attacks.eot import EOT
    from avrobust.attacks.sign_sticker import StickerAttack, sign_views
    from avrobust.core.sensors import CameraSpec
    from avrobust.defences.monitors.classifier import MaxSoftmax
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.models.adapters import load_classifier
    from avrobust.models.weights import ASSETS

    clf = load_classifier(ASSETS / "sign_classifier.pt")
    sweep = Sweep(distances=(8.0, 12.0), angles=(0.0,), weathers=("ClearNoon",), laterals=(0.0,))
    frames = render_sweep("urban_stop", sweep, CameraSpec(640, 480, math.radians(90)))
    views = sign_views(frames.frames, "stop_sign")
    mask = torch.ones(1, *frames.surface_textures["stop_sign"].shape[1:])
    grey = torch.full((3, *mask.shape[1:]), 0.5, requires_grad=True)
    eot = EOT("none")

    def attack(threshold):
        return StickerAttack(clf, "stop", None, eot="none", eot_draws=1, monitor=MaxSoftmax(clf),
                             monitor_threshold=threshold, monitor_scale=0.05)  # fmt: skip

    alone = StickerAttack(clf, "stop", None, eot="none", eot_draws=1)
    loss_alone, met_alone = alone.objective(views, grey, mask, eot, 0)
    loss_strict, met_strict = attack(-0.999).objective(views, grey, mask, eot, 0)
    assert met_alone.all() and not met_strict.any()
    assert loss_strict > loss_alone
    (loss_strict - loss_alone).backward()
    assert grey.grad is not None and grey.grad.abs().sum() > 0
    loss_lax, met_lax = attack(0.0).objective(views, grey.detach(), mask, eot, 0)
    assert met_lax.all() and float(loss_lax.detach()) == pytest.approx(float(loss_alone.detach()))
