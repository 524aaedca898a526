"""Runtime monitors of the sign classifier judged on held-out data (``avrobust defend
monitors``): each monitor is fitted on one clean crop set, its thresholds are calibrated on a
second and everything is measured on a third and on the shifts:

* clean: the classifier's selective risk at 90/95/99% coverage, AURC, and the false alarms the
  calibrated thresholds give on fresh clean crops beside the stated level;
* covariate (weather and light): false alarms per condition group, and the share of the
  classifier's errors there that are flagged;
* semantic: crops of real sign types the classifier never saw, flagged at the 95% threshold,
  AUROC and FPR at 95% TPR, per type;
* attacks: each sign sticker painted on its sign and re-rendered on a held-out sweep, the crops
  where it succeeds flagged at the 95% threshold, beside the crops of its matched controls (the
  same mask, not optimised) and of the clean views.

The monitor watches a detector-plus-classifier stack, so thresholds are calibrated on, and false
alarms counted on, crops of signs (faces, and backs, which the classifier calls background).
With ``unreadable`` a sign read as background is doubted without limit as well.

Every share has its 95% Wilson interval; crops are independent renders (one scene each), so
they are the trials."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from avrobust.attacks.controls import STANDARD, Control
from avrobust.core.classes import BACKGROUND, SIGN_CLASSES, UNSEEN_SIGN_TYPES
from avrobust.core.sensors import CameraSpec
from avrobust.defences.monitors import conformal, selective
from avrobust.defences.monitors.classifier import BATCH
from avrobust.evaluation.viewpoints import Sweep

COVERAGES = (0.90, 0.95, 0.99)
ALARM_COVERAGE = 0.95  # the operating point the numbers are stated at
# Weather presets grouped into the conditions reports name.
CONDITION = {
    "ClearNoon": "day",
    "CloudyNoon": "day",
    "WetCloudyNoon": "day",
    "ClearSunset": "low sun",
    "CloudySunset": "low sun",
    "Dusk": "low sun",
    "SoftRainNoon": "rain",
    "HardRainNoon": "rain",
    "Fog": "fog",
    "DenseFog": "fog",
    "ClearNight": "night",
    "WetNight": "night",
}


@dataclass
class Crops:
    """``images`` ``[N, 3, 64, 64]`` float in [0, 1], ``labels`` names, ``weather`` presets."""

    images: torch.Tensor
    labels: list[str]
    weather: list[str]
    distance: list[float] | None = None  # NaN for background patches (not a sign)

    def signs(self) -> Crops:
        """The crops of signs, faces and backs (a back is labelled background): what a
        detector hands the classifier. Random background patches are left out."""
        if self.distance is None:
            keep = [i for i, c in enumerate(self.labels) if c != BACKGROUND]
        else:
            keep = [i for i, d in enumerate(self.distance) if math.isfinite(d)]
        return Crops(
            self.images[keep],
            [self.labels[i] for i in keep],
            [self.weather[i] for i in keep],
            None if self.distance is None else [self.distance[i] for i in keep],
        )


def load(folder: str | Path, unseen: bool = False) -> Crops:
    """A dataset build's crops (``unseen``: labels may be the unseen sign types)."""
    from avrobust.models.crops import load_crops

    classes = (*SIGN_CLASSES, *UNSEEN_SIGN_TYPES) if unseen else SIGN_CLASSES
    cs = load_crops(folder, classes)
    return Crops(
        cs.images.float() / 255,
        [classes[i] for i in cs.labels.tolist()],
        list(cs.weather),
        cs.distance.tolist(),
    )


def sticker_crops(
    patch_path: str | Path,
    sweep: Sweep,
    camera: CameraSpec,
    controls: Sequence[Control] = STANDARD,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """The sign's crop in every view of ``sweep`` clean, with the sticker and with each
    control painted on, and the sticker's true and target classes."""
    from avrobust.attacks.sign_sticker import sign_views
    from avrobust.core.patch import Patch
    from avrobust.data.crops import square_crop
    from avrobust.evaluation.viewpoints import render_sweep

    patch = Patch.load(patch_path)
    prov = patch.provenance
    scenario, surface = prov["scenario"], prov["surface"]
    textures = {
        "clean": None,
        "sticker": patch,
        **{c.name: c(patch) for c in controls},
    }
    crops: dict[str, list[torch.Tensor]] = {k: [] for k in textures}
    # View by view, cropping at once: a whole sweep of frames per texture would hold gigabytes.
    for vp in sweep.viewpoints():
        one = Sweep((vp.distance,), (vp.angle,), (vp.weather,), (vp.lateral,))
        views = {}
        for k, p in textures.items():
            paint = None if p is None else {surface: (p.texture, p.mask)}
            frames = render_sweep(scenario, one, camera, paint, progress=progress).frames
            views[k] = sign_views(frames, surface)
        if not all(views.values()):
            continue  # the sign is out of view in one of the renders: drop the view everywhere
        for k, v in views.items():
            crops[k].append(square_crop(v[0].frame.image, v[0].box))
    return {
        "true_class": prov.get("true_class"),
        "target": prov.get("target"),
        "crops": {k: torch.stack(v) for k, v in crops.items() if v},
    }


def _predict(model: torch.nn.Module, x: torch.Tensor, classes: Sequence[str]) -> list[str]:
    with torch.no_grad():
        idx = torch.cat([model(x[i : i + BATCH]).argmax(1) for i in range(0, len(x), BATCH)])
    return [classes[i] for i in idx.tolist()]


def doubt(
    monitor, model, classes: Sequence[str], x: torch.Tensor, unreadable: bool = False
) -> tuple[torch.Tensor, list]:
    """The monitor's doubt of sign crops and the classifier's readings. ``unreadable``: a
    crop read as ``background`` is doubted without limit (the stack cannot name the sign) -
    at the price of every sign seen from behind, which the classifier rightly calls
    background."""
    pred = _predict(model, x, classes)
    s = monitor.score(x).detach().double()
    if not unreadable:
        return s, pred
    bg = torch.tensor([p == BACKGROUND for p in pred])
    return torch.where(bg, torch.full_like(s, math.inf), s), pred


def _share(scores: torch.Tensor, t: float) -> dict | None:
    """Flagged share with its interval; None for an empty set (nothing to report)."""
    return selective.flagged(scores, t).to_dict() if scores.numel() else None


def _errors(pred: Sequence[str], labels: Sequence[str]) -> torch.Tensor:
    return torch.tensor([p != t for p, t in zip(pred, labels, strict=True)])


def study_monitor(
    monitor,
    model: torch.nn.Module,
    classes: Sequence[str],
    fit: Crops,
    calibration: Crops,
    test: Crops,
    unseen: Crops | None = None,
    stickers: dict[str, dict] | None = None,
    risk: float = 0.02,
    delta: float = 0.05,
) -> dict:
    """One monitor's numbers (plain data). Fitted on every crop of ``fit`` (background
    included: it is one of the classifier's classes); calibrated and measured on the sign crops
    of ``calibration`` and ``test``, since the stack classifies what its detector calls a sign."""
    judged = (
        None
        if fit.distance is None
        else torch.tensor([math.isfinite(d) for d in fit.distance])  # the sign crops
    )
    monitor.fit(fit.images, torch.tensor([classes.index(c) for c in fit.labels]), judged)
    calibration, test = calibration.signs(), test.signs()
    cal_d, cal_p = doubt(monitor, model, classes, calibration.images)
    cal_err = _errors(cal_p, calibration.labels)
    thresholds = {c: conformal.coverage_threshold(cal_d, c) for c in COVERAGES}
    t95 = thresholds[ALARM_COVERAGE]
    test_d, test_p = doubt(monitor, model, classes, test.images)
    test_err = _errors(test_p, test.labels)
    certified = conformal.selective_risk_threshold(cal_d, cal_err, risk, delta)
    passed = test_d <= certified.threshold
    out: dict = {
        "monitor": monitor.name,
        "differentiable": monitor.differentiable,
        "thresholds": {f"{c:.0%}": _finite(t) for c, t in thresholds.items()},
        "clean": {
            "crops": len(test.labels),
            "classifier_error": _share(test_err.double(), 0.5),
            "aurc": selective.aurc(test_d, test_err),
            "selective_risk": {
                f"{c:.0%}": selective.selective_risk(test_d, test_err, c) for c in COVERAGES
            },
            "false_alarms": {
                f"{c:.0%}": {"stated": 1 - c, **selective.flagged(test_d, thresholds[c]).to_dict()}
                for c in COVERAGES
            },
            "errors_flagged": _share(test_d[test_err], t95),
        },
        "risk_control": {
            "target": risk,
            "delta": delta,
            "threshold": _finite(certified.threshold),
            "calibration_coverage": certified.coverage,
            "calibration_bound": certified.bound,
            "test_coverage": float(passed.double().mean()),
            "test_risk": float(test_err[passed].double().mean()) if passed.any() else None,
        },
        "conditions": _conditions(test, test_d, test_err, t95),
    }
    if unseen is not None:
        u_d, u_p = doubt(monitor, model, classes, unseen.images)
        out["unseen"] = _unseen(unseen, u_d, u_p, test_d, t95)
    for name, st in (stickers or {}).items():
        out.setdefault("stickers", {})[name] = _sticker(monitor, model, classes, st, t95)
    return out


def _finite(t: float) -> float | None:
    """JSON has no infinity: a threshold that flags nothing (or everything) is None."""
    return t if math.isfinite(t) else None


def _conditions(test: Crops, s: torch.Tensor, err: torch.Tensor, t: float) -> dict:
    groups: dict[str, list[int]] = {}
    for i, w in enumerate(test.weather):
        groups.setdefault(CONDITION.get(w, w), []).append(i)
    out = {}
    for g, idx in sorted(groups.items()):
        i = torch.tensor(idx)
        e = err[i]
        out[g] = {
            "crops": len(idx),
            "flagged": _share(s[i], t),
            "classifier_error": _share(e.double(), 0.5),
            "errors_flagged": _share(s[i][e], t),
        }
    return out


def _unseen(unseen: Crops, d: torch.Tensor, pred: list, clean: torch.Tensor, t: float) -> dict:
    # The unseen build's background crops are ordinary inputs: only its signs are the shift.
    signs = torch.tensor([c in UNSEEN_SIGN_TYPES for c in unseen.labels])
    per = {}
    for c in UNSEEN_SIGN_TYPES:
        m = torch.tensor([lab == c for lab in unseen.labels])
        if m.any():
            per[c] = {
                "flagged": _share(d[m], t),
                "read_as": dict(Counter(p for p, k in zip(pred, m.tolist(), strict=True) if k)),
            }
    # Ties at infinity (unreadable on both sides) count half in the AUROC, as they should.
    both = torch.cat([clean, d])
    finite_cap = float(both[both.isfinite()].max()) + 1
    return {
        "crops": int(signs.sum()),
        "flagged": _share(d[signs], t),
        "read_as_background": _share(
            torch.tensor([p == BACKGROUND for p in pred])[signs].double(), 0.5
        ),
        "auroc": selective.auroc(clean.clamp(max=finite_cap), d[signs].clamp(max=finite_cap)),
        "fpr_at_95_tpr": selective.fpr_at_tpr(clean, d[signs]),
        "per_type": per,
    }


def _sticker(monitor, model, classes, st: dict, t: float) -> dict:
    crops, true, target = st["crops"], st["true_class"], st["target"]
    dp = {k: doubt(monitor, model, classes, x) for k, x in crops.items()}
    preds = {k: v[1] for k, v in dp.items()}
    scores = {k: v[0] for k, v in dp.items()}
    read = torch.tensor([p == true for p in preds["clean"]])

    def hit(p: str) -> bool:
        return p == target if target else p != true

    success = read & torch.tensor([hit(p) for p in preds["sticker"]])
    return {
        "views": len(preds["clean"]),
        "success": _share(success.double(), 0.5),
        "success_flagged": _share(scores["sticker"][success], t),
        # What the attacker wants: a misreading the monitor lets through, of all views.
        "evaded": _share((success & (scores["sticker"] <= t)).double(), 0.5),
        "sticker_flagged": _share(scores["sticker"], t),
        "clean_flagged": _share(scores["clean"], t),
        "controls_flagged": {
            k: _share(v, t) for k, v in scores.items() if k not in ("clean", "sticker")
        },
    }


def run_monitor_study(
    fit: str | Path,
    calibration: str | Path,
    test: str | Path,
    unseen: str | Path | None = None,
    patches: Sequence[str | Path] = (),
    weights: str | Path | None = None,
    sweep: Sweep | None = None,
    camera: CameraSpec | None = None,
    monitors: Sequence[str] | None = None,
    risk: float = 0.02,
    delta: float = 0.05,
    progress: Callable[[int], None] | None = None,
    save_dir: str | Path | None = None,
) -> dict:
    """Every monitor (or those named) of the sign classifier at ``weights`` (default: the
    shipped one) on the crop folders and sticker patches given; plain data. ``save_dir``: each
    monitor also saved there as fitted, with its 95%-coverage threshold (``NAME.monitor``)."""
    from avrobust.core.errors import ConfigError
    from avrobust.defences.monitors.classifier import MONITORS, classifier_monitors
    from avrobust.evaluation.patch_file import HELD_OUT
    from avrobust.models.adapters import load_classifier
    from avrobust.models.victims import weights_provenance
    from avrobust.models.weights import ASSETS

    wanted = tuple(monitors or MONITORS)
    bad = [m for m in wanted if m not in MONITORS]
    if bad:
        raise ConfigError(
            f"unknown monitors {bad}", field="--monitors", allowed=", ".join(MONITORS)
        )
    w = Path(weights) if weights else ASSETS / "sign_classifier.pt"
    model = load_classifier(w)
    classes = model.classes
    sets = {"fit": load(fit), "calibration": load(calibration), "test": load(test)}
    extra = load(unseen, unseen=True) if unseen else None
    sweep = sweep or HELD_OUT
    camera = camera or CameraSpec(640, 480, math.radians(90))
    stickers = {Path(p).name: sticker_crops(p, sweep, camera, progress=progress) for p in patches}
    if save_dir is not None:  # each monitor as fitted, at its 95%-coverage threshold
        from avrobust.defences.monitors.state import save_monitor
        from avrobust.models.weights import file_sha256

        sha = file_sha256(w)
        meta = {
            "fit": _build_record(fit),
            "calibration": _build_record(calibration),
            "coverage": ALARM_COVERAGE,
            "sizes": {
                "fit": len(sets["fit"].labels),
                "calibration": len(sets["calibration"].signs().labels),
            },
        }
    results = []
    for m in classifier_monitors(model):
        if m.name not in wanted:
            continue
        results.append(
            study_monitor(m, model, classes, *sets.values(), extra, stickers, risk, delta)
        )
        t = results[-1]["thresholds"][f"{ALARM_COVERAGE:.0%}"]
        if save_dir is not None and t is not None:
            out = Path(save_dir) / f"{m.name}.monitor"
            out.parent.mkdir(parents=True, exist_ok=True)
            save_monitor(out, m, t, sha, meta)
            results[-1]["file"] = str(out)
    return {
        "victim": {"model": "sign-classifier", **weights_provenance(classifier=w)},
        "sets": {
            k: str(v)
            for k, v in {
                "fit": fit,
                "calibration": calibration,
                "test": test,
                "unseen": unseen,
            }.items()
            if v
        },
        "sizes": {
            k: len(v.labels) for k, v in {**sets, **({"unseen": extra} if extra else {})}.items()
        },
        "patches": [str(p) for p in patches],
        "monitors": results,
    }


def _build_record(folder: str | Path) -> dict:
    """Where a crop set came from: its folder and the seed and frame count of its build."""
    import json

    out: dict = {"folder": str(folder)}
    try:
        build = json.loads((Path(folder) / "dataset.json").read_text())
        out |= {k: build[k] for k in ("seed", "backend", "sign_types") if k in build}
    except (OSError, ValueError, TypeError):
        pass  # a folder without the build's record: the path is all there is
    return out
