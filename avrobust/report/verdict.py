"""The verdict: each perception stack (model with defence) judged against each acceptance
criterion of the campaign (or the default ones), with the worst condition cells named."""

from __future__ import annotations

from dataclasses import dataclass

from avrobust.report import metrics as m
from avrobust.report.run_data import RunData
from avrobust.scenario.campaign import DEFAULT_CRITERIA, Criterion

WORST_CELL = ("scenario", "weather", "light", "distance")


@dataclass
class Judgement:
    criterion: Criterion
    model: str
    defence: str
    rate: m.Rate
    worst: list[tuple[str, m.Rate]]  # condition cell in words, its rate; worst first

    @property
    def status(self) -> str:
        """pass, fail, or untested (fewer samples than the criterion asks for)."""
        if self.rate.n < self.criterion.min_samples:
            return "untested"
        return "pass" if (self.rate.value or 0.0) <= self.criterion.max + 1e-12 else "fail"


def criteria(data: RunData) -> tuple[list[Criterion], bool]:
    """The campaign's criteria, or the defaults (second value True when defaults are used)."""
    if data.campaign is not None and data.campaign.acceptance:
        return list(data.campaign.acceptance), False
    return list(DEFAULT_CRITERIA), True


def _selected(c: Criterion, model: str, defence: str, outcomes: list[m.Outcome]):
    for o in outcomes:
        j = o.row.job
        if j.model != model or j.defence != defence:
            continue
        if c.weather and j.weather not in c.weather:
            continue
        if c.light and j.light not in c.light:
            continue
        if c.scenarios and j.scenario not in c.scenarios:
            continue
        if c.attacks and j.attack_ref["name"] not in c.attacks and j.attack not in c.attacks:
            continue
        if c.within_m is not None:
            d = getattr(o.row, "distance", None)
            if d is None:  # a drive-by: judged by where it started, when the sweep says
                d = j.conditions.get("distance")
            if d is not None and d > c.within_m:
                continue
        yield o


def cell_name(row) -> str:
    parts = []
    for f in WORST_CELL:
        v = m.FACTORS[f](row)
        if v is not None:
            parts.append(str(v))
    job = row.job
    if job.attack != m.CLEAN:
        parts.append(f"attack {job.attack}")
    return ", ".join(parts)


def judge(data: RunData) -> list[Judgement]:
    crits, _ = criteria(data)
    pools = {
        "attack_success": m.attack_outcomes(data),
        "encounter_failure": m.encounter_outcomes(data),
        "clean_miss": m.clean_misses(data),
    }
    out = []
    for model, defence in m.stacks(data):
        for c in crits:
            chosen = list(_selected(c, model, defence, pools[c.metric]))
            cells = m.group(chosen, lambda o: cell_name(o.row))
            worst = sorted(
                ((k, r) for k, r in cells.items() if r.k), key=lambda kr: (-kr[1].value, kr[0])
            )[:3]
            out.append(Judgement(c, model, defence, m.rate(chosen), worst))
    return out
