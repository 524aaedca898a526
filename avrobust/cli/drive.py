"""``avrobust drive``: one closed-loop drive of a scenario, with a model (and an attack and a
defence) as the car's perception, or the oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from avrobust.cli.base import app, console
from avrobust.core.errors import ConfigError


def parse_ref(text: str, kind: str) -> dict:
    """``NAME`` or ``NAME:key=value,key=value`` (values read as YAML scalars) as a campaign
    reference."""
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(
                f"--{kind} {text!r}: parameters are key=value, comma separated", field=kind
            )
        params[key.strip()] = yaml.safe_load(value) if value else ""
    return {"name": name.strip(), **({"params": params} if params else {})}


@app.command("drive")
def drive_command(
    scene: Annotated[str, typer.Argument(help="Scenario name or file (avrobust scenario list).")],
    model: Annotated[
        str,
        typer.Option(help="The car's perception: a model name[:k=v,...] (campaign components)."),
    ] = "sign-pipeline",
    attack: Annotated[str, typer.Option(help="An attack name[:k=v,...].")] = "none",
    defence: Annotated[str, typer.Option(help="A defence name[:k=v,...].")] = "none",
    oracle: Annotated[
        bool, typer.Option("--oracle", help="Drive on ground truth (same as --model oracle).")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the trace and the pictures.")
    ] = Path("drive"),
    seed: Annotated[int | None, typer.Option(help="Job seed (default: the scenario's).")] = None,
) -> None:
    """Drive a scenario closed-loop: the reference policy acts on what the model reports, the
    criteria (collisions, stop signs, speeding, time to collision, hard braking, route
    completion, driving score) are scored on what the car did. Writes trace.json,
    top_down.png and timeline.png."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from avrobust.campaign.closed_loop import run_drive
    from avrobust.core.files import atomic_write
    from avrobust.report.driving_figures import timeline, top_down
    from avrobust.scenario.library import load_scenario

    sc = load_scenario(scene)
    refs = (
        parse_ref("oracle" if oracle else model, "model"),
        parse_ref(attack, "attack"),
        parse_ref(defence, "defence"),
    )
    oracle = refs[0]["name"] == "oracle"
    limit = sc.driving.time_limit or (2 * sc.episode.frames / sc.episode.rate + 10)
    with Progress(
        TextColumn("driving"), BarColumn(), TextColumn("{task.completed:.1f} s"),
        TimeRemainingColumn(), console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("drive", total=limit)
        outcome = run_drive(
            sc, *refs, seed=seed,
            on_step=lambda f, d, rec: bar.update(task, completed=rec.t),
        )  # fmt: skip
    r = outcome.result
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "scenario": sc.name,
        "oracle": oracle,
        "components": outcome.job.components,
        "from_model": list(outcome.from_model),
        "result": r.to_dict(),
        "trace": outcome.trace.to_dict(),
    }
    with atomic_write(out / "trace.json", "w") as fh:
        json.dump(doc, fh)
    who = "oracle" if oracle else f"{refs[0]['name']} / {refs[1]['name']} / {refs[2]['name']}"
    top_down(outcome.trace, r, out / "top_down.png", f"{sc.name}: {who}")
    timeline(outcome.trace, r, out / "timeline.png", f"{sc.name}: {who}")
    table = Table(show_header=False, box=None)
    table.add_row("perception", who)
    if not oracle:
        table.add_row("from the model", ", ".join(outcome.from_model) or "nothing")
    table.add_row("driving score", f"{r.driving_score:.2f}")
    table.add_row("route completion", f"{100 * r.route_completion:.0f}%")
    for c in r.collisions:
        table.add_row(
            "collision",
            f"{c.actor} ({c.category}) at {c.relative_speed * 3.6:.0f} km/h, t = {c.t:.1f} s",
        )
    for s in r.stops:
        word = "stopped" if s.stopped else f"ran it (lowest {s.min_speed * 3.6:.0f} km/h)"
        table.add_row(f"stop sign {s.sign}", word)
    if r.min_ttc is not None:
        table.add_row("min time to collision", f"{r.min_ttc:.2f} s ({r.min_ttc_actor})")
    table.add_row("hard braking", f"{r.hard_brakes} (strongest {r.max_decel:.1f} m/s²)")
    if r.speeding_time:
        table.add_row(
            "speeding", f"{r.speeding_time:.1f} s, up to {r.speeding_max * 3.6:.0f} km/h over"
        )
    console.print(table)
    console.print(f"wrote {out / 'trace.json'}, {out / 'top_down.png'}, {out / 'timeline.png'}")
