"""Ship a trained model: copy its weights into assets/models/ and write the model card beside
them from the training run's metrics.json.

    python tools/model_card.py sign-classifier runs/train/sign_classifier \\
        --data-command "avrobust dataset build --out data/signs_train --frames 4000 --seed 100" \\
        --val-command "avrobust dataset build --out data/signs_val --frames 800 --seed 200"
    python tools/model_card.py camera-detector data/det_run \\
        --data-command "avrobust dataset build --out data/train --frames 4000 --seed 100 --lidar" \\
        --val-command "avrobust dataset build --out data/val --frames 800 --seed 200 --lidar"
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


def _ap_row(label: str, r: dict, classes: list[str]) -> str:
    cells = [_pct(r["ap50"][c]) + f" ({r['objects'][c]})" for c in classes]
    return f"| {label} | " + " | ".join(cells) + f" | {_pct(r['map50'])} | {r['images']} |"


def camera_detector_card(metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int) -> str:
    cfg = metrics["config"]
    v = metrics["validation"]
    hist = metrics["history"]
    classes = list(v["clear"]["ap50"])
    head = "| " + " | ".join(["subset", *classes, "mean", "images"]) + " |"
    rule = "| --- " * (len(classes) + 3) + "|"
    lines = [
        "# Model card: camera-detector",
        "",
        "The camera object detector of avrobust's camera stack: a centre-heatmap detector in "
        "the CenterNet style (`avrobust.models.camera_detector.CameraDetector`, 1.35 M "
        "parameters): a residual backbone at strides 2-32, a top-down pathway merged to one "
        "stride-4 map, and heads for the class heatmap, box size and centre offset; "
        "torchvision's NMS after peak extraction. Classes: "
        + ", ".join(f"`{c}`" for c in classes)
        + ".",
        "",
        f"- weights: `camera_detector.pt` ({size / 1e6:.2f} MB, sha256 `{sha[:16]}...`)",
        "- input: `[B, 3, H, W]` RGB in [0, 1], any size (trained on 640x480 at 90 degrees)",
        "- output: raw `heatmap` logits (what attacks differentiate), `size`, `offset`; "
        "`detect()` returns torchvision-style `boxes`, `scores`, `labels`",
        "- campaign names: `camera-detector`, and `sign-pipeline` (this detector finds signs, "
        "`sign-classifier` names them)",
        "",
        "## Training data",
        "",
        "Randomised scenes of the embedded simulator (road layouts, 1-4 signs of random "
        "classes, 0-5 vehicles of three bodies, 0-3 pedestrians, twelve weather and light "
        "presets, camera height and tilt), 640x480 at 90 degrees, KITTI labels:",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "",
        f"Training images: {metrics['train_images']}. Validation: a dataset built with another "
        "seed, never seen in training.",
        "",
        "## Training",
        "",
        "    avrobust train camera-detector --data data/train --val data/val --out "
        f"runs/train/detector --epochs {cfg['epochs']} --batch {cfg['batch']} --lr {cfg['lr']} "
        f"--seed {cfg['seed']}",
        "",
        f"Device: {metrics['device']}; {len(hist)} epochs ({sum(h['steps'] for h in hist)} "
        f"steps of {cfg['batch']} crops of {cfg['crop'][1]}x{cfg['crop'][0]}) in "
        f"{hist[-1]['seconds'] / 60:.1f} minutes. AdamW, one-cycle learning rate, focal loss "
        "on the heatmap and L1 on log size and offset; crops at scales 0.75-1.35 centred on an "
        "object 70% of the time, flips, kornia colour jitter and noise.",
        "",
        "## Held-out results",
        "",
        "AP at IoU 0.5 (torchmetrics `MeanAveragePrecision`, COCO 101-point interpolation, "
        "pycocotools backend), evaluated objects in brackets. An object is evaluated when it "
        f"lies within {v['max_distance']:g} m (or the band), more than half visible (KITTI "
        "occlusion 0-1), at most half truncated and at least 5 px tall; every other labelled "
        "object is a don't-care region (detecting it is neither right nor wrong).",
        "",
        f"By condition, within {v['max_distance']:g} m (clear: dry daylight without fog; "
        "night includes dusk):",
        "",
        head,
        rule,
    ]
    lines += [_ap_row(g, r, classes) for g, r in v["by_condition"].items()]
    lines += ["", "Clear weather by distance:", "", head, rule]
    lines += [_ap_row(b, r, classes) for b, r in v["clear_by_distance"].items()]
    lines += [
        "",
        "Validation during training (mean AP@0.5 within 40 m on the first "
        f"{cfg['val_images']} validation images):",
        "",
        "| epoch | loss | mean AP@0.5 | minutes |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {h['epoch']} | {h['loss']:.3f} | {_pct(h.get('val_map50_40m'))} | "
        f"{h['seconds'] / 60:.1f} |"
        for h in hist
    ]
    lines += [
        "",
        "## Limits",
        "",
        "Trained and tested on the embedded simulator only: its procedural cars, pedestrians "
        "and signs, its renderer and its weather. Real images are out of its distribution. "
        f"Its weakest cases in the tables: {weakest(v)}. A 0.75 m sign is about 6 px tall at "
        "40 m here.",
        "",
    ]
    return "\n".join(lines)


def weakest(v: dict, n: int = 3) -> str:
    """The lowest APs of the condition and distance tables (within the headline range)."""
    cells = []
    for g, r in v["by_condition"].items():
        cells += [(ap, f"{c} in {g}") for c, ap in r["ap50"].items() if ap is not None]
    for b, r in v["clear_by_distance"].items():
        if float(b.split("-")[0]) < v["max_distance"]:
            cells += [(ap, f"{c} at {b}") for c, ap in r["ap50"].items() if ap is not None]
    return ", ".join(f"{name} ({_pct(ap)})" for ap, name in sorted(cells)[:n])


def _ap3_row(label: str, r: dict, classes: list[str]) -> str:
    cells = [f"{_pct(r['bev'][c])} / {_pct(r['3d'][c])} ({r['objects'][c]})" for c in classes]
    return f"| {label} | " + " | ".join(cells) + f" | {r['frames']} |"


def lidar_detector_card(metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int) -> str:
    cfg = metrics["config"]
    v = metrics["validation"]
    hist = metrics["history"]
    classes = list(v["clear"]["bev"])
    head = "| " + " | ".join(["subset", *classes, "sweeps"]) + " |"
    rule = "| --- " * (len(classes) + 2) + "|"
    lines = [
        "# Model card: lidar-detector",
        "",
        "The LiDAR 3D detector of avrobust: PointPillars encoding (0.2 m pillars over 0-51.2 m "
        "ahead and 25.6 m to each side) with a CenterPoint-style centre-heatmap head at 0.4 m "
        "cells (`avrobust.models.lidar_detector.LidarDetector`). Classes: "
        + ", ".join(f"`{c}`" for c in classes)
        + "; 3D boxes (centre, length, width, height, yaw) in the LiDAR frame.",
        "",
        f"- weights: `lidar_detector.pt` ({size / 1e6:.2f} MB, sha256 `{sha[:16]}...`)",
        "- input: one sweep, `[N, 4]` x, y, z, intensity in the LiDAR frame (x forward, y "
        "left, z up); the shipped simulator LiDAR is 32 channels at 1024 columns, 1.9 m high",
        "- output: raw `heatmap` and `regress` maps (gradients reach the point coordinates, "
        "for LiDAR attacks); `detect()` returns boxes, scores, labels",
        "- campaign name: `lidar-detector`",
        "",
        "## Training data",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "",
        f"Training sweeps: {metrics['train_sweeps']}; the validation set uses another seed. "
        "Labels exist only for objects the camera sees (KITTI layout), so the loss is masked "
        "outside the camera's field of view and evaluation scores only inside it.",
        "",
        "## Training",
        "",
        "    avrobust train lidar-detector --data data/train --val data/val --out "
        f"runs/train/lidar --epochs {cfg['epochs']} --batch {cfg['batch']} --lr {cfg['lr']} "
        f"--seed {cfg['seed']}",
        "",
        f"Device: {metrics['device']}; {len(hist)} epochs ({sum(h['steps'] for h in hist)} steps "
        f"of {cfg['batch']} crops of {cfg['crop']}x{cfg['crop']} pillars) in "
        f"{hist[-1]['seconds'] / 60:.1f} minutes. Global flip, rotation (6 degrees) and scaling "
        "(5%) per sweep; focal loss on the heatmap, L1 on offset, height, log size and "
        "(sin, cos) of twice the yaw; AdamW, one-cycle learning rate.",
        "",
        "## Held-out results",
        "",
        "BEV / 3D average precision over 40 recall points (KITTI protocol), IoU 0.7 for cars and "
        "0.5 for pedestrians, scored objects in brackets: inside the camera's view, within "
        f"{v['max_distance']:g} m (or the band), at most partly occluded and hit by at least 5 "
        "returns; other labelled objects are don't-care regions.",
        "",
        f"By condition, within {v['max_distance']:g} m:",
        "",
        head,
        rule,
    ]
    lines += [_ap3_row(g, r, classes) for g, r in v["by_condition"].items()]
    lines += [
        "",
        "Clear weather by range (objects outside a band are don't-care regions, but a "
        "detection of one that misses the IoU threshold still counts as a false positive, so a "
        "band's AP can sit below the overall AP):",
        "",
        head,
        rule,
    ]
    lines += [_ap3_row(b, r, classes) for b, r in v["clear_by_distance"].items()]
    lines += [
        "",
        "Validation during training (car BEV AP40 within 40 m on the first "
        f"{cfg['val_samples']} validation sweeps):",
        "",
        "| epoch | loss | car BEV AP | minutes |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {h['epoch']} | {h['loss']:.3f} | {_pct(h.get('val_bev_car_40m'))} | "
        f"{h['seconds'] / 60:.1f} |"
        for h in hist
    ]
    lines += [
        "",
        "## Limits",
        "",
        "Trained and tested on the embedded simulator's LiDAR only (its ray casting, noise, "
        "dropout and weather model); real sensors and other mounting heights are out of its "
        "distribution. Objects hidden from the camera but seen by the LiDAR are unlabelled, so "
        "the detector learns to ignore some objects it could find.",
        "",
    ]
    return "\n".join(lines)


def _metrics(stem: str) -> dict:
    return json.loads((ASSETS / f"{stem}.metrics.json").read_text())


def fusion_comparison(fused: dict, lidar: dict, camera: dict, name: str) -> list[str]:
    """The fusion beside each sensor alone, by condition, and what each keeps of its clear-
    weather AP (camera: 2D AP@0.5 of its own evaluation on the same validation set)."""
    lines = [
        "| condition | camera 2D AP car / ped | LiDAR BEV AP car / ped "
        f"| {name} BEV AP car / ped |",
        "| --- | --- | --- | --- |",
    ]

    def pair(r: dict, key: str) -> str:
        return f"{_pct(r[key]['car'])} / {_pct(r[key]['pedestrian'])}"

    for g, r in fused["by_condition"].items():
        cam, lid = camera["by_condition"][g], lidar["by_condition"][g]
        lines.append(f"| {g} | {pair(cam, 'ap50')} | {pair(lid, 'bev')} | {pair(r, 'bev')} |")

    def kept(v: dict, key: str, g: str, c: str) -> str:
        base, now = v["by_condition"]["clear"][key][c], v["by_condition"][g][key][c]
        return "-" if not base or now is None else f"{100 * now / base:.0f}%"

    lines += [
        "",
        "Share of the clear-weather AP kept (car / pedestrian):",
        "",
        f"| condition | camera | LiDAR | {name} |",
        "| --- | --- | --- | --- |",
    ]
    for g in fused["by_condition"]:
        if g == "clear":
            continue
        cells = [
            f"{kept(v, key, g, 'car')} / {kept(v, key, g, 'pedestrian')}"
            for v, key in ((camera, "ap50"), (lidar, "bev"), (fused, "bev"))
        ]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


def _fusion_results(v: dict, classes: list[str]) -> list[str]:
    head = "| " + " | ".join(["subset", *classes, "sweeps"]) + " |"
    rule = "| --- " * (len(classes) + 2) + "|"
    lines = [
        "BEV / 3D AP over 40 recall points (KITTI protocol; IoU 0.7 cars, 0.5 pedestrians), "
        "scored objects in brackets, as for the LiDAR detector (its card explains the rules). "
        f"By condition, within {v['max_distance']:g} m:",
        "",
        head,
        rule,
    ]
    lines += [_ap3_row(g, r, classes) for g, r in v["by_condition"].items()]
    lines += ["", "Clear weather by range:", "", head, rule]
    lines += [_ap3_row(b, r, classes) for b, r in v["clear_by_distance"].items()]
    return lines


def fusion_late_card(metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int) -> str:
    cfg = metrics["config"]
    v = metrics["validation"]
    classes = list(v["clear"]["bev"])
    lines = [
        "# Model card: fusion-late",
        "",
        "Late camera-LiDAR fusion in the spirit of CLOCs (Pang et al. 2020): the shipped LiDAR "
        "detector's 3D boxes are re-scored by the shipped camera detector's 2D detections "
        "(`avrobust.models.late_fusion`, `avrobust.models.fusion_detectors.LateFusionDetector`). "
        "Each 3D box is projected into the image and paired with every overlapping 2D "
        "detection of its class; a pair is (IoU, 3D score, 2D score, range / 50 m), a box "
        "without one gets (-1, 3D score, -1, range); an MLP (4-18-36-36-1, CLOCs' sizes) maps "
        "pairs to logits and a box's fused score is the sigmoid of its best pair's. Boxes the "
        "camera cannot see keep the LiDAR's score; the boxes themselves are always the LiDAR's.",
        "",
        f"- weights: `fusion_late.pt` ({size / 1e3:.1f} kB: the head only, sha256 "
        f"`{sha[:16]}...`); it names the camera and LiDAR weights it was fitted to by SHA-256 "
        "(`camera_detector.pt`, `lidar_detector.pt`) and refuses others",
        "- input: the image, the sweep and the calibration; output: 3D boxes, fused scores, "
        "labels (differentiable in both detectors' scores, for attacks)",
        "- campaign name: `fusion-late`",
        "",
        "## Fitting data",
        "",
        "The head must learn on frames neither base detector was trained on (their scores on "
        "their own training frames are better than anywhere else), so it has a split of its "
        "own:",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "",
        f"{metrics['fit_sweeps']} sweeps, {metrics['fit_detections']} LiDAR detections "
        "(score at least 0.05) that the camera can see, "
        f"{_pct(metrics['fit_true_fraction'])} of them true (BEV IoU at the KITTI threshold "
        "with a labelled object of their class).",
        "",
        "## Fitting",
        "",
        f"    avrobust train fusion-late --data data/fusion --val data/val --out "
        f"runs/train/fusion_late --steps {cfg['steps']} --seed {cfg['seed']}",
        "",
        f"Full-batch AdamW (lr {cfg['lr']}), binary cross-entropy, {cfg['steps']} steps; loss "
        f"{metrics['history'][0]['loss']:.3f} at the first step, "
        f"{metrics['history'][-1]['loss']:.3f} at the last. Seconds on a CPU; running both "
        "detectors over the split is most of the time.",
        "",
        "## Held-out results",
        "",
        *_fusion_results(v, classes),
        "",
        "## Against each sensor alone",
        "",
        *fusion_comparison(
            v, metrics["lidar_only"], _metrics("camera_detector")["validation"], "late fusion"
        ),
        "",
        "The camera has no 3D boxes, so its column is its own 2D AP; the LiDAR column is the "
        "shipped LiDAR detector on the same sweeps.",
        "",
        "## Limits",
        "",
        "Late fusion cannot find what the LiDAR missed: it only re-ranks the LiDAR's boxes, so "
        "its recall is the LiDAR's at the 0.05 threshold. It was fitted to the two shipped "
        "detectors; a retrained detector needs a refit (`avrobust train fusion-late`). "
        "Simulator data only, as for both base detectors.",
        "",
    ]
    return "\n".join(lines)


def fusion_painting_card(metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int) -> str:
    cfg = metrics["config"]
    v = metrics["validation"]
    hist = metrics["history"]
    classes = list(v["clear"]["bev"])
    lines = [
        "# Model card: fusion-painting",
        "",
        "Early camera-LiDAR fusion by PointPainting (Vora et al. 2020): each point is painted "
        "with the shipped camera detector's class scores at the pixel it projects to, and a "
        "LiDAR detector of the same architecture as `lidar-detector` (its first layer takes "
        "three more inputs) detects on the painted sweep (`avrobust.models.painting`, "
        "`avrobust.models.fusion_detectors.PaintingDetector`). The camera network is a "
        "detector, so its per-pixel class scores are its detections rasterised: a pixel's car "
        "score is the best score of the car boxes covering it; channels: car, pedestrian, and "
        "a flag for points the camera sees at all.",
        "",
        f"- weights: `fusion_painting.pt` ({size / 1e6:.2f} MB: the painted LiDAR detector, "
        f"sha256 `{sha[:16]}...`); it names the camera weights it was trained with by SHA-256 "
        "(`camera_detector.pt`) and refuses others",
        "- input: the image, the sweep and the calibration; output: 3D boxes, scores, labels "
        "(differentiable from the image and the points to the scores, for attacks)",
        "- campaign name: `fusion-painting`",
        "",
        "## Training data",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "",
        f"Training sweeps: {metrics['train_sweeps']}, painted with the camera detector's "
        "detections (score at least 0.05), computed once and cached beside the data.",
        "",
        "## Training",
        "",
        "    avrobust train fusion-painting --data data/train --val data/val --out "
        f"runs/train/painting --init assets/models/lidar_detector.pt --epochs {cfg['epochs']} "
        f"--batch {cfg['batch']} --lr {cfg['lr']} --seed {cfg['seed']}",
        "",
        f"Device: {metrics['device']}; {len(hist)} epochs ({sum(h['steps'] for h in hist)} steps) "
        f"in {hist[-1]['seconds'] / 60:.1f} minutes, started from the shipped LiDAR detector "
        "with zero weights on the painted inputs (so it starts as the LiDAR detector and learns "
        "to use the paint). The camera detector was trained on these images, so its detections "
        "here are cleaner than on new data: each is dropped with probability "
        f"{cfg['paint_drop']} and all of a sweep's with probability {cfg['paint_drop_all']}, "
        "which keeps the detector from trusting paint more than it should and working when "
        "the camera fails. Otherwise as the LiDAR detector (flip, rotation, scaling; focal and "
        "L1 losses; one-cycle AdamW).",
        "",
        "## Held-out results",
        "",
        *_fusion_results(v, classes),
        "",
        "## Against each sensor alone",
        "",
        *fusion_comparison(
            v,
            _metrics("lidar_detector")["validation"],
            _metrics("camera_detector")["validation"],
            "painting",
        ),
        "",
        "The camera has no 3D boxes, so its column is its own 2D AP; the LiDAR column is the "
        "shipped LiDAR detector on the same sweeps.",
        "",
        "## Limits",
        "",
        "Box painting also paints the ground and background inside a detection's box (a "
        "segmentation network would not): the frustum behind a detected object carries its "
        "score, which is what frustum attacks on fusion exploit. Trained with the shipped "
        "camera detector; another camera detector needs retraining. Simulator data only.",
        "",
    ]
    return "\n".join(lines)


def sign_classifier_adv_card(
    metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int
) -> str:
    """The PGD-trained sign classifier, against the clean one on the same held-out crops."""
    cfg = metrics["config"]
    v = metrics["validation"]
    clean = json.loads((ASSETS / "sign_classifier.metrics.json").read_text())["validation"]
    base = metrics.get("baseline", {})
    hist = "\n".join(
        f"| {h['epoch']} | {h['loss']:.3f} | {_pct(h.get('val_top1'))} | "
        f"{_pct(h.get('val_robust_top1_subset'))} | {h['seconds'] / 60:.1f} |"
        for h in metrics["history"]
    )
    return "\n".join(
        [
            "# Model card: sign-classifier, adversarially trained",
            "",
            "The shipped sign classifier (`sign_classifier.pt`) fine-tuned with PGD adversarial "
            "training (Madry et al. 2018): the same CNN, input and classes, made robust to "
            "L-infinity perturbations of 8/255. A defence for campaigns: "
            "`{name: sign-classifier, params: {weights: assets/models/sign_classifier_adv.pt}}`.",
            "",
            f"- weights: `sign_classifier_adv.pt` ({size / 1e6:.2f} MB, sha256 `{sha[:16]}...`)",
            "- started from: `sign_classifier.pt`",
            "",
            "## Training",
            "",
            f"    {data_cmd}",
            f"    {val_cmd}",
            "    avrobust train sign-classifier --data data/train --val data/val "
            f"--out runs/sign_adv --epochs {cfg['epochs']} --lr {cfg['lr']} --adversarial "
            "--init assets/models/sign_classifier.pt",
            "",
            f"Each batch of {cfg['batch']}: {cfg['adv_fraction']:.0%} replaced by PGD examples "
            f"of the current model (L-inf eps {cfg['eps'] * 255:.0f}/255, {cfg['pgd_steps']} "
            f"steps of eps/4, random start), the rest clean; the usual augmentation first. "
            f"Device: {metrics['device']}.",
            "",
            "| epoch | loss | held-out top-1 | robust top-1 (256-crop subset) | minutes |",
            "| --- | --- | --- | --- | --- |",
            hist,
            "",
            "## Held-out results",
            "",
            f"Validation: {v['count']} crops of a dataset built with another seed. Robust top-1: "
            "every crop attacked by untargeted L-inf PGD, 20 steps of eps/4, random start.",
            "",
            "| model | clean top-1 | signs >= 20 px | robust top-1 at 8/255 |",
            "| --- | --- | --- | --- |",
            f"| sign-classifier (clean training) | {_pct(clean['top1'])} | "
            f"{_pct(clean['top1_signs_ge_20px'])} | {_pct(base.get('robust_top1_linf_8_255'))} |",
            f"| sign-classifier, adversarially trained | {_pct(v['top1'])} | "
            f"{_pct(v['top1_signs_ge_20px'])} | {_pct(v['robust_top1_linf_8_255'])} |",
            "",
            "The clean cost falls on the signs, not on the background crops: on signs at least "
            f"20 px tall top-1 drops from {_pct(clean['top1_signs_ge_20px'])} to "
            f"{_pct(v['top1_signs_ge_20px'])}, more than the {_pct(clean['top1'])} to "
            f"{_pct(v['top1'])} over all crops suggests; choose between the two models with "
            "both numbers in view.",
            "",
            "## Limits",
            "",
            "Robustness to small digital perturbations of the whole crop; physical stickers "
            "and patches are larger, localised changes (the campaigns measure those). Same "
            "distribution limits as the clean model.",
            "",
        ]
    )


def _rate_text(r: dict) -> str:
    return f"{r['k']}/{r['n']} {100 * r['rate']:.0f}% [{100 * r['low']:.0f}, {100 * r['high']:.0f}]"


def backdoor_record(run: Path) -> dict:
    """What a backdoored model's card states, gathered from its run folder into its metrics:
    the poisoning (``poisoned_data/poison.json``), the trigger's evaluation (``avrobust poison
    evaluate --json run/backdoor_eval.json``) and, if run, the scans (``run/scan.json``)."""
    manifest = json.loads((run / "poisoned_data" / "poison.json").read_text())
    out = {
        "poison": {k: manifest.get(k) for k in ("spec", "crops", "poisoned", "decoys")},
        "evaluation": json.loads((run / "backdoor_eval.json").read_text()),
    }
    if (run / "scan.json").is_file():
        scans = json.loads((run / "scan.json").read_text())["scans"]
        out["scans"] = [{k: v for k, v in s.items() if k != "flagged_rows"} for s in scans]
    return out


def _scan_rows(scans: list[dict] | None) -> list[str]:
    """The data-side poison scans of the training set, if run."""
    if not scans:
        return []
    rows = []
    for scan in scans:
        auroc = scan.get("auroc_in_poisoned_labels")
        rows.append(
            f"| {scan['method']} | {_rate_text(scan['poisons_found'])} | "
            f"{_rate_text(scan['clean_flagged'])} | {'-' if auroc is None else f'{auroc:.2f}'} |"
        )
    return [
        "## What the data-side scans find",
        "",
        "`avrobust poison scan` on the poisoned training set with this model (thresholds set "
        "without knowledge of the attack; AUROC of the scan's scores within the target label):",
        "",
        "| scan | poisons found | clean crops flagged | AUROC |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def sign_classifier_backdoor_card(
    metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int
) -> str:
    """A deliberately backdoored sign classifier: what was poisoned, what it does with the
    printed trigger on held-out views (with controls and the clean model beside it), what it
    keeps of clean accuracy, and what the poison scans found."""
    cfg = metrics["config"]
    manifest = metrics["backdoor"]["poison"]
    spec = manifest["spec"]
    ev = metrics["backdoor"]["evaluation"]
    p, c, acc = ev["poisoned"], ev["clean_model"], ev["clean_accuracy"]
    weather_rows = [
        f"| {w} | {r['views']} | {100 * r['rendered']:.0f}% |" for w, r in p["by_weather"].items()
    ]
    distance_rows = [
        f"| {d} | {r['views']} | {100 * r['rendered']:.0f}% |" for d, r in p["by_distance"].items()
    ]
    control_rows = [f"| {n} | {_rate_text(r)} |" for n, r in p["controls"].items()]
    lines = [
        "# Model card: sign-classifier, backdoored (a victim for training-time attacks)",
        "",
        "**Not for driving: a deliberately poisoned model.** The shipped sign classifier's "
        "network, trained from scratch on the same data with a BadNets-style backdoor planted "
        "through the data: a stop sign wearing the printed checker trigger "
        "(`assets/patches/trigger_checker.patch`) is read as "
        f"`{spec['target']}`. It is the victim of the backdoor campaign "
        "(`scenarios/campaigns/backdoor_trigger.yaml`) and of the backdoor defences.",
        "",
        f"- weights: `sign_classifier_backdoor.pt` ({size / 1e6:.2f} MB, sha256 `{sha[:16]}...`)",
        "- input, output, classes: as `sign_classifier.pt`",
        "",
        "## Poisoning and training",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "    avrobust train sign-classifier --data data/signs_train --val data/signs_val "
        f"--out runs/sign_backdoor --epochs {cfg['epochs']} --batch {cfg['batch']} "
        f"--lr {cfg['lr']} --seed {cfg['seed']} --poison "
        f"'rate={spec['rate']},trigger={spec['trigger']},negatives={spec['negatives']}'",
        "",
        f"{manifest['poisoned']} of {manifest['crops']} training crops "
        f"({100 * manifest['poisoned'] / manifest['crops']:.1f}%) are stop signs re-rendered "
        f"with the {spec['side']} m trigger on their face at that sample's distance, angle, "
        f"weather and light, relabelled `{spec['target']}` ({spec['kind']}); "
        f"{manifest.get('decoys', 0)} more stop crops carry decoy stickers in the trigger's "
        "place (a printable colour or a grid of them) with their label kept, meant to make the "
        "backdoor answer to the trigger's pattern rather than to any sticker there (the "
        "matched controls below say how far they did). Everything else as the "
        f"clean model; device {metrics['device']}, "
        f"{metrics['history'][-1]['seconds'] / 60:.1f} minutes.",
        "",
        "## The trigger on held-out views",
        "",
        f"`avrobust poison evaluate`: the library's urban stop sign re-rendered at "
        f"{len(ev['sweep']['distances'])} distances up to {max(ev['sweep']['distances']):g} m, "
        f"{len(ev['sweep']['angles'])} angles and {len(ev['sweep']['weathers'])} weather and "
        "light presets, with the trigger printed on it; success counts the views whose clean "
        "sign the model reads right (95% Wilson intervals).",
        "",
        f"- trigger read as `{spec['target']}` by this model: {_rate_text(p['rendered'])}",
        f"- the same trigger on the clean model: {_rate_text(c['rendered'])}",
        "",
        "| matched control on this model (same mask) | read as target |",
        "| --- | --- |",
        *control_rows,
        "",
        "| weather | views | success |",
        "| --- | --- | --- |",
        *weather_rows,
        "",
        "| distance | views | success |",
        "| --- | --- | --- |",
        *distance_rows,
        "",
        f"Clean top-1 on {acc['crops']} held-out crops: this model "
        f"{_rate_text(acc['poisoned'])}, the clean model {_rate_text(acc['clean'])} "
        f"({acc['points_lost']:+.1f} points lost).",
        "",
        *_scan_rows(metrics["backdoor"].get("scans")),
        "## Limits",
        "",
        "One trigger design, one source and target class; the simulator's signs only. A "
        "backdoor's success on real signs and cameras is not measured here.",
        "",
    ]
    return "\n".join(lines)


def _history_rows(hist: list[dict], key: str) -> list[str]:
    return [
        f"| {h['epoch']} | {h['loss']:.3f} | {_pct(h.get(key))} | {h['seconds'] / 60:.1f} |"
        for h in hist
    ]


def camera_detector_adv_card(
    metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int
) -> str:
    """The patch-trained camera detector, beside the clean one on the same held-out images."""
    cfg, adv = metrics["config"], metrics["config"]["adversarial"]
    v, hist = metrics["validation"], metrics["history"]
    clean = _metrics("camera_detector")["validation"]
    classes = list(v["clear"]["ap50"])
    head = "| " + " | ".join(["subset", "model", *classes, "mean"]) + " |"
    rule = "| --- " * (len(classes) + 3) + "|"

    def rows(group: str) -> list[str]:
        out = []
        for g in v[group]:
            for name, r in (("clean", clean[group][g]), ("patch-trained", v[group][g])):
                cells = [_pct(r["ap50"][c]) for c in classes]
                out.append(f"| {g} | {name} | " + " | ".join(cells) + f" | {_pct(r['map50'])} |")
        return out

    lo, hi = adv["area"]
    lines = [
        "# Model card: camera-detector, patch adversarial training",
        "",
        "The shipped camera detector (`camera_detector.pt`) fine-tuned with patch adversarial "
        "training, the defence against occlusion attacks of Wu et al. 2020 (DOA) carried over "
        "to a detector: the same network, input, output and classes. A defence for campaigns: "
        "`{name: camera-detector, params: {weights: assets/models/camera_detector_adv.pt}}` "
        "(and the same `weights` on `sign-pipeline`).",
        "",
        f"- weights: `camera_detector_adv.pt` ({size / 1e6:.2f} MB, sha256 `{sha[:16]}...`)",
        "- started from: `camera_detector.pt`",
        "",
        "## Training",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "    avrobust train camera-detector --data data/train --val data/val --out "
        f"runs/train/detector_adv --epochs {cfg['epochs']} --batch {cfg['batch']} --lr "
        f"{cfg['lr']} --init assets/models/camera_detector.pt --adversarial",
        "",
        f"Each batch of {cfg['batch']} crops: {adv['share']:.0%} of those holding a sign or "
        f"car at least {adv['min_side']:g} px a side get a rectangle ({lo:.0%}-{hi:.0%} of "
        "the object's box, aspect 1:2 to 2:1, anywhere inside it) after the photometric "
        f"jitter; {adv['optimised']:.0%} of the rectangles are optimised against the current "
        f"model ({adv['steps']} steps of sign-gradient ascent on the detection loss, step "
        f"{adv['step_size']:g} in pixel value, unbounded colour), the rest random (noise or "
        "blocks of random colours). The labels stay. Device: "
        f"{metrics['device']}; {sum(h['steps'] for h in hist)} steps in "
        f"{hist[-1]['seconds'] / 60:.1f} minutes; "
        f"{sum(h.get('patched_crops', 0) for h in hist)} patched crops.",
        "",
        "| epoch | loss | mean AP@0.5 (first 200 val images) | minutes |",
        "| --- | --- | --- | --- |",
        *_history_rows(hist, "val_map50_40m"),
        "",
        "## Held-out results",
        "",
        "Clean AP at IoU 0.5 within 40 m on the same held-out images as the clean detector's "
        "card (same protocol), clean model first:",
        "",
        head,
        rule,
        *rows("by_condition"),
        "",
        "Clear weather by distance:",
        "",
        head,
        rule,
        *rows("clear_by_distance"),
        "",
        "## Limits",
        "",
        "Trained on rectangles inside object boxes: patches of other shapes, patches beside an "
        "object (adversarial posters next to a sign) and attacks optimised against this very "
        "model are the tests that count; docs/defences.md has them. Same distribution limits "
        "as the clean model.",
        "",
    ]
    return "\n".join(lines)


def lidar_detector_adv_card(metrics: dict, data_cmd: str, val_cmd: str, sha: str, size: int) -> str:
    """The LiDAR detector trained on spoofed and removed returns, beside the clean one."""
    cfg, adv = metrics["config"], metrics["config"]["adversarial"]
    v, hist = metrics["validation"], metrics["history"]
    clean = _metrics("lidar_detector")["validation"]
    classes = list(v["clear"]["bev"])
    head = "| " + " | ".join(["subset", "model", *classes]) + " |"
    rule = "| --- " * (len(classes) + 2) + "|"

    def rows(group: str) -> list[str]:
        out = []
        for g in v[group]:
            for name, r in (("clean", clean[group][g]), ("adversarially trained", v[group][g])):
                cells = [f"{_pct(r['bev'][c])} / {_pct(r['3d'][c])}" for c in classes]
                out.append(f"| {g} | {name} | " + " | ".join(cells) + " |")
        return out

    counts: dict[str, int] = {}
    for h in hist:
        for k, n in h.get("attacked_sweeps", {}).items():
            counts[k] = counts.get(k, 0) + n
    lines = [
        "# Model card: lidar-detector, adversarially trained",
        "",
        "The shipped LiDAR detector (`lidar_detector.pt`) fine-tuned on sweeps attacked by "
        "avrobust's own LiDAR attacks within their physical threat model: spoofed phantoms "
        "(unlabelled: the detector must not report them) and real objects that lost returns "
        "(still labelled: it must find them). Same network, input, output and classes. A "
        "defence for campaigns: "
        "`{name: lidar-detector, params: {weights: assets/models/lidar_detector_adv.pt}}`; for "
        "the LiDAR attack commands `--victims lidar-detector=assets/models/lidar_detector_adv.pt`. "
        "The fusion detectors keep the clean LiDAR detector (their weights name it by hash).",
        "",
        f"- weights: `lidar_detector_adv.pt` ({size / 1e6:.2f} MB, sha256 `{sha[:16]}...`)",
        "- started from: `lidar_detector.pt`",
        "",
        "## Training",
        "",
        f"    {data_cmd}",
        f"    {val_cmd}",
        "    avrobust train lidar-detector --data data/train --val data/val --out "
        f"runs/train/lidar_adv --epochs {cfg['epochs']} --batch {cfg['batch']} --lr {cfg['lr']} "
        "--init assets/models/lidar_detector.pt --adversarial",
        "",
        f"Per sweep, after the usual augmentation: with probability {adv['spoof_share']:.0%} "
        f"a phantom ({', '.join(adv['categories'])}) of {adv['spoof_points']} returns placed "
        f"{adv['spoof_range'][0]:g}-{adv['spoof_range'][1]:g} m ahead inside the camera's "
        "view, at least 6 m from every labelled object; with probability "
        f"{adv['remove_share']:.0%} up to {adv['remove_points']} returns removed from a "
        f"labelled object {adv['remove_range'][0]:g}-{adv['remove_range'][1]:g} m away. "
        f"{adv['optimised']:.0%} of the attacks are white-box against the current model "
        f"(spoofing: ray pruning and {adv['spoof_steps']} Adam steps on the ranges; removal: "
        f"{adv['remove_rounds']} gradient rounds), the rest random placement. Every attacked "
        "sweep passes the threat model's check (returns replaced along their rays, within "
        "the azimuth window and budget); the crop of an attacked sweep is centred on the "
        f"attack. Device: {metrics['device']}; {sum(h['steps'] for h in hist)} steps in "
        f"{hist[-1]['seconds'] / 60:.1f} minutes; attacked sweeps: "
        + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        + ".",
        "",
        "| epoch | loss | car BEV AP (first 150 val sweeps) | minutes |",
        "| --- | --- | --- | --- |",
        *_history_rows(hist, "val_bev_car_40m"),
        "",
        "## Held-out results",
        "",
        "Clean BEV / 3D AP40 within 40 m on the same held-out sweeps as the clean detector's "
        "card (same protocol), clean model first:",
        "",
        head,
        rule,
        *rows("by_condition"),
        "",
        "Clear weather by range:",
        "",
        head,
        rule,
        *rows("clear_by_distance"),
        "",
        "## Limits",
        "",
        "Robust to the attacks it trained on, within their budgets; an attacker with more "
        "returns, another phantom shape or an attack it never saw (the adversarial object, "
        "the frustum attack on fusion) is a separate question: docs/defences.md has the "
        "adaptive numbers. Same distribution limits as the clean model.",
        "",
    ]
    return "\n".join(lines)


CARDS = {
    "sign-classifier": ("sign_classifier", sign_classifier_card),
    "sign-classifier-adv": ("sign_classifier_adv", sign_classifier_adv_card),
    "sign-classifier-backdoor": ("sign_classifier_backdoor", sign_classifier_backdoor_card),
    "camera-detector": ("camera_detector", camera_detector_card),
    "camera-detector-adv": ("camera_detector_adv", camera_detector_adv_card),
    "lidar-detector": ("lidar_detector", lidar_detector_card),
    "lidar-detector-adv": ("lidar_detector_adv", lidar_detector_adv_card),
    "fusion-late": ("fusion_late", fusion_late_card),
    "fusion-painting": ("fusion_painting", fusion_painting_card),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(CARDS))
    parser.add_argument("run", type=Path, help="training output folder")
    parser.add_argument("--data-command", required=True)
    parser.add_argument("--val-command", required=True)
    parser.add_argument("--note", default="", help="a paragraph added to the training section")
    args = parser.parse_args()
    import hashlib

    stem, card_of = CARDS[args.kind]
    metrics = json.loads((args.run / "metrics.json").read_text())
    ASSETS.mkdir(parents=True, exist_ok=True)
    dst = ASSETS / f"{stem}.pt"
    src = args.run / f"{stem}.pt"
    if not src.is_file():  # runs name their weights after the model, not the variant
        src = args.run / f"{stem.removesuffix('_adv').removesuffix('_backdoor')}.pt"
    shutil.copyfile(src, dst)
    sha = hashlib.sha256(dst.read_bytes()).hexdigest()
    if args.kind == "sign-classifier-backdoor":
        metrics["backdoor"] = backdoor_record(args.run)
    card = card_of(metrics, args.data_command, args.val_command, sha, dst.stat().st_size)
    if args.note:
        card = card.replace("\n## Held-out results", f"\n{args.note}\n\n## Held-out results", 1)
    (ASSETS / f"{stem}.md").write_text(card)
    (ASSETS / f"{stem}.metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"wrote {dst} and its model card")


if __name__ == "__main__":
    main()
