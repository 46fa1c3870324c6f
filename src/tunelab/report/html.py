"""Render a ``Report`` as one self-contained HTML file: every style and figure inline, no script.

The page loads nothing: its Content-Security-Policy forbids every request (``default-src 'none'``),
so a browser opening it offline, or a reader with no network, sees all of it. Figures are inline
SVG (``tunelab.report.svg``), each in a ``<figure>`` with its ``<figcaption>``; tables are HTML
tables, long ones folded in ``<details>``.
"""

from __future__ import annotations

import time
from html import escape

from tunelab.report.model import Code, Figure, Item, Note, Report, Section, Table
from tunelab.report.pages.common import num

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1a1a1a;
  margin:0 auto;max-width:1080px;padding:16px 24px 48px}
header{border-bottom:1px solid #ddd;margin-bottom:8px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #eee}
h3{font-size:14px;margin:16px 0 6px}
.summary{font-size:15px;margin:4px 0}.meta{color:#666;font-size:12px;margin:4px 0 10px}
nav{font-size:13px;margin:8px 0}nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}
figure{margin:14px 0 22px;min-width:0}figure svg{display:block;height:auto}
.row{display:grid;grid-template-columns:1fr 1fr;gap:20px}
figcaption{color:#444;font-size:13px;max-width:820px;margin-top:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:3px 10px;border-bottom:1px solid #e6e6e6;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.caption{color:#444;font-size:13px;max-width:820px}
.note{background:#f7f7f2;border-left:3px solid #c9c39b;padding:6px 10px;margin:10px 0;font-size:13px}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px;max-height:480px}
details>summary{cursor:pointer;color:#1f5fa8;margin:6px 0}
"""
# No script, no request: the only sources a report uses are its own inline style and data: images.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_html(report: Report) -> str:
    """The HTML page of ``report``."""
    from tunelab import __version__

    nav = " ".join(f'<a href="#s{i}">{escape(s.title)}</a>' for i, s in enumerate(report.sections))
    source = " · ".join(f"{k} {v}" for k, v in report.source.items() if v not in (None, "") and k != "kind")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.title)} · tunelab</title><style>{CSS}</style></head><body>",
        f"<header><h1>{escape(report.title)}</h1>",
        f'<p class="summary">{escape(report.summary)}</p>' if report.summary else "",
        f'<p class="meta">tunelab {escape(__version__)} · {escape(report.kind)} report · '
        f"{escape(source)} · written {time.strftime('%Y-%m-%d %H:%M')}</p>",
        f"<nav>{nav}</nav></header>",
    ]
    parts += [_section(i, s) for i, s in enumerate(report.sections)]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _section(i: int, section: Section) -> str:
    parts: list[str] = []
    pending: list[str] = []  # half-width figures waiting for a row
    for item in section.items:
        if isinstance(item, Figure) and item.half:
            pending.append(_item(item))
            if len(pending) == 2:
                parts.append(f'<div class="row">{"".join(pending)}</div>')
                pending = []
            continue
        if pending:
            parts.append(f'<div class="row">{pending[0]}</div>')
            pending = []
        parts.append(_item(item))
    if pending:
        parts.append(f'<div class="row">{pending[0]}</div>')
    body = "\n".join(parts)
    return f'<section id="s{i}"><h2>{escape(section.title)}</h2>\n{body}\n</section>'


def _item(item: Item) -> str:
    if isinstance(item, Figure):
        from tunelab.report.svg import render_svg

        return (
            f'<figure id="{escape(item.id)}">{render_svg(item)}'
            f"<figcaption><b>{escape(item.title)}.</b> {escape(item.caption)}</figcaption></figure>"
        )
    if isinstance(item, Table):
        return _table(item)
    if isinstance(item, Code):
        return f"<h3>{escape(item.title)}</h3><pre><code>{escape(item.text)}</code></pre>"
    if isinstance(item, Note):
        return f'<p class="note">{escape(item.text)}</p>'
    raise TypeError(f"cannot render {type(item).__name__}")


def _cell(v: object) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f'<td class="n">{escape(num(v))}</td>'
    return f"<td>{escape(num(v))}</td>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    rows = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in t.rows)
    caption = f'<p class="caption">{escape(t.caption)}</p>' if t.caption else ""
    table = f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>{caption}"
    if t.collapsed:
        return f"<details><summary>{escape(t.title)} ({len(t.rows)} rows)</summary>{table}</details>"
    return f"<h3>{escape(t.title)}</h3>{table}"
