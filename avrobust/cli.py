"""The avrobust command line: parse, call the library, print. Nothing imports this module."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import avrobust
from avrobust.core.errors import AvrobustError

app = typer.Typer(
    name="avrobust",
    help="Robustness testbed for driving perception against physical adversarial attacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
# Where the shipped weights live (as avrobust.models.weights.ASSETS, without importing torch).
ASSETS_MODELS = Path(avrobust.__file__).resolve().parents[1] / "assets" / "models"
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"avrobust {avrobust.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Robustness testbed for driving perception against physical adversarial attacks."""


@app.command()
def doctor(
    carla: Annotated[
        str | None,
        typer.Option(
            "--carla", metavar="HOST:PORT", help="Also check that a CARLA server answers."
        ),
    ] = None,
    carla_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the CARLA server.")
    ] = 2.0,
) -> None:
    """Check the installation: library versions, torch device, CARLA client and server."""
    from avrobust.doctor import diagnose

    checks = diagnose(carla, carla_timeout)
    table = Table(title="avrobust doctor", show_header=True)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for c in checks:
        status = (
            "[green]ok[/]" if c.ok else ("[red]FAIL[/]" if c.required else "[yellow]missing[/]")
        )
        table.add_row(c.name, status, c.detail)
    console.print(table)
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        err_console.print(f"[red]problems:[/] {', '.join(failed)}")
        raise typer.Exit(1)


scenario_app = typer.Typer(
    help="Scenarios: list, validate, import OpenSCENARIO, render a frame.", no_args_is_help=True
)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("list")
def scenario_list() -> None:
    """List the scenario library (``scenarios/``, or ``$AVROBUST_SCENARIOS``)."""
    from avrobust.scenario.library import load_scenario, scenario_names

    table = Table(show_header=True, box=None)
    table.add_column("scenario")
    table.add_column("description", overflow="fold")
    for name in scenario_names():
        table.add_row(name, load_scenario(name).description.strip())
    console.print(table)


@scenario_app.command("validate")
def scenario_validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files (.yaml or .xosc).")],
) -> None:
    """Check scenario files; print every problem with its file, line and field."""
    from avrobust.scenario.library import validate_files

    results = validate_files(files)
    for path, problem in results.items():
        if problem is None:
            console.print(f"[green]ok[/]    {path}")
        else:
            console.print(f"[red]error[/] {problem}", highlight=False, soft_wrap=True)
    if any(p is not None for p in results.values()):
        raise typer.Exit(2)


@scenario_app.command("import")
def scenario_import(
    xosc: Annotated[Path, typer.Argument(help="OpenSCENARIO 1.0 file (.xosc).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Scenario file to write (.yaml).")],
    opendrive: Annotated[
        Path | None, typer.Option(help="OpenDRIVE file for lane and road positions.")
    ] = None,
) -> None:
    """Import the common subset of an OpenSCENARIO file; list what it does not support."""
    import warnings

    from avrobust.scenario.openscenario import import_openscenario, write_yaml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = import_openscenario(xosc, opendrive)
    for item in result.unsupported:
        console.print(f"[yellow]not imported[/] {item}", highlight=False)
    console.print(f"wrote {write_yaml(result, out)}")


@scenario_app.command("render")
def scenario_render(
    scene: Annotated[str, typer.Argument(help="Scenario name or file (avrobust scenario list).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pictures.")] = Path(
        "out/render"
    ),
    time: Annotated[float, typer.Option(help="Seconds into the episode.")] = 0.0,
    weather: Annotated[
        str | None, typer.Option(help="Weather preset instead of the scenario's (CARLA names).")
    ] = None,
    width: Annotated[int, typer.Option(help="Image width in pixels.")] = 1280,
    height: Annotated[int, typer.Option(help="Image height in pixels.")] = 720,
    seed: Annotated[int, typer.Option(help="Seed of sensor noise and weather effects.")] = 0,
    kitti: Annotated[bool, typer.Option("--kitti", help="Also write a KITTI tree.")] = False,
) -> None:
    """Render one frame: camera, boxes, LiDAR bird's-eye view, LiDAR on the camera image."""
    from avrobust.evaluation.preview import render_preview

    with console.status(f"rendering {scene} at t={time:g} s"):
        files = render_preview(
            scene, out, time, weather, width, height, seed=seed, kitti_export=kitti
        )
    for name, path in files.items():
        console.print(f"{name:>16}: {path}")


campaign_app = typer.Typer(help="Campaigns: plan them before running.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
runs_app = typer.Typer(help="Run directories: list, show, export.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@campaign_app.command("plan")
def campaign_plan(
    campaign: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    sample: Annotated[int, typer.Option(help="How many jobs to show.")] = 8,
) -> None:
    """Expand a campaign into jobs and print the count and a sample; runs nothing."""
    from collections import Counter

    from avrobust.evaluation.campaign_run import plan

    jobs = plan(campaign)
    console.print(f"[bold]{len(jobs)}[/] jobs")
    for key in ("scenario_name",):
        counts = Counter(getattr(j, key) for j in jobs)
        console.print("  scenarios: " + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    table = Table(show_header=True)
    table.add_column("job id", no_wrap=True)
    for col in ("scenario", "conditions", "model", "attack", "defence"):
        table.add_column(col, overflow="fold")
    step = max(1, len(jobs) // max(sample, 1))
    for j in jobs[::step][:sample]:
        cond = ", ".join(f"{k}={v}" for k, v in j.conditions.items()) or "-"
        table.add_row(
            j.id, j.scenario_name, cond, j.model["name"], j.attack["name"], j.defence["name"]
        )
    console.print(table)


@app.command("run")
def run(
    campaign: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (resumed if it exists).")],
    backend: Annotated[
        str | None, typer.Option(help="embedded or carla (default: the campaign's).")
    ] = None,
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    workers: Annotated[int, typer.Option(help="Parallel jobs (processes or Ray CPUs).")] = 1,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")
    ] = None,
    retries: Annotated[int, typer.Option(help="Extra tries for a failing job.")] = 0,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per job (default: the campaign's).")
    ] = None,
) -> None:
    """Run a campaign's jobs into a run directory; rerun the same command to resume."""
    _run_campaign_cli(campaign, out, backend, executor, workers, address, retries, timeout)


def _run_campaign_cli(
    campaign: Path,
    out: Path,
    backend: str | None = None,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    retries: int = 0,
    timeout: float | None = None,
    attacks: list[dict] | None = None,
) -> None:
    """``avrobust run`` with a progress bar; ``attacks`` replaces the campaign's attacks."""
    import time as _time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from avrobust.evaluation.campaign_run import run_campaign

    state = {"frames": 0, "failed": 0, "t0": _time.monotonic()}
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("[red]{task.fields[failures]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("jobs", total=None, rate="", failures="")

    def on_start(todo: int, skipped: int) -> None:
        if skipped:
            console.print(f"resuming: {skipped} jobs already done, {todo} to run")
        progress.update(task, total=todo)

    def on_outcome(outcome, job) -> None:
        state["frames"] += outcome.num_frames
        if outcome.error is not None:
            state["failed"] += 1
            progress.console.print(
                f"[red]failed[/] {job.id} {job.label}: {outcome.error.splitlines()[-1]}",
                highlight=False,
            )
        rate = state["frames"] / max(_time.monotonic() - state["t0"], 1e-9)
        progress.update(
            task,
            advance=1,
            rate=f"{rate:.1f} frames/s",
            failures=f"{state['failed']} failed" if state["failed"] else "",
        )

    with progress:
        summary = run_campaign(
            campaign,
            out,
            executor,
            workers,
            address,
            retries,
            backend,
            timeout,
            on_outcome,
            on_start,
            attacks=attacks,
        )
    console.print(
        f"{summary.done} jobs done, {summary.failed} failed, {summary.skipped} "
        f"skipped (already done); results in {summary.run_dir}"
    )
    if summary.failed:
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(
    root: Annotated[Path, typer.Argument(help="Folder holding run directories.")] = Path("runs"),
) -> None:
    """List the run directories under ROOT with their progress."""
    from avrobust.evaluation.store import DB_NAME, ResultsStore

    table = Table(show_header=True)
    for col in ("run", "campaign", "done", "failed", "pending"):
        table.add_column(col)
    for db in sorted(root.glob(f"*/{DB_NAME}")):
        with ResultsStore(db.parent, create=False) as store:
            c = store.counts()
            table.add_row(
                db.parent.name,
                store.meta("campaign") or "?",
                str(c["done"]),
                str(c["failed"]),
                str(c["pending"]),
            )
    console.print(table)


@runs_app.command("show")
def runs_show(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Summarise a run: jobs by status, frames, failures, and coverage by target."""
    from avrobust.evaluation.store import ResultsStore, outcome_summary

    with ResultsStore(run_dir, create=False) as store:
        s = outcome_summary(store)
        c = s["jobs"]
        console.print(f"campaign [bold]{store.meta('campaign')}[/] in {run_dir}")
        console.print(
            f"jobs: {c['done']} done, {c['failed']} failed, {c['pending']} pending "
            f"of {c['total']}; {s['frames_rendered']} frames in {s['duration_s']:.1f} s"
        )
        rows = store.query(
            "SELECT target, COUNT(*), AVG(visible), AVG(box_height), AVG(surface_pixels), "
            "AVG(lidar_points), AVG(correct) FROM frames GROUP BY target ORDER BY target"
        )
        table = Table(show_header=True, title="per target, all frames")
        for col in (
            "target",
            "frames",
            "visible",
            "mean box height px",
            "mean surface px",
            "mean LiDAR points",
            "correct",
        ):
            table.add_column(col)
        for t, n, vis, bh, sp, lp, corr in rows:
            table.add_row(
                t,
                str(n),
                f"{vis:.0%}",
                f"{bh:.1f}",
                f"{sp:.0f}",
                f"{lp:.0f}",
                "-" if corr is None else f"{corr:.0%}",
            )
        console.print(table)
        by_attack = store.query(
            "SELECT json_extract(j.model, '$.name'), json_extract(j.attack, '$.name'), "
            "COUNT(*), AVG(f.correct) FROM frames f JOIN jobs j ON j.id = f.job_id "
            "WHERE f.correct IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
        )
        if by_attack:
            enc = dict(
                ((m, a), (n, failed))
                for m, a, n, failed in store.query(
                    "SELECT json_extract(j.model, '$.name'), json_extract(j.attack, '$.name'), "
                    "COUNT(*), SUM(e.failed) FROM encounters e JOIN jobs j ON j.id = e.job_id "
                    "WHERE e.failed IS NOT NULL GROUP BY 1, 2"
                )
            )
            table = Table(show_header=True, title="model verdicts by attack")
            for col in ("model", "attack", "frames judged", "correct", "encounters failed"):
                table.add_column(col)
            for m, a, n, corr in by_attack:
                en, ef = enc.get((m, a), (0, 0))
                table.add_row(m, a, str(n), f"{corr:.0%}", f"{ef}/{en}" if en else "-")
            console.print(table)
        for jid, err in store.query("SELECT id, error FROM jobs WHERE status='failed'"):
            console.print(f"[red]failed[/] {jid}: {err.splitlines()[-1]}", highlight=False)


@runs_app.command("export")
def runs_export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Folder (default: RUN_DIR/export).")] = None,
) -> None:
    """Export the jobs, frames and encounters tables."""
    from avrobust.evaluation.store import ResultsStore

    with ResultsStore(run_dir, create=False) as store:
        for path in store.export(fmt, out):
            console.print(str(path))


dataset_app = typer.Typer(help="Datasets from the simulator.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("build")
def dataset_build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder (resumed if present).")],
    frames: Annotated[int, typer.Option(help="Samples (one randomised scene each).")] = 1000,
    seed: Annotated[int, typer.Option(help="Dataset seed; use another for validation.")] = 0,
    width: Annotated[int, typer.Option(help="Image width.")] = 640,
    height: Annotated[int, typer.Option(help="Image height.")] = 480,
    fov: Annotated[float, typer.Option(help="Horizontal field of view, degrees.")] = 90.0,
    lidar: Annotated[bool, typer.Option("--lidar", help="Also write LiDAR sweeps.")] = False,
    workers: Annotated[int, typer.Option(help="Parallel processes.")] = 1,
    scenarios: Annotated[
        list[str] | None,
        typer.Option(
            "--scenarios",
            help="Scenario names or files to vary (repeat or comma-separate); "
            "default: procedural scenes.",
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help="Backend that renders the samples.")] = "embedded",
) -> None:
    """Render randomised scenes into a KITTI tree plus sign crops for classification."""

    from avrobust.data.dataset import DatasetConfig, build_dataset

    names = tuple(n.strip() for item in scenarios or () for n in item.split(",") if n.strip())
    cfg = DatasetConfig(
        frames=frames,
        seed=seed,
        width=width,
        height=height,
        fov=fov,
        lidar=lidar,
        scenarios=names,
        backend=backend,
    )
    with _count_bar("samples") as progress:
        task = progress.add_task("build", total=frames)
        counts = build_dataset(cfg, out, workers, lambda n: progress.advance(task, n))
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))


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
    epochs: Annotated[int, typer.Option(help="Passes over the training crops.")] = 14,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle schedule).")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    adversarial: Annotated[
        bool, typer.Option(help="PGD adversarial training (L-inf, --eps, --pgd-steps).")
    ] = False,
    eps: Annotated[float, typer.Option(help="PGD budget in [0, 1] pixel units.")] = 8 / 255,
    pgd_steps: Annotated[int, typer.Option(help="PGD steps per example (step eps/4).")] = 7,
    adv_fraction: Annotated[
        float, typer.Option(help="Share of each batch made adversarial.")
    ] = 0.5,
    init: InitWeights = None,
) -> None:
    """Train the traffic-sign classifier; rerun the same command to resume from the checkpoint.
    With --adversarial, PGD adversarial training (optionally fine-tuning --init weights)."""
    from avrobust.models.train_classifier import ClassifierTrainConfig, train_sign_classifier

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
    epochs: Annotated[int, typer.Option(help="Passes (one random crop per image).")] = 20,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 16,
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
    patch_steps: Annotated[int, typer.Option(help="Ascent steps of an optimised patch.")] = 4,
    patch_area: Annotated[
        str, typer.Option(help="Range of a patch's share of its object's box, LOW,HIGH.")
    ] = "0.1,0.3",
) -> None:
    """Train the camera object detector (cars, pedestrians, traffic signs); rerun the same
    command to resume from the checkpoint. With --adversarial, patch adversarial training
    (optionally fine-tuning --init weights)."""
    from avrobust.defences.patch_training import PatchTrainConfig
    from avrobust.models.train_detector import DetectorTrainConfig, train_camera_detector

    adv = None
    if adversarial:
        from avrobust.core.errors import ConfigError

        area = _floats(patch_area, "patch-area")
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
    epochs: Annotated[int, typer.Option(help="Passes (one random crop per sweep).")] = 10,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 8,
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
    spoof_points: Annotated[int, typer.Option(help="Spoofed returns per phantom.")] = 60,
    remove_points: Annotated[int, typer.Option(help="Removed returns per object.")] = 250,
) -> None:
    """Train the LiDAR 3D detector (cars, pedestrians); rerun the same command to resume.
    With --adversarial, LiDAR adversarial training (optionally fine-tuning --init weights)."""
    from avrobust.defences.lidar_training import LidarAdvConfig
    from avrobust.models.train_lidar import LidarTrainConfig, train_lidar_detector

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
    ] = ASSETS_MODELS / "camera_detector.pt",
    init: Annotated[
        Path | None,
        typer.Option(help="LiDAR detector weights to start from (painted inputs start at 0)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes (one random crop per sweep).")] = 10,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle schedule).")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Train the PointPainting fusion detector: the camera detector's class scores paint each
    point, a LiDAR detector learns from painted sweeps; rerun the same command to resume."""
    from avrobust.models.train_lidar import LidarTrainConfig, train_lidar_detector

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
    camera: Annotated[Path, typer.Option(help="Camera detector weights.")] = ASSETS_MODELS
    / "camera_detector.pt",
    lidar: Annotated[Path, typer.Option(help="LiDAR detector weights.")] = ASSETS_MODELS
    / "lidar_detector.pt",
    steps: Annotated[int, typer.Option(help="Full-batch optimisation steps.")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the head's initialisation.")] = 0,
) -> None:
    """Fit the late-fusion head (CLOCs-style) that re-scores the LiDAR detector's boxes with
    the camera detector's support."""
    from avrobust.models.train_late_fusion import LateFusionConfig, train_late_fusion

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


attack_app = typer.Typer(
    help="Physical attacks: optimise, then evaluate by re-rendering.", no_args_is_help=True
)
app.add_typer(attack_app, name="attack")


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


def _floats(text: str, name: str) -> tuple[float, ...]:
    from avrobust.core.errors import ConfigError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}", field=name) from None


def _input_transform(spec: str):
    """``NAME`` or ``NAME:VALUE`` to an input-transformation defence (its one parameter)."""
    from avrobust.core.errors import ConfigError
    from avrobust.defences.preprocess import InputTransform
    from avrobust.evaluation import registry

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
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 400,
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
) -> None:
    """Optimise a sticker perturbation on a sign against the sign classifier (the shipped one,
    or --classifier / --through: an adaptive attack on a defended one), save it as a patch, and
    evaluate it by painting it on the sign and rendering again."""
    import math as _math

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

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
        _floats(distances, "--distances"),
        _floats(angles, "--angles"),
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
        patch = run_sign_attack(
            scenario,
            surface,
            clf,
            true_class,
            target,
            mask_from_spec(mask, mask_steps),
            {
                "steps": steps,
                "eot": eot,
                "seed": seed,
                "printer": None if printer is None else str(printer),
                "through": None if through is None else _input_transform(through),
                "detector": det,
            },
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
            task = pr.add_task("eval", total=2 * n_views)
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
        _success_table(
            ev,
            f"success on {ev.clean_correct} views read correctly when clean",
            (ev.by_distance, ev.by_angle, ev.by_weather),
        )


def _success_table(ev, title: str, groups) -> None:
    table = Table(title=title)
    for col in ("condition", "views", "compositor", "re-rendered"):
        table.add_column(col)
    table.add_row(
        "all", str(ev.clean_correct), f"{ev.compositor_success:.0%}", f"{ev.rendered_success:.0%}"
    )
    for group in groups:
        for k, v in group.items():
            table.add_row(k, str(v["views"]), f"{v['compositor']:.0%}", f"{v['rendered']:.0%}")
    console.print(table)


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
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 300,
    batch: Annotated[int, typer.Option(help="Views per step.")] = 4,
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
        _floats(distances, "--distances"),
        _floats(angles, "--angles"),
        tuple(w for w in weathers.split(",") if w),
        _floats(laterals, "--laterals"),
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
        patch = run_detector_attack(
            scenario,
            surface,
            det,
            goal,
            category,
            mask_from_spec(mask, mask_steps),
            {
                "steps": steps,
                "batch": batch,
                "eot": eot,
                "seed": seed,
                "printer": None if printer is None else str(printer),
                "texture_res": texture_res,
                "schedule": schedule,
                "margin": margin,
            },
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
            task = pr.add_task("eval", total=2 * n_views)
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
        _success_table(
            ev,
            f"{goal} success on {ev.clean_correct} views the clean detector gets right",
            (ev.by_distance, ev.by_weather),
        )


export_app = typer.Typer(help="Print files of patches at true size.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("patch")
def export_patch_cmd(
    patch: Annotated[Path, typer.Argument(help="Patch file (.patch).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.pdf, .png, .tiff).")],
    width_cm: Annotated[
        float | None, typer.Option(help="Printed width (default: the patch's own).")
    ] = None,
    dpi: Annotated[int, typer.Option(help="Resolution of the printed image.")] = 300,
    fmt: Annotated[
        str | None, typer.Option("--format", help="pdf, png or tiff (default: from --out).")
    ] = None,
    page: Annotated[str, typer.Option(help="A4 or Letter (PDF).")] = "A4",
) -> None:
    """Write a patch at its true physical size, with crop marks, scale bar and markers."""
    from avrobust.export.print_sheet import export_patch

    path, lay = export_patch(patch, out, width_cm, dpi, fmt, page)
    pages = lay.tiles[0] * lay.tiles[1]
    console.print(
        f"{path}: {lay.width_mm / 10:.2f} x {lay.height_mm / 10:.2f} cm at {lay.dpi} dpi"
        + (f", {pages} {lay.page} pages" if path.suffix == ".pdf" else "")
    )


@export_app.command("chart")
def export_chart_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Chart file (.pdf or .png).")],
    palette: Annotated[str, typer.Option(help="Palette name or CSV file.")] = "printer30",
) -> None:
    """Print the palette as a colour chart with ArUco markers (for avrobust printer fit)."""
    from avrobust.attacks.printability import load_palette
    from avrobust.export.chart import write_chart

    console.print(str(write_chart(load_palette(palette), out)))


printer_app = typer.Typer(help="Printer colour calibration.", no_args_is_help=True)
app.add_typer(printer_app, name="printer")


@printer_app.command("fit")
def printer_fit(
    photo: Annotated[Path, typer.Argument(help="Photo of the printed chart.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Printer model to write (.json).")],
    palette: Annotated[str, typer.Option(help="The palette the chart was printed from.")] = (
        "printer30"
    ),
) -> None:
    """Find the chart in a photo, sample its swatches and fit the printer colour model."""
    from avrobust.attacks.printability import load_palette
    from avrobust.export.chart import fit_printer_model

    model = fit_printer_model(photo, load_palette(palette))
    model.save(out)
    console.print(f"{out}: RMS error {model.residual:.3f} over the swatches")


class _Cases:
    """A progress bar over attack cases (``total(n)`` once, then ``tick(k)``)."""

    def __init__(self, progress, task) -> None:
        self.progress, self.task = progress, task

    def total(self, n: int) -> None:
        self.progress.update(self.task, total=n)

    def __call__(self, k: int = 1) -> None:
        self.progress.advance(self.task, k)


def _count_bar(label: str):
    """A rich progress bar that counts items, with an ETA."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        f"[bold]{label}", BarColumn(), MofNCompleteColumn(), "ETA", TimeRemainingColumn(),
        console=console,
    )  # fmt: skip


@contextlib.contextmanager
def _case_progress(label: str):
    with _count_bar(label) as progress:
        yield _Cases(progress, progress.add_task(label, total=None))


def _register_lidar_attacks() -> None:
    from avrobust import cli_lidar

    cli_lidar.register(attack_app, console, _floats, _case_progress)


_register_lidar_attacks()


def _register_object_attack() -> None:
    from avrobust import cli_object

    cli_object.register(attack_app, console, _floats)


_register_object_attack()


def _register_attack_evaluation() -> None:
    from avrobust import cli_attack_eval

    def run_then_show(campaign: Path, out: Path, **kw) -> None:
        _run_campaign_cli(campaign, out, **kw)
        runs_show(out)

    cli_attack_eval.register(attack_app, console, _floats, _success_table, run_then_show)


_register_attack_evaluation()


def _register_report() -> None:
    from avrobust import cli_report

    cli_report.register(app, console)


_register_report()


def _register_defences() -> None:
    from avrobust import cli_defences

    cli_defences.register(app, console, _floats, _count_bar)


_register_defences()


def main() -> None:
    """Console-script entry: user errors print one line and exit 2, without a traceback."""
    try:
        app()
    except AvrobustError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
