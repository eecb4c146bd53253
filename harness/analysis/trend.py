"""Does the run-level failure rate rise with data size?

Per group (default check x precision): a logistic regression of run failure on
log10(data size) (statsmodels GLM on aggregated counts): the slope is the change in
log-odds per 10x data, with a Wald interval and a likelihood-ratio p-value. When the
logistic fit separates (the rate jumps from 0 to 1 between sizes, so the slope is
infinite), the p-value comes from the linear-by-linear association test (the
Cochran-Armitage trend test; statsmodels ``Table.test_ordinal_association``) with the
same log10 sizes as scores. A model-free effect size is given beside it: the rate at the
largest size minus the rate at the smallest, with a Newcombe interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.analysis.frame import failed_mask, group_keys, groupby, label, ok_mask, pct, pformat, require
from harness.analysis.glm import slope_test

TREND_COLUMNS = ("sizes", "runs", "failed", "slope", "ci_low", "ci_high", "odds_ratio", "p_value", "method",
                 "rate_smallest", "rate_largest", "rate_diff", "diff_ci_low", "diff_ci_high", "verdict")


def size_counts(df: pd.DataFrame, keys: Sequence[str], x: str = "data_size") -> pd.DataFrame:
    """Completed (run, check) rows aggregated to n and failed per group and size."""
    ok = ok_mask(df)
    work = df.loc[ok, [*keys, x]].copy()
    work["_failed"] = failed_mask(df)[ok].to_numpy()
    return groupby(work, [*keys, x]).agg(n=("_failed", "size"), failed=("_failed", "sum")).reset_index()


def _association(failed: np.ndarray, n: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(z, p) of the linear-by-linear association test; z > 0 when failures rise with the score."""
    from statsmodels.stats.contingency_tables import Table

    res = Table(np.array([n - failed, failed], dtype=float), shift_zeros=False).test_ordinal_association(
        row_scores=np.array([0.0, 1.0]), col_scores=scores)
    return float(res.zscore), float(res.pvalue)


def _degenerate(counts: pd.DataFrame, x: str) -> str:
    if len(counts) < 2:
        size = label(counts[x].iloc[0]) if len(counts) else "none"
        return f"one data size only ({size}): no trend can be estimated"
    if counts["failed"].sum() == 0:
        return "never fails at any data size: no trend"
    if (counts["failed"] == counts["n"]).all():
        return "fails in every run at every data size: no trend"
    return ""


def _words(row: dict, alpha: float) -> str:
    p = row["p_value"]
    span = f"{pct(row['rate_smallest'])} at the smallest size, {pct(row['rate_largest'])} at the largest"
    if not np.isfinite(p):
        return f"cannot test ({row['method']}); {span}"
    if p >= alpha:
        return f"no evidence of a trend ({pformat(p)}); {span}"
    direction = "rises" if row["slope"] > 0 else "falls"
    if np.isfinite(row["odds_ratio"]):
        ci = f"{np.exp(row['ci_low']):.3g}-{np.exp(row['ci_high']):.3g}"
        effect = f"odds of a failing run x{row['odds_ratio']:.3g} per 10x data (95% CI {ci})"
    else:
        effect = "the logistic slope is infinite (complete separation)"
    return f"{direction} with data size: {effect}, {pformat(p)}; {span}"


def trend(df: pd.DataFrame, by: Sequence[str] | str = ("check", "precision"), x: str = "data_size",
          alpha: float = 0.05) -> pd.DataFrame:
    """One row per group of ``by``: does the run-level failure rate change with ``x``
    (log10 scale)? Columns: the ``by`` columns, then sizes, runs, failed, slope (log-odds
    per 10x), ci_low, ci_high, odds_ratio (per 10x), p_value, method, rate_smallest,
    rate_largest, rate_diff, diff_ci_low, diff_ci_high (Newcombe), verdict (plain words)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    keys = group_keys(by)
    require(df, (*keys, x, "status", "passed"))
    counts = size_counts(df, keys, x)
    rows = []
    groups = groupby(counts, keys) if keys else [((), counts)]
    for key, c in groups:
        key = key if isinstance(key, tuple) else (key,)
        c = c.sort_values(x)
        failed, n = c["failed"].to_numpy(float), c["n"].to_numpy(float)
        row = dict(zip(keys, key))
        row.update(sizes=len(c), runs=int(n.sum()), failed=int(failed.sum()), slope=np.nan, ci_low=np.nan,
                   ci_high=np.nan, odds_ratio=np.nan, p_value=np.nan, method="",
                   rate_smallest=failed[0] / n[0], rate_largest=failed[-1] / n[-1])
        row["rate_diff"] = row["rate_largest"] - row["rate_smallest"]
        row["diff_ci_low"] = row["diff_ci_high"] = np.nan
        reason = _degenerate(c, x)
        if reason:
            row.update(method="none", verdict=reason)
            rows.append(row)
            continue
        lo, hi = confint_proportions_2indep(failed[-1], n[-1], failed[0], n[0], method="newcomb", compare="diff",
                                            alpha=alpha)
        row.update(diff_ci_low=float(lo), diff_ci_high=float(hi))
        logx = np.log10(c[x].to_numpy(float))
        fit = slope_test(failed, n, logx, "logit", alpha=alpha)
        if fit.ok:
            row.update(slope=fit.coef, ci_low=fit.ci_low, ci_high=fit.ci_high, odds_ratio=float(np.exp(fit.coef)),
                       p_value=fit.p_value, method="logistic regression (likelihood ratio)")
        else:
            z, p = _association(failed, n, logx)
            row.update(slope=float(np.sign(z) * np.inf) if z else 0.0, p_value=p,
                       method=f"Cochran-Armitage trend test (logistic fit {fit.note.split(' (')[0]})")
        row["verdict"] = _words(row, alpha)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *TREND_COLUMNS])
