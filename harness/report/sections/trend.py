"""Does the failure rate rise with data size? Per check and precision, the logistic trend
over log10(data size) (``analysis.trend``), coloured from ``TrendVerdict``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.frame import label
from harness.analysis.verdicts import TrendVerdict
from harness.report.base import Section, has_completed_runs
from harness.report.cells import check, interval, pval, ratio_ci, tone_of
from harness.report.html import paragraph, split_table

TITLE = "Does the failure rate rise with data size?"


def body(tr: pd.DataFrame) -> str:
    """The trend table, coloured from ``TrendVerdict``."""
    text = ("Per check and precision, a logistic regression of run failure on log10(data size): the odds ratio "
            "is the factor by which the odds of a failing run change per 10x more data, with its 95% "
            "profile-likelihood interval and a likelihood-ratio p-value; two data sizes are enough. When the "
            "data are separated (no failing run at a smaller size than a passing run, e.g. 0% failing at the "
            "smallest size; checked from the counts) the logistic slope is unbounded: the odds ratio reads ∞ "
            "with the finite end of its interval, and the p-value comes from the Cochran-Armitage trend test. "
            "The change column is the rate at the largest size minus the rate at the smallest (Newcombe "
            "interval). Red: the rate rises; green: it falls, or the check never fails; uncoloured: no evidence "
            "of a trend, which says nothing about how often the check fails (the verdict gives the rates).")
    parts = [paragraph(text)]
    if len(tr) and (tr["sizes"] < 2).all():
        parts.append(paragraph("Only one data size in these results: no trend over data size can be estimated.",
                               "bad"))
    cols = [("check", check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("sizes", lambda r: f"{r.sizes:,}", "r"), ("runs", lambda r: f"{r.runs:,}", "r"),
            ("failed", lambda r: f"{r.failed:,}", "r"),
            ("odds ratio / 10x [95% CI]", lambda r: ratio_ci(r.odds_ratio, r.ci_low, r.ci_high), "r"),
            ("p", lambda r: pval(r.p_value), "r"),
            ("change smallest→largest", lambda r: "–" if not np.isfinite(r.rate_diff) else
             f"{r.rate_diff:+.0%} [{interval(r.diff_ci_low, r.diff_ci_high)}]"
             if np.isfinite(r.diff_ci_low) else f"{r.rate_diff:+.0%}", "r"),
            ("verdict", lambda r: str(r.verdict), "l")]
    never = tr["status"].eq(TrendVerdict.NEVER_FAILS.value)
    return "".join(parts) + split_table(tr, cols, never, f"{int(never.sum())} check x precision pairs never fail",
                                        csv="tables/trend.csv", tone=tone_of(TrendVerdict))


SECTION = Section(TITLE, lambda ctx: body(ctx.trend), applies=has_completed_runs)
