"""``avrobust campaign plan``, ``avrobust run`` and ``avrobust runs list/show/export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from avrobust.cli.base import app, console

campaign_app = typer.Typer(
    help="Campaigns: the components they can name, and plans before running.", no_args_is_help=True
)
app.add_typer(campaign_app, name="campaign")
runs_app = typer.Typer(help="Run directories: list, show, export.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@campaign_app.command("components")
def campaign_components() -> None:
    """List the models, attacks and defences a campaign can name, with their parameters."""
    from avrobust.campaign.registry import describe

    table = Table(show_header=True)
    for col in ("kind", "name", "what (params)"):
        table.add_column(col, overflow="fold")
    for kind in ("model", "attack", "defence"):
        for c in describe(kind):
            table.add_row(kind, c.name, c.description)
    console.print(table)


@campaign_app.command("plan")
def campaign_plan(
    campaign: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    sample: Annotated[int, typer.Option(help="How many jobs to show.", min=0)] = 8,
) -> None:
    """Expand a campaign into jobs and print the count and a sample; runs nothing."""
    from collections import Counter

    from avrobust.campaign.run import plan, width_plan
    from avrobust.scenario.campaign import load_campaign

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
            j.id, j.scenario_name, cond, j.model["name"], _attack_name(j.attack), j.defence["name"]
        )
    console.print(table)
    target = load_campaign(campaign).target_width
    if target is not None:
        w = width_plan(jobs, target)
        verdict = "enough" if w.enough else "[bold red]too few[/]"
        console.print(
            f"target interval width {w.target:g}: {w.needed} drive-bys per model x attack x "
            f"defence cell needed (95% Wilson, at a 50% rate, the worst case); this campaign "
            f"gives {w.per_cell} ({verdict}: an interval up to {w.widest:.2f} wide)"
        )


@app.command("run")
def run(
    campaign: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (resumed if it exists).")],
    backend: Annotated[
        str | None, typer.Option(help="embedded or carla (default: the campaign's).")
    ] = None,
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    workers: Annotated[int, typer.Option(help="Parallel jobs (processes or Ray CPUs).", min=1)] = 1,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")
    ] = None,
    retries: Annotated[int, typer.Option(help="Extra tries for a failing job.", min=0)] = 0,
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
    controls: list[str] | None = None,
) -> None:
    """``avrobust run`` with a progress bar; ``attacks`` and ``controls`` replace the
    campaign's."""
    import time as _time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from avrobust.campaign.run import run_campaign

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

    try:
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
                controls=controls,
            )
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (avrobust.cli.main turns it into this)
        console.print(
            f"interrupted: every finished job is kept in {out}; run the same command again to "
            "resume"
        )
        raise typer.Exit(130) from None
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
    from avrobust.campaign.store import DB_NAME, ResultsStore

    table = Table(show_header=True)
    for col in ("run", "campaign", "done", "failed", "pending"):
        table.add_column(col)
    from avrobust.core.errors import AvrobustError, ConfigError

    if not root.is_dir():
        raise ConfigError("no such folder", file=root)
    unreadable = []
    for db in sorted(root.glob(f"*/{DB_NAME}")):
        try:  # one damaged store is named below, not the end of the list
            with ResultsStore(db.parent, create=False) as store:
                c = store.counts()
                name = store.meta("campaign") or "?"
        except AvrobustError as exc:
            unreadable.append(str(exc))
            continue
        table.add_row(db.parent.name, name, str(c["done"]), str(c["failed"]), str(c["pending"]))
    console.print(table)
    for line in unreadable:
        console.print(f"[red]unreadable:[/] {line}", highlight=False)


@runs_app.command("show")
def runs_show(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Summarise a run: jobs by status, frames, failures, and coverage by target."""
    from avrobust.campaign.store import ResultsStore, outcome_summary
    from avrobust.core.stats import clustered_rate, rate_of

    with ResultsStore(run_dir, create=False) as store:
        s = outcome_summary(store)
        c = s["jobs"]
        console.print(f"campaign [bold]{store.meta('campaign')}[/] in {run_dir}")
        console.print(
            f"jobs: {c['done']} done, {c['failed']} failed, {c['pending']} pending "
            f"of {c['total']}; {s['frames_rendered']} frames in {s['duration_s']:.1f} s"
        )
        frames = store.frames()
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
        for target, rows in _group(frames, lambda f: f.target).items():
            judged = [f.correct for f in rows if f.correct is not None]
            table.add_row(
                target,
                str(len(rows)),
                f"{_mean([f.visible for f in rows]):.0%}",
                f"{_mean([f.box_height for f in rows]):.1f}",
                f"{_mean([f.surface_pixels for f in rows]):.0f}",
                f"{_mean([f.lidar_points for f in rows]):.0f}",
                f"{_mean(judged):.0%}" if judged else "-",
            )
        console.print(table)
        jobs = {j.id: j for j in store.jobs()}

        def model_attack(r) -> tuple[str, str]:
            job = jobs[r.job_id]
            return job.model["name"], _attack_name(job.attack)

        by_attack = _group([f for f in frames if f.correct is not None], model_attack)
        if by_attack:
            enc = _group([e for e in store.encounters() if e.failed is not None], model_attack)
            table = Table(
                show_header=True,
                title="model verdicts by attack (95% intervals; frames clustered by drive-by)",
            )
            for col in ("model", "attack", "frames judged", "correct", "encounters failed"):
                table.add_column(col)
            for (m, a), rows in sorted(by_attack.items()):
                failed = [e.failed for e in enc.get((m, a), [])]
                per_job = _group(rows, lambda f: f.job_id)
                correct = clustered_rate(
                    [(sum(bool(f.correct) for f in fs), len(fs)) for fs in per_job.values()]
                )
                table.add_row(
                    m,
                    a,
                    str(len(rows)),
                    f"{correct.value:.0%} [{correct.low:.0%}, {correct.high:.0%}]",
                    str(rate_of(failed)) if failed else "-",
                )
            console.print(table)
        for job in (j for j in jobs.values() if j.status == "failed"):
            console.print(f"[red]failed[/] {job.id}: {job.error.splitlines()[-1]}", highlight=False)


def _attack_name(ref: dict) -> str:
    """An attack's registry name, marked as the report marks a matched control; escaped, as
    rich would read "[control: grey]" as markup and drop it."""
    from rich.markup import escape

    from avrobust.report.run_data import control_label

    control = ref.get("control")
    return escape(ref["name"] if control is None else control_label(ref["name"], control))


def _group(rows: list, key) -> dict:
    """Rows by key, keys sorted (as the summary tables list them)."""
    out: dict = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return dict(sorted(out.items()))


def _mean(values: list) -> float:
    return sum(values) / len(values) if values else 0.0


@runs_app.command("export")
def runs_export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Folder (default: RUN_DIR/export).")] = None,
) -> None:
    """Export the jobs, frames and encounters tables."""
    from avrobust.campaign.store import ResultsStore

    with ResultsStore(run_dir, create=False) as store:
        for path in store.export(fmt, out):
            console.print(str(path))


def run_then_show(campaign: Path, out: Path, **kw) -> None:
    """Run a campaign (as ``avrobust run``), then print its summary (as ``runs show``)."""
    _run_campaign_cli(campaign, out, **kw)
    runs_show(out)
