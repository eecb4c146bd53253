"""Does the run-level failure rate rise with data size?

Per group (default check x precision): a logistic regression of run failure on
log10(data size) (statsmodels GLM on aggregated counts): the slope is the change in
log-odds per 10x data, with a profile-likelihood interval and a likelihood-ratio p-value.
Two data sizes are enough: the fit is then saturated (fitted = observed rates) and the
slope is the difference of the two log-odds, finite unless a rate is 0% or 100%.

Whether the slope is finite is judged from the data (``glm.detect_separation``, a linear
program): when the data are separated -- every failing run at sizes no smaller than every
passing run, e.g. 0/30 at the smallest size -- the logistic slope is unbounded; the
p-value then comes from the linear-by-linear association test (the Cochran-Armitage
trend test; statsmodels ``Table.test_ordinal_association``) with the same log10 sizes as
scores, and the interval keeps its finite end from the profile likelihood. A model-free
effect size is given beside it: the rate at the largest size minus the rate at the
smallest, with a Newcombe interval.

Each row's verdict is data: ``status`` holds a ``TrendVerdict`` value (rises, falls,
flat, never_fails, always_fails, not_enough_data) beside the sentence in ``verdict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.analysis.frame import failed_mask, group_keys, groupby, label, ok_mask, pct, pformat, require
from harness.analysis.glm import slope_test
from harness.analysis.verdicts import TrendVerdict

TREND_COLUMNS = ("sizes", "runs", "failed", "slope", "ci_low", "ci_high", "odds_ratio", "p_value", "method",
                 "rate_smallest", "rate_largest", "rate_diff", "diff_ci_low", "diff_ci_high", "status", "verdict")


def size_counts(df: pd.DataFrame, keys: Sequence[str], x: str = "data_size") -> pd.DataFrame:
    """Completed (run, check) rows aggregated to n and failed per group and size."""
    ok = ok_mask(df)
    work = df.loc[ok, [*keys, x]].copy()
    work["_failed"] = failed_mask(df)[ok].to_numpy()
    return groupby(work, [*keys, x]).agg(n=("_failed", "size"), failed=("_failed", "sum")).reset_index()


def linear_by_linear(failed: np.ndarray, n: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(z, p) of the linear-by-linear association test; z > 0 when failures rise with the score."""
    from statsmodels.stats.contingency_tables import Table

    res = Table(np.array([n - failed, failed], dtype=float), shift_zeros=False).test_ordinal_association(
        row_scores=np.array([0.0, 1.0]), col_scores=scores)
    return float(res.zscore), float(res.pvalue)


def degenerate_trend(counts: pd.DataFrame, x: str) -> tuple[TrendVerdict | None, str]:
    """(status, sentence) when there is nothing to test: one size, no failure, no pass."""
    if len(counts) < 2:
        size = label(counts[x].iloc[0]) if len(counts) else "none"
        return TrendVerdict.NOT_ENOUGH_DATA, f"one data size only ({size}): no trend can be estimated"
    if counts["failed"].sum() == 0:
        return TrendVerdict.NEVER_FAILS, "never fails at any data size: no trend"
    if (counts["failed"] == counts["n"]).all():
        return TrendVerdict.ALWAYS_FAILS, "fails in every run at every data size: no trend"
    return None, ""


def _separation(sizes: np.ndarray, failed: np.ndarray, n: np.ndarray, rising: bool) -> str:
    """Where the cut lies, in words: which sizes always fail and which never do (only the
    parts that are not vacuous)."""
    if not rising:  # mirror: read the sizes from the largest down
        sizes, failed, n = sizes[::-1], failed[::-1], n[::-1]
    passes, fails = failed < n, failed > 0
    last_pass = int(np.flatnonzero(passes).max())  # every size after it always fails
    first_fail = int(np.flatnonzero(fails).min())  # every size before it never fails

    def where(part: np.ndarray) -> str:
        names = [label(v) for v in sorted(part)]
        return names[0] if len(names) == 1 else f"sizes {', '.join(names[:-1])} and {names[-1]}"

    parts = []
    if first_fail > 0:
        parts.append(f"no run fails at {where(sizes[:first_fail])}")
    if last_pass < len(sizes) - 1:
        parts.append(f"every run fails at {where(sizes[last_pass + 1:])}")
    return "; ".join(parts)


def _words(row: dict, alpha: float, rising: bool, separated: bool) -> tuple[TrendVerdict, str]:
    """The status and the sentence of a tested row. ``rising``: the direction of the
    estimate (the CA z when the slope is not finite); ``separated``: the slope is unbounded."""
    p = row["p_value"]
    span = (f"{pct(row['failed'] / row['runs'])} of runs fail overall, {pct(row['rate_smallest'])} at the "
            f"smallest size ({row['_smallest']}), {pct(row['rate_largest'])} at the largest ({row['_largest']})")
    cut = f"the data are separated ({row['_cut']}), so the logistic slope is unbounded"
    if not np.isfinite(p):
        return TrendVerdict.NOT_ENOUGH_DATA, f"cannot test ({row['method']}); {span}"
    if p >= alpha:
        why = f", Cochran-Armitage: {cut}" if separated else ""
        return TrendVerdict.FLAT, f"no evidence of a trend ({pformat(p)}{why}); {span}"
    status = TrendVerdict.RISES if rising else TrendVerdict.FALLS
    if np.isfinite(row["odds_ratio"]) and row["odds_ratio"] > 0:
        ci = f"{np.exp(row['ci_low']):.3g}-{np.exp(row['ci_high']):.3g}"
        effect = f"odds of a failing run x{row['odds_ratio']:.3g} per 10x data (95% CI {ci}), {pformat(p)}"
    elif separated:
        end = row["ci_low"] if rising else row["ci_high"]
        bound = (f"; the odds ratio per 10x data is at least {np.exp(end):.3g}" if rising else
                 f"; the odds ratio per 10x data is at most {np.exp(end):.3g}") if np.isfinite(end) else ""
        effect = f"{cut}{bound} (95% profile likelihood), {pformat(p)} (Cochran-Armitage)"
    else:
        effect = f"{pformat(p)} ({row['method']})"
    return status, f"{status.value} with data size: {effect}; {span}"


def trend(df: pd.DataFrame, by: Sequence[str] | str = ("check", "precision"), x: str = "data_size",
          alpha: float = 0.05) -> pd.DataFrame:
    """One row per group of ``by``: does the run-level failure rate change with ``x``
    (log10 scale)? Columns: the ``by`` columns, then sizes, runs, failed, slope (log-odds
    per 10x; +-inf when the data are separated), ci_low, ci_high (95% profile likelihood;
    one end infinite when separated), odds_ratio (per 10x), p_value (likelihood ratio, or
    Cochran-Armitage when separated), method, rate_smallest, rate_largest, rate_diff,
    diff_ci_low, diff_ci_high (Newcombe), status (a ``TrendVerdict`` value: rises, falls,
    flat, never_fails, always_fails, not_enough_data) and verdict (the same in words, with
    the rates)."""
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
        status, reason = degenerate_trend(c, x)
        if status is not None:
            row.update(method="none", status=status.value, verdict=reason)
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
            rising = fit.coef > 0
        else:
            z, p = linear_by_linear(failed, n, logx)
            rising = z > 0
            if fit.separated and np.isinf(fit.coef):
                rising = fit.coef > 0
                row.update(slope=fit.coef, ci_low=fit.ci_low, ci_high=fit.ci_high, odds_ratio=float(np.exp(fit.coef)),
                           method="Cochran-Armitage trend test (data separated: logistic slope unbounded)")
            else:
                row.update(method=f"Cochran-Armitage trend test (logistic fit {fit.note})")
            row["p_value"] = p
        row["_smallest"], row["_largest"] = label(c[x].iloc[0]), label(c[x].iloc[-1])
        row["_cut"] = _separation(c[x].to_numpy(), failed, n, bool(rising)) if fit.separated else ""
        status, row["verdict"] = _words(row, alpha, bool(rising), fit.separated and np.isinf(fit.coef))
        row["status"] = status.value
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *TREND_COLUMNS])
