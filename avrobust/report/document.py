"""The report as a small document tree, written once and rendered twice: to self-contained
HTML (``render_html``) and to PDF (``render_pdf``), so the two always say the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Tone = Literal["pass", "fail", "untested", "note", ""]


@dataclass
class Paragraph:
    text: str
    tone: Tone = ""  # pass / fail / untested: a verdict box; note: smaller, muted


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    tones: list[list[Tone]] | None = None  # per cell, for pass/fail colouring
    key: str = ""  # a stable name tests and readers can find the table by


@dataclass
class Figure:
    png: bytes
    caption: str
    width_cm: float = 16.0
    key: str = ""


@dataclass
class Code:
    text: str
    caption: str = ""


Block = Paragraph | Bullets | Table | Figure | Code


@dataclass
class Section:
    key: str  # the HTML anchor
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def tables(self) -> dict[str, Table]:
        return {b.key: b for s in self.sections for b in s.blocks if isinstance(b, Table) and b.key}
