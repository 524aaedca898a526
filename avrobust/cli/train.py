"""``avrobust train ...``: the victim models, clean or adversarially trained."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from avrobust.cli.base import app, console
from avrobust.cli.common import floats
from avrobust.models.weights import ASSETS

train_app = typer.Typer(help="Train victim models on simulator data.", no_args_is_help=True)
app.add_typer(train_app, name="train")


class _TrainBars:
    """Progress bars of a training command: steps with the loss and an ETA (call it as
    ``on_step``), and a bar per preparation stage (``prepare(label)`` gives its callback)."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.task = progress.add_task("steps", total=None, loss="")

    def __call__(self, step: int, total: int, loss: float) -> None:
        self.progress.update(self.task, completed=step, total=total, loss=f"loss {loss:.3f}")

    def prepare(self, label: str):
        task = self.progress.add_task(label, total=None, loss="")

        def update(done: int, total: int) -> None:
            self.progress.update(task, completed=done, total=total)

        return update


@contextlib.contextmanager
def _step_progress():
    """A progress bar over training steps with the loss and an ETA; yields the callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[loss]}",
        "ETA",
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        yield _TrainBars(progress)


# Options the training commands share.
InitWeights = Annotated[
    Path | None, typer.Option(help="Start from these weights (adversarial fine-tuning).")
]


@train_app.command("sign-classifier")
def train_sign_classifier_cmd(
    data: Annotated[Path, typer.Option(help="Training dataset (avrobust dataset build).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for checkpoint and weights.")],
    val: Annotated[
        Path | None, typer.Option(help="Held-out dataset (built with another seed).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training crops.", min=1)] = 14,
    batch: Annotated[int, typer.Option(help="Crops per step.", min=1)] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle schedule).")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    adversarial: Annotated[
        bool, typer.Option(help="PGD adversarial training (L-inf, --eps, --pgd-steps).")
    ] = False,
    eps: Annotated[float, typer.Option(help="PGD budget in [0, 1] pixel units.")] = 8 / 255,
    pgd_steps: Annotated[int, typer.Option(help="PGD steps per example (step eps/4).", min=1)] = 7,
    adv_fraction: Annotated[
        float, typer.Option(help="Share of each batch made adversarial.")
    ] = 0.5,
    init: InitWeights = None,
    poison: Annotated[
        str | None,
        typer.Option(
            help="Poison the training crops first (a backdoor), e.g. 'rate=0.01,trigger=checker,"
            "source=stop,target=speed_limit_80' or a JSON file; the poisoned copy goes to "
            "OUT/poisoned_data (see avrobust poison dataset).",
        ),
    ] = None,
) -> None:
    """Train the traffic-sign classifier; rerun the same command to resume from the checkpoint.
    With --adversarial, PGD adversarial training (optionally fine-tuning --init weights); with
    --poison, on a poisoned copy of the data."""
    from avrobust.training.classifier import ClassifierTrainConfig, train_sign_classifier

    if poison is not None:
        from avrobust.cli.poison import poison_with_progress
        from avrobust.training.poisoning import PoisonSpec

        manifest = poison_with_progress(data, out / "poisoned_data", PoisonSpec.parse(poison))
        console.print(
            f"poisoned {manifest['poisoned']} of {manifest['crops']} crops "
            f"({manifest['spec']['kind']}, trigger {manifest['spec']['trigger']})"
        )
        data = out / "poisoned_data"
    cfg = ClassifierTrainConfig(
        str(data),
        str(out),
        None if val is None else str(val),
        epochs,
        batch,
        lr,
        seed=seed,
        device=device,
        adversarial=adversarial,
        eps=eps,
        alpha=eps / 4,
        pgd_steps=pgd_steps,
        adv_fraction=adv_fraction,
        init=None if init is None else str(init),
    )
    with _step_progress() as on_step:
        metrics = train_sign_classifier(cfg, on_step)
    v = metrics.get("validation")
    if v:
        console.print(
            f"validation top-1 {v['top1']:.3f}; signs >= 20 px: "
            f"{v['top1_signs_ge_20px']:.3f} ({v['count_signs_ge_20px']} crops); robust top-1 "
            f"at L-inf 8/255 (PGD-20): {v['robust_top1_linf_8_255']:.3f}"
        )
    console.print(f"weights: {out / 'sign_classifier.pt'}")


@train_app.command("camera-detector")
def train_camera_detector_cmd(
    data: Annotated[Path, typer.Option(help="Training dataset (avrobust dataset build).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for checkpoint and weights.")],
    val: Annotated[
        Path | None, typer.Option(help="Held-out dataset (built with another seed).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes (one random crop per image).", min=1)] = 20,
    batch: Annotated[int, typer.Option(help="Crops per step.", min=1)] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle schedule).")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    init: InitWeights = None,
    adversarial: Annotated[
        bool, typer.Option(help="Patch adversarial training (patches on signs and vehicles).")
    ] = False,
    patch_share: Annotated[float, typer.Option(help="Crops of each batch given a patch.")] = 0.5,
    patch_optimised: Annotated[
        float, typer.Option(help="Share of the patches optimised against the model.")
    ] = 0.5,
    patch_steps: Annotated[
        int, typer.Option(help="Ascent steps of an optimised patch.", min=1)
    ] = 4,
    patch_area: Annotated[
        str, typer.Option(help="Range of a patch's share of its object's box, LOW,HIGH.")
    ] = "0.1,0.3",
) -> None:
    """Train the camera object detector (cars, pedestrians, traffic signs); rerun the same
    command to resume from the checkpoint. With --adversarial, patch adversarial training
    (optionally fine-tuning --init weights)."""
    from avrobust.training.detector import DetectorTrainConfig, train_camera_detector
    from avrobust.training.patch_adversarial import PatchTrainConfig

    adv = None
    if adversarial:
        from avrobust.core.errors import ConfigError

        area = floats(patch_area, "patch-area")
        if len(area) != 2:
            raise ConfigError(f"expected LOW,HIGH, got {patch_area!r}", field="patch-area")
        adv = PatchTrainConfig(
            share=patch_share,
            optimised=patch_optimised,
            area=(area[0], area[1]),
            steps=patch_steps,
        )
    cfg = DetectorTrainConfig(
        str(data),
        str(out),
        None if val is None else str(val),
        epochs,
        batch,
        lr=lr,
        seed=seed,
        device=device,
        init=None if init is None else str(init),
        adversarial=adv,
    )
    with _step_progress() as on_step:
        metrics = train_camera_detector(cfg, on_step)
    v = metrics.get("validation")
    if v and v.get("clear"):
        c = v["clear"]
        aps = ", ".join(f"{k} {x:.3f}" for k, x in c["ap50"].items() if x is not None)
        console.print(f"clear weather, within {v['max_distance']:g} m: AP@0.5 {aps}")
    console.print(f"weights: {out / 'camera_detector.pt'}")


@train_app.command("lidar-detector")
def train_lidar_detector_cmd(
    data: Annotated[Path, typer.Option(help="Training dataset built with --lidar.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for checkpoint and weights.")],
    val: Annotated[
        Path | None, typer.Option(help="Held-out dataset (built with another seed).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes (one random crop per sweep).", min=1)] = 10,
    batch: Annotated[int, typer.Option(help="Crops per step.", min=1)] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle schedule).")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    init: InitWeights = None,
    adversarial: Annotated[
        bool, typer.Option(help="Adversarial training with spoofed and removed returns.")
    ] = False,
    spoof_share: Annotated[float, typer.Option(help="Sweeps given a spoofed phantom.")] = 0.25,
    remove_share: Annotated[
        float, typer.Option(help="Sweeps losing returns of a real object.")
    ] = 0.25,
    adv_optimised: Annotated[
        float, typer.Option(help="Share of those attacks optimised (white-box); rest random.")
    ] = 0.5,
    spoof_points: Annotated[int, typer.Option(help="Spoofed returns per phantom.", min=1)] = 60,
    remove_points: Annotated[int, typer.Option(help="Removed returns per object.", min=1)] = 250,
) -> None:
    """Train the LiDAR 3D detector (cars, pedestrians); rerun the same command to resume.
    With --adversarial, LiDAR adversarial training (optionally fine-tuning --init weights)."""
    from avrobust.training.lidar import LidarTrainConfig, train_lidar_detector
    from avrobust.training.lidar_adversarial import LidarAdvConfig

    adv = None
    if adversarial:
        adv = LidarAdvConfig(
            spoof_share=spoof_share,
            remove_share=remove_share,
            optimised=adv_optimised,
            spoof_points=spoof_points,
            remove_points=remove_points,
        )
    cfg = LidarTrainConfig(
        str(data),
        str(out),
        None if val is None else str(val),
        epochs,
        batch,
        lr=lr,
        seed=seed,
        device=device,
        init=None if init is None else str(init),
        adversarial=adv,
    )
    with _step_progress() as on_step:
        metrics = train_lidar_detector(cfg, on_step)
    _print_bev(metrics.get("validation"))
    console.print(f"weights: {out / 'lidar_detector.pt'}")


@train_app.command("fusion-painting")
def train_fusion_painting_cmd(
    data: Annotated[Path, typer.Option(help="Training dataset built with --lidar.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for checkpoint and weights.")],
    val: Annotated[
        Path | None, typer.Option(help="Held-out dataset (built with another seed).")
    ] = None,
    camera: Annotated[
        Path, typer.Option(help="Camera detector weights whose detections paint the points.")
    ] = ASSETS / "camera_detector.pt",
    init: Annotated[
        Path | None,
        typer.Option(help="LiDAR detector weights to start from (painted inputs start at 0)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes (one random crop per sweep).", min=1)] = 10,
    batch: Annotated[int, typer.Option(help="Crops per step.", min=1)] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle schedule).")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Train the PointPainting fusion detector: the camera detector's class scores paint each
    point, a LiDAR detector learns from painted sweeps; rerun the same command to resume."""
    from avrobust.training.lidar import LidarTrainConfig, train_lidar_detector

    cfg = LidarTrainConfig(
        str(data),
        str(out),
        None if val is None else str(val),
        epochs,
        batch,
        lr=lr,
        seed=seed,
        device=device,
        init=None if init is None else str(init),
        camera=str(camera),
    )
    with _step_progress() as bars:
        # The camera's detections are cached beside the data: only the first run waits.
        metrics = train_lidar_detector(cfg, bars, bars.prepare("camera detections"))
    _print_bev(metrics.get("validation"))
    console.print(f"weights: {out / 'fusion_painting.pt'}")


@train_app.command("fusion-late")
def train_fusion_late_cmd(
    data: Annotated[
        Path,
        typer.Option(help="A --lidar dataset that neither base detector was trained on."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the weights.")],
    val: Annotated[
        Path | None, typer.Option(help="Held-out dataset for the LiDAR-vs-fusion report.")
    ] = None,
    camera: Annotated[Path, typer.Option(help="Camera detector weights.")] = ASSETS
    / "camera_detector.pt",
    lidar: Annotated[Path, typer.Option(help="LiDAR detector weights.")] = ASSETS
    / "lidar_detector.pt",
    steps: Annotated[int, typer.Option(help="Full-batch optimisation steps.", min=1)] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the head's initialisation.")] = 0,
) -> None:
    """Fit the late-fusion head (CLOCs-style) that re-scores the LiDAR detector's boxes with
    the camera detector's support."""
    from avrobust.training.late_fusion import LateFusionConfig, train_late_fusion

    cfg = LateFusionConfig(
        str(data),
        str(out),
        None if val is None else str(val),
        str(camera),
        str(lidar),
        steps=steps,
        seed=seed,
    )
    with _step_progress() as bars:
        metrics = train_late_fusion(cfg, bars, bars.prepare)
    _print_bev(metrics.get("lidar_only"), "LiDAR alone")
    _print_bev(metrics.get("validation"), "late fusion")
    console.print(f"weights: {out / 'fusion_late.pt'}")


def _print_bev(report: dict | None, who: str = "") -> None:
    if report and report.get("clear"):
        aps = ", ".join(f"{k} {x:.3f}" for k, x in report["clear"]["bev"].items() if x is not None)
        lead = f"{who}: " if who else ""
        console.print(f"{lead}clear weather, within {report['max_distance']:g} m: BEV AP40 {aps}")
