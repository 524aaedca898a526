"""``avrobust dataset build``: simulator data as a KITTI tree and sign crops."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avrobust.cli.base import app, console
from avrobust.cli.common import count_bar

dataset_app = typer.Typer(help="Datasets from the simulator.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("build")
def dataset_build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder (resumed if present).")],
    frames: Annotated[int, typer.Option(help="Samples (one randomised scene each).", min=1)] = 1000,
    seed: Annotated[int, typer.Option(help="Dataset seed; use another for validation.")] = 0,
    width: Annotated[int, typer.Option(help="Image width.", min=1, max=8192)] = 640,
    height: Annotated[int, typer.Option(help="Image height.", min=1, max=8192)] = 480,
    fov: Annotated[float, typer.Option(help="Horizontal field of view, degrees.")] = 90.0,
    lidar: Annotated[bool, typer.Option("--lidar", help="Also write LiDAR sweeps.")] = False,
    workers: Annotated[int, typer.Option(help="Parallel processes.", min=1)] = 1,
    scenarios: Annotated[
        list[str] | None,
        typer.Option(
            "--scenarios",
            help="Scenario names or files to vary (repeat or comma-separate); "
            "default: procedural scenes.",
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help="Backend that renders the samples.")] = "embedded",
    sign_types: Annotated[
        str,
        typer.Option(
            "--sign-types",
            help="Sign classes to place: 'trained' (the classifier's), 'unseen' (real signs it "
            "never saw, to score runtime monitors on) or a comma-separated list.",
        ),
    ] = "trained",
) -> None:
    """Render randomised scenes into a KITTI tree plus sign crops for classification."""

    from avrobust.data.dataset import DatasetConfig, build_dataset, parse_sign_types

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
        sign_types=parse_sign_types(sign_types),
    )
    with count_bar("samples") as progress:
        task = progress.add_task("build", total=frames)
        counts = build_dataset(cfg, out, workers, lambda n: progress.advance(task, n))
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
