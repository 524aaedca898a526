"""``avrobust attack evaluate`` (a saved patch on a held-out sweep, or through a campaign) and
``avrobust attack pgd`` (digital baselines on a dataset's sign crops), as a user runs them."""

import csv
import json
import math

import cv2
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from avrobust.cli import app
from avrobust.core.errors import DataError
from avrobust.core.patch import Patch
from avrobust.core.sensors import CameraSpec
from avrobust.data.crops import square_crop
from avrobust.evaluation.patch_file import patch_kind
from avrobust.evaluation.sign_attack import sign_views
from avrobust.evaluation.viewpoints import Sweep, render_sweep

runner = CliRunner()


def _grey_hiding_patch(path, victim=None):
    """A plain grey poster over the whole stop face: the detector loses the sign."""
    Patch(
        torch.full((3, 64, 64), 0.45),
        torch.ones(1, 64, 64),
        (0.9, 0.9),
        "grey",
        provenance={
            "attack": "detector-patch-hide",
            "goal": "hide",
            "category": "traffic_sign",
            "scenario": "urban_stop",
            "surface": "stop_sign",
            "victim": victim or {},
        },
    ).save(path)


def test_evaluate_rerenders_a_saved_patch_and_reports_recall(tmp_path):
    _grey_hiding_patch(tmp_path / "grey.patch")
    out = tmp_path / "ev.json"
    result = runner.invoke(
        app,
        [
            "attack", "evaluate", str(tmp_path / "grey.patch"), "--distances", "9",
            "--angles", "0", "--weathers", "ClearNoon", "--laterals", "0", "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ev = json.loads(out.read_text())
    assert ev["kind"] == "detector" and ev["relation"] == "unknown"
    assert ev["seen"] == 1 and ev["clean_recall"] == 1.0
    # Counted on the one view the clean detector gets right: the grey face hides the sign.
    assert ev["clean_correct"] == 1 and ev["attacked_recall"] == 1.0 - ev["rendered_success"]
    assert ev["victim"]["detector"]["file"] == "camera_detector.pt"
    assert "recall of the object" in result.output
    # Beside it, its controls on the same view; a flat patch is its own mean-colour control.
    assert set(ev["controls"]) == {"grey", "mean", "noise"}
    assert ev["controls"]["mean"]["k"] == ev["rendered"]["k"]
    assert ev["controls"]["mean"]["n"] == ev["rendered"]["n"] == 1
    assert ev["effect"]["distinguishable"] is False
    assert "not distinguishable from its control" in " ".join(result.output.split())


def test_evaluate_takes_chosen_controls_and_refuses_a_control_of_another_mask(tmp_path):
    _grey_hiding_patch(tmp_path / "grey.patch")
    Patch(
        torch.full((3, 64, 64), 0.2), torch.zeros(1, 64, 64), (0.9, 0.9), provenance={"goal": "x"}
    ).save(tmp_path / "other.patch")
    view = ["--distances", "9", "--angles", "0", "--weathers", "ClearNoon", "--laterals", "0"]
    out = tmp_path / "ev.json"
    args = ["attack", "evaluate", str(tmp_path / "grey.patch"), *view]
    result = runner.invoke(app, [*args, "--controls", "grey", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())["controls"]) == ["grey"]
    result = runner.invoke(app, [*args, "--controls", "none", "--json", str(out)])
    assert result.exit_code == 0 and json.loads(out.read_text())["effect"] is None
    result = runner.invoke(app, [*args, "--control-patch", str(tmp_path / "other.patch")])
    assert result.exit_code != 0 and "other.patch: mask" in str(result.exception)
    result = runner.invoke(app, [*args, "--controls", "grey,pink"])
    assert result.exit_code != 0 and "pink" in str(result.exception)


def test_evaluate_refuses_patches_it_cannot_place(tmp_path):
    p = Patch(torch.zeros(3, 8, 8), torch.ones(1, 8, 8), (1.0, 1.0), provenance={"attack": "x"})
    with pytest.raises(DataError, match=r"provenance\.attack"):
        patch_kind(p, tmp_path / "x.patch")
    p.save(tmp_path / "x.patch")
    result = runner.invoke(app, ["attack", "evaluate", str(tmp_path / "x.patch")])
    assert result.exit_code != 0
    result = runner.invoke(
        app, ["attack", "evaluate", str(tmp_path / "x.patch"), "--campaign", "c.yaml"]
    )
    assert result.exit_code != 0 and "--out" in str(result.exception)
    shipped = "assets/patches/stop_to_80.patch"
    result = runner.invoke(app, ["attack", "evaluate", shipped, "--stack", "eyes"])
    assert result.exit_code != 0 and "classifier, pipeline" in str(result.exception)


def test_evaluate_through_a_campaign_replaces_its_attacks(tmp_path):
    from avrobust.campaign.store import ResultsStore
    from avrobust.scenario.campaign import Campaign

    _grey_hiding_patch(tmp_path / "grey.patch")
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        "name: tiny\nscenarios: [urban_stop]\nsweep: {distance: [10]}\n"
        "models: [{name: camera-detector}]\nepisode: {frames: 2, rate: 10}\n"
        "sensors: {camera: {width: 320, height: 240, fov: 90}, lidar: null}\n"
    )
    result = runner.invoke(
        app,
        ["attack", "evaluate", str(tmp_path / "grey.patch"), "--campaign", str(campaign),
         "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model verdicts by attack" in result.output
    with ResultsStore(tmp_path / "run", create=False) as store:
        names = sorted(
            (r[0], r[1] or "")
            for r in store.query(
                "SELECT json_extract(attack, '$.name'), json_extract(attack, '$.control') FROM jobs"
            )
        )
        (text,) = store.query("SELECT text FROM campaigns ORDER BY registered DESC")[0]
    # The patch, and beside it its standard controls on the same drive-bys.
    assert names == [("none", ""), ("patch", ""), ("patch", "grey"), ("patch", "mean"),
                     ("patch", "noise")]  # fmt: skip
    # The stored campaign is the one that ran, and loads as a campaign.
    assert "grey.patch" in text and "replaced by avrobust attack evaluate" in text
    Campaign.model_validate(yaml.safe_load(text))


def _sign_crops(folder):
    """A dataset folder holding the stop sign's crops from a few rendered views, and one
    background crop."""
    sweep = Sweep(
        distances=(8.0, 12.0), angles=(0.0, 15.0), weathers=("ClearNoon",), laterals=(0.0,)
    )
    frames = render_sweep("urban_stop", sweep, CameraSpec(640, 480, math.radians(90))).frames
    (folder / "crops").mkdir(parents=True)
    rows = []
    crops = [square_crop(v.frame.image, v.box) for v in sign_views(frames, "stop_sign")]
    crops.append(frames[0].image[:, :64, :64])  # sky: background
    for i, c in enumerate(crops):
        name = f"{i}.png"
        a = (c.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / "crops" / name), cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
        label = "stop" if i < len(crops) - 1 else "background"
        rows.append({"file": name, "label": label, "sample": i, "weather": "ClearNoon",
                     "box_height": 40, "distance": 10 if label == "stop" else "nan",
                     "visible_fraction": 1.0})  # fmt: skip
    with open(folder / "crops.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return len(crops) - 1


def test_pgd_on_sign_crops_fools_the_shipped_classifier(tmp_path):
    n = _sign_crops(tmp_path / "data")
    out, sheet = tmp_path / "pgd.json", tmp_path / "examples.png"
    args = ["attack", "pgd", "--data", str(tmp_path / "data"), "--steps", "10"]
    result = runner.invoke(app, [*args, "--json", str(out), "--examples", str(sheet)])
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    assert r["crops"] == n  # the background crop is left out
    assert r["clean_accuracy"] == 1.0 and r["success"] >= 0.5
    assert r["adversarial_accuracy"] <= 0.5 and r["mean_linf"] <= 8 / 255 + 1e-6
    assert cv2.imread(str(sheet)) is not None
    # No budget, no success; a targeted attack needs a known class.
    result = runner.invoke(app, [*args, "--eps", "0", "--json", str(out)])
    assert result.exit_code == 0 and json.loads(out.read_text())["success"] == 0.0
    result = runner.invoke(app, [*args, "--target", "speed_limit_99"])
    assert result.exit_code != 0 and "speed_limit_99" in str(result.exception)
    result = runner.invoke(app, [*args, "--eps", "8/0"])
    assert result.exit_code != 0 and "bad number" in str(result.exception)
