"""Runs that did not complete: errored, crashed or timed out, grouped by the first line of
their error, then one row per run (``analysis.incomplete_runs``)."""

from __future__ import annotations

import html

import pandas as pd

from harness import axes
from harness.report.base import Section
from harness.report.cells import axis_column
from harness.report.html import paragraph, table

TITLE = "Runs that did not complete"


def body(bad: pd.DataFrame, total_runs: int) -> str:
    """The incomplete runs grouped by what went wrong, then one per run."""
    if bad.empty:
        return paragraph(f"All {total_runs} stored runs completed.", "good")
    first_line = bad["error"].fillna("(no message)").astype(str).str.split("\n").str[0].str.slice(0, 160)
    counts = bad.assign(error=first_line).groupby(["status", "error"], dropna=False).size()
    counts = counts.rename("runs").reset_index().sort_values("runs", ascending=False)
    text = (f"{len(bad)} of {total_runs} stored runs did not complete. They have no check values and are not "
            "in any rate above; here they are, grouped by what went wrong, then one per run.")
    ccols = [("status", lambda r: str(r.status), "l"), ("runs", lambda r: f"{r.runs:,}", "r"),
             ("error", lambda r: str(r.error), "l")]
    rcols = [("run", lambda r: str(r.run_id), "l"), ("status", lambda r: str(r.status), "l"),
             *[axis_column(a, "r") for a in axes.DISPLAY  # every axis the sweep set (the scenario is above)
               if a != "scenario" and a in bad.columns and bad[a].notna().any()],
             ("error", lambda r: (str(r.error) if isinstance(r.error, str) else "")[:200], "l")]
    return (paragraph(html.escape(text)) + table(counts, ccols, max_rows=30)
            + table(bad, rcols, max_rows=50, csv="tables/incomplete_runs.csv"))


SECTION = Section(TITLE, lambda ctx: body(ctx.incomplete_runs, ctx.df["run_id"].nunique()))
