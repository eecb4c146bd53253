"""Summary: what is in the results (runs stored and planned, what did not complete, the
checks, the axes that vary, the seeds)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from harness import analysis as A
from harness.analysis.frame import label
from harness.report.base import Section

TITLE = "Summary"


def _sorted(values: np.ndarray) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return sorted(values, key=str)


def body(df: pd.DataFrame, planned: int | None) -> str:
    """A list: runs stored (of planned), completed and not, checks, varying axes, seeds."""
    runs = df.drop_duplicates("run_id")
    status = runs["status"].value_counts()
    done = int(status.get("ok", 0))
    stored = (f"{len(runs)} of {planned} planned runs stored" if planned and len(runs) <= planned else
              f"{len(runs)} runs stored ({planned} planned by the sweep's last invocation)" if planned else
              f"{len(runs)} runs stored")
    bad = ", ".join(f"{v} {k}" for k, v in status.items() if k != "ok") or "none"
    checks = ", ".join(sorted(c for c in df["check"].dropna().unique() if c)) or "none"

    def values(a: str) -> str:
        vs = _sorted(df[a].dropna().unique())
        if a == "variant":  # each value is itself a "k=v, k=v" list
            return "; ".join(f"[{v}]" if v else "(not swept)" for v in vs[:8]) + ("; ..." if len(vs) > 8 else "")
        return ", ".join(label(v) for v in vs[:8]) + (", ..." if len(vs) > 8 else "") + \
            (", none" if df[a].isna().any() else "")

    axes = [f"{a} ({values(a)})" for a in A.factor_axes(df)]
    items = [stored + (" &mdash; the sweep may still be running or was cut short" if planned and len(runs) < planned
                       else ""), f"{done} completed; did not complete: {bad}", f"checks: {html.escape(checks)}",
             "axes that vary: " + html.escape("; ".join(axes) or "none (a single configuration)"),
             f"seeds: {df['seed'].nunique()}"]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


SECTION = Section(TITLE, lambda ctx: body(ctx.df, ctx.planned_runs))
