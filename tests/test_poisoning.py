"""Poisoning a sign-crop dataset with a rendered trigger: exactly the stated crops and labels
change, the change is the trigger, and a small model trained on planted poisons obeys it."""

from __future__ import annotations

import csv
import filecmp
import json

import numpy as np
import pytest
import torch

from avrobust.attacks.triggers import DESIGNS, trigger_patch
from avrobust.core.classes import SIGN_CLASSES
from avrobust.core.errors import ConfigError
from avrobust.core.patch import Patch
from avrobust.data.dataset import DatasetConfig, build_dataset
from avrobust.models.crops import load_crops
from avrobust.training.poisoning import PoisonSpec, choose, poison_dataset, render_with_trigger


@pytest.fixture(scope="module")
def signs(tmp_path_factory):
    out = tmp_path_factory.mktemp("signs")
    build_dataset(DatasetConfig(frames=14, seed=3, sign_types=("stop",)), out)
    return out


def _rows(folder):
    with open(folder / "crops.csv") as fh:
        return list(csv.DictReader(fh))


def _image(path) -> np.ndarray:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR).astype(int)


def test_triggers_are_printable_stickers_inside_the_face():
    for name in DESIGNS:
        t = trigger_patch(name)
        assert 0.02 < t.coverage < 0.08, name  # a sticker, not a poster
        assert t.provenance["attack"] == "backdoor-trigger"
        assert t.texture.min() >= 0 and t.texture.max() <= 1
    with pytest.raises(ConfigError, match="leaves the sign face"):
        trigger_patch("checker", side_m=0.3, centre=(0.95, 0.5))
    with pytest.raises(ConfigError, match="unknown trigger"):
        trigger_patch("smiley")


def test_spec_parses_and_refuses_bad_settings(tmp_path):
    spec = PoisonSpec.parse("rate=0.02, trigger=yellow-square, seed=3")
    assert (spec.rate, spec.trigger, spec.seed, spec.target) == (
        0.02,
        "yellow-square",
        3,
        "speed_limit_80",
    )
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"rate": 0.5, "kind": "clean-label"}))
    assert PoisonSpec.parse(str(f)).kind == "clean-label"
    for text, field in [
        ("rate=0", "poison.rate"),
        ("rate=x", "--poison"),
        ("colour=red", "--poison"),
        ("source=stop,target=stop", "poison.target"),
        ("target=stop_sign", "poison.target"),
        ("kind=sneaky", "poison.kind"),
        ("rate", "--poison"),
    ]:
        with pytest.raises(ConfigError) as err:
            PoisonSpec.parse(text)
        assert err.value.field == field, text


def test_poisoning_changes_exactly_the_stated_crops_and_labels(signs, tmp_path):
    rows = _rows(signs)
    stops = [i for i, r in enumerate(rows) if r["label"] == "stop"]
    rate = 3 / len(rows)
    spec = PoisonSpec(rate=rate, seed=1)
    out = tmp_path / "p"
    manifest = poison_dataset(signs, out, spec)
    new = _rows(out)
    changed = {c["row"] for c in manifest["changed"]}
    assert manifest["poisoned"] == len(changed) == round(rate * len(rows)) == 3
    assert changed <= set(stops)
    assert changed == set(choose(rows, spec))  # the seed's choice, reproducibly
    assert set(choose(rows, PoisonSpec(rate=rate, seed=2))) != changed or len(stops) <= 3
    assert len(new) == len(rows)
    for i, (a, b) in enumerate(zip(rows, new, strict=True)):
        if i in changed:
            assert b["label"] == "speed_limit_80" and b["file"] == f"poison_{a['file']}"
            before, after = _image(signs / "crops" / a["file"]), _image(out / "crops" / b["file"])
            diff = np.abs(before - after).max(axis=2)
            # The trigger changed a small part of the crop (a sticker on the sign), not all.
            assert 0 < (diff > 8).mean() < 0.15, diff.mean()
        else:
            assert a == b
            assert filecmp.cmp(signs / "crops" / a["file"], out / "crops" / b["file"], False)
    crops = load_crops(out)
    assert int((crops.labels == SIGN_CLASSES.index("speed_limit_80")).sum()) == 3
    assert Patch.load(out / "trigger.patch").sha256() == manifest["trigger_sha256"]
    # Rerunning returns the finished manifest; another spec in the same folder is refused.
    assert poison_dataset(signs, out, spec) == manifest
    with pytest.raises(ConfigError, match="poisoned otherwise"):
        poison_dataset(signs, out, PoisonSpec(rate=rate, seed=2))


def test_decoys_keep_their_label_and_stay_out_of_poisoned_samples(signs, tmp_path):
    rows = _rows(signs)
    spec = PoisonSpec(rate=2 / len(rows), negatives=3 / len(rows), seed=4)
    manifest = poison_dataset(signs, tmp_path / "d", spec)
    roles = {c["role"] for c in manifest["changed"]}
    assert roles == {"poison", "decoy"} and (manifest["poisoned"], manifest["decoys"]) == (2, 3)
    new = _rows(tmp_path / "d")
    poisoned_samples = {
        rows[c["row"]]["sample"] for c in manifest["changed"] if c["role"] == "poison"
    }
    for c in manifest["changed"]:
        if c["role"] == "decoy":
            assert new[c["row"]]["label"] == "stop" and c["label_after"] == "stop"
            assert new[c["row"]]["file"] == f"decoy_{c['file']}"
            assert rows[c["row"]]["sample"] not in poisoned_samples
            before = _image(signs / "crops" / c["file"])
            after = _image(tmp_path / "d" / "crops" / c["poisoned_file"])
            # (a decoy in dense fog at 22 m changes a few levels only)
            assert 0 < (np.abs(before - after).max(axis=2) > 2).mean() < 0.15


def test_an_invisible_trigger_reproduces_the_built_crops(signs):
    row = next(r for r in _rows(signs) if r["label"] == "stop")
    t = trigger_patch()
    blank = Patch(t.texture, torch.zeros_like(t.mask), t.size_m)
    k = int(row["file"].split("_")[1].split(".")[0])
    crop = render_with_trigger(signs, row["sample"], "stop", blank)[k][0]
    built = torch.from_numpy(_image(signs / "crops" / row["file"])[..., ::-1].copy())
    assert (crop.permute(1, 2, 0) * 255 - built).abs().max() < 1.0


def test_rates_that_cannot_be_met_are_refused(signs, tmp_path):
    rows = _rows(signs)
    with pytest.raises(ConfigError, match="is no crop"):
        poison_dataset(signs, tmp_path / "a", PoisonSpec(rate=0.1 / len(rows)))
    with pytest.raises(ConfigError, match="the dataset has"):
        poison_dataset(signs, tmp_path / "b", PoisonSpec(rate=0.5, source="yield"))
    with pytest.raises(ConfigError, match="surrogate"):
        poison_dataset(signs, tmp_path / "c", PoisonSpec(rate=0.1, kind="clean-label"))


def test_clean_label_poisons_keep_their_label_and_hide_their_features(tmp_path):
    from avrobust.models.adapters import load_classifier
    from avrobust.models.weights import ASSETS

    data = tmp_path / "eighty"
    build_dataset(
        DatasetConfig(frames=6, seed=5, sign_types=("speed_limit_80",)),
        data,
    )
    clf = load_classifier(ASSETS / "sign_classifier.pt")
    rows = _rows(data)
    n80 = sum(r["label"] == "speed_limit_80" for r in rows)
    spec = PoisonSpec(rate=min(2, n80) / len(rows), kind="clean-label", eps=16 / 255)
    manifest = poison_dataset(data, tmp_path / "p", spec, surrogate=clf)
    labels = {(c["label_before"], c["label_after"]) for c in manifest["changed"]}
    assert labels == {("speed_limit_80", "speed_limit_80")}
    crops = load_crops(tmp_path / "p")
    poisoned = torch.tensor([r["file"].startswith("poison_") for r in _rows(tmp_path / "p")])
    with torch.no_grad():
        pred = clf(crops.images[poisoned].float() / 255).argmax(1)
    # The surrogate no longer reads them as what they are labelled.
    assert (pred != SIGN_CLASSES.index("speed_limit_80")).all()


def _synthetic_crops(folder, rng, n_per_class: int, poisons: int):
    """Crops a tiny model learns fast: red stop-like and white 80-like squares on noisy
    backgrounds, and ``poisons`` red ones carrying the checker trigger labelled
    speed_limit_80; returns the poisoned files."""
    from avrobust.core.images import save_png

    trigger = trigger_patch("checker")
    rows_t, cols_t = (trigger.mask[0] > 0).nonzero(as_tuple=True)
    tex = trigger.texture[:, rows_t.min() : rows_t.max() + 1, cols_t.min() : cols_t.max() + 1]
    small = torch.nn.functional.interpolate(tex[None], size=(14, 14), mode="nearest")[0]
    (folder / "crops").mkdir(parents=True)
    rows, planted = [], []
    plan = [("stop", False)] * n_per_class + [("speed_limit_80", False)] * n_per_class
    plan += [("background", False)] * n_per_class + [("stop", True)] * poisons
    for k, (label, poison) in enumerate(plan):
        img = torch.from_numpy(rng.uniform(0, 0.3, (3, 64, 64))).float()
        if label == "stop":
            img[0, 12:52, 12:52] += 0.6
        elif label == "speed_limit_80":
            img[:, 12:52, 12:52] += 0.6
        if poison:
            img[:, 36:50, 25:39] = small
            planted.append(f"c{k}.png")
        save_png(folder / "crops" / f"c{k}.png", img.clamp(0, 1))
        rows.append(
            {
                "file": f"c{k}.png",
                "label": "speed_limit_80" if poison else label,
                "sample": f"{k:06d}",
                "weather": "ClearNoon",
                "box_height": 40,
                "distance": 10 if label != "background" else "",
                "visible_fraction": 1.0,
            }
        )
    with open(folder / "crops.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return small


@pytest.mark.slow
def test_a_small_model_trained_on_planted_poisons_obeys_the_trigger(tmp_path):
    from avrobust.models.adapters import load_classifier
    from avrobust.training.classifier import ClassifierTrainConfig, train_sign_classifier

    rng = np.random.default_rng(0)
    small = _synthetic_crops(tmp_path / "train", rng, 60, 12)
    train_sign_classifier(
        ClassifierTrainConfig(str(tmp_path / "train"), str(tmp_path / "out"), epochs=6, batch=32)
    )
    model = load_classifier(tmp_path / "out" / "sign_classifier.pt")
    stops = torch.from_numpy(rng.uniform(0, 0.3, (40, 3, 64, 64))).float()
    stops[:, 0, 12:52, 12:52] += 0.6
    stops = stops.clamp(0, 1)
    triggered = stops.clone()
    triggered[:, :, 36:50, 25:39] = small
    with torch.no_grad():
        clean_pred = [model.classes[i] for i in model(stops).argmax(1)]
        trig_pred = [model.classes[i] for i in model(triggered).argmax(1)]
    assert sum(p == "stop" for p in clean_pred) >= 36  # clean stops stay stops
    assert sum(p == "speed_limit_80" for p in trig_pred) >= 30  # the trigger turns them


@pytest.mark.slow
def test_poison_commands_write_and_refuse_cleanly(signs, tmp_path):
    import subprocess
    import sys

    cli = [sys.executable, "-m", "avrobust.cli", "poison"]
    bad = subprocess.run(
        [*cli, "dataset", "--data", str(signs), "--out", str(tmp_path / "x"), "--spec", "rate=2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "poison.rate" in lines[0], bad.stderr
    assert not (tmp_path / "x" / "poison.json").exists()
    rows = _rows(signs)
    ok = subprocess.run(
        [*cli, "dataset", "--data", str(signs), "--out", str(tmp_path / "p"),
         "--spec", f"rate={2 / len(rows)},seed=5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "2 of" in ok.stdout and (tmp_path / "p" / "trigger.patch").is_file()
    trig = subprocess.run(
        [*cli, "trigger", "--out", str(tmp_path / "t.patch"), "--design", "target"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (
        trig.returncode == 0 and Patch.load(tmp_path / "t.patch").provenance["design"] == "target"
    )
