"""The report's results section: the attack-by-model-by-defence matrix, clean versus attacked
recall and mAP, success by distance and angle (heatmaps), by weather and light, per-encounter
outcomes, example frames and the patches at their physical sizes."""

from __future__ import annotations

from collections import defaultdict

from avrobust.core import stats
from avrobust.report import figures
from avrobust.report import metrics as m
from avrobust.report.detection_quality import MAX_RANGE, map_by_job_group
from avrobust.report.document import Figure, Paragraph, Section, Table
from avrobust.report.run_data import RunData, distance_bin
from avrobust.report.sections_alarms import alarm_conditions, alarm_roc, alarms

MAX_HEATMAPS = 8
MAX_EXAMPLES = 6


def results_section(data: RunData) -> Section:
    s = Section("results", "Results")
    s.blocks.append(
        Paragraph(
            "Attack success counts attacked frames whose clean twin (same scenario, conditions, "
            "model, defence and frame, no attack) the stack got right; it is a success when the "
            "attacked stack gets the target wrong (misses it, or for a sign reader names the wrong "
            "class). A drive-by fails when the stack never gets the target right in the "
            "scenario's minimum number of consecutive frames inside its encounter window.",
            "note",
        )
    )
    outcomes = m.attack_outcomes(data)
    if any(not o.paired for o in outcomes):
        s.blocks.append(
            Paragraph(
                "Some attacked jobs have no clean twin in this campaign; for them every judged "
                "frame counts (errors the stack makes anyway are credited to the attack).",
                "note",
            )
        )
    s.blocks += _matrix(data, m.attack_outcomes(data, with_controls=True))
    s.blocks += _quality(data)
    s.blocks += _defences(data, outcomes)
    s.blocks += alarms(data)
    s.blocks += alarm_conditions(data)
    s.blocks += alarm_roc(data)
    s.blocks += _heatmaps(outcomes)
    s.blocks += _by_weather_light(data, outcomes)
    s.blocks += _encounters(data)
    s.blocks += _examples(data, outcomes)
    s.blocks += _patches(data)
    return s


def _matrix(data: RunData, outcomes: list[m.Outcome]) -> list:
    attacks = m.attacks(data, with_controls=True)
    stacks = m.stacks(data)
    if not attacks or not stacks:
        return [Paragraph("No attacked job with a model in this run: no attack matrix.")]
    frame = m.group(outcomes, lambda o: (o.row.job.model, o.row.job.defence, o.row.job.attack))
    enc = m.group(
        m.encounter_outcomes(data, with_controls=True),
        lambda o: (o.row.job.model, o.row.job.defence, o.row.job.attack),
    )
    ctrl = m.controls(data)
    rows = []
    for model, defence in stacks:
        row = [model, defence]
        for a in attacks:
            f = frame.get((model, defence, a), m.Rate(0, 0))
            e = enc.get((model, defence, a))
            cell = f.text() + (f"; drive-bys failed {e.text()}" if e and e.n else "")
            eff = m.control_effect(frame, (model, defence), a, ctrl.get(a, {}))
            if eff is not None and not eff.distinguishable:
                cell += f"; not distinguishable from its control ({eff.control})"
            row.append(cell)
        rows.append(row)
    return [
        Table(
            ["model", "defence", *attacks],
            rows,
            "Attack success by attack (columns), model and defence (rows): frames, then "
            "drive-bys, each with its 95% interval (for frames, the frames of one drive-by "
            "count as one cluster: a drive-by, not a frame, is the independent trial). A "
            "column marked [control: ...] is an attack's matched control: the same mask, "
            "budget or shape, not optimised.",
            key="matrix",
        ),
        *_controls(data, frame, enc, ctrl),
    ]


def _controls(data: RunData, frame: dict, enc: dict, ctrl: dict[str, dict[str, str]]) -> list:
    """Each attack beside its strongest matched control on the same stack: the adversarial
    effect, and whether the two can be told apart."""
    rows = []
    for model, defence in m.stacks(data):
        for a, labels in ctrl.items():
            eff = m.control_effect(frame, (model, defence), a, labels)
            if eff is None:
                continue
            e_a = enc.get((model, defence, a))
            e_c = enc.get((model, defence, labels[eff.control]))
            drives = f"{e_a.text()} vs {e_c.text()}" if e_a and e_c and e_a.n and e_c.n else "-"
            rows.append([
                model, defence, a, frame[(model, defence, a)].text(), eff.control,
                frame[(model, defence, labels[eff.control])].text(),
                f"{eff.difference * 100:+.0f} points", drives,
                "yes" if eff.distinguishable else "not distinguishable from its control",
            ])  # fmt: skip
    if not rows:
        return [
            Paragraph(
                "No attack in this run ran beside a matched control (`controls:` in the "
                "campaign file adds them): part of any success may be plain occlusion or "
                "noise rather than the attack's optimisation.",
                "note",
            )
        ] if m.attacks(data) else []  # fmt: skip
    return [
        Table(
            ["model", "defence", "attack", "attack success (frames)", "strongest control",
             "control success (frames)", "adversarial effect", "drive-bys failed: attack vs "
             "control", "distinguishable (intervals apart)"],
            rows,
            "Attacks beside their strongest matched control on the same drive-bys: the "
            "adversarial effect is the attack's success minus the control's; where the two "
            "95% intervals overlap, the attack is not distinguishable from its control.",
            key="controls",
        )
    ]  # fmt: skip


def _quality(data: RunData) -> list:
    maps = map_by_job_group(data)
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    for r in data.frames:
        if r.job.model != "none":
            groups[(r.job.model, r.job.attack, r.job.defence)].append(r)
    rows = []
    for key, rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1] != "none")):
        model, attack, defence = key
        rec = m.recall(rs)
        mp = maps.get(key)
        clean = maps.get((model, "none", defence))
        if mp is None or mp[0] is None:
            map_text = "not recorded" if mp is None else "no scored object"
        else:
            map_text = f"{mp[0]:.3f}"
            if attack != "none" and clean and clean[0] is not None:
                map_text += f" ({mp[0] - clean[0]:+.3f} vs clean)"
        rows.append([model, defence, attack, rec.text(), map_text, str(mp[1]) if mp else "-"])
    if not rows:
        return []
    return [
        Table(
            ["model", "defence", "attack", "target recall (frames right)", "mAP@0.5", "frames"],
            rows,
            "Clean versus attacked. Recall: frames in which the stack got the target right. mAP: "
            f"over every labelled object within {MAX_RANGE:g} m of every frame (camera detectors: "
            "COCO AP at IoU 0.5 via torchmetrics; 3D detectors: BEV AP40 at IoU 0.5); 'not "
            "recorded' for classifiers and for runs made before avrobust recorded detections.",
            key="quality",
        )
    ]


def _defences(data: RunData, outcomes: list[m.Outcome]) -> list:
    """Each defence against no defence, per model: what it costs on clean frames (target
    recall) and what it buys against each attack (attack success), on the same frames."""
    defences = sorted({j.defence for j in data.done} - {"none"})
    if not defences:
        return []
    clean = defaultdict(list)
    for r in data.frames:
        if r.job.attack == "none" and r.job.model != "none":
            clean[(r.job.model, r.job.defence)].append(r)
    success = m.group(outcomes, lambda o: (o.row.job.model, o.row.job.defence, o.row.job.attack))
    drive_bys = m.encounter_outcomes(data)  # once: each pairing below filters it
    rows = []
    for model in dict.fromkeys(j.model for j in data.done if j.model != "none"):
        base = m.recall(clean.get((model, "none"), []))
        for d in defences:
            mine = m.recall(clean.get((model, d), []))
            cost = f"{(mine.value - base.value) * 100:+.1f} points" if mine.n and base.n else "n/a"
            latency = _added_time(data, model, d)
            if latency is not None:
                cost += f"; {latency * 1000:+.0f} ms per frame"
            for a in m.attacks(data):
                before = success.get((model, "none", a), m.Rate(0, 0))
                after = success.get((model, d, a), m.Rate(0, 0))
                undefended, defended = m.paired_drive_bys(drive_bys, model, a, ("none", d))
                paired = "-"
                if undefended:
                    paired = (
                        f"{sum(undefended)} -> {sum(defended)} of {len(defended)}, "
                        f"p = {stats.mcnemar(undefended, defended):.2g}"
                    )
                rows.append([model, d, base.text(), mine.text(), cost, a, before.text(),
                             after.text(), paired])  # fmt: skip
    return [
        Table(
            [
                "model",
                "defence",
                "clean recall, undefended",
                "clean recall, defended",
                "cost on clean frames",
                "attack",
                "attack success, undefended",
                "attack success, defended",
                "failed drive-bys, paired (McNemar)",
            ],
            rows,
            "Defences on the same frames: the cost on clean frames (target recall, and time per "
            "frame: the mean job time per frame with the defence minus without, rendering being "
            "the same; a rough figure, tens of ms of noise between jobs on a busy machine) and "
            "the attack success they leave. Attacks here did not know the defence "
            "(non-adaptive) unless the attack's name says otherwise. The paired column counts "
            "the same attacked drive-bys failed without and with the defence, with McNemar's "
            "exact p-value (drive-bys, not frames, are the trials).",
            key="defences",
        )
    ]


def _added_time(data: RunData, model: str, defence: str) -> float | None:
    """Seconds per frame the defence adds: mean job time per frame with it minus without, on
    clean jobs where the campaign has them (same scenarios and conditions, so the rendering
    time cancels)."""

    def per_frame(d: str) -> float | None:
        jobs = [j for j in data.done if j.model == model and j.defence == d]
        clean = [j for j in jobs if j.attack == "none"]  # attacks' own compute is noise here
        times = [j.duration / j.frames for j in clean or jobs if j.duration and j.frames]
        return sum(times) / len(times) if times else None

    with_d, without = per_frame(defence), per_frame("none")
    return None if with_d is None or without is None else with_d - without


def _angle(o: m.Outcome) -> str:
    a = o.row.job.conditions.get("angle")
    if a is not None:
        return f"sign turned {a:g} deg"
    b = getattr(o.row, "bearing", 0.0)
    return f"bearing {10 * round(b / 10):+.0f} deg"


def _heatmaps(outcomes: list[m.Outcome]) -> list:
    out = []
    by_pair = defaultdict(list)
    for o in outcomes:
        by_pair[(o.row.job.model, o.row.job.defence, o.row.job.attack)].append(o)
    for (model, defence, attack), os_ in list(by_pair.items())[:MAX_HEATMAPS]:
        cells = m.group(os_, lambda o: (_angle(o), distance_bin(o.row.distance)))
        rows = sorted({k[0] for k in cells})
        cols = sorted({k[1] for k in cells}, key=lambda t: float(t.split("-")[0]))
        title = f"{attack} vs {model}" + ("" if defence == "none" else f" + {defence}")
        out.append(
            Figure(
                figures.heatmap(cells, rows, cols, title, "target distance", "angle"),
                f"Attack success by target distance and angle: {title}. Cell: rate and k/n frames.",
                width_cm=min(16.0, 5 + 1.6 * len(cols)),
                key=f"heatmap:{model}:{defence}:{attack}",
            )
        )
    return out


def _by_weather_light(data: RunData, outcomes: list[m.Outcome]) -> list:
    out = []
    clean = m.clean_misses(data)
    for model, defence in m.stacks(data):
        for factor in ("weather", "light"):
            series = {}
            mine = [o for o in clean if (o.row.job.model, o.row.job.defence) == (model, defence)]
            if mine:
                series["clean: target missed"] = m.group(
                    mine, lambda o, f=factor: m.FACTORS[f](o.row)
                )
            for a in m.attacks(data):
                os_ = [
                    o
                    for o in outcomes
                    if (o.row.job.model, o.row.job.defence, o.row.job.attack) == (model, defence, a)
                ]
                if os_:
                    series[f"{a}: attack success"] = m.group(
                        os_, lambda o, f=factor: m.FACTORS[f](o.row)
                    )
            if series and any(len(v) > 1 for v in series.values()):
                stack = model + ("" if defence == "none" else f" + {defence}")
                out.append(
                    Figure(
                        figures.bars(series, f"{stack} by {factor}", "rate"),
                        f"{stack}: clean miss rate and attack success by {factor} "
                        "(k/n frames on bars).",
                        key=f"bars:{model}:{defence}:{factor}",
                    )
                )
    return out


def _encounters(data: RunData) -> list:
    rows, tones = [], []
    order = sorted(
        data.encounters,
        key=lambda e: (
            e.job.scenario,
            e.job.conditions_text,
            e.job.model,
            e.job.attack != "none",
            e.job.attack,
            e.job.defence,
            e.target,
        ),
    )
    for e in order:
        if e.failed is None:
            continue
        j = e.job
        rows.append(
            [
                j.scenario,
                j.conditions_text,
                j.model,
                j.attack,
                j.defence,
                e.target,
                f"{e.frames_failed}/{e.frames_in_window}",
                str(e.longest_failure),
                "FAILED" if e.failed else "recognised",
            ]
        )
        tones.append(["", "", "", "", "", "", "", "", "fail" if e.failed else "pass"])
    if not rows:
        return []
    return [
        Table(
            [
                "scenario",
                "conditions",
                "model",
                "attack",
                "defence",
                "target",
                "frames wrong",
                "longest run wrong",
                "drive-by",
            ],
            rows,
            "Per-encounter outcomes: each drive-by of each target (frames wrong of frames in the "
            "encounter window).",
            tones,
            key="encounters",
        )
    ]


def _examples(data: RunData, outcomes: list[m.Outcome]) -> list:
    """For each model and attack, the attacked job where the attack worked best, beside its
    clean twin (the same frame) and, when it has one, its first failed frame."""
    by_job = m.group(outcomes, lambda o: o.row.job.id)
    best: dict[tuple, tuple[str, m.Rate]] = {}
    for jid, r in by_job.items():
        j = data.job(jid)
        key = (j.model, j.defence, j.attack)
        if key not in best or (r.value or 0) > (best[key][1].value or 0):
            best[key] = (jid, r)
    twins = {(j.cell, j.attack): j for j in data.done}
    out = []
    for (model, defence, attack), (jid, r) in list(best.items())[:MAX_EXAMPLES]:
        j = data.job(jid)
        tiles = []
        clean = twins.get((j.cell, "none"))
        if clean and (clean.id, "window") in data.pictures:
            frame, path = data.pictures[(clean.id, "window")]
            tiles.append((f"clean, frame {frame}", figures.read_picture(path)))
        if (jid, "window") in data.pictures:
            frame, path = data.pictures[(jid, "window")]
            tiles.append((f"attacked, frame {frame}", figures.read_picture(path)))
        if (jid, "failure") in data.pictures:
            frame, path = data.pictures[(jid, "failure")]
            tiles.append((f"attacked, first failure, frame {frame}", figures.read_picture(path)))
        if defence == "none":  # the same attacked scene through each defence
            for other in data.done:
                same = (other.scenario, other.conditions, other.model, other.attack)
                if (
                    other.defence != "none"
                    and same
                    == (
                        j.scenario,
                        j.conditions,
                        j.model,
                        j.attack,
                    )
                    and (other.id, "window") in data.pictures
                ):
                    frame, path = data.pictures[(other.id, "window")]
                    tiles.append(
                        (f"defended ({other.defence}), frame {frame}", figures.read_picture(path))
                    )
        if not tiles:
            continue
        out.append(
            Figure(
                figures.side_by_side(tiles),
                f"{attack} against {model} ({'no defence' if defence == 'none' else defence}), "
                f"{j.scenario}, {j.conditions_text}: attack success {r.text()} in this job "
                f"(job {jid[:8]}). White: the target's true box; green: detections on it; blue: "
                "other detections; top left: the target enlarged.",
                key=f"example:{model}:{defence}:{attack}",
            )
        )
    return out


def _patches(data: RunData) -> list:
    from pathlib import Path

    out, seen = [], set()
    for j in data.done:
        prov = data.components.get(j.id, {}).get("attack", {}).get("provenance", {})
        sha = prov.get("patch_sha256")
        if not sha or sha in seen:
            continue
        seen.add(sha)
        w, h = prov["size_m"]
        caption = (
            f"{j.attack}: {w * 100:.1f} x {h * 100:.1f} cm on surface {prov.get('surface')}, "
            f"{prov.get('coverage', 1):.0%} printed, SHA-256 {sha[:16]}; print it at true size "
            f"with 'avrobust export patch {prov.get('file')}'."
        )
        path = Path(prov.get("file", ""))
        if not path.is_file():
            out.append(Paragraph(f"{caption} (The patch file is not at that path any more.)"))
            continue
        from avrobust.core.patch import Patch

        p = Patch.load(path)
        if p.sha256() != sha:
            out.append(Paragraph(f"{caption} (The file now holds a different patch.)"))
            continue
        tex = p.texture.permute(1, 2, 0).numpy()
        out.append(
            Figure(
                figures.patch_figure(tex, p.mask[0].numpy(), p.size_m, j.attack),
                caption,
                width_cm=8.0,
                key=f"patch:{sha[:12]}",
            )
        )
    return out
