"""Tiny HTML building blocks of the report: a page, sections, paragraphs, figures and
tables (every cell escaped). No template engine: the page is plain, self-contained HTML
that reads without JavaScript."""

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
.sub{color:#666;margin-top:0} nav{background:#f6f6f6;padding:.5em 1em;border-radius:6px}
nav a{margin-right:1.2em;white-space:nowrap}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.3em .6em;vertical-align:top}
th{background:#f0f0f0;text-align:left} td.r{text-align:right;white-space:nowrap}
tr:nth-child(even) td{background:#fafafa}
.bad{color:#b00000;font-weight:600} .good{color:#1a7f37} .muted{color:#777}
img{max-width:100%;border:1px solid #eee;margin:.5em 0} .note{color:#555;font-size:.92em}
"""

Column = tuple[str, Callable[[Any], str], str]  # header, cell text from a row, "l" or "r"
_BAD = re.compile(r"^(rises|does not hold|not explained|no recommendation|moves the rate most)")
_GOOD = re.compile(r"^(holds|no evidence|never fails|explained by|no significant)")


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole document, with a navigation bar over the sections' titles."""
    titles = [html.unescape(t) for t in re.findall(r'<h2 id="[^"]*">([^<]*)</h2>', "".join(sections))]
    nav = "".join(f'<a href="#{anchor(t)}">{html.escape(t)}</a>' for t in titles)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='sub'>{html.escape(subtitle)}</p><nav>{nav}</nav>{''.join(sections)}</body></html>\n")


def section(title: str, *parts: str) -> str:
    return f'<section><h2 id="{anchor(title)}">{html.escape(title)}</h2>{"".join(parts)}</section>'


def paragraph(text: str, cls: str = "") -> str:
    """A paragraph of trusted report prose (may contain inline tags)."""
    return f"<p class='{cls}'>{text}</p>" if cls else f"<p>{text}</p>"


def figure(src: str, alt: str) -> str:
    return f"<img src='{html.escape(src)}' alt='{html.escape(alt)}'>"


def verdict_class(text: str) -> str:
    return "bad" if _BAD.match(text) else "good" if _GOOD.match(text) else ""


def table(df: pd.DataFrame, columns: Sequence[Column], *, max_rows: int = 60, csv: str = "",
          tone: Callable[[Any], str] | None = None, toned: Sequence[str] = ("verdict",)) -> str:
    """An HTML table of ``df`` with the given columns; past ``max_rows`` it says how many
    rows are left out and where the full table is. Colour: with ``tone`` (row -> "good",
    "bad" or "neutral", e.g. from a verdict enum's ``.tone``), the cells of the columns
    headed ``toned`` take that class and nothing is read off the wording; without it,
    each cell is classed by ``verdict_class`` of its text."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in columns)
    body = []
    for row in df.head(max_rows).itertuples(index=False):
        cells = []
        row_tone = tone(row) if tone is not None else ""
        for header, fn, align in columns:
            text = fn(row)
            colour = verdict_class(text) if tone is None else row_tone if header in toned else ""
            colour = colour if colour in ("good", "bad") else ""
            cls = " ".join(c for c in ("r" if align == "r" else "", colour) if c)
            cells.append(f"<td class='{cls}'>{html.escape(text)}</td>" if cls else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(df) > max_rows:
        where = f" (all rows in <a href='{html.escape(csv)}'>{html.escape(csv)}</a>)" if csv else ""
        more = paragraph(f"{len(df) - max_rows} more rows not shown{where}.", "note")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"
