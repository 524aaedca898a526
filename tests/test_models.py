"""Camera victims: the dataset builder, the sign classifier, its training, adapters, weights."""

import filecmp
import math

import pytest
import torch
from torch import nn

from avrobust.core.classes import SIGN_CLASSES, SIGN_TYPES
from avrobust.core.errors import DataError, ModelError
from avrobust.data.dataset import DatasetConfig, build_dataset
from avrobust.models.adapters import ClassifierAdapter, InputFormat, load_classifier
from avrobust.models.crops import load_crops
from avrobust.models.sign_classifier import SignClassifier
from avrobust.models.weights import ASSETS, save_weights
from avrobust.training.classifier import (
    ClassifierTrainConfig,
    evaluate,
    train_sign_classifier,
)

SMALL = dict(width=320, height=240, fov=60.0)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    build_dataset(DatasetConfig(frames=10, seed=7, **SMALL), out)
    return out


def test_sim_and_model_share_the_sign_vocabulary():
    from avrobust.core.signs import SIGN_TYPES as SIM

    assert tuple(SIM) == SIGN_TYPES and SIGN_CLASSES[-1] == "background"


def test_dataset_build_is_reproducible_and_resumable(tmp_path, tiny_dataset):
    out = tmp_path / "again"
    build_dataset(DatasetConfig(frames=6, seed=7, **SMALL), out)
    # Extending the same dataset resumes and yields the same files as one build of ten.
    counts = build_dataset(DatasetConfig(frames=10, seed=7, **SMALL), out)
    assert counts["crops"] == len(load_crops(tiny_dataset))
    for sub in ("image_2", "label_2", "crops"):
        names = sorted(p.name for p in (tiny_dataset / sub).iterdir())
        _, mismatch, errors = filecmp.cmpfiles(tiny_dataset / sub, out / sub, names, shallow=False)
        assert not mismatch and not errors, (sub, mismatch, errors)
    other = tmp_path / "other"
    build_dataset(DatasetConfig(frames=2, seed=8, **SMALL), other)
    assert not filecmp.cmp(
        other / "image_2" / "000000.png", tiny_dataset / "image_2" / "000000.png", shallow=False
    )


def test_dataset_refuses_other_settings(tmp_path, tiny_dataset):
    from avrobust.core.errors import ConfigError

    with pytest.raises(ConfigError, match="other settings"):
        build_dataset(DatasetConfig(frames=10, seed=8, **SMALL), tiny_dataset)


def test_crops_hold_signs_and_background(tiny_dataset):
    crops = load_crops(tiny_dataset)
    assert crops.images.shape[1:] == (3, 64, 64) and crops.images.dtype == torch.uint8
    labels = {SIGN_CLASSES[i] for i in crops.labels.tolist()}
    assert "background" in labels and labels - {"background"}


def test_bad_crop_sets_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"no crops\.csv"):
        load_crops(tmp_path)
    (tmp_path / "crops.csv").write_text(
        "file,label,sample,weather,box_height,distance,"
        "visible_fraction\nx.png,giraffe,0,ClearNoon,20,5,1\n"
    )
    with pytest.raises(DataError, match=r"crops\.csv:2: label: unknown label 'giraffe'"):
        load_crops(tmp_path)


def _loss(model: nn.Module, crops) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(crops.images.float() / 255)
    return float(nn.functional.cross_entropy(logits, crops.labels))


@pytest.mark.slow
def test_a_short_training_run_lowers_the_loss(tmp_path, tiny_dataset):
    cfg = ClassifierTrainConfig(
        str(tiny_dataset), str(tmp_path / "run"), epochs=30, batch=16, lr=3e-3, device="cpu"
    )
    torch.manual_seed(0)
    before = _loss(SignClassifier(), load_crops(tiny_dataset))
    metrics = train_sign_classifier(cfg)
    trained = load_classifier(tmp_path / "run" / "sign_classifier.pt")
    after = _loss(trained.module, load_crops(tiny_dataset))
    assert after < 0.7 * before
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    # Resuming a finished run trains no further and keeps the weights.
    again = train_sign_classifier(cfg)
    assert len(again["history"]) == len(metrics["history"])


@pytest.mark.slow
def test_shipped_weights_load_and_read_a_fresh_validation_set(tmp_path):
    path = ASSETS / "sign_classifier.pt"
    assert path.is_file() and path.stat().st_size < 25e6
    model = load_classifier(path)
    assert model.classes == SIGN_CLASSES
    out = tmp_path / "fresh"
    build_dataset(DatasetConfig(frames=30, seed=31337), out)  # a seed nobody trained on
    metrics = evaluate(model.module, load_crops(out))
    # Stated in the model card's terms: signs at least 20 px tall.
    assert metrics["count_signs_ge_20px"] >= 10
    assert metrics["top1_signs_ge_20px"] >= 0.9


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def test_torchscript_classifier_loads_through_the_adapter(tmp_path):
    torch.manual_seed(0)
    net = _Tiny()
    path = tmp_path / "tiny.ts"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(net).save(str(path))
    fmt = InputFormat(size=(32, 32), value_range=(0, 255), channel_order="bgr")
    adapter = load_classifier(path, classes=("a", "b"), fmt=fmt)
    x = torch.rand(4, 3, 50, 40, requires_grad=True)
    logits = adapter(x)
    # The adapter resized, scaled and reordered exactly as stated.
    manual = net(
        torch.nn.functional.interpolate(
            x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True
        )
        .mul(255)
        .flip(1)
    )
    assert torch.allclose(logits, manual, atol=1e-4)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    names, conf = adapter.predict(x.detach())
    assert set(names) <= {"a", "b"} and conf.shape == (4,)


def test_module_and_import_path_sources():
    adapter = load_classifier(_Tiny(), classes=("a", "b"))
    assert isinstance(adapter, ClassifierAdapter)
    adapter = load_classifier("avrobust.models.sign_classifier:SignClassifier")
    assert adapter.classes == SIGN_CLASSES


def test_wrong_model_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        load_classifier(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match=r"junk\.pt: not a readable weights file"):
        load_classifier(junk)
    other = tmp_path / "other.pt"
    save_weights(other, nn.Linear(2, 2), "lidar-detector", {})
    with pytest.raises(ModelError, match="holds a 'lidar-detector' model"):
        load_classifier(other)
    with pytest.raises(ModelError, match="returned"):
        load_classifier(_Tiny(), classes=("a", "b", "c"))(torch.rand(1, 3, 8, 8))
    with pytest.raises(ModelError, match="cannot import"):
        load_classifier("no.such.module:thing")


def test_crop_distance_bands():
    from avrobust.core.classes import distance_band

    assert [distance_band(d) for d in (5, 15, 45, 80, math.nan)] == [
        "<10 m",
        "<20 m",
        "<60 m",
        ">=60 m",
        "n/a",
    ]


def test_torchvision_detector_loads_as_a_user_model():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    from avrobust.core.detections import Detections
    from avrobust.models.detector_adapter import load_detector

    torch.manual_seed(0)
    net = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=4)
    classes = ("__background__", "car", "pedestrian", "traffic_sign")
    det = load_detector(net, classes, score_threshold=0.0)
    with torch.no_grad():
        out = det(torch.rand(2, 3, 120, 160))
    assert isinstance(out, Detections) and out.kind == "2d" and out.batch_size == 2
    assert out.class_names == classes
    assert (out.boxes[:, 2] >= out.boxes[:, 0]).all()
    with pytest.raises(ModelError, match="only 2 class names"):
        load_detector(net, ("__background__", "car"), 0.0)(torch.rand(1, 3, 120, 160))


def test_detector_loader_errors(tmp_path):
    from avrobust.models.detector_adapter import load_detector

    with pytest.raises(ModelError, match="no such model file"):
        load_detector(tmp_path / "none.ts", ("a",))
    junk = tmp_path / "junk.ts"
    junk.write_bytes(b"not torchscript")
    with pytest.raises(ModelError, match="neither a TorchScript archive nor avrobust weights"):
        load_detector(junk, ("a",))


def test_dataset_from_user_scenarios_varies_them_reproducibly(tmp_path):
    import json

    from avrobust.core.errors import AvrobustError

    cfg = DatasetConfig(frames=2, seed=5, scenarios=("urban_stop", "lead_vehicle"), **SMALL)
    build_dataset(cfg, tmp_path / "a")
    build_dataset(cfg, tmp_path / "b")
    for sub in ("image_2", "label_2"):
        names = sorted(p.name for p in (tmp_path / "a" / sub).iterdir())
        _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a" / sub, tmp_path / "b" / sub, names)
        assert not mismatch and not errors
    metas = [json.loads((tmp_path / "a" / "meta" / f"{i:06d}.json").read_text()) for i in range(2)]
    assert [m["conditions"]["base"] for m in metas] == ["urban_stop", "lead_vehicle"]
    scene = metas[0]["scenario"]
    # The user's scene, varied: its actors, one frame, the dataset's camera.
    assert {v["name"] for v in scene["vehicles"]} == {"oncoming", "parked_1"}
    assert scene["episode"]["frames"] == 1 and scene["sensors"]["camera"]["width"] == 320
    with pytest.raises(AvrobustError, match="no_such_scenario"):
        build_dataset(DatasetConfig(frames=1, scenarios=("no_such_scenario",)), tmp_path / "c")


@pytest.mark.slow
def test_adversarial_training_raises_robust_accuracy(tmp_path, tiny_dataset):
    """PGD fine-tuning of a tiny model on a tiny set: robust top-1 at L-inf 8/255 goes up."""
    from avrobust.training.classifier import robust_accuracy

    crops = load_crops(tiny_dataset)
    base = ClassifierTrainConfig(
        str(tiny_dataset), str(tmp_path / "clean"), epochs=30, batch=16, lr=3e-3, device="cpu"
    )
    train_sign_classifier(base)
    clean = load_classifier(tmp_path / "clean" / "sign_classifier.pt").module
    before = robust_accuracy(clean, crops, 8 / 255, steps=10)
    adv = ClassifierTrainConfig(
        str(tiny_dataset),
        str(tmp_path / "adv"),
        epochs=20,
        batch=16,
        lr=1e-3,
        device="cpu",
        adversarial=True,
        pgd_steps=3,
        adv_fraction=1.0,
        init=str(tmp_path / "clean" / "sign_classifier.pt"),
    )
    metrics = train_sign_classifier(adv)
    hardened = load_classifier(tmp_path / "adv" / "sign_classifier.pt").module
    after = robust_accuracy(hardened, crops, 8 / 255, steps=10)
    assert after > before + 0.2, (before, after)
    assert metrics["config"]["adversarial"] and metrics["config"]["eps"] == pytest.approx(8 / 255)


@pytest.mark.parametrize("total", [1, 10, 20, 37])
def test_the_one_cycle_schedule_takes_any_number_of_steps(total):
    """torch's schedule divides by zero at 10 steps with a 0.1 warm-up (a short fine-tuning)."""
    from avrobust.training.checkpoint import one_cycle

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = one_cycle(opt, 1e-3, total, 0.1)
    lrs = []
    for _ in range(total):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) <= 1e-3 + 1e-12
    assert total < 5 or lrs[-1] < 1e-4  # annealed by the end
