"""The self-contained HTML page of a report: figures as base64 PNG, tables as HTML, no external resource.

Every figure image carries `data-figure="<name>"`; a few lines of script record on load which of them decoded
(`naturalWidth > 0`) in `#render-check`, so a headless browser's DOM dump tells whether the page rendered them.
Numeric cells carry their unrounded value in `data-value`.
"""

from __future__ import annotations

import base64
import html
import math
import struct
from collections.abc import Sequence
from typing import Any

import accelsim
from accelsim.report.figures import RenderedFigure
from accelsim.report.tables import Table, format_value

_CSS = """
:root { --ink: #1d1d1f; --muted: #5f6368; --rule: #d9dce1; --band: #f5f7fa; --accent: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: var(--ink); background: #ffffff; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 64px; }
header h1 { font-size: 24px; margin: 0 0 4px; }
header p { margin: 2px 0; color: var(--muted); }
nav { margin: 14px 0 8px; padding: 8px 0; border-top: 1px solid var(--rule); border-bottom: 1px solid var(--rule); }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 15px; margin: 0 0 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.cards > .table-block { flex: 1 1 340px; }
figure { margin: 0 0 26px; padding: 14px; border: 1px solid var(--rule); border-radius: 6px; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; margin: 4px auto 8px; }
figcaption { color: var(--muted); font-size: 13px; }
figure.skipped { background: var(--band); border-style: dashed; }
figure.skipped ul { margin: 0; padding-left: 20px; color: var(--muted); }
figure.skipped li { margin: 3px 0; }
.table-block { margin: 0 0 22px; min-width: 0; max-width: 100%; }
.table-scroll { overflow-x: auto; border: 1px solid var(--rule); border-radius: 6px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 4px 9px; border-bottom: 1px solid var(--rule); white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; min-width: 4em; }
th { background: var(--band); text-align: left; font-weight: 600; position: sticky; top: 0; }
td:first-child, th:first-child { position: sticky; left: 0; background: #fff; z-index: 1; }
th:first-child { background: var(--band); z-index: 2; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
p.note { margin: 4px 0 0; color: var(--muted); font-size: 12px; }
details { margin: 10px 0 18px; }
summary { cursor: pointer; color: var(--accent); }
"""

_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.querySelectorAll("img[data-figure]"));
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  var check = document.getElementById("render-check");
  check.setAttribute("data-expected", images.map(function (img) { return img.dataset.figure; }).join(" "));
  check.setAttribute("data-loaded", loaded.map(function (img) { return img.dataset.figure; }).join(" "));
  check.setAttribute("data-done", "1");
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) or hasattr(value, "dtype") and \
        getattr(value.dtype, "kind", "") in "iuf"


def render_table(table: Table) -> str:
    """One table as HTML: rounded text in the cell, the stored value in data-value, the source in data-source."""
    frame = table.frame
    head = []
    for col in frame.columns:
        source = table.sources.get(col)
        numeric = table.formats.get(col, "text") != "text" or (table.row_kinds and col != frame.columns[0])
        attrs = ' class="num"' if numeric else ""
        if source:
            attrs += f' data-source="{_e(source)}"'
        head.append(f"<th{attrs}>{_e(col)}</th>")
    rows = []
    for i, values in enumerate(frame.itertuples(index=False, name=None)):
        cells = []
        for col, value in zip(frame.columns, values):
            kind = table.kind(i, col)
            text = format_value(value, kind)
            attrs = f' data-col="{_e(col)}"'
            if _is_number(value) and kind != "text" and not math.isnan(float(value)):
                attrs = f' class="num"{attrs} data-value="{_e(repr(float(value)))}"'
            if table.row_sources and col != frame.columns[0]:
                attrs += f' data-source="{_e(table.source(i, col))}"'
            cells.append(f"<td{attrs}>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{_e(table.note)}</p>' if table.note else ""
    return (f'<div class="table-block"><h3>{_e(table.title)}</h3><div class="table-scroll">'
            f'<table id="table-{_e(table.id)}"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{note}</div>')


def render_figure(fig: RenderedFigure) -> str:
    """A drawn figure: the PNG inline as base64, with its title and caption."""
    spec = fig.spec
    if fig.png is None:
        raise ValueError(f"figure {spec.name} was not drawn: {fig.skipped}")
    width, height = png_size(fig.png)
    data = base64.b64encode(fig.png).decode("ascii")
    # Drawn at 150 dpi, shown at 120 dpi: large enough to read, small enough to sit beside the text.
    return (f'<figure id="fig-{_e(spec.name)}"><h3>{_e(spec.title)}</h3>'
            f'<img data-figure="{_e(spec.name)}" alt="{_e(spec.title)}" width="{round(width / 1.25)}" '
            f'height="{round(height / 1.25)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(spec.caption)} Files: figures/{_e(spec.name)}.png, .svg.</figcaption></figure>")


def render_figures(figures: Sequence[RenderedFigure]) -> str:
    """The drawn figures, then one box listing the figures not drawn and why."""
    drawn = "".join(render_figure(f) for f in figures if f.png is not None)
    skipped = [f for f in figures if f.png is None]
    if not skipped:
        return drawn
    items = "".join(f'<li data-skipped="{_e(f.spec.name)}"><b>{_e(f.spec.title)}</b>: {_e(f.skipped)}.</li>'
                    for f in skipped)
    return f'{drawn}<figure class="skipped" id="figures-skipped"><h3>Not drawn</h3><ul>{items}</ul></figure>'


def render_page(title: str, subtitle: Sequence[str], sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole page: a header, a contents line, then (id, heading, inner HTML) sections."""
    nav = "".join(f'<a href="#{_e(sid)}">{_e(heading)}</a>' for sid, heading, _ in sections)
    body = "".join(f'<section id="{_e(sid)}"><h2>{_e(heading)}</h2>{inner}</section>'
                   for sid, heading, inner in sections)
    sub = "".join(f"<p>{_e(line)}</p>" for line in subtitle)
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<meta name=\"generator\" content=\"accelsim {_e(accelsim.__version__)}\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
            f"<body><main><header><h1>{_e(title)}</h1>{sub}</header><nav>{nav}</nav>{body}"
            f'<div id="render-check" hidden></div></main>'
            f"<script>{_CHECK_SCRIPT}</script></body></html>\n")
