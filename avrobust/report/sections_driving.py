"""The report's vehicle-level section (closed-loop campaigns): what the car did under each
stack and attack, with the oracle beside; rates with their intervals; the clean stack's stops
by condition; and, for the drives that went wrong, the top-down view and the timeline."""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from avrobust.core.stats import mcnemar, rate
from avrobust.driving.criteria import DriveResult
from avrobust.driving.trace import Trace
from avrobust.report.document import Bullets, Figure, Paragraph, Section, Table
from avrobust.report.run_data import JobInfo, RunData, component_label

NEAR_MISS_TTC = 1.0  # seconds
MAX_FIGURES = 4  # failed drives pictured


def _results(data: RunData) -> list[tuple[JobInfo, DriveResult]]:
    return [(j, DriveResult.from_dict(d.result)) for j, d in data.drives if j.status == "done"]


def _near_miss(r: DriveResult) -> bool:
    return not r.collided and r.near_miss(NEAR_MISS_TTC)


def _stack(j: JobInfo) -> tuple[str, str, str]:
    return (j.scenario, j.model, j.defence)


def driving_section(data: RunData) -> Section | None:
    drives = _results(data)
    if not drives:
        return None
    sec = Section("driving", "What the car did (closed loop)")
    sec.blocks.append(
        Paragraph(
            "Every job of this campaign was driven closed-loop: the reference policy (docs/"
            "driving.md) drove on what the stack reported (categories the model does not "
            "perceive came from ground truth), and the criteria were scored on the trajectory. "
            "Model 'oracle' drives on ground truth: what it fails is the planner's limit, not "
            "perception's. Stop-sign violation: no standstill within 10 m before the line; near "
            f"miss: minimum time to collision under {NEAR_MISS_TTC:g} s without contact; hard "
            "braking: deceleration over 4 m/s²; driving score: route completion times the CARLA "
            "leaderboard's penalties. Rates are drive-bys with 95% Wilson intervals."
        )
    )
    sec.blocks.append(_outcomes(drives))
    paired = _paired(drives)
    if paired is not None:
        sec.blocks.append(paired)
    by_cond = _by_condition(drives)
    if by_cond is not None:
        sec.blocks.append(by_cond)
    fail_safe = _fail_safe(data)
    if fail_safe is not None:
        sec.blocks.append(fail_safe)
    sec.blocks += _pictures(data, drives)
    return sec


def _outcomes(drives: list[tuple[JobInfo, DriveResult]]) -> Table:
    groups: dict[tuple, list[DriveResult]] = defaultdict(list)
    for j, r in drives:
        groups[(*_stack(j), j.attack)].append(r)
    rows = []
    for (scenario, model, defence, attack), rs in sorted(groups.items()):
        judged = [r for r in rs if r.stops]
        rows.append(
            [
                scenario,
                model,
                defence,
                attack,
                str(len(rs)),
                str(rate(sum(r.ran_stop for r in judged), len(judged))) if judged else "-",
                str(rate(sum(r.collided for r in rs), len(rs))),
                str(rate(sum(_near_miss(r) for r in rs), len(rs))),
                str(rate(sum(r.hard_brakes > 0 for r in rs), len(rs))),
                f"{mean(r.route_completion for r in rs):.0%}",
                f"{mean(r.driving_score for r in rs):.2f}",
            ]
        )
    return _compact(
        [
            "scenario",
            "model",
            "defence",
            "attack",
            "drives",
            "ran the stop sign",
            "collided",
            "near miss",
            "hard braking",
            "route done",
            "driving score",
        ],
        rows,
        "Vehicle-level outcomes by stack and attack (rates: drive-bys, 95% interval).",
        key="driving_outcomes",
    )


def _fail_safe(data: RunData) -> Table | None:
    """Where a defence's fail-safe changed what the car did: drives it acted in, and the
    share of driving time whose decision was its own (one minus availability)."""
    from avrobust.driving.fail_safe import changed_by_fail_safe

    groups: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    for j, d in data.drives:
        if j.status != "done":
            continue
        steps = Trace.from_dict(d.trace).steps
        groups[(*_stack(j), j.attack)].append(
            (sum(changed_by_fail_safe(s) for s in steps), len(steps))
        )
    if not any(c for g in groups.values() for c, _ in g):
        return None
    rows = []
    for (scenario, model, defence, attack), g in sorted(groups.items()):
        changed, total = sum(c for c, _ in g), sum(n for _, n in g)
        rows.append(
            [scenario, model, defence, attack, str(len(g)),
             str(rate(sum(c > 0 for c, _ in g), len(g))),
             f"{changed / max(total, 1):.1%}", f"{1 - changed / max(total, 1):.1%}"]
        )  # fmt: skip
    return _compact(
        ["scenario", "model", "defence", "attack", "drives", "fail-safe acted",
         "time it decided", "availability"],
        rows,
        "The fail-safe's activations: drives in which a doubted sign taken as the restrictive "
        "class, or the minimal-risk manoeuvre, decided a step; the share of driving time it "
        "decided (each activation's cause is in the drive's timeline).",
        key="driving_fail_safe",
    )  # fmt: skip


def _added_near_miss(r: DriveResult, clean: DriveResult) -> bool:
    return _near_miss(r) and not _near_miss(clean)


def _added_hard_braking(r: DriveResult, clean: DriveResult) -> bool:
    return r.hard_brakes > 0 and not clean.hard_brakes


def _failed(r: DriveResult, clean: DriveResult | None = None) -> bool:
    """A drive went wrong: it ran a stop sign or collided, or (beside its clean twin) came
    within a near miss or braked hard (a phantom's cost) where the clean drive did not."""
    added = clean is not None and (_added_hard_braking(r, clean) or _added_near_miss(r, clean))
    return r.ran_stop or r.collided or added


def _paired(drives: list[tuple[JobInfo, DriveResult]]) -> Table | None:
    """Each attack against its clean twins (same scenario, conditions, model, defence): the
    share of the drive-bys whose clean twin stopped that the attack made run the stop, the
    collisions, near misses and hard braking the attack added, McNemar's exact p on the paired
    failures;
    and against its matched controls in the same cells, whether the optimised pattern did more
    than its mask painted plainly (or its budget spent at random) would."""
    clean = {j.cell: r for j, r in drives if j.attack == "none"}
    # A control's drives by (cell, the label of the attack it controls): name -> result.
    controls: dict[tuple, dict[str, DriveResult]] = defaultdict(dict)
    for j, r in drives:
        if j.attack_ref.get("control") is not None:
            plain = {k: v for k, v in j.attack_ref.items() if k != "control"}
            controls[(j.cell, component_label(plain))][j.attack_ref["control"]] = r
    groups: dict[tuple, list[tuple[JobInfo, DriveResult, DriveResult]]] = defaultdict(list)
    for j, r in drives:
        if j.attack != "none" and j.cell in clean:
            groups[(*_stack(j), j.attack)].append((j, clean[j.cell], r))
    if not groups:
        return None
    rows = []
    for (scenario, model, defence, attack), triples in sorted(groups.items()):
        pairs = [(c, a) for _, c, a in triples]
        stopped = [(c, a) for c, a in pairs if c.stops and not c.ran_stop]
        fail_c = [_failed(c) for c, _ in pairs]
        fail_a = [_failed(a, c) for c, a in pairs]
        beyond = []
        names = sorted({n for j, _, _ in triples for n in controls[(j.cell, attack)]})
        for name in names:
            # (clean, control, attack) for the cells where all three were driven
            trio = [
                (c, controls[(j.cell, attack)][name], a)
                for j, c, a in triples
                if name in controls[(j.cell, attack)]
            ]
            f_ctl = [_failed(k, c) for c, k, _ in trio]
            f_att = [_failed(a, c) for c, _, a in trio]
            worse = sum(x and not y for x, y in zip(f_att, f_ctl, strict=True))
            better = sum(y and not x for x, y in zip(f_att, f_ctl, strict=True))
            beyond.append(f"{name}: +{worse} / -{better}, p {mcnemar(f_ctl, f_att):.3g}")
        rows.append(
            [
                scenario, model, defence, attack, str(len(pairs)),
                str(rate(sum(a.ran_stop for _, a in stopped), len(stopped))) if stopped else "-",
                f"{sum(a.collided and not c.collided for c, a in pairs)}",
                f"{sum(_added_near_miss(a, c) for c, a in pairs)}",
                f"{sum(_added_hard_braking(a, c) for c, a in pairs)}",
                f"{mcnemar(fail_c, fail_a):.3g}",
                "; ".join(beyond) or "-",
            ]
        )  # fmt: skip
    return _compact(
        [
            "scenario",
            "model",
            "defence",
            "attack",
            "pairs",
            "ran the stop where clean stopped",
            "collisions added",
            "near misses added",
            "hard braking added",
            "McNemar p (vs clean)",
            "vs its control: drives failed only under the attack / only under the control",
        ],
        rows,
        "Each attack against its clean twin drive (same conditions, model and defence), and "
        "against its matched control (the same mask or budget, not optimised). A failed drive "
        "ran a stop sign or collided, or came within a near miss or braked hard where its clean "
        "twin did not.",
        key="driving_paired",
    )


def _by_condition(drives: list[tuple[JobInfo, DriveResult]]) -> Table | None:
    groups: dict[tuple, list[DriveResult]] = defaultdict(list)
    for j, r in drives:
        if j.attack == "none":
            groups[(j.scenario, j.model, j.defence, j.weather, j.light)].append(r)
    if len({k[3:] for k in groups}) < 2:
        return None
    rows = []
    for (scenario, model, defence, weather, light), rs in sorted(groups.items()):
        judged = [r for r in rs if r.stops]
        rows.append(
            [
                scenario, model, defence, weather, light, str(len(rs)),
                str(rate(sum(not r.ran_stop for r in judged), len(judged))) if judged else "-",
                str(rate(sum(r.collided for r in rs), len(rs))),
            ]
        )  # fmt: skip
    return _compact(
        [
            "scenario",
            "model",
            "defence",
            "weather",
            "light",
            "drives",
            "stopped at the stop sign",
            "collided",
        ],
        rows,
        "Clean stacks by condition.",
        key="driving_by_condition",
    )


def _pictures(data: RunData, drives: list[tuple[JobInfo, DriveResult]]) -> list:
    from avrobust.report.driving_figures import timeline, top_down

    failed = [(j, r) for j, r in drives if j.model != "oracle" and (r.collided or r.ran_stop)]
    # Attacks first, then their controls, then clean drives; collisions first within each.
    failed.sort(
        key=lambda jr: (
            jr[0].attack == "none",
            jr[0].attack_ref.get("control") is not None,
            not jr[1].collided,
            jr[0].index,
        )
    )
    if not failed:
        return [Paragraph("No drive of a model's stack ran a stop sign or collided.", "note")]
    traces = {j.id: d for j, d in data.drives}
    out: list = [
        Paragraph(
            f"{len(failed)} drives of a model's stack ran a stop sign or collided; the first "
            f"{min(len(failed), MAX_FIGURES)} (attacks, then controls, then clean drives; "
            "collisions first) are shown."
        )
    ]
    for j, r in failed[:MAX_FIGURES]:
        trace = Trace.from_dict(traces[j.id].trace)
        what = f"{j.scenario} ({j.conditions_text}): {j.model} / {j.attack} / {j.defence}"
        out.append(Figure(top_down(trace, r, title=what), f"From above: {what}.", key=f"td_{j.id}"))
        out.append(Figure(timeline(trace, r, title=what), f"Over time: {what}.", key=f"tl_{j.id}"))
        frames = _camera_frames(data, j, trace.dt)
        if frames is not None:
            out.append(frames)
    items = []
    for j, r in failed[MAX_FIGURES:]:
        bits = [
            f"collided with {c.actor} at {c.relative_speed * 3.6:.0f} km/h" for c in r.collisions
        ]
        bits += [f"ran {s.sign}" for s in r.stops if not s.stopped]
        items.append(
            f"{j.scenario} ({j.conditions_text}), {j.model} / {j.attack}: {'; '.join(bits)}"
        )
    if items:
        out.append(Bullets(items))
    return out


def _camera_frames(data: RunData, j: JobInfo, dt: float) -> Figure | None:
    """What the camera saw: the clean twin's frame and this drive's first frame where
    perception failed on the target (the runner keeps both, as in open loop)."""
    from avrobust.report import figures

    twin = next((o for o in data.done if o.cell == j.cell and o.attack == "none"), None)
    tiles = []
    for job, role, what in ((twin, "window", "clean twin"), (j, "failure", "this drive")):
        if job is not None and (job.id, role) in data.pictures:
            frame, path = data.pictures[(job.id, role)]
            img = figures.read_picture(path)
            if img is not None:
                label = f"{what}, t = {frame * dt:.1f} s"
                label += ", first missed target" if role == "failure" else ""
                tiles.append((label, img))
    if not any("this drive" in t[0] for t in tiles):
        return None
    return Figure(
        figures.side_by_side(tiles),
        f"The camera at the moment perception failed ({j.scenario}, {j.conditions_text}, "
        f"{j.attack}): white, the target's true box; green, detections on it; blue, others.",
        key=f"cam_{j.id}",
    )


def _compact(header: list[str], rows: list[list[str]], caption: str, key: str) -> Table:
    """The table without its scenario and defence columns where every row has the same value
    (named in the caption instead): the page keeps its width for the rates."""
    drop = [
        i
        for i, h in enumerate(header)
        if h in ("scenario", "defence") and rows and len({r[i] for r in rows}) == 1
    ]
    said = "; ".join(f"{header[i]}: {rows[0][i]}" for i in drop)
    keep = [i for i in range(len(header)) if i not in drop]
    return Table(
        [header[i] for i in keep],
        [[r[i] for i in keep] for r in rows],
        f"{caption.rstrip('.')} ({said})." if said else caption,
        key=key,
    )
