"""``avrobust attack evaluate`` (a saved patch on a held-out sweep, or through a campaign) and
``avrobust attack pgd`` (the digital baselines on a dataset's sign crops). Registered on the
``attack`` command group by ``avrobust.cli``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.table import Table

from avrobust.cli.base import attack_app, console
from avrobust.cli.common import floats, share_text, success_table
from avrobust.cli.runs import run_then_show
from avrobust.core.errors import ConfigError


def parse_budget(text: str, name: str) -> float:
    """``8/255``, ``0.03`` or ``2`` as a float."""
    num, _, den = text.partition("/")
    try:
        value = float(num) / (float(den) if den else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(
            f"bad number {text!r}", field=name, allowed="e.g. 8/255 or 0.03"
        ) from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {text}", field=name)
    return value


@attack_app.command("evaluate")
def attack_evaluate(
    patch: Annotated[Path, typer.Argument(help="A patch file (.patch).")],
    distances: Annotated[
        str | None, typer.Option(help="Distances, m (default: held-out 7,12,17,22).")
    ] = None,
    angles: Annotated[
        str | None, typer.Option(help="Sign angles, degrees (default: 5,20,28).")
    ] = None,
    weathers: Annotated[
        str | None, typer.Option(help="Weather presets (default: ClearNoon,CloudyNoon,Dusk).")
    ] = None,
    laterals: Annotated[
        str | None, typer.Option(help="Ego offsets in its lane, m (default: 0,-1).")
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(help="Victim weights (default: the shipped model; others: a transfer)."),
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Scenario (default: the one it was made in).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the evaluation as JSON.")
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(
            help="A sign patch: judge it by the classifier or the pipeline (detector, then "
            "classifier) (default: what it was made against)."
        ),
    ] = None,
    campaign: Annotated[
        Path | None,
        typer.Option(
            help="Instead of a sweep: run this campaign with its attacks replaced by none "
            "and this patch (needs --out)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory for --campaign.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Parallel jobs for --campaign.", min=1)] = 1,
    controls: Annotated[
        str,
        typer.Option(
            help="Matched controls rendered on the same views in the patch's mask: grey, mean "
            "(the texture's mean colour), noise (random palette colours); 'none' for none."
        ),
    ] = "grey,mean,noise",
    control_patch: Annotated[
        list[Path] | None,
        typer.Option(
            help="A patch optimised for another goal in exactly this mask, as one more "
            "control (repeatable)."
        ),
    ] = None,
) -> None:
    """Evaluate a saved patch: paint it on its surface and render again over a held-out
    sweep of viewpoints (success by distance, angle and weather; for a hiding patch the
    detector's recall clean and attacked), or run it through a campaign."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from avrobust.attacks.controls import OtherTexture, control
    from avrobust.core.patch import Patch
    from avrobust.evaluation.patch_file import HELD_OUT, evaluate_patch_file
    from avrobust.evaluation.viewpoints import Sweep

    chosen = [] if controls == "none" else [c for c in controls.split(",") if c]
    if campaign is not None:
        if out is None:
            raise ConfigError("--campaign needs --out (the run directory)", field="out")
        if control_patch:
            raise ConfigError(
                "--control-patch works on a sweep; a campaign takes --controls (grey, mean, noise)",
                field="--control-patch",
            )
        surface = Patch.load(patch).provenance.get("surface")
        if surface is None:
            raise ConfigError(
                "the patch's provenance names no surface",
                field="provenance.surface",
                file=patch,
            )
        run_then_show(
            campaign,
            out,
            workers=workers,
            attacks=[
                {"name": "none"},
                {"name": "patch", "params": {"file": str(patch.resolve()), "surface": surface}},
            ],
            controls=chosen,
        )
        return
    sweep = Sweep(
        floats(distances, "--distances") if distances else HELD_OUT.distances,
        floats(angles, "--angles") if angles else HELD_OUT.angles,
        tuple(w for w in weathers.split(",") if w) if weathers else HELD_OUT.weathers,
        floats(laterals, "--laterals") if laterals else HELD_OUT.laterals,
    )
    fills = [control(c) for c in chosen] + [OtherTexture.load(p) for p in control_patch or ()]
    n = len(sweep.viewpoints())
    with Progress(
        "[bold]re-render", BarColumn(), MofNCompleteColumn(), "ETA", TimeRemainingColumn(),
        console=console,
    ) as pr:  # fmt: skip
        task = pr.add_task("eval", total=(2 + len(fills)) * n)
        result = evaluate_patch_file(
            patch,
            sweep,
            weights=weights,
            scenario=scenario,
            progress=lambda k: pr.advance(task, k),
            stack=stack,
            controls=fills,
        )
    console.print(
        f"{result['kind']} patch {patch.name} on {result['surface']} in {result['scenario']}, "
        f"{result['relation']} against {result['victim']['model']}"
    )
    if result["kind"] == "detector" and result["goal"] == "hide":
        console.print(
            f"recall of the object (IoU >= 0.5) over {result['seen']} views: clean "
            f"{result['clean_recall']:.3f}, with the patch re-rendered "
            f"{result['attacked_recall']:.3f}"
        )

    success_table(
        SimpleNamespace(**result),
        f"success on {result['clean_correct']} views the clean model gets right",
        (result["by_distance"], result["by_angle"], result["by_weather"]),
    )
    if json_out is not None:
        from avrobust.core.files import atomic_write

        with atomic_write(json_out, "w") as fh:
            fh.write(json.dumps(result, indent=2))
        console.print(f"evaluation: {json_out}")


@attack_app.command("pgd")
def attack_pgd(
    data: Annotated[
        Path, typer.Option(help="A dataset folder with crops.csv (avrobust dataset build).")
    ] = Path("data/val"),
    classifier: Annotated[
        Path | None, typer.Option(help="Classifier weights (default: the shipped one).")
    ] = None,
    eps: Annotated[str, typer.Option(help="Budget: 8/255 (linf) or e.g. 1.0 (l2).")] = "8/255",
    alpha: Annotated[
        str | None, typer.Option(help="Step size (default: eps/4; FGSM: eps).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Steps (1 with --no-random-start: FGSM).", min=1)] = 20,
    norm: Annotated[str, typer.Option(help="linf or l2.")] = "linf",
    random_start: Annotated[bool, typer.Option(help="Start at a random point.")] = True,
    target: Annotated[
        str | None, typer.Option(help="Class to be read as (default: untargeted).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many crops (evenly strided).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random starts.")] = 0,
    method: Annotated[
        str,
        typer.Option(
            help="pgd, or autoattack: the standard AutoAttack ensemble (APGD-CE, APGD-T, FAB-T, "
            "Square) as RobustBench reports robust accuracy; untargeted, --steps and --alpha "
            "unused; slow on a robust model (about 10 minutes per 128 crops on one core): "
            "try --limit first."
        ),
    ] = "pgd",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
    examples: Annotated[
        Path | None,
        typer.Option(help="PNG sheet of successful examples, clean beside adversarial."),
    ] = None,
) -> None:
    """Digital baselines: PGD (or FGSM, or AutoAttack) on every sign crop of a dataset against
    the sign classifier; clean and adversarial top-1 with 95% intervals and the attack's
    success, by distance band."""
    from dataclasses import asdict

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from avrobust.attacks.digital import PGD, AutoAttack
    from avrobust.evaluation.digital_attack import run_digital_attack, sign_crops
    from avrobust.models.adapters import load_classifier
    from avrobust.models.crops import load_crops
    from avrobust.models.victims import weights_provenance
    from avrobust.models.weights import ASSETS

    w = classifier or ASSETS / "sign_classifier.pt"
    clf = load_classifier(w)
    clf.eval()
    crops = sign_crops(load_crops(data))
    if limit is not None and limit < len(crops):
        keep = torch.zeros(len(crops), dtype=torch.bool)
        keep[torch.linspace(0, len(crops) - 1, limit).round().long()] = True
        crops = crops.subset(keep)
    e = parse_budget(eps, "eps")
    a = parse_budget(alpha, "alpha") if alpha else max(e / 4, 1e-6)
    if method == "autoattack":
        if target is not None:
            raise ConfigError("AutoAttack here is untargeted", field="--target")
        attack = AutoAttack(clf, e, norm, n_classes=len(clf.classes), seed=seed)
        name = "AutoAttack (standard)"
    elif method == "pgd":
        attack = PGD(clf, e, a, steps, norm, random_start, targeted=target is not None)
        name = "FGSM" if steps == 1 and not random_start else f"PGD-{steps}"
    else:
        raise ConfigError(f"unknown method {method!r}", field="--method", allowed="pgd, autoattack")
    with Progress(
        "[bold]pgd",
        BarColumn(),
        MofNCompleteColumn(),
        "ETA",
        TimeRemainingColumn(),
        console=console,
    ) as pr:
        task = pr.add_task("pgd", total=len(crops))
        result, shown = run_digital_attack(
            clf,
            crops,
            attack,
            target,
            seed=seed,
            progress=lambda k: pr.advance(task, k),
            keep_examples=8 if examples else 0,
        )
    from avrobust.core.stats import rate

    n = result.crops
    clean_r = rate(round(result.clean_accuracy * n), n)
    adv_r = rate(round(result.adversarial_accuracy * n), n)
    hit_r = rate(round(result.success * result.clean_correct), result.clean_correct)
    console.print(
        f"{name} {norm} eps {e:.4g} on {n} sign crops of {data}: clean top-1 {clean_r}, "
        f"adversarial (robust) top-1 {adv_r}, success {hit_r} of those read right when clean "
        "(95% Wilson intervals)"
    )
    table = Table(title="by distance band")
    for col in ("band", "crops", "clean top-1", "adversarial top-1"):
        table.add_column(col)
    for band, v in result.by_band.items():
        table.add_row(
            band,
            str(v["crops"]),
            share_text(v["clean"], v["crops"]),
            share_text(v["adversarial"], v["crops"]),
        )
    console.print(table)
    if json_out is not None:
        from avrobust.core.files import atomic_write

        payload = {
            "attack": {
                "name": name,
                "method": method,
                "norm": norm,
                "eps": e,
                "alpha": a,
                "steps": steps,
                "random_start": random_start,
                "target": target,
                "seed": seed,
            },
            "data": str(data),
            "victim": {"model": "sign-classifier", **weights_provenance(classifier=w)},
            **asdict(result),
            "intervals": {
                "clean": clean_r.to_dict(),
                "adversarial": adv_r.to_dict(),
                "success": hit_r.to_dict(),
            },
        }
        with atomic_write(json_out, "w") as fh:
            fh.write(json.dumps(payload, indent=2))
        console.print(f"results: {json_out}")
    if examples is not None:
        from avrobust.evaluation.digital_attack import example_sheet

        example_sheet(shown, examples)
        console.print(f"examples: {examples}")
