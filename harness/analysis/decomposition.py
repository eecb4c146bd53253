"""Multiple comparisons: is a rise of run failures with data size only "more evaluations"?

A run evaluates a check many times (once per step); with an epochs schedule more data
means more steps. If every evaluation failed independently with the same probability p,
a run with n evaluations would fail with probability 1 - (1 - p)^n.

``decompose`` puts, per check and configuration, the per-evaluation rate, the observed
run-level rate and that expected run-level rate side by side (observed far below
expected means failures cluster within runs).

``explain_rise`` tests, per check x precision, whether the rise with data size is
explained by the evaluation count alone. Under a constant per-evaluation hazard h,
P(run fails) = 1 - exp(-h n), i.e. cloglog P = log h + log n: a binomial GLM with a
complementary log-log link and offset log(n_evaluated) (statsmodels). The coefficient
of log10(data size) in that model is the change of the hazard per 10x data *beyond*
the evaluation count: zero when counting explains the rise. The same model without the
offset gives the total rise. Whether a slope is finite is judged from the data
(``glm.detect_separation``): separated data give an unbounded slope with the finite end
of its profile-likelihood interval, and a likelihood-ratio p-value against the supremum
of the likelihood. Each row's verdict is data: ``status`` holds a ``RiseVerdict`` value
beside the sentence in ``verdict``.

In ``decompose`` the per-evaluation interval treats runs as clusters
(``rates.cluster_interval``): evaluations of one run are not independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.analysis.frame import factor_axes, failed_mask, group_keys, groupby, ok_mask, pformat, require
from harness.analysis.glm import slope_test
from harness.analysis.rates import cluster_interval, wilson_interval
from harness.analysis.trend import linear_by_linear, degenerate_trend
from harness.analysis.verdicts import RiseVerdict, TrendVerdict

RISE_COLUMNS = ("sizes", "runs", "failed", "evals_smallest", "evals_largest", "total_slope", "total_p",
                "beyond_slope", "beyond_ci_low", "beyond_ci_high", "beyond_p", "hazard_ratio_beyond", "status",
                "verdict")


def decompose(df: pd.DataFrame, by: Sequence[str] | str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Per group (default: check and every axis that varies, seed excepted; must include
    "check"): runs, failed_runs, run_rate [run_ci_low, run_ci_high] (Wilson over runs),
    evaluations, failed_evaluations, eval_rate [eval_ci_low, eval_ci_high] (runs as
    clusters: ``rates.cluster_interval``), mean_evaluations,
    expected_run_rate (mean over runs of 1 - (1 - eval_rate)^n_evaluated),
    observed_over_expected, incomplete (runs that did not complete)."""
    keys = ["check", *factor_axes(df)] if by is None else group_keys(by)
    if "check" not in keys:
        raise ValueError("decompose needs 'check' among the grouping columns")
    require(df, ("run_id", "n_evaluated", "n_failed", *keys))
    ok = ok_mask(df).to_numpy()
    work = df[keys].copy()
    work["_ok"] = ok
    work["_failed"] = failed_mask(df).to_numpy()
    work["_n"] = np.where(ok, df["n_evaluated"].fillna(0).to_numpy(float), 0.0)
    work["_k"] = np.where(ok, df["n_failed"].fillna(0).to_numpy(float), 0.0)
    work["_bad"] = df["run_id"].where(~ok).to_numpy()
    g = groupby(work, keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (g["_k"].transform("sum") / g["_n"].transform("sum")).to_numpy()
        work["_expected"] = np.where(ok, -np.expm1(work["_n"].to_numpy() * np.log1p(-p)), np.nan)
    out = g.agg(runs=("_ok", "sum"), failed_runs=("_failed", "sum"), evaluations=("_n", "sum"),
                failed_evaluations=("_k", "sum"), expected_run_rate=("_expected", "mean"),
                incomplete=("_bad", "nunique")).reset_index()
    out = out.astype({"runs": "int64", "failed_runs": "int64", "evaluations": "int64",
                      "failed_evaluations": "int64", "incomplete": "int64"})
    for name, k, n in (("run", "failed_runs", "runs"), ("eval", "failed_evaluations", "evaluations")):
        kk, nn = out[k].to_numpy(float), out[n].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{name}_rate"] = np.where(nn > 0, kk / nn, np.nan)
    out["run_ci_low"], out["run_ci_high"] = wilson_interval(out["failed_runs"].to_numpy(float),
                                                            out["runs"].to_numpy(float), alpha)
    # per evaluation: each (run, check) row of a group is one run, the cluster of its evaluations
    lo, hi, _ = cluster_interval(work["_k"].to_numpy()[ok], work["_n"].to_numpy()[ok], g.ngroup().to_numpy()[ok],
                                 len(out), alpha)
    out["eval_ci_low"], out["eval_ci_high"] = lo, hi
    with np.errstate(divide="ignore", invalid="ignore"):
        out["mean_evaluations"] = np.where(out["runs"] > 0, out["evaluations"] / out["runs"].clip(lower=1), np.nan)
        out["observed_over_expected"] = out["run_rate"] / out["expected_run_rate"]
    return out[[*keys, "runs", "failed_runs", "run_rate", "run_ci_low", "run_ci_high", "evaluations",
                "failed_evaluations", "eval_rate", "eval_ci_low", "eval_ci_high", "mean_evaluations",
                "expected_run_rate", "observed_over_expected", "incomplete"]]


def _ratio(v: float) -> str:
    return "∞" if v == np.inf else f"{v:.3g}"


def _rise_words(row: dict, alpha: float) -> tuple[RiseVerdict, str]:
    """The status and the sentence of a tested row."""
    grow = row["evals_largest"] / row["evals_smallest"] if row["evals_smallest"] > 0 else np.nan
    if not np.isfinite(row["total_p"]):
        return RiseVerdict.NOT_ENOUGH_DATA, "cannot test the rise with data size"
    if row["total_p"] >= alpha:
        return RiseVerdict.NO_RISE, (f"no significant rise with data size ({pformat(row['total_p'])}): "
                                     "nothing to explain")
    if row["total_slope"] < 0:
        return RiseVerdict.FALLS, f"falls with data size ({pformat(row['total_p'])}): nothing to explain"
    if np.isfinite(grow) and abs(np.log(grow)) < np.log(1.05):
        return RiseVerdict.RATE_RISES, (
            f"rises with data size ({pformat(row['total_p'])}) while evaluations per run stay at "
            f"{row['evals_smallest']:.0f}: the count cannot explain it; the per-evaluation rate rises")
    if not np.isfinite(row["beyond_p"]):
        return RiseVerdict.UNRESOLVED, (f"rises ({pformat(row['total_p'])}); cannot separate count from rate "
                                        f"({row['note']})")
    hr = row["hazard_ratio_beyond"]
    ci = f"95% CI {_ratio(np.exp(row['beyond_ci_low']))}-{_ratio(np.exp(row['beyond_ci_high']))}"
    times = f"{grow:,.0f}" if grow >= 10 else f"{grow:.2g}"
    more = f"runs at the largest size make {times}x the evaluations of the smallest"
    p = pformat(row["beyond_p"])
    if np.isfinite(row["beyond_slope"]):
        beyond = f"hazard x{_ratio(hr)} per 10x data beyond the count, {ci}, {p}"
    else:  # separated: the estimate is unbounded, the interval still has one finite end
        beyond = (f"the hazard ratio per 10x data beyond the count is unbounded as the data are separated, "
                  f"{ci}, {p}")
    if row["beyond_p"] >= alpha:
        return RiseVerdict.EXPLAINED, (
            f"explained by the number of evaluations: {more}, and the rise matches a constant "
            f"per-evaluation rate ({beyond})")
    if row["beyond_slope"] > 0:
        return RiseVerdict.NOT_EXPLAINED, (
            f"not explained by the number of evaluations alone: {more}, and the per-evaluation hazard "
            f"also grows with data size ({beyond})")
    return RiseVerdict.LESS_THAN_COUNT, (
        f"rises less than the evaluation count predicts ({more}; {beyond}): failures cluster within runs "
        "or grow rarer per evaluation")


_FROM_TREND = {TrendVerdict.NOT_ENOUGH_DATA: RiseVerdict.NOT_ENOUGH_DATA,
               TrendVerdict.NEVER_FAILS: RiseVerdict.NEVER_FAILS, TrendVerdict.ALWAYS_FAILS: RiseVerdict.ALWAYS_FAILS}


def explain_rise(df: pd.DataFrame, by: Sequence[str] | str = ("check", "precision"), x: str = "data_size",
                 alpha: float = 0.05) -> pd.DataFrame:
    """Per group of ``by``: is the change of the run-level failure rate with ``x`` explained by
    the number of evaluations alone? Columns: sizes, runs, failed, evals_smallest,
    evals_largest (mean evaluations per run at the extreme sizes), total_slope and total_p
    (cloglog slope per 10x without the count; +-inf with a Cochran-Armitage p-value when
    the data are separated), beyond_slope [beyond_ci_low, beyond_ci_high], beyond_p,
    hazard_ratio_beyond (per 10x, with offset log n_evaluated; +-inf with one finite
    profile-likelihood limit when separated), status (a ``RiseVerdict`` value: explained,
    not_explained, rate_rises, less_than_count, unresolved, no_rise, falls, never_fails,
    always_fails, not_enough_data), verdict (in words)."""
    keys = group_keys(by)
    require(df, (*keys, x, "n_evaluated", "status", "passed"))
    ok = ok_mask(df) & (df["n_evaluated"].fillna(0) > 0)
    work = df.loc[ok, [*keys, x, "n_evaluated"]].copy()
    work["_failed"] = failed_mask(df)[ok].to_numpy()
    counts = groupby(work, [*keys, x, "n_evaluated"]).agg(n=("_failed", "size"), failed=("_failed", "sum"))
    counts = counts.reset_index()
    rows = []
    for key, c in (groupby(counts, keys) if keys else [((), counts)]):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        sizes = groupby(c, [x]).agg(n=("n", "sum"), failed=("failed", "sum")).reset_index()
        c = c.assign(_e=c["n_evaluated"] * c["n"])
        per_size = c.groupby(x)["_e"].sum() / c.groupby(x)["n"].sum()
        row.update(sizes=len(sizes), runs=int(sizes["n"].sum()), failed=int(sizes["failed"].sum()),
                   evals_smallest=float(per_size.iloc[0]), evals_largest=float(per_size.iloc[-1]),
                   total_slope=np.nan, total_p=np.nan, beyond_slope=np.nan, beyond_ci_low=np.nan,
                   beyond_ci_high=np.nan, beyond_p=np.nan, hazard_ratio_beyond=np.nan, note="")
        status, reason = degenerate_trend(sizes, x)
        if status is not None:
            row.update(status=_FROM_TREND[status].value, verdict=reason)
            rows.append(row)
            continue
        failed, n = c["failed"].to_numpy(float), c["n"].to_numpy(float)
        logx = np.log10(c[x].to_numpy(float))
        total = slope_test(failed, n, logx, "cloglog", alpha=alpha)
        if total.ok:
            row.update(total_slope=total.coef, total_p=total.p_value)
        else:  # separated (or no fit): the trend test on the run counts per size, as trend() does
            z, p = linear_by_linear(sizes["failed"].to_numpy(float), sizes["n"].to_numpy(float),
                                np.log10(sizes[x].to_numpy(float)))
            slope = total.coef if total.separated and np.isinf(total.coef) else float(np.sign(z) * np.inf) if z else 0.0
            row.update(total_slope=slope, total_p=p)
        beyond = slope_test(failed, n, logx, "cloglog", offset=np.log(c["n_evaluated"].to_numpy(float)),
                            alpha=alpha)
        if beyond.ok or (beyond.separated and np.isinf(beyond.coef)):
            row.update(beyond_slope=beyond.coef, beyond_ci_low=beyond.ci_low, beyond_ci_high=beyond.ci_high,
                       beyond_p=beyond.p_value, hazard_ratio_beyond=float(np.exp(beyond.coef)))
        row["note"] = beyond.note
        status, row["verdict"] = _rise_words(row, alpha)
        row["status"] = status.value
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *RISE_COLUMNS])
