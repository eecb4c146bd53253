"""Tiny HTML building blocks of the report: a page, sections, paragraphs, figures and
tables (every cell escaped unless it is ``Raw``). No template engine: the page is plain,
self-contained HTML that reads without JavaScript.

Colour is never read off the wording: a table is coloured only through its ``tone``
argument (row -> "good", "bad" or "neutral"), which sections take from a verdict enum's
``tone`` (``harness.analysis.verdicts``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;
     padding:0 1.2em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.1em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin:1.2em 0 .3em}
.sub{color:#666;margin-top:0}
nav{background:#f6f6f6;padding:.5em 1em;border-radius:6px;display:flex;flex-wrap:wrap;gap:.2em 1.4em}
nav a{white-space:nowrap}
details{margin:.6em 0} details>summary{cursor:pointer;color:#0645ad}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.3em .6em;vertical-align:top}
th{background:#f0f0f0;text-align:left} td.r{text-align:right;white-space:nowrap}
tr:nth-child(even) td{background:#fafafa} tr:target td,tbody:target td{background:#fff3b0}
th.w{min-width:16em}
table.runs tbody{border-bottom:2px solid #ccc} table.runs tr.cmd td{background:#fafafa;border-top:none;font-size:.95em}
table.runs tr.cmd code{white-space:nowrap;word-break:normal;font-size:1em}
code{font-size:.9em;background:#f4f4f4;padding:0 .25em;border-radius:3px;word-break:break-all}
.bad{color:#b00000;font-weight:600} .good{color:#1a7f37} .muted{color:#777}
img{max-width:100%;border:1px solid #eee;margin:.5em 0} .note{color:#555;font-size:.92em}
table.heat{font-size:.85em} table.heat th{text-align:center;white-space:nowrap}
table.heat th.check{text-align:left;font-weight:normal;background:#fafafa;max-width:26em;white-space:normal;
overflow-wrap:anywhere}
table.heat td.cell{text-align:center;white-space:nowrap;min-width:3.6em;padding:.35em .5em;border-color:#fff}
table.heat td.cell a{color:inherit;display:block;text-decoration:none}
table.heat td.cell a:hover{text-decoration:underline}
table.heat td.none{background:#eeeeee !important;color:#999}
table.heat tr.incomplete th,table.heat tr.incomplete td{color:#888;background:#f5f5f5 !important;font-style:italic}
.legend{display:flex;align-items:center;gap:.4em;font-size:.8em;color:#555;margin:.2em 0 1em}
.legend span.bar{display:inline-block;width:14em;height:.9em;border:1px solid #ccc}
.legend span.swatch{display:inline-block;width:1.2em;height:.9em;background:#eeeeee;border:1px solid #ccc}
"""

Column = tuple[str, Callable[[Any], Any], str]  # header, cell (str, or Raw for trusted HTML) from a row, "l" or "r"


class Raw(str):
    """Trusted HTML for a table cell (built from escaped parts); any other cell text is escaped."""


def anchor(title: str) -> str:
    """The id of a section from its title (lower case, words joined by "-")."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole document, with a navigation bar over the sections' titles."""
    titles = [html.unescape(t) for t in re.findall(r'<h2 id="[^"]*">([^<]*)</h2>', "".join(sections))]
    nav = "".join(f'<a href="#{anchor(t)}">{html.escape(t)}</a>' for t in titles)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='sub'>{html.escape(subtitle)}</p><nav>{nav}</nav>{''.join(sections)}</body></html>\n")


def section(title: str, *parts: str) -> str:
    """A titled section (its ``<h2>`` carries the id the navigation links to)."""
    return f'<section><h2 id="{anchor(title)}">{html.escape(title)}</h2>{"".join(parts)}</section>'


def paragraph(text: str, cls: str = "") -> str:
    """A paragraph of trusted report prose (may contain inline tags)."""
    return f"<p class='{cls}'>{text}</p>" if cls else f"<p>{text}</p>"


def figure(src: str, alt: str) -> str:
    """An image beside the page (a PNG the section wrote into the report directory)."""
    return f"<img src='{html.escape(src)}' alt='{html.escape(alt)}'>"


def split_table(df: pd.DataFrame, columns: Sequence[Column], fold: pd.Series, summary: str,
                **options: Any) -> str:
    """``table`` of the rows where ``fold`` is False, then the rows where it is True folded
    away under ``summary`` (e.g. the checks that never fail)."""
    fold = fold.astype(bool).to_numpy()
    shown = table(df[~fold], columns, **options) if (~fold).any() else ""
    return shown + (details(summary, table(df[fold], columns, **options)) if fold.any() else "")


def details(summary: str, *parts: str) -> str:
    """Parts folded away under a one-line ``summary`` (trusted HTML); the reader opens them."""
    return f"<details><summary>{summary}</summary>{''.join(parts)}</details>"


def code(text: str) -> Raw:
    """A command or identifier, escaped, in ``<code>``."""
    return Raw(f"<code>{html.escape(text)}</code>")


def table(df: pd.DataFrame, columns: Sequence[Column], *, max_rows: int = 60, csv: str = "",
          tone: Callable[[Any], str] | None = None, toned: Sequence[str] = ("verdict",),
          row_id: Callable[[Any], str] | None = None,
          wide: Sequence[str] = ("verdict", "guarantee", "validation")) -> str:
    """An HTML table of ``df`` with the given columns; past ``max_rows`` it says how many
    rows are left out and where the full table is. Colour: with ``tone`` (row -> "good",
    "bad" or "neutral", from a verdict enum's ``.tone``), the cells of the columns headed
    ``toned`` take that class; without it nothing is coloured. ``row_id`` gives each row
    an id (a link target). Columns headed ``wide`` (sentences) keep a minimum width. A
    cell that is ``Raw`` is inserted as is; any other is escaped."""
    head = "".join(f"<th class='w'>{html.escape(h)}</th>" if h in wide else f"<th>{html.escape(h)}</th>"
                   for h, _, _ in columns)
    body = []
    for row in df.head(max_rows).itertuples(index=False):
        cells = []
        row_tone = tone(row) if tone is not None else ""
        for header, fn, align in columns:
            value = fn(row)
            text = value if isinstance(value, Raw) else html.escape(str(value))
            colour = row_tone if header in toned and row_tone in ("good", "bad") else ""
            cls = " ".join(c for c in ("r" if align == "r" else "", colour) if c)
            cells.append(f"<td class='{cls}'>{text}</td>" if cls else f"<td>{text}</td>")
        rid = f" id='{html.escape(row_id(row))}'" if row_id is not None else ""
        body.append(f"<tr{rid}>" + "".join(cells) + "</tr>")
    more = ""
    if len(df) > max_rows:
        where = f" (all rows in <a href='{html.escape(csv)}'>{html.escape(csv)}</a>)" if csv else ""
        more = paragraph(f"{len(df) - max_rows} more rows not shown{where}.", "note")
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            f"{more}")
