"""Which axis moves the failure rate most? Per check, the rate at each level of every
varying axis and a likelihood-ratio ranking of the axes (``analysis.attribute_factors``).
The analysis has no verdict enum, so the table is not coloured."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from harness.analysis.frame import pct
from harness.report import plots
from harness.report.base import ReportContext, Section, has_completed_runs
from harness.report.cells import check, pval
from harness.report.html import figure, paragraph, table

TITLE = "Which axis moves the failure rate most?"


def body(attr: pd.DataFrame, src: str = "", pattern: pd.DataFrame | None = None) -> str:
    """The attribution table, under the figure ``src`` when there is one; with ``pattern``
    (``analysis.where.failure_pattern``), a line per check whose failures need two axes at once,
    which a ranking of one axis at a time, pooled over the others, does not show."""
    text = ("Per check, the failure rate at each level of every axis that varies (seeds are replicates, not "
            "factors), and a logistic model over all those axes at once: an axis's likelihood-ratio statistic is "
            "what dropping it from the model costs, so it ranks the axes by what each explains that the others "
            "do not.")
    cols = [("check", check, "l"), ("rank", lambda r: "" if not np.isfinite(r.rank) else str(int(r.rank)), "r"),
            ("axis", lambda r: str(r.axis) or "–", "l"),
            ("lowest level", lambda r: "–" if not isinstance(r.lowest, str) else f"{r.lowest}: {pct(r.lowest_rate)}",
             "r"),
            ("highest level", lambda r: "–" if not isinstance(r.highest, str) else
             f"{r.highest}: {pct(r.highest_rate)}", "r"),
            ("LR χ² (df)", lambda r: "–" if not np.isfinite(r.lr_chi2) else f"{r.lr_chi2:.3g} ({int(r.df)})", "r"),
            ("p", lambda r: pval(r.p_value), "r"), ("verdict", lambda r: str(r.verdict), "l")]
    parts = [paragraph(text)]
    both = [] if pattern is None else [r for r in pattern.itertuples() if r.interaction]
    if both:
        lines = "".join(f"<li><b>{html.escape(r.check)}</b> fails {html.escape(r.pattern)}: {html.escape(r.interaction)}"
                        "</li>" for r in both)
        parts.append(paragraph("Where the failures need two axes at once, the pooled rates below spread them over "
                               "both axes alike; stratified:") + f"<ul>{lines}</ul>")
    if src:
        parts.append(figure(src, "failure-rate range per axis"))
    return "".join(parts) + table(attr, cols, max_rows=80, csv="tables/attribution.csv")


def render(ctx: ReportContext) -> str:
    """The figure (when some axis varies) and the table."""
    attr = ctx.attribution
    src = ctx.figure("attribution", lambda p: plots.plot_attribution(attr, p)) \
        if (attr["axis"].astype(str) != "").any() else ""
    from harness.analysis.where import failure_pattern

    return body(attr, src, failure_pattern(ctx.raw if ctx.raw is not None else ctx.df))


SECTION = Section(TITLE, render, applies=has_completed_runs)
