"""Assemble the safety assessment report from a run directory: read the store once
(``run_data``), compute every number through ``metrics`` / ``verdict`` / ``detection_quality``,
and lay the sections out as a ``Document`` that both renderers draw."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avrobust.report import metrics as m
from avrobust.report.document import Document, Section
from avrobust.report.run_data import RunData, load_run
from avrobust.report.sections_driving import driving_section
from avrobust.report.sections_results import results_section
from avrobust.report.sections_text import (
    appendix_section,
    limitations_section,
    scope_section,
    summary_section,
    threat_section,
    triggers_section,
)


@dataclass
class ReportFiles:
    html: Path
    pdf: Path | None
    document: Document


def build_document(data: RunData) -> Document:
    when = dt.datetime.fromtimestamp(data.created or 0, dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    counts = {s: sum(j.status == s for j in data.jobs) for s in ("done", "failed", "pending")}
    subtitle = (
        f"Campaign {data.campaign_name}; run started {when}; {counts['done']} of "
        f"{len(data.jobs)} jobs finished ({counts['failed']} failed, {counts['pending']} not run); "
        f"report written {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by "
        f"avrobust {data.versions.get('avrobust', '?')}"
    )
    driving = driving_section(data)
    sections: list[Section] = [
        summary_section(data),
        *([driving] if driving is not None else []),
        scope_section(data),
        threat_section(data),
        results_section(data),
        triggers_section(data),
        limitations_section(data),
        appendix_section(data),
    ]
    return Document(f"Safety assessment: {data.campaign_name}", subtitle, sections)


def write_report(
    run_dir: str | Path,
    out: str | Path,
    pdf: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ReportFiles:
    """Write ``report.html`` (and ``report.pdf``) for the run in ``run_dir`` into ``out``."""
    say = progress or (lambda _s: None)
    say("reading the results store")
    data = load_run(run_dir)
    say("computing results and drawing figures")
    doc = build_document(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from avrobust.report.render_html import render_html

    say("writing report.html")
    html = render_html(doc, out / "report.html")
    pdf_path = None
    if pdf:
        from avrobust.report.render_pdf import render_pdf

        say("writing report.pdf")
        pdf_path = render_pdf(doc, out / "report.pdf")
    return ReportFiles(html, pdf_path, doc)


__all__ = ["ReportFiles", "build_document", "m", "write_report"]
