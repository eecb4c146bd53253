"""Worst margins against the bound: each completed run's signed distance of its worst
value to the bound, per check, data size and precision."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.frame import ok_mask
from harness.report import plots
from harness.report.base import ReportContext, Section, has_completed_runs
from harness.report.html import figure, paragraph

TITLE = "Worst margins against the bound"


def body(df: pd.DataFrame, src: str = "margins.png") -> str:
    """What the margins figure ``src`` shows, and how many run-checks saw NaN/Inf."""
    bad = int(((df["worst_margin"] == -np.inf) & ok_mask(df)).sum())
    text = ("Each completed run's worst margin: the signed distance of its worst value to the bound, "
            "positive = held, negative = violated (the shaded band). Boxes show the quartiles, dots a sample "
            "of runs. " + (f"{bad} run-check(s) saw NaN/Inf; they have no finite margin and are counted in red "
                          "at the bottom of their panel." if bad else "No run saw NaN or Inf."))
    return paragraph(text) + figure(src, "worst margins")


def render(ctx: ReportContext) -> str:
    """The margins figure and its explanation."""
    return body(ctx.df, ctx.figure("margins", lambda p: plots.plot_margins(ctx.df, p)))


SECTION = Section(TITLE, render, applies=has_completed_runs)
