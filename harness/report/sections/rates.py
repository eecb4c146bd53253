"""Failure rate by data size: the run-level failure rate per check, precision and data
size with Wilson intervals (the figure and the headline table)."""

from __future__ import annotations

import pandas as pd

from harness.analysis.frame import label, pct
from harness.report import plots
from harness.report.base import ReportContext, Section, has_completed_runs
from harness.report.cells import check, interval, plain
from harness.report.html import details, figure, paragraph, table

TITLE = "Failure rate by data size"
FOLD = 30  # a longer table is folded away (the overview has the counts)


def body(head: pd.DataFrame, alpha: float = 0.05, src: str = "rates.png") -> str:
    """The headline table under the rates figure ``src``."""
    text = ("A run fails a check when any evaluation of it fails; a NaN or Inf always fails. Rates are over "
            f"completed runs, with {1 - alpha:.0%} Wilson intervals (the bands). Runs that errored, crashed or "
            "timed out are not in the rate: they are counted in the last column and listed at the end.")
    cols = [("check", check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("data size", lambda r: label(r.data_size), "r"), ("runs", lambda r: f"{r.n:,}", "r"),
            ("failed", lambda r: f"{r.failed:,}", "r"), ("rate", lambda r: pct(r.rate), "r"),
            (f"{1 - alpha:.0%} CI", lambda r: interval(r.ci_low, r.ci_high), "r"),
            ("NaN/Inf", lambda r: str(r.nonfinite), "r"), ("did not complete", lambda r: str(r.incomplete), "r")]
    rows = table(head, cols, max_rows=120, csv="tables/headline.csv", tone=plain)
    if len(head) > FOLD:  # the overview shows the same counts at a glance
        rows = details(f"The table: {len(head)} rows (rates, intervals, NaN/Inf and incomplete runs)", rows)
    return paragraph(text) + figure(src, "failure rate vs data size") + rows


def render(ctx: ReportContext) -> str:
    """The rates figure (configurations with completed runs) and the headline table."""
    head = ctx.headline
    src = ctx.figure("rates", lambda p: plots.plot_rates(head[head["n"] > 0], p))
    return body(head, ctx.alpha, src)


SECTION = Section(TITLE, render, applies=has_completed_runs)
