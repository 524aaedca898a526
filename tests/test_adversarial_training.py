"""Adversarial training of the detectors (the LiDAR side's attacks and fine-tuning are in
test_lidar_adversarial_training.py): patches stay inside their object, optimised patches are
worse for the model than random ones, a short patch fine-tuning makes the camera detector more
robust to patches than the same fine-tuning without them, the training commands check their
settings, and the shipped trained detectors match their cards."""

import pytest
import torch

from avrobust.core.errors import ConfigError
from avrobust.models.weights import ASSETS
from avrobust.training.patch_adversarial import (
    PatchTrainConfig,
    apply_patches,
    patch_masks,
    random_content,
)

CLASSES = ("car", "pedestrian", "traffic_sign")


@pytest.fixture
def tiny(tiny_lidar_set):
    return tiny_lidar_set


def test_each_patch_lies_inside_one_chosen_object_at_the_asked_share():
    boxes = [
        torch.tensor([[10.0, 20.0, 70.0, 80.0], [100.0, 100.0, 104.0, 104.0]]),
        torch.tensor([[0.0, 0.0, 50.0, 40.0]]),  # a pedestrian: never patched
        torch.zeros(0, 4),
    ]
    labels = [torch.tensor([2, 0]), torch.tensor([1]), torch.zeros(0, dtype=torch.long)]
    cfg = PatchTrainConfig(share=1.0, area=(0.2, 0.2))
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        mask, chosen = patch_masks(boxes, labels, CLASSES, (128, 160), cfg, gen)
        assert chosen.tolist() == [0]  # the 4-pixel car is below min_side
        m = mask[0, 0]
        rows, cols = m.nonzero(as_tuple=True)
        assert 20 <= int(rows.min()) and int(rows.max()) < 80
        assert 10 <= int(cols.min()) and int(cols.max()) < 70
        # A rectangle covering a fifth of the 60x60 sign box, to the rounding of its sides.
        assert float(m.sum()) == pytest.approx(0.2 * 3600, rel=0.15)
        assert int(m.sum()) == (int(rows.max()) - int(rows.min()) + 1) * (
            int(cols.max()) - int(cols.min()) + 1
        )
        assert mask[1:].sum() == 0
    none, chosen = patch_masks(
        boxes, labels, CLASSES, (128, 160), PatchTrainConfig(share=0.0), torch.Generator()
    )
    assert len(chosen) == 0 and none.sum() == 0


def test_patch_settings_are_checked():
    with pytest.raises(ConfigError, match="share"):
        PatchTrainConfig(share=1.5)
    with pytest.raises(ConfigError, match="area"):
        PatchTrainConfig(area=(0.3, 0.1))
    with pytest.raises(ConfigError, match="bicycle"):
        patch_masks(
            [torch.zeros(0, 4)],
            [torch.zeros(0, dtype=torch.long)],
            CLASSES,
            (32, 32),
            PatchTrainConfig(classes=("bicycle",)),
            torch.Generator(),
        )


def test_patches_change_only_their_pixels_and_optimised_ones_hurt_more():
    """The objective here is a stand-in for the detection loss (the mean of the red channel
    under the mask): ascent must raise it above the random start."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=gen)
    mask = torch.zeros(4, 1, 32, 32)
    mask[0, :, 4:12, 6:20] = 1
    mask[2, :, 10:30, 10:30] = 1
    chosen = torch.tensor([0, 2])

    def loss_of(images, idx):
        m = mask[idx]
        return (images[:, 0:1] * m).sum() / m.sum()

    cfg = PatchTrainConfig(optimised=1.0, steps=3, step_size=0.5)
    out, n = apply_patches(x, mask, chosen, loss_of, cfg, torch.Generator().manual_seed(1))
    assert n == 2
    outside = (1 - mask).expand_as(x).bool()
    assert torch.equal(out[outside], x[outside])
    assert float(loss_of(out[chosen], [0, 2])) == pytest.approx(1.0)
    rand, n = apply_patches(
        x, mask, chosen, loss_of, PatchTrainConfig(optimised=0.0), torch.Generator()
    )
    assert n == 0 and float(loss_of(rand[chosen], [0, 2])) < 0.9
    blocks = random_content((8, 3, 16, 16), torch.Generator().manual_seed(2))
    assert blocks.min() >= 0 and blocks.max() <= 1


def _patched_loss(model, data, seed: int = 7) -> float:
    """Detection loss on the set's crops under optimised patches on every sign and car."""
    from avrobust.models.detection_loss import detection_loss
    from avrobust.training.detector import DetectorTrainConfig, _batch, _patched

    adv = PatchTrainConfig(share=1.0, optimised=1.0, steps=4, area=(0.2, 0.3))
    cfg = DetectorTrainConfig("-", "-", crop=(128, 160), adversarial=adv)
    gen = torch.Generator().manual_seed(seed)
    x, targets, boxes, labels = _batch(data, list(range(len(data))), cfg, gen)
    x, n = _patched(model, x, targets, boxes, labels, cfg, gen)
    assert n > 0
    model.eval()
    with torch.no_grad():
        return float(detection_loss(model(x), targets)[0])


@pytest.mark.slow
def test_patch_adversarial_finetuning_makes_the_detector_more_robust_to_patches(tmp_path, tiny):
    from avrobust.models.camera_detector import load_camera_detector
    from avrobust.models.detection_data import load_detection_set
    from avrobust.training.detector import DetectorTrainConfig, train_camera_detector

    data = load_detection_set(tiny)
    runs = {}
    for name, adv in (("plain", None), ("adv", PatchTrainConfig(share=1.0, optimised=1.0))):
        cfg = DetectorTrainConfig(
            str(tiny),
            str(tmp_path / name),
            epochs=16,
            batch=8,
            crop=(128, 160),
            lr=5e-4,
            device="cpu",
            init=str(ASSETS / "camera_detector.pt"),
            adversarial=adv,
        )
        metrics = train_camera_detector(cfg)
        runs[name] = load_camera_detector(tmp_path / name / "camera_detector.pt")
        if adv is not None:
            assert sum(h["patched_crops"] for h in metrics["history"]) > 12
            assert metrics["config"]["adversarial"]["share"] == 1.0
    # Averaged over patch draws: one draw on a tiny set made the margin depend on the draw.
    seeds = range(7, 13)
    adv = sum(_patched_loss(runs["adv"], data, s) for s in seeds) / len(seeds)
    plain = sum(_patched_loss(runs["plain"], data, s) for s in seeds) / len(seeds)
    print(f"loss under optimised patches: adversarially fine-tuned {adv:.3f}, plainly {plain:.3f}")
    assert adv < 0.85 * plain


@pytest.mark.slow
def test_adversarial_training_commands_fine_tune_and_check_their_settings(tmp_path, tiny):
    from typer.testing import CliRunner

    from avrobust.cli import app

    base = ["train", "camera-detector", "--data", str(tiny), "--out", str(tmp_path / "cam")]
    bad = CliRunner().invoke(app, [*base, "--adversarial", "--patch-area", "0.3"])
    assert "LOW,HIGH" in str(bad.exception)
    bad = CliRunner().invoke(app, [*base, "--adversarial", "--patch-share", "2"])
    assert "share" in str(bad.exception)
    lidar = ["train", "lidar-detector", "--data", str(tiny), "--out", str(tmp_path / "lidar")]
    bad = CliRunner().invoke(app, [*lidar, "--adversarial", "--spoof-share", "0.8"])
    assert "at most 1" in str(bad.exception)
    init = ["--init", str(ASSETS / "lidar_detector.pt"), "--epochs", "1", "--device", "cpu"]
    result = CliRunner().invoke(
        app, [*lidar, *init, "--adversarial", "--spoof-share", "1", "--remove-share", "0"]
    )
    assert result.exit_code == 0, result.output
    import json

    metrics = json.loads((tmp_path / "lidar" / "metrics.json").read_text())
    assert metrics["config"]["adversarial"]["spoof_share"] == 1.0
    assert metrics["config"]["init"].endswith("lidar_detector.pt")
    assert metrics["history"][0]["attacked_sweeps"].get("spoof", 0) > 0


@pytest.mark.slow
def test_shipped_adversarially_trained_detectors_match_their_cards_and_resist_transfer():
    """The shipped trained detectors load, their cards name their bytes, and a phantom car made
    white-box against the clean LiDAR detector (which then reports it) is not reported by the
    trained one."""
    import hashlib

    from avrobust.attacks.lidar.objective import FrameObjective, found_near
    from avrobust.attacks.lidar.spoof import spoof
    from avrobust.attacks.lidar.sweep import LidarSweep
    from avrobust.attacks.lidar.threat import LidarThreat, angle_window
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.models.camera_detector import load_camera_detector
    from avrobust.models.lidar_detector import load_lidar_model
    from avrobust.scenario.library import load_scenario

    for stem in ("camera_detector_adv", "lidar_detector_adv"):
        sha = hashlib.sha256((ASSETS / f"{stem}.pt").read_bytes()).hexdigest()
        assert f"sha256 `{sha[:16]}" in (ASSETS / f"{stem}.md").read_text()
    assert load_camera_detector(ASSETS / "camera_detector_adv.pt").classes == CLASSES
    clean = load_lidar_model(ASSETS / "lidar_detector.pt")
    trained = load_lidar_model(ASSETS / "lidar_detector_adv.pt")
    sc = load_scenario("lead_vehicle")
    spec = sc.sensors.lidar.to_spec()
    grid = Sweep((30.0,), (0.0,), ("ClearNoon",), (0.0,))
    frame = render_sweep("lead_vehicle", grid, sc.sensors.camera.to_spec(), lidar=spec).frames[0]
    sweep = LidarSweep.from_frame(frame, spec)
    x = 7.5 + 2.25  # the phantom's rear 7.5 m ahead
    threat = LidarThreat(points=60, azimuth=angle_window(x, 0.0, 1.5, 3.0))
    made = spoof(FrameObjective(clean, frame), sweep, spec, threat, x, steps=30)
    for model, reported in ((clean, True), (trained, False)):
        obj = FrameObjective(model, frame)
        assert found_near(obj.detect(made.sweep.points), 0, x, 0.0, 2.0) is reported
    # Both still find the lead car 30 m ahead.
    for model in (clean, trained):
        assert found_near(FrameObjective(model, frame).detect(sweep.points), 0, 32.0, 0.0, 3.0)
