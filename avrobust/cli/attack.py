"""``avrobust attack sign`` and ``attack patch``: optimise a printable patch, then judge it
by re-rendering held-out views."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avrobust.cli.base import attack_app, console
from avrobust.cli.common import floats, success_table

MaskOpt = Annotated[
    str,
    typer.Option(
        help="Where the patch prints: whole (the surface), rp2_bars, lower_patch, centre_patch, "
        "poster, learnt:F (an L1 stage learns a mask covering F of the face, as RP2 does), or "
        "a mask image (white prints)."
    ),
]
MaskSteps = Annotated[int, typer.Option(help="Steps of the L1 stage of a learnt mask.")]


def _mask_stage_progress(pr, mask: str, steps: int):
    """A progress task for the L1 stage when the mask is learnt (None otherwise)."""
    if not mask.startswith("learnt"):
        return None
    task = pr.add_task("learn mask (L1)", total=steps, info="")
    return lambda s, loss, rate: pr.update(
        task, completed=s + 1, info=f"loss {loss:.2f} success {rate:.0%}"
    )


def _input_transform(spec: str):
    """``NAME`` or ``NAME:VALUE`` to an input-transformation defence (its one parameter)."""
    from avrobust.campaign import registry
    from avrobust.core.errors import ConfigError
    from avrobust.defences.preprocess import InputTransform

    name, _, value = spec.partition(":")
    defence = registry.create("defence", {"name": name})
    if not isinstance(defence, InputTransform):
        raise ConfigError(
            f"{name!r} is not an input transformation", field="--through",
            allowed="jpeg, median-blur, local-gradient-smoothing",
        )  # fmt: skip
    if value:
        key = next(iter(defence.params))  # the first: quality, kernel, threshold
        kind = type(defence.params[key])
        defence = registry.create("defence", {"name": name, "params": {key: kind(value)}})
    return defence


def _monitor(clf, name: str | None, threshold: float | None, fit: Path | None):
    """The fitted monitor ``--monitor`` names on ``clf``, or None."""
    from avrobust.core.errors import ConfigError

    if name is None:
        return None
    if threshold is None:
        raise ConfigError("--monitor needs --monitor-threshold", field="--monitor-threshold")
    from avrobust.defences.monitors.classifier import FITTED, fit_on_folder, monitor_named

    mon = monitor_named(clf, name, field="--monitor")
    if name in FITTED:
        if fit is None:
            raise ConfigError(
                f"monitor {name} needs --monitor-fit (clean crops)", field="--monitor-fit"
            )
        fit_on_folder(mon, clf.classes, fit)
    return mon


@attack_app.command("sign")
def attack_sign(
    out: Annotated[Path, typer.Option("--out", "-o", help="Patch file to write (.patch).")],
    scenario: Annotated[str, typer.Option(help="Scenario with the sign.")] = "urban_stop",
    surface: Annotated[str, typer.Option(help="The sign's attack surface.")] = "stop_sign",
    true_class: Annotated[str, typer.Option(help="What the sign is.")] = "stop",
    target: Annotated[
        str | None, typer.Option(help="Class to be read as (none: anything else).")
    ] = "speed_limit_80",
    mask: MaskOpt = "rp2_bars",
    mask_steps: MaskSteps = 150,
    steps: Annotated[int, typer.Option(help="Optimisation steps.", min=1)] = 400,
    eot: Annotated[str, typer.Option(help="EOT preset: none, light, standard, harsh.")] = (
        "standard"
    ),
    distances: Annotated[str, typer.Option(help="Training distances, metres.")] = "5,10,15,20,25",
    angles: Annotated[str, typer.Option(help="Training sign angles, degrees.")] = "0,15,30",
    weathers: Annotated[str, typer.Option(help="Training weather presets.")] = (
        "ClearNoon,CloudyNoon,Dusk"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the optimisation.")] = 0,
    printer: Annotated[
        Path | None, typer.Option(help="Printer model (avrobust printer fit) to optimise through.")
    ] = None,
    evaluate: Annotated[bool, typer.Option(help="Re-render and report success.")] = True,
    classifier: Annotated[
        Path | None,
        typer.Option(help="Classifier weights to attack (default: the shipped one)."),
    ] = None,
    against: Annotated[
        str,
        typer.Option(
            help="classifier (its reading of the sign's crop) or pipeline (the camera "
            "detector finds the sign, the classifier reads it: the sign must stay detected)."
        ),
    ] = "classifier",
    through: Annotated[
        str | None,
        typer.Option(
            help="An input-transformation defence to optimise through (adaptive), NAME or "
            "NAME:VALUE: jpeg[:quality], median-blur[:kernel], local-gradient-smoothing"
            "[:threshold]. JPEG and LGS are passed with BPDA."
        ),
    ] = None,
    monitor: Annotated[
        str | None,
        typer.Option(
            help="A runtime monitor to evade (adaptive): msp, energy, odin (BPDA), "
            "mahalanobis, mahalanobis_multi, knn (surrogate), odin_mahalanobis (the union, "
            "smoothed); its score must stay under --monitor-threshold on every crop."
        ),
    ] = None,
    monitor_threshold: Annotated[
        float | None,
        typer.Option(help="The deployed threshold (avrobust defend monitors' JSON)."),
    ] = None,
    monitor_fit: Annotated[
        Path | None, typer.Option(help="Clean crops to fit a fitted monitor on.")
    ] = None,
    monitor_weight: Annotated[float, typer.Option(help="Weight of the monitor term.")] = 1.0,
) -> None:
    """Optimise a sticker perturbation on a sign against the sign classifier (the shipped one,
    or --classifier / --through: an adaptive attack on a defended one), save it as a patch, and
    evaluate it by painting it on the sign and rendering again."""
    import math as _math

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from avrobust.attacks.controls import STANDARD
    from avrobust.attacks.sign_sticker import StickerAttack
    from avrobust.core.errors import ConfigError
    from avrobust.core.sensors import CameraSpec
    from avrobust.evaluation.sign_attack import Sweep, evaluate_sign_patch, run_sign_attack
    from avrobust.models.adapters import load_classifier
    from avrobust.models.victims import weights_provenance
    from avrobust.models.weights import ASSETS

    weights = classifier or ASSETS / "sign_classifier.pt"
    clf = load_classifier(weights)
    if against not in ("classifier", "pipeline"):
        raise ConfigError(
            f"unknown victim {against!r}", field="--against", allowed="classifier, pipeline"
        )
    pipeline = det = None
    if against == "pipeline":
        from avrobust.models.camera_detector import load_camera_detector
        from avrobust.models.victims import SignRecognitionPipeline

        pipeline = SignRecognitionPipeline(classifier=classifier)
        det = load_camera_detector(ASSETS / "camera_detector.pt")
        victim = {
            "model": "sign-pipeline",
            **weights_provenance(classifier=weights, detector=ASSETS / "camera_detector.pt"),
        }
    else:
        victim = {"model": "sign-classifier", **weights_provenance(classifier=weights)}
    cam = CameraSpec(640, 480, _math.radians(90))
    from avrobust.attacks.masks import mask_from_spec

    sweep = Sweep(
        floats(distances, "--distances"),
        floats(angles, "--angles"),
        tuple(w for w in weathers.split(",") if w),
        (-0.5, 0.5),
    )
    n_views = len(sweep.viewpoints())
    with Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[info]}",
        "ETA",
        TimeRemainingColumn(),
        console=console,
    ) as pr:
        views = pr.add_task("render views", total=n_views, info="")
        opt = pr.add_task("optimise", total=steps, info="")
        on_mask = _mask_stage_progress(pr, mask, mask_steps)
        attack = StickerAttack(
            clf,
            true_class,
            target,
            steps=steps,
            eot=eot,
            seed=seed,
            printer=None if printer is None else str(printer),
            through=None if through is None else _input_transform(through),
            detector=det,
            monitor=_monitor(clf, monitor, monitor_threshold, monitor_fit),
            monitor_threshold=monitor_threshold or 0.0,
            monitor_weight=monitor_weight,
        )
        patch = run_sign_attack(
            scenario,
            surface,
            attack,
            mask_from_spec(mask, mask_steps),
            sweep,
            cam,
            on_step=lambda s, loss, rate: pr.update(
                opt, completed=s + 1, info=f"loss {loss:.2f} success {rate:.0%}"
            ),
            progress=lambda n: pr.advance(views, n),
            victim=victim,
            on_mask_step=on_mask,
        )
    patch.save(out)
    console.print(
        f"patch: {out} (sha256 {patch.sha256()[:12]}, {patch.coverage:.0%} of the face square)"
    )
    if evaluate:
        with Progress("[bold]re-render", BarColumn(), MofNCompleteColumn(), console=console) as pr:
            task = pr.add_task("eval", total=(2 + len(STANDARD)) * n_views)
            ev = evaluate_sign_patch(
                patch,
                clf,
                scenario,
                surface,
                true_class,
                target,
                sweep,
                cam,
                progress=lambda n: pr.advance(task, n),
                pipeline=pipeline,
            )
        success_table(
            ev,
            f"success on {ev.clean_correct} views read correctly when clean",
            (ev.by_distance, ev.by_angle, ev.by_weather),
        )


@attack_app.command("patch")
def attack_patch(
    out: Annotated[Path, typer.Option("--out", "-o", help="Patch file to write (.patch).")],
    scenario: Annotated[str, typer.Option(help="Scenario with the surface.")] = "lead_vehicle",
    surface: Annotated[str, typer.Option(help="Attack surface the patch covers.")] = "lead_rear",
    goal: Annotated[
        str, typer.Option(help="hide: the host object is not detected; appear: a phantom is.")
    ] = "hide",
    category: Annotated[str, typer.Option(help="Detector class to hide or make appear.")] = "car",
    detector: Annotated[
        Path | None, typer.Option(help="Detector weights (default: the shipped one).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps.", min=1)] = 300,
    batch: Annotated[int, typer.Option(help="Views per step.", min=1)] = 4,
    eot: Annotated[str, typer.Option(help="EOT preset: none, light, standard, harsh.")] = (
        "standard"
    ),
    distances: Annotated[str, typer.Option(help="Training distances, metres.")] = "6,10,15,20,25",
    weathers: Annotated[str, typer.Option(help="Training weather presets.")] = (
        "ClearNoon,CloudyNoon,Dusk"
    ),
    laterals: Annotated[str, typer.Option(help="Ego offsets in its lane, metres.")] = "-0.6,0,0.6",
    angles: Annotated[str, typer.Option(help="Sign angles, degrees (a sign target only).")] = "0",
    mask: MaskOpt = "whole",
    mask_steps: MaskSteps = 150,
    seed: Annotated[int, typer.Option(help="Seed of the optimisation.")] = 0,
    printer: Annotated[
        Path | None, typer.Option(help="Printer model (avrobust printer fit) to optimise through.")
    ] = None,
    texture_res: Annotated[
        int | None,
        typer.Option(help="Optimise on a coarser grid of this many cells across (far views)."),
    ] = None,
    schedule: Annotated[str, typer.Option(help="Step size: constant or cosine.")] = "constant",
    margin: Annotated[
        float | None,
        typer.Option(help="Log-odds past the threshold at which a view stops counting."),
    ] = None,
    evaluate: Annotated[bool, typer.Option(help="Re-render and report success.")] = True,
) -> None:
    """Optimise a patch on an attack surface against the camera detector (hide the object it
    is on, or make an object appear), save it, and evaluate it by painting it in the scene and
    rendering again."""
    import math as _math

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from avrobust.attacks.controls import STANDARD
    from avrobust.attacks.detector_patch import DetectorPatchAttack
    from avrobust.core.sensors import CameraSpec
    from avrobust.evaluation.detector_attack import evaluate_detector_patch, run_detector_attack
    from avrobust.evaluation.viewpoints import Sweep
    from avrobust.models.camera_detector import load_camera_detector
    from avrobust.models.victims import weights_provenance
    from avrobust.models.weights import ASSETS

    det = load_camera_detector(detector or ASSETS / "camera_detector.pt")
    victim = {
        "model": "camera-detector",
        **weights_provenance(detector=detector or ASSETS / "camera_detector.pt"),
    }
    cam = CameraSpec(640, 480, _math.radians(90))
    from avrobust.attacks.masks import mask_from_spec

    sweep = Sweep(
        floats(distances, "--distances"),
        floats(angles, "--angles"),
        tuple(w for w in weathers.split(",") if w),
        floats(laterals, "--laterals"),
    )
    n_views = len(sweep.viewpoints())
    with Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[info]}",
        "ETA",
        TimeRemainingColumn(),
        console=console,
    ) as pr:
        views = pr.add_task("render views", total=n_views, info="")
        opt = pr.add_task("optimise", total=steps, info="")
        on_mask = _mask_stage_progress(pr, mask, mask_steps)
        attack = DetectorPatchAttack(
            det,
            goal,
            category,
            steps=steps,
            batch=batch,
            eot=eot,
            seed=seed,
            printer=None if printer is None else str(printer),
            texture_res=texture_res,
            schedule=schedule,
            margin=margin,
        )
        patch = run_detector_attack(
            scenario,
            surface,
            attack,
            mask_from_spec(mask, mask_steps),
            sweep,
            cam,
            on_step=lambda s, loss, rate: pr.update(
                opt, completed=s + 1, info=f"loss {loss:.2f} success {rate:.0%}"
            ),
            progress=lambda n: pr.advance(views, n),
            victim=victim,
            on_mask_step=on_mask,
        )
    patch.save(out)
    console.print(f"patch: {out} (sha256 {patch.sha256()[:12]}, {patch.size_m} m)")
    if evaluate:
        with Progress("[bold]re-render", BarColumn(), MofNCompleteColumn(), console=console) as pr:
            task = pr.add_task("eval", total=(2 + len(STANDARD)) * n_views)
            ev = evaluate_detector_patch(
                patch,
                det,
                scenario,
                surface,
                goal,
                category,
                sweep,
                cam,
                progress=lambda n: pr.advance(task, n),
            )
        success_table(
            ev,
            f"{goal} success on {ev.clean_correct} views the clean detector gets right",
            (ev.by_distance, ev.by_weather),
        )
