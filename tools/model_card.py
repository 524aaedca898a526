"""Ship a trained model: copy its weights into assets/models/ and write the model card beside
them from the training run's metrics.json.

    python tools/model_card.py sign-classifier runs/train/sign_classifier \\
        --data-command "avrobust dataset build --out data/signs_train --frames 4000 --seed 100" \\
        --val-command "avrobust dataset build --out data/signs_val --frames 800 --seed 200"
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
SHORT = {
    "speed_limit_30": "30",
    "speed_limit_50": "50",
    "speed_limit_80": "80",
    "pedestrian_crossing": "crossing",
    "background": "bg",
    "no_entry": "no entry",
}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def sign_classifier_card(metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int) -> str:
    cfg = metrics["config"]
    v = metrics["validation"]
    hist = metrics["history"]
    lines = [
        "# Model card: sign-classifier",
        "",
        "The traffic-sign classifier of avrobust's camera stack: a compact CNN "
        "(`avrobust.models.sign_classifier.SignClassifier`, 0.53 M parameters) that names a "
        "64x64 crop of a sign's box with 15% context as one of the simulator's seven sign "
        "classes or `background` (including the backs of signs).",
        "",
        f"- weights: `sign_classifier.pt` ({size / 1e6:.2f} MB, sha256 `{sha[:16]}...`)",
        "- input: `[B, 3, 64, 64]` RGB in [0, 1] (normalisation is inside the model)",
        "- output: logits over " + ", ".join(f"`{c}`" for c in v["classes"]),
        "- campaign name: `sign-classifier` (applied to ground-truth sign boxes)",
        "",
        "## Training data",
        "",
        "Randomised scenes of the embedded simulator (road layouts, sign classes, placements, "
        "heights and angles, vehicles, pedestrians, twelve weather and light presets, camera "
        "tilt), 640x480 at 90 degrees; crops of every sign at least 12 px tall facing the "
        "camera, and background patches.",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "",
        f"Training crops: {metrics['train_crops']}. Validation: a dataset built with another "
        f"seed (never seen in training), {v['count']} crops.",
        "",
        "## Training",
        "",
        "    avrobust train sign-classifier --data data/signs_train --val data/signs_val "
        f"--out runs/train/sign --epochs {cfg['epochs']} --batch {cfg['batch']} "
        f"--lr {cfg['lr']} --seed {cfg['seed']}",
        "",
        f"Device: {metrics['device']}; {len(hist)} epochs in {hist[-1]['seconds'] / 60:.1f} "
        "minutes. AdamW, one-cycle learning rate, label smoothing 0.05, class-weighted "
        "cross-entropy, kornia augmentation (affine jitter, colour, blur, noise).",
        "",
        "## Held-out results",
        "",
        "| measure | top-1 | crops |",
        "| --- | --- | --- |",
        f"| all crops (signs and background) | {_pct(v['top1'])} | {v['count']} |",
        f"| signs at least 20 px tall | {_pct(v['top1_signs_ge_20px'])} | "
        f"{v['count_signs_ge_20px']} |",
        "",
        "By distance (signs; background crops have none):",
        "",
        "| distance | top-1 | crops |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {band} | {_pct(r['top1'])} | {r['count']} |"
        for band, r in v["by_distance"].items()
        if band != "n/a"
    ]
    lines += [
        "",
        "By weather (signs only):",
        "",
        "| weather | top-1 | crops |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {w} | {_pct(r['top1'])} | {r['count']} |" for w, r in v["by_weather"].items()]
    lines += [
        "",
        "Confusion matrix (rows: truth, columns: prediction):",
        "",
        "| | " + " | ".join(SHORT.get(c, c) for c in v["classes"]) + " |",
        "| --- " * (len(v["classes"]) + 1) + "|",
    ]
    for c, row in zip(v["classes"], v["confusion"], strict=True):
        lines.append(f"| {c} | " + " | ".join(str(x) for x in row) + " |")
    lines += [
        "",
        "Most errors are between the three speed limits at small sizes, where the renderer's "
        "unfiltered texture sampling blurs the digits.",
        "",
        "## Limits",
        "",
        "Trained and tested on the embedded simulator's signs only; real signs, other "
        "sign designs and other cameras are out of its distribution. Signs under 20 px "
        "(beyond about 12 m for a 0.75 m sign at 640 px and 90 degrees) are read less "
        "reliably, as the distance table shows.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["sign-classifier"])
    parser.add_argument("run", type=Path, help="training output folder")
    parser.add_argument("--data-command", required=True)
    parser.add_argument("--val-command", required=True)
    args = parser.parse_args()
    import hashlib

    metrics = json.loads((args.run / "metrics.json").read_text())
    ASSETS.mkdir(parents=True, exist_ok=True)
    dst = ASSETS / "sign_classifier.pt"
    shutil.copyfile(args.run / "sign_classifier.pt", dst)
    sha = hashlib.sha256(dst.read_bytes()).hexdigest()
    card = sign_classifier_card(
        metrics, args.data_command, args.val_command, sha, dst.stat().st_size
    )
    (ASSETS / "sign_classifier.md").write_text(card)
    (ASSETS / "sign_classifier.metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"wrote {dst} and its model card")


if __name__ == "__main__":
    main()
