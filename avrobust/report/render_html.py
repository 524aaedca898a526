"""The report as one self-contained HTML file: styles and figures inline (PNG as data URIs), no
script and no outside request, so it opens offline and can be mailed or archived as is."""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from avrobust.core.files import atomic_write
from avrobust.report.document import Bullets, Code, Document, Figure, Paragraph, Table

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ doc.title }}</title>
<style>
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1c2330; margin: 0;
       background: #f4f5f7; line-height: 1.45; font-size: 15px; }
main { max-width: 1060px; margin: 0 auto; background: #fff; padding: 28px 44px 60px; }
header { border-bottom: 3px solid #1c2330; margin-bottom: 18px; padding-bottom: 10px; }
h1 { font-size: 27px; margin: 0 0 4px; } .subtitle { color: #556; margin: 0; }
h2 { font-size: 20px; border-bottom: 1px solid #ccd; padding-bottom: 4px; margin-top: 34px; }
nav ol { columns: 2; font-size: 14px; margin: 6px 0 0; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 13px; width: 100%; }
th, td { border: 1px solid #d5d8de; padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: #eef0f4; }
caption { caption-side: bottom; text-align: left; color: #556; font-size: 12.5px;
          padding: 4px 0 10px; }
td.pass, .box.pass { background: #e3f4e5; } td.fail, .box.fail { background: #fbe0df; }
td.untested, .box.untested { background: #f4efd9; }
.box { border-radius: 4px; padding: 10px 14px; margin: 10px 0; font-weight: 600; }
.note { color: #556; font-size: 13px; }
figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid #d5d8de; }
figcaption { color: #556; font-size: 12.5px; }
pre { background: #f4f5f7; padding: 10px; font-size: 12px; overflow-x: auto;
      white-space: pre-wrap; }
</style></head>
<body><main>
<header><h1>{{ doc.title }}</h1><p class="subtitle">{{ doc.subtitle }}</p></header>
<nav><strong>Contents</strong><ol>
{% for s in doc.sections %}<li><a href="#{{ s.key }}">{{ s.title }}</a></li>{% endfor %}
</ol></nav>
{% for s in doc.sections %}
<section id="{{ s.key }}"><h2>{{ s.title }}</h2>
{% for b in s.blocks %}{{ render(b) }}
{% endfor %}</section>
{% endfor %}
</main></body></html>
"""


def _block(b) -> str:
    esc = jinja2.utils.markupsafe.escape
    if isinstance(b, Paragraph):
        cls = "box " + b.tone if b.tone in ("pass", "fail", "untested") else b.tone
        return f'<p class="{cls}">{esc(b.text)}</p>'
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Table):
        head = "".join(f"<th>{esc(h)}</th>" for h in b.header)
        rows = []
        for i, r in enumerate(b.rows):
            tones = b.tones[i] if b.tones else [""] * len(r)
            cells = "".join(
                f'<td class="{t}">{esc(c)}</td>' for c, t in zip(r, tones, strict=False)
            )
            rows.append(f"<tr>{cells}</tr>")
        key = f' data-key="{esc(b.key)}"' if b.key else ""
        cap = f"<caption>{esc(b.caption)}</caption>" if b.caption else ""
        return (
            f"<table{key}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode()
        key = f' data-key="{esc(b.key)}"' if b.key else ""
        return (
            f'<figure{key}><img alt="{esc(b.caption)}" src="data:image/png;base64,{data}" '
            f'style="width:{b.width_cm / 16 * 100:.0f}%">'
            f"<figcaption>{esc(b.caption)}</figcaption></figure>"
        )
    if isinstance(b, Code):
        cap = f'<p class="note">{esc(b.caption)}</p>' if b.caption else ""
        return f"{cap}<pre>{esc(b.text)}</pre>"
    raise TypeError(f"unknown block {type(b).__name__}")


def render_html(doc: Document, path: str | Path) -> Path:
    env = jinja2.Environment(autoescape=True)
    html = env.from_string(_TEMPLATE).render(
        doc=doc, render=lambda b: jinja2.utils.markupsafe.Markup(_block(b))
    )
    path = Path(path)
    with atomic_write(path, "w") as fh:
        fh.write(html)
    return path
