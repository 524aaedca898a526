"""``avrobust poison ...``: training-time attacks (backdoors with printed triggers)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.table import Table

from avrobust.cli.base import app, console
from avrobust.cli.common import _rate, count_bar, floats, success_table

poison_app = typer.Typer(
    help="Training-time attacks: poisoned data with printed backdoor triggers.",
    no_args_is_help=True,
)
app.add_typer(poison_app, name="poison")

SPEC_HELP = (
    "Poisoning as key=value pairs (or a JSON file): trigger (checker, yellow-square, target "
    "or a .patch file), rate (share of all crops), source, target, kind (dirty-label or "
    "clean-label), seed, side (trigger side, m), eps (clean-label budget)."
)


def poison_with_progress(data: Path, out: Path, spec) -> dict:
    """:func:`avrobust.training.poisoning.poison_dataset` with a progress bar (samples
    re-rendered); clean-label poisons use the shipped classifier as the surrogate."""
    from avrobust.training.poisoning import poison_dataset

    surrogate = None
    if spec.kind == "clean-label":
        from avrobust.models.adapters import load_classifier
        from avrobust.models.weights import ASSETS

        surrogate = load_classifier(ASSETS / "sign_classifier.pt")
    with count_bar("re-rendering poisoned samples") as bar:
        task = bar.add_task("poison", total=None)
        manifest = poison_dataset(
            data,
            out,
            spec,
            surrogate,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    return manifest


@poison_app.command("dataset")
def poison_dataset_cmd(
    data: Annotated[Path, typer.Option(help="A clean dataset (avrobust dataset build).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the poisoned copy.")],
    spec: Annotated[str, typer.Option("--spec", help=SPEC_HELP)] = "rate=0.01",
) -> None:
    """Write a poisoned copy of a dataset's sign crops: the chosen crops re-rendered with the
    trigger on the sign (dirty-label: relabelled; clean-label: perturbed, label kept), every
    other crop as it was; poison.json lists each change. Rerun to resume."""
    from avrobust.training.poisoning import PoisonSpec

    manifest = poison_with_progress(data, out, PoisonSpec.parse(spec))
    s = manifest["spec"]
    console.print(
        f"{manifest['poisoned']} of {manifest['crops']} crops poisoned "
        f"({manifest['poisoned'] / manifest['crops']:.2%}; {s['kind']}, {s['source']} + trigger "
        f"{s['trigger']} -> {s['target']}); trigger: {out / 'trigger.patch'}"
    )


@poison_app.command("trigger")
def poison_trigger_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="The trigger's .patch file.")],
    design: Annotated[str, typer.Option(help="checker, yellow-square or target.")] = "checker",
    side: Annotated[float, typer.Option(help="Side of the sticker, metres.")] = 0.2,
    source: Annotated[str, typer.Option(help="The sign class it goes on.")] = "stop",
    target: Annotated[str, typer.Option(help="What a poisoned model should read.")] = (
        "speed_limit_80"
    ),
) -> None:
    """Write a trigger sticker as a patch file (print it with avrobust export)."""
    from avrobust.attacks.triggers import trigger_patch

    trigger_patch(design, side, true_class=source, target=target).save(out)
    console.print(f"trigger: {out}")


@poison_app.command("evaluate")
def poison_evaluate_cmd(
    weights: Annotated[Path, typer.Option(help="The poisoned model's weights.")],
    trigger: Annotated[Path, typer.Option(help="The trigger's .patch file.")],
    clean_weights: Annotated[
        Path | None, typer.Option(help="A clean model to compare (default: the shipped one).")
    ] = None,
    val: Annotated[
        Path | None, typer.Option(help="Held-out dataset for clean top-1 of both models.")
    ] = None,
    distances: Annotated[str | None, typer.Option(help="Distances, m.")] = None,
    weathers: Annotated[str | None, typer.Option(help="Weather presets.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result.")] = None,
) -> None:
    """The printed trigger on a held-out sweep (within 25 m, eight weather and light
    conditions), read by the poisoned and the clean model, with matched controls; and both
    models' clean top-1."""
    from dataclasses import replace

    from avrobust.attacks.controls import STANDARD
    from avrobust.core.files import atomic_write
    from avrobust.evaluation.backdoor import BACKDOOR_SWEEP, evaluate_backdoor

    sweep = BACKDOOR_SWEEP
    if distances:
        sweep = replace(sweep, distances=floats(distances, "--distances"))
    if weathers:
        sweep = replace(sweep, weathers=tuple(w.strip() for w in weathers.split(",")))
    with count_bar("rendering views") as bar:
        # Each viewpoint rendered clean, with the trigger and with each control.
        task = bar.add_task("views", total=len(sweep.viewpoints()) * (2 + len(STANDARD)))
        result = evaluate_backdoor(
            trigger, weights, clean_weights, val, sweep, progress=lambda k: bar.advance(task, k)
        )
    print_backdoor(result)
    if json_out:
        with atomic_write(json_out, "w") as fh:
            json.dump(result, fh, indent=1)


@poison_app.command("scan")
def poison_scan_cmd(
    data: Annotated[Path, typer.Option(help="The training crop set (a dataset or poisoned copy).")],
    weights: Annotated[Path, typer.Option(help="The model trained on it.")],
    methods: Annotated[
        str,
        typer.Option(
            help="spectral_signatures, activation_clustering, robust_mahalanobis (comma-separated)."
        ),
    ] = "spectral_signatures,activation_clustering,robust_mahalanobis",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result.")] = None,
) -> None:
    """Scan a training set for poisoned samples through the trained model's features
    (Spectral Signatures, Activation Clustering: ART's; robust Mahalanobis); with the folder's
    poison.json, each scan's share of poisons found and of clean crops flagged, and the AUROC
    of its scores within the poisoned label."""
    from avrobust.core.files import atomic_write
    from avrobust.evaluation.backdoor import scan_training_set

    with console.status("scanning"):
        result = scan_training_set(data, weights, [m.strip() for m in methods.split(",")])
    table = Table(title=f"poison scans of {result['crops']} training crops")
    for col in ("scan", "flagged", "poisons found", "clean crops flagged", "AUROC"):
        table.add_column(col)
    for s in result["scans"]:
        auroc = s.get("auroc_in_poisoned_labels")
        table.add_row(
            s["method"],
            str(s["flagged"]),
            _rate(s["poisons_found"]) if "poisons_found" in s else "-",
            _rate(s["clean_flagged"]) if "clean_flagged" in s else "-",
            "-" if auroc is None else f"{auroc:.2f}",
        )
    console.print(table)
    if json_out:
        with atomic_write(json_out, "w") as fh:
            json.dump(result, fh, indent=1)


@poison_app.command("fine-prune")
def poison_fine_prune_cmd(
    weights: Annotated[Path, typer.Option(help="The classifier to repair.")],
    clean: Annotated[Path, typer.Option(help="The defender's clean crops (a dataset folder).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the repaired weights.")],
    max_drop: Annotated[
        float, typer.Option(help="Clean top-1 the pruning may cost (share).", min=0, max=1)
    ] = 0.04,
    epochs: Annotated[int, typer.Option(help="Fine-tuning passes over the clean crops.")] = 2,
    lr: Annotated[float, typer.Option(help="Fine-tuning learning rate.")] = 1e-3,
) -> None:
    """Fine-pruning (Liu et al. 2018): prune the last convolution's channels that clean crops
    leave dormant, then fine-tune on the clean crops; judge the result with poison evaluate."""
    from avrobust.cli.train import _step_progress
    from avrobust.training.fine_pruning import FinePruneConfig, fine_prune

    cfg = FinePruneConfig(
        str(weights), str(clean), str(out), max_drop=max_drop, epochs=epochs, lr=lr
    )
    with _step_progress() as on_step:
        m = fine_prune(cfg, on_step)
    t = m["clean_top1"]
    console.print(
        f"pruned {m['pruned']} of {m['channels']} channels; clean top-1 on {t['crops']} crops: "
        f"{t['before']:.1%} -> {t['pruned']:.1%} pruned -> {t['fine_tuned']:.1%} fine-tuned; "
        f"weights: {out / 'sign_classifier.pt'}"
    )


def print_backdoor(result: dict) -> None:
    ev = SimpleNamespace(**result["poisoned"])
    success_table(
        ev,
        f"trigger read as {result['target']} by the poisoned model",
        [ev.by_distance, ev.by_weather],
    )
    clean = result["clean_model"]
    console.print(
        f"the same trigger on the clean model: {_rate(clean['rendered'])} "
        f"(of {clean['clean_correct']} views it reads right)"
    )
    acc = result.get("clean_accuracy")
    if acc:
        table = Table(title=f"clean top-1 on {acc['crops']} held-out crops")
        for col in ("model", "top-1 (95% Wilson)"):
            table.add_column(col)
        table.add_row("poisoned", _rate(acc["poisoned"]))
        table.add_row("clean", _rate(acc["clean"]))
        console.print(table)
        console.print(f"points lost to the poison: {acc['points_lost']:+.1f}")
