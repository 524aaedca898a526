"""The report as an A4 PDF with reportlab's page layout (platypus): the same document tree as
the HTML, tables that split across pages with their header repeated, page numbers."""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    ListFlowable,
    ListItem,
    LongTable,
    PageBreak,
    Preformatted,
    SimpleDocTemplate,
    Spacer,
)
from reportlab.platypus import Paragraph as RLParagraph

from avrobust.core.files import atomic_path
from avrobust.report.document import Bullets, Code, Document, Figure, Paragraph, Table

TONES = {
    "pass": colors.HexColor("#e3f4e5"),
    "fail": colors.HexColor("#fbe0df"),
    "untested": colors.HexColor("#f4efd9"),
}
WIDTH = A4[0] - 3.6 * cm


def _styles():
    ss = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("t", parent=ss["Title"], alignment=0, fontSize=20, leading=24),
        "subtitle": ParagraphStyle("s", parent=ss["Normal"], textColor=colors.HexColor("#555566")),
        "h2": ParagraphStyle("h2", parent=ss["Heading2"], spaceBefore=12),
        "body": ParagraphStyle("b", parent=ss["Normal"], fontSize=9.5, leading=13),
        "note": ParagraphStyle(
            "n", parent=ss["Normal"], fontSize=8, leading=10, textColor=colors.HexColor("#555566")
        ),
        "cell": ParagraphStyle("c", parent=ss["Normal"], fontSize=7.5, leading=9),
        "head": ParagraphStyle(
            "hd", parent=ss["Normal"], fontSize=7.5, leading=9, fontName="Helvetica-Bold"
        ),
        "code": ParagraphStyle("code", parent=ss["Code"], fontSize=7, leading=8.5),
        "box": ParagraphStyle(
            "box",
            parent=ss["Normal"],
            fontSize=10,
            leading=13,
            fontName="Helvetica-Bold",
            borderPadding=6,
        ),
    }


def _flow(b, st) -> list:
    if isinstance(b, Paragraph):
        if b.tone in TONES:
            style = ParagraphStyle("v", parent=st["box"], backColor=TONES[b.tone])
            return [Spacer(1, 4), RLParagraph(escape(b.text), style), Spacer(1, 8)]
        return [
            RLParagraph(escape(b.text), st["note" if b.tone == "note" else "body"]),
            Spacer(1, 4),
        ]
    if isinstance(b, Bullets):
        return [
            ListFlowable(
                [ListItem(RLParagraph(escape(i), st["body"])) for i in b.items], bulletType="bullet"
            )
        ]
    if isinstance(b, Table):
        data = [[RLParagraph(escape(h), st["head"]) for h in b.header]]
        data += [[RLParagraph(escape(c), st["cell"]) for c in r] for r in b.rows]
        t = LongTable(data, repeatRows=1, colWidths=_widths(b))
        style = [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#c5c8ce")),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef0f4")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
        for i, row in enumerate(b.tones or []):
            for j, tone in enumerate(row):
                if tone in TONES:
                    style.append(("BACKGROUND", (j, i + 1), (j, i + 1), TONES[tone]))
        t.setStyle(style)
        out = [t]
        if b.caption:
            out.append(RLParagraph(escape(b.caption), st["note"]))
        return [*out, Spacer(1, 8)]
    if isinstance(b, Figure):
        from PIL import Image as PILImage

        w_px, h_px = PILImage.open(io.BytesIO(b.png)).size
        width = min(b.width_cm * cm, WIDTH)
        img = Image(io.BytesIO(b.png), width=width, height=width * h_px / w_px)
        return [KeepTogether([img, RLParagraph(escape(b.caption), st["note"])]), Spacer(1, 8)]
    if isinstance(b, Code):
        out = [RLParagraph(escape(b.caption), st["note"])] if b.caption else []
        return [*out, Preformatted(b.text, st["code"], maxLineLength=110), Spacer(1, 6)]
    raise TypeError(f"unknown block {type(b).__name__}")


def _widths(t: Table) -> list[float]:
    """Column widths in proportion to their longest word-wrapped content (bounded), so ids
    and hashes are not broken into slivers while prose columns still wrap."""
    want = []
    for j, h in enumerate(t.header):
        cells = [h, *(r[j] for r in t.rows if j < len(r))]
        longest_word = max(len(w) for c in cells for w in (c.split() or [""]))
        longest = max(len(c) for c in cells)
        want.append(min(max(longest_word, min(longest, 28), 8), 64))
    total = sum(want)
    return [WIDTH * w / total for w in want]


def _page_number(canvas, doc) -> None:
    canvas.saveState()
    canvas.setFont("Helvetica", 7.5)
    canvas.setFillColor(colors.HexColor("#555566"))
    canvas.drawRightString(A4[0] - 1.8 * cm, 1.1 * cm, f"page {doc.page}")
    canvas.drawString(1.8 * cm, 1.1 * cm, doc.title)
    canvas.restoreState()


def render_pdf(doc: Document, path: str | Path) -> Path:
    st = _styles()
    story: list = [
        RLParagraph(escape(doc.title), st["title"]),
        RLParagraph(escape(doc.subtitle), st["subtitle"]),
        Spacer(1, 10),
    ]
    for i, s in enumerate(doc.sections):
        if i and s.key in ("results", "appendix"):
            story.append(PageBreak())
        story.append(CondPageBreak(5 * cm))  # no heading alone at the foot of a page
        story.append(RLParagraph(escape(s.title), st["h2"]))
        for b in s.blocks:
            story += _flow(b, st)
    path = Path(path)
    with atomic_path(path) as tmp:
        pdf = SimpleDocTemplate(
            str(tmp),
            pagesize=A4,
            leftMargin=1.8 * cm,
            rightMargin=1.8 * cm,
            topMargin=1.6 * cm,
            bottomMargin=1.8 * cm,
            title=doc.title,
            author="avrobust",
        )
        pdf.build(story, onFirstPage=_page_number, onLaterPages=_page_number)
    return path
