"""The results section's alarm blocks: what the consistency checks and monitors flagged,
clean and per attack, per drive-by and frame; the ROC points of a check listed with several
settings; and the alarm kinds raised mapped to the safety vocabulary (SOTIF triggering
conditions, the threat each is the symptom of)."""

from __future__ import annotations

from collections import defaultdict

from avrobust.report import figures
from avrobust.report import metrics as m
from avrobust.report.document import Figure, Table
from avrobust.report.run_data import RunData

ALARM_COLUMNS = [
    "model", "check", "attack", "drive-bys with an alarm", "frames with an alarm", "alarms by kind"
]  # fmt: skip


def _raised(data: RunData) -> tuple[dict[str, set[int]], set[str]]:
    """The frames of each job with an alarm, and the defences that are checks (raise alarms)."""
    raised: dict[str, set[int]] = defaultdict(set)
    for a in data.alarms:
        raised[a.job.id].add(a.frame)
    checks = {a.job.defence for a in data.alarms} | {
        j.defence
        for j in data.done
        if data.components.get(j.id, {}).get("defence", {}).get("raises_alarms")
    }
    return raised, checks


def alarms(data: RunData) -> list:
    """Per check, model and attack: the drive-bys (jobs) and frames in which it raised an
    alarm. On clean jobs that is its false-alarm rate, on attacked ones its detection rate."""
    raised, checks = _raised(data)
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in data.alarms:
        kinds[a.job.id][a.kind] += 1
    rows = []
    for model, defence in m.stacks(data):
        if defence not in checks:
            continue
        for attack in ["none", *m.attacks(data)]:
            jobs = [
                j for j in data.done if (j.model, j.defence, j.attack) == (model, defence, attack)
            ]
            if not jobs:
                continue
            frames = sum(j.frames or 0 for j in jobs)
            flagged = sum(len(raised.get(j.id, ())) for j in jobs)
            total: dict[str, int] = defaultdict(int)
            for j in jobs:
                for k, v in kinds.get(j.id, {}).items():
                    total[k] += v
            rows.append(
                [
                    model,
                    defence,
                    "clean (false alarms)" if attack == "none" else attack,
                    m.Rate(sum(j.id in raised for j in jobs), len(jobs)).text(),
                    m.Rate(flagged, frames).text(),
                    ", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "-",
                ]
            )
    if not rows:
        return []
    return [
        Table(
            ALARM_COLUMNS,
            rows,
            "Alarms of the consistency checks. On clean drive-bys an alarm is a false alarm or "
            "the check catching the model's own error (a detection the other sensor does not "
            "confirm, an object the detector drops); on attacked ones it is the check detecting "
            "the attack, whether or not it could also undo it. The rate on clean drive-bys is "
            "the price of trusting the alarm.",
            key="alarms",
        )
    ]


def alarm_conditions(data: RunData) -> list:
    """What each alarm kind raised in the campaign means for a safety case: the insufficiency it
    reveals, the SOTIF triggering conditions that raise it without an attacker, the threat
    (ISO/SAE 21434) it is the symptom of (:mod:`avrobust.core.alarm_kinds`)."""
    from avrobust.core.alarm_kinds import alarm_kind

    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a in data.alarms:
        counts[a.kind][0 if a.job.attack == "none" else 1] += 1
    rows = []
    for kind, (clean, attacked) in sorted(counts.items()):
        k = alarm_kind(kind)
        rows.append(
            [
                kind,
                str(clean),
                str(attacked),
                *((k.insufficiency, k.triggering, k.threat) if k else ("-", "-", "-")),
            ]
        )
    if not rows:
        return []
    return [
        Table(
            [
                "alarm",
                "on clean jobs",
                "on attacked jobs",
                "insufficiency it reveals",
                "SOTIF triggering conditions (ISO 21448)",
                "deliberate threat (ISO/SAE 21434)",
            ],
            rows,
            "The alarms raised in this campaign mapped to the safety vocabulary. An alarm on a "
            "clean job is a benign triggering condition met (or a false alarm); the same kind on "
            "an attacked job is the threat's symptom. SOTIF covers the first, cybersecurity "
            "analysis the second; the monitor is evidence for both.",
            key="alarm_conditions",
        )
    ]


def alarm_roc_points(data: RunData) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """Per (model, check): per attack, one point per setting of the check in the campaign:
    the share of clean frames with an alarm (``false_positive_rate``) and of attacked frames
    with one (``detection_rate``), ``label``: the setting's parameters."""
    raised, checks = _raised(data)
    variants: dict[tuple[str, str], list[str]] = defaultdict(list)
    for model, defence in m.stacks(data):
        if defence in checks:
            variants[(model, defence.split("(")[0].split(":")[0])].append(defence)

    def rate(jobs) -> float | None:
        frames = sum(j.frames or 0 for j in jobs)
        return sum(len(raised.get(j.id, ())) for j in jobs) / frames if frames else None

    out: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for (model, check), labels in variants.items():
        curves: dict[str, list[dict]] = defaultdict(list)
        # A point is named by the parameters its setting does not share with every other.
        parts = {label: label[len(check) :].strip("()").split(", ") for label in labels}
        common = set.intersection(*(set(p) for p in parts.values())) if len(labels) > 1 else set()
        for label in labels:
            mine = [j for j in data.done if (j.model, j.defence) == (model, label)]
            fp = rate([j for j in mine if j.attack == "none"])
            if fp is None:
                continue
            setting = ", ".join(p for p in parts[label] if p and p not in common) or "defaults"
            for attack in m.attacks(data):
                caught = rate([j for j in mine if j.attack == attack])
                if caught is not None:
                    curves[attack].append(
                        {"false_positive_rate": fp, "detection_rate": caught, "label": setting}
                    )
        if curves:
            out[(model, check)] = dict(curves)
    return out


def alarm_roc(data: RunData) -> list:
    """Per check and model, a figure of :func:`alarm_roc_points` (list a check several times
    with other thresholds in a campaign to trace its ROC curve)."""
    return [
        Figure(
            figures.roc(
                curves,
                f"{check} on {model}",
                "clean frames with an alarm",
                "attacked frames with an alarm",
            ),
            f"The {check} on {model}: attacked frames with an alarm against clean frames with "
            "one, per attack; each point one setting of the check in this campaign.",
            width_cm=11.0,
            key=f"roc:{model}:{check}",
        )
        for (model, check), curves in alarm_roc_points(data).items()
    ]
