"""The report's sections other than the results: executive summary (the verdict), scope,
threat model, triggering conditions, limitations and the reproducibility appendix."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from avrobust.report import metrics as m
from avrobust.report.document import Bullets, Code, Paragraph, Section, Table
from avrobust.report.run_data import RunData
from avrobust.report.threat_model import threats
from avrobust.report.verdict import criteria, judge

# Triggering conditions: a condition is named when its rate is at least this and at least
# MARGIN above the rate in every other condition, on at least MIN_N samples.
TRIGGER_MIN, MARGIN, MIN_N = 0.2, 0.15, 5


def summary_section(data: RunData) -> Section:
    s = Section("summary", "Executive summary")
    judgements = judge(data)
    _, default = criteria(data)
    if not judgements:
        s.blocks.append(
            Paragraph(
                "No perception model was evaluated in this run (sensor coverage only), so "
                "there is no verdict; see Scope and Results for what the sensors captured.",
                "untested",
            )
        )
        return s
    by_stack: dict[tuple[str, str], list] = defaultdict(list)
    for j in judgements:
        by_stack[(j.model, j.defence)].append(j)
    for (model, defence), js in by_stack.items():
        statuses = {j.status for j in js}
        overall = (
            "fail" if "fail" in statuses else ("untested" if statuses == {"untested"} else "pass")
        )
        stack = model if defence == "none" else f"{model} with defence {defence}"
        failed = [j for j in js if j.status == "fail"]
        if overall == "fail":
            text = f"FAIL: {stack} does not meet " + "; ".join(
                f"'{j.criterion.title()}' (measured {j.rate.text()})" for j in failed
            )
        elif overall == "pass":
            text = f"PASS: {stack} meets every acceptance criterion ({len(js)})."
        else:
            text = f"UNTESTED: {stack}: no attacked samples fall under the criteria."
        s.blocks.append(Paragraph(text, overall))
        # The worst condition cells over the failed criteria, each named once.
        worst: dict[str, m.Rate] = {}
        for j in failed:
            for cell, r in j.worst:
                worst.setdefault(cell, r)
        if worst:
            top = sorted(worst.items(), key=lambda kv: (-kv[1].value, -kv[1].n))[:3]
            s.blocks.append(Bullets([f"worst case: {cell}: {r.text()}" for cell, r in top]))
    s.blocks.append(
        Table(
            ["stack (model / defence)", "criterion", "measured", "verdict"],
            [
                [f"{j.model} / {j.defence}", j.criterion.title(), j.rate.text(), j.status.upper()]
                for j in judgements
            ],
            "Each stack against each acceptance criterion. Measured: rate (k of n samples). "
            + (
                "The campaign names no acceptance criteria, so the defaults apply (attack success "
                "at most 5%, no drive-by failed under attack)."
                if default
                else "Criteria from the campaign file's 'acceptance' list."
            ),
            [["", "", "", j.status] for j in judgements],
            key="verdict",
        )
    )
    outcomes = m.attack_outcomes(data)
    if outcomes:
        per = m.group(outcomes, lambda o: (o.row.job.model, o.row.job.attack))
        s.blocks.append(
            Paragraph(
                "Attack success over all conditions: "
                + "; ".join(f"{a} against {mod}: {r.text()}" for (mod, a), r in per.items())
                + "."
            )
        )
        s.blocks += _beside_controls(data)
    return s


def _beside_controls(data: RunData) -> list:
    """One sentence per attack that ran beside matched controls: its effect over the strongest,
    on the undefended stacks (the results section has every stack)."""
    labels = m.controls(data)
    if not labels:
        return []
    rates = m.group(
        m.attack_outcomes(data, with_controls=True),
        lambda o: (o.row.job.model, o.row.job.defence, o.row.job.attack),
    )
    said = []
    for model, defence in m.stacks(data):
        if defence != "none":
            continue
        for a, ctrl in labels.items():
            eff = m.control_effect(rates, (model, defence), a, ctrl)
            if eff is not None:
                said.append(
                    f"{a} against {model}: {eff.difference * 100:+.0f} points over its strongest "
                    f"control ({eff.control}, {rates[(model, defence, ctrl[eff.control])].text()})"
                    + ("" if eff.distinguishable else ", not distinguishable from it")
                )
    if not said:
        return []
    return [
        Paragraph(
            "Beside matched controls (the same mask, budget or shape, not optimised), the "
            "adversarial effect on frames: " + "; ".join(said) + "."
        )
    ]


def scope_section(data: RunData) -> Section:
    s = Section("scope", "Scope")
    done = data.done
    swept: dict[str, list] = defaultdict(list)
    for j in data.jobs:
        for k, v in j.conditions.items():
            text = str(v)
            if text not in swept[k]:
                swept[k].append(text)
    dists = [r.distance for r in data.frames]
    rows = [
        ["scenarios", ", ".join(dict.fromkeys(j.scenario for j in data.jobs))],
        ["weather", ", ".join(dict.fromkeys(j.weather for j in data.jobs))],
        ["light", ", ".join(dict.fromkeys(j.light for j in data.jobs))],
    ]
    for k, vals in swept.items():
        if k != "weather":
            rows.append([f"{k} (swept)", ", ".join(vals)])
    if dists:
        rows.append(["target distances seen", f"{min(dists):.1f} to {max(dists):.1f} m"])
    bearings = [r.bearing for r in data.frames]
    if bearings:
        rows.append(["target bearings seen", f"{min(bearings):.1f} to {max(bearings):.1f} degrees"])
    rows += [
        ["backend", "embedded simulator" if _embedded(data) else "CARLA"],
        ["jobs", f"{len(done)} finished of {len(data.jobs)}; {len(data.frames)} target-frame rows"],
        ["attacks", ", ".join(dict.fromkeys(j.attack for j in data.jobs))],
        ["defences", ", ".join(dict.fromkeys(j.defence for j in data.jobs))],
    ]
    if data.campaign is not None and data.campaign.description:
        s.blocks.append(Paragraph(data.campaign.description.strip()))
    s.blocks.append(
        Table(["", "covered"], rows, "Operating conditions covered by this run.", key="scope")
    )
    model_rows = [[n, role, f, sha] for kind, n, role, f, sha in _hashed(data) if kind == "model"]
    if model_rows:
        s.blocks.append(
            Table(
                ["model", "weights", "file", "SHA-256"],
                model_rows,
                "Models evaluated, by hash.",
                key="models",
            )
        )
    return s


def _hashed(data: RunData) -> list[tuple[str, str, str, str, str]]:
    """``(kind, name, role, file, sha256)`` of every weights file and patch the run's finished
    jobs used, as the jobs recorded them, each once."""
    out: dict[tuple[str, str, str, str, str], None] = {}
    for j in data.done:
        comp = data.components.get(j.id, {})
        prov = comp.get("model", {}).get("provenance", {})
        for role, rec in (prov.get("weights") or {}).items():
            out[("model", j.model, role, rec.get("file", "?"), rec.get("sha256", "?"))] = None
        patch = comp.get("attack", {}).get("provenance", {})
        if "patch_sha256" in patch:
            out[("attack", j.attack, "patch", patch["file"], patch["patch_sha256"])] = None
    return list(out)


def _embedded(data: RunData) -> bool:
    """Whether the run used the embedded simulator (the default, also assumed when the stored
    campaign text no longer validates)."""
    return data.campaign is None or data.campaign.backend == "embedded"


def threat_section(data: RunData) -> Section:
    s = Section("threat", "Threat model")
    ts = threats(data)
    if not ts:
        s.blocks.append(Paragraph("No attack was evaluated in this run: clean conditions only."))
        return s
    s.blocks.append(
        Paragraph(
            "Attacks in the terms of NIST AI 100-2 (Adversarial Machine Learning: a taxonomy and "
            "terminology): all are evasion attacks at deployment time; the attacker controls what "
            "the sensors see, never the model, its training data or the vehicle."
        )
    )
    rows = []
    for t in ts:
        knowledge = "; ".join(f"{mod}: {k}" for mod, k in t.knowledge.items()) or "-"
        rows.append([t.attack, t.attack_class, t.goal, knowledge, t.capability, t.position])
    s.blocks.append(
        Table(
            [
                "attack",
                "class",
                "attacker goal",
                "knowledge (per evaluated model)",
                "capability",
                "position",
            ],
            rows,
            "Knowledge: white-box when the attack was optimised against the very weights evaluated "
            "(by SHA-256), grey-box against a component of them, black-box transfer otherwise.",
            key="threats",
        )
    )
    return s


def triggering_conditions(data: RunData) -> list[dict]:
    """Conditions under which failures concentrate, for clean misses and attack successes."""
    found = []
    pools = [("misses the target without attack", m.clean_misses(data))]
    pools.append(("is fooled by the attack", m.attack_outcomes(data)))
    pools += _vehicle_pools(data)
    for what, outcomes in pools:
        per_stack = m.group(
            outcomes, lambda o: (o.row.job.model, o.row.job.defence, o.row.job.attack)
        )
        for stack in per_stack:
            mine = [
                o
                for o in outcomes
                if (o.row.job.model, o.row.job.defence, o.row.job.attack) == stack
            ]
            for factor, value_of in m.FACTORS.items():
                rates = m.group(mine, lambda o, f=value_of: f(o.row))
                if len(rates) < 2:
                    continue
                for value, r_in in rates.items():
                    if value is None or r_in.n < MIN_N or (r_in.value or 0) < TRIGGER_MIN:
                        continue
                    r_out = sum((r for v, r in rates.items() if v != value), m.Rate(0, 0))
                    if r_out.n and r_in.value - r_out.value >= MARGIN:
                        jobs = sorted(
                            {o.row.job.id for o in mine if value_of(o.row) == value and o.success}
                        )
                        found.append(
                            {
                                "model": stack[0],
                                "defence": stack[1],
                                "attack": stack[2],
                                "what": what,
                                "factor": factor,
                                "value": value,
                                "inside": r_in,
                                "outside": r_out,
                                "jobs": jobs,
                            }
                        )
    found.sort(key=lambda t: -(t["inside"].value - t["outside"].value))
    return found


@dataclass
class _DriveRow:
    """A closed-loop drive as a row the factors can read (its distance: the sweep's)."""

    job: object
    distance: None = None


def _vehicle_pools(data: RunData) -> list[tuple[str, list[m.Outcome]]]:
    """Vehicle-level failures (closed-loop campaigns): the car ran a stop sign or collided;
    the oracle is left out (its failures are the planner's, not perception's)."""
    from avrobust.driving.criteria import DriveResult

    clean, attacked = [], []
    for j, d in data.drives:
        if j.status != "done" or j.model == "oracle":
            continue
        r = DriveResult.from_dict(d.result)
        outcome = m.Outcome(_DriveRow(j), r.ran_stop or r.collided, True)  # type: ignore[arg-type]
        (clean if j.attack == "none" else attacked).append(outcome)
    return [
        ("drives: the car ran a stop sign or collided without attack", clean),
        ("drives: the car ran a stop sign or collided under the attack", attacked),
    ]


def triggers_section(data: RunData) -> Section:
    s = Section("triggers", "Where failures concentrate: triggering conditions")
    s.blocks.append(
        Paragraph(
            "In the manner of ISO 21448 (SOTIF): a triggering condition is a condition of the "
            f"scene under which the stack fails markedly more often: here at least "
            f"{TRIGGER_MIN:.0%} of at least {MIN_N} samples, and {MARGIN:.0%} (absolute) more "
            "than in the run's other conditions. Each names its evidence: the rates and the jobs "
            "(see the appendix) in which it failed.",
            "note",
        )
    )
    found = triggering_conditions(data)
    if not found:
        s.blocks.append(Paragraph("No condition stands out by these rules in this run."))
        return s
    rows = []
    for t in found[:40]:
        stack = t["model"] + ("" if t["defence"] == "none" else f" + {t['defence']}")
        under = "" if t["attack"] == "none" else f" under {t['attack']}"
        rows.append(
            [
                f"{t['factor']} = {t['value']}",
                f"{stack}{under} {t['what']}",
                t["inside"].text(),
                t["outside"].text(),
                ", ".join(j[:8] for j in t["jobs"][:6]) + (" ..." if len(t["jobs"]) > 6 else ""),
            ]
        )
    s.blocks.append(
        Table(
            [
                "triggering condition",
                "failure",
                "rate in it",
                "rate elsewhere",
                "evidence (job ids)",
            ],
            rows,
            "Sorted by how much the condition raises the failure rate"
            + (f"; the first 40 of {len(found)}." if len(found) > 40 else "."),
            key="triggers",
        )
    )
    return s


def limitations_section(data: RunData) -> Section:
    s = Section("limitations", "Limitations")
    items = []
    if _embedded(data):
        items += [
            "Results come from avrobust's embedded simulator (procedural geometry, ray-cast camera "
            "and LiDAR, analytic weather), not from the world: textures, lighting, lens effects, "
            "weather and the LiDAR's noise and dropouts are simpler than on a road, so rates "
            "here estimate, and do not measure, what a physical attack achieves.",
            "Patches are rendered as the simulator paints them; printing, material, glare and "
            "colour shifts of a real print are modelled only by the printable-colour palette "
            "(and a printer model when the patch was optimised through one). Print the patch "
            "and measure before relying on these numbers.",
        ]
    else:
        items.append(
            "Results come from a CARLA server: closer to the world than the embedded simulator but "
            "still a simulation (Unreal rendering, CARLA's LiDAR model)."
        )
    items += [
        "The models evaluated are the ones named in Scope by hash; a retrained model needs a "
        "new run.",
        "Rates are frequencies over the conditions sampled by this campaign, not probabilities "
        "over real traffic: a condition not swept is not covered.",
        "Attack success counts only frames the stack got right without attack (see Results); the "
        "clean error rate is reported separately.",
    ]
    failed = [j for j in data.jobs if j.status == "failed"]
    pending = [j for j in data.jobs if j.status == "pending"]
    if failed or pending:
        items.append(
            f"{len(failed)} job(s) failed and {len(pending)} did not run; their conditions are "
            "missing from every rate (failures are listed in the appendix)."
        )
    s.blocks.append(Bullets(items))
    return s


def appendix_section(data: RunData) -> Section:
    s = Section("appendix", "Reproducibility appendix")
    s.blocks.append(
        Table(
            ["software", "version"],
            [[k, str(v)] for k, v in data.versions.items()],
            "Versions recorded when the campaign was registered in this run directory.",
            key="versions",
        )
    )
    seed = data.campaign.seed if data.campaign is not None else "?"
    s.blocks.append(
        Paragraph(
            f"Campaign seed {seed}; each job's seed derives from its id (the SHA-256 of its "
            "content), so rerunning the campaign file below reproduces every job. Rerun with: "
            f"avrobust run CAMPAIGN.yaml --out RUN_DIR, then avrobust report RUN_DIR -o OUT."
        )
    )
    hashes = [
        [kind, n, f"patch file {f}" if role == "patch" else f"{role}: {f}", sha]
        for kind, n, role, f, sha in _hashed(data)
    ]
    if hashes:
        s.blocks.append(
            Table(
                ["kind", "name", "what", "SHA-256"],
                hashes,
                "Patch hashes cover what is printed (texture, mask, size).",
                key="hashes",
            )
        )
    s.blocks.append(
        Table(
            [
                "job id",
                "scenario",
                "conditions",
                "model",
                "attack",
                "defence",
                "seed",
                "status",
                "frames",
                "seconds",
            ],
            [
                [
                    j.id,
                    j.scenario,
                    j.conditions_text,
                    j.model,
                    j.attack,
                    j.defence,
                    str(j.seed),
                    j.status,
                    str(j.frames or 0),
                    f"{j.duration:.1f}" if j.duration else "-",
                ]
                for j in data.jobs
            ],
            "Every job of the run.",
            key="jobs",
        )
    )
    errors = [[j.id, j.error or ""] for j in data.jobs if j.status == "failed"]
    if errors:
        s.blocks.append(Table(["job id", "error"], errors, "Failed jobs.", key="errors"))
    s.blocks.append(Code(data.campaign_text, "The campaign file as run:"))
    return s
