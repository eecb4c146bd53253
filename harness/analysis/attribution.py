"""Factor attribution: which axis moves a check's failure rate most?

Per check: a main-effects table (the run-level failure rate at each level of each
axis that varies; the range between the lowest and the highest level) and a logistic
model over all those axes at once, each axis a categorical factor (statsmodels GLM on
counts aggregated per configuration). Each axis is scored by the likelihood-ratio test
of dropping it from the full model (chi-square on as many degrees of freedom as it has
levels minus one): a large statistic means the axis explains failures the others do not.
Seeds are replicates, not factors; steps are left out when an epochs schedule derives
them from data size and batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.analysis.frame import (factor_axes, failed_mask, group_keys, groupby, label, ok_mask, pct, pformat,
                                    require)
from harness.analysis.glm import deviance

ATTRIBUTION_COLUMNS = ("axis", "levels", "lowest", "lowest_rate", "highest", "highest_rate", "rate_range",
                       "lr_chi2", "df", "p_value", "share", "rank", "verdict")


def _design(counts: pd.DataFrame, axes: Sequence[str]) -> dict[str, np.ndarray]:
    blocks = {}
    for a in axes:
        labels = counts[a].map(label).astype(str)
        blocks[a] = pd.get_dummies(labels, drop_first=True, dtype=float).to_numpy()
    return blocks


def _one_check(counts: pd.DataFrame, axes: Sequence[str], alpha: float) -> list[dict]:
    failed, n = counts["failed"].to_numpy(float), counts["n"].to_numpy(float)
    total = f"{int(failed.sum())}/{int(n.sum())} runs"
    if not axes:
        return [{"axis": "", "verdict": f"one configuration only ({total} fail): nothing to attribute"}]
    if failed.sum() == 0:
        return [{"axis": "", "verdict": "never fails: nothing to attribute"}]
    if failed.sum() == n.sum():
        return [{"axis": "", "verdict": "fails in every run: nothing to attribute"}]
    from scipy import stats

    blocks = _design(counts, axes)
    ones = np.ones((len(counts), 1))
    full = deviance(failed, n, np.hstack([ones, *blocks.values()]))
    rows = []
    for a in axes:
        rates = counts.groupby(counts[a].map(label).astype(str), sort=False)[["failed", "n"]].sum()
        rates = (rates["failed"] / rates["n"]).sort_values(kind="stable")
        reduced = deviance(failed, n, np.hstack([ones, *(b for k, b in blocks.items() if k != a)]))
        lr = max(0.0, reduced - full) if np.isfinite(reduced) and np.isfinite(full) else np.nan
        dof = int(blocks[a].shape[1])
        rows.append({"axis": a, "levels": len(rates), "lowest": rates.index[0], "lowest_rate": rates.iloc[0],
                     "highest": rates.index[-1], "highest_rate": rates.iloc[-1],
                     "rate_range": rates.iloc[-1] - rates.iloc[0], "lr_chi2": lr, "df": dof,
                     "p_value": float(stats.chi2.sf(lr, dof)) if np.isfinite(lr) else np.nan})
    out = pd.DataFrame(rows)
    out["share"] = out["lr_chi2"] / out["lr_chi2"].sum() if out["lr_chi2"].sum() > 0 else np.nan
    out = out.sort_values(["lr_chi2", "rate_range"], ascending=False, na_position="last", kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    words = []
    for r in out.itertuples():
        span = f"{pct(r.lowest_rate)} ({r.lowest}) to {pct(r.highest_rate)} ({r.highest})"
        if not np.isfinite(r.p_value):
            words.append(f"model could not be fitted; rate {span}")
        elif r.p_value >= alpha:
            words.append(f"no significant effect ({pformat(r.p_value)}); rate {span}")
        elif r.rank == 1:
            words.append(f"moves the rate most: {span} ({pformat(r.p_value)})")
        else:
            words.append(f"also matters: {span} ({pformat(r.p_value)})")
    out["verdict"] = words
    return out.to_dict("records")


def attribute_factors(df: pd.DataFrame, by: Sequence[str] | str = ("check",), axes: Sequence[str] | None = None,
                      alpha: float = 0.05) -> pd.DataFrame:
    """One row per (group of ``by``, axis), most influential axis first. ``axes`` defaults to
    every axis that varies (seed excepted). Columns: the ``by`` columns, axis, levels,
    lowest / highest (level labels) with lowest_rate / highest_rate, rate_range, lr_chi2,
    df, p_value (likelihood-ratio test of dropping the axis), share (of the summed LR
    statistics), rank, verdict. A check with nothing to attribute gets one row saying why."""
    keys = group_keys(by)
    candidates = factor_axes(df) if axes is None else list(axes)
    require(df, (*keys, *candidates, "status", "passed"))
    ok = ok_mask(df)
    work = df.loc[ok, [*keys, *candidates]].copy()
    work["_failed"] = failed_mask(df)[ok].to_numpy()
    rows = []
    for key, part in (groupby(work, keys) if keys else [((), work)]):
        key = key if isinstance(key, tuple) else (key,)
        use = [a for a in candidates if part[a].nunique(dropna=False) > 1]
        if use:
            counts = groupby(part, use).agg(n=("_failed", "size"), failed=("_failed", "sum")).reset_index()
        else:
            counts = pd.DataFrame({"n": [len(part)], "failed": [int(part["_failed"].sum())]})
        for r in _one_check(counts, use, alpha):
            rows.append({**dict(zip(keys, key)), **r})
    return pd.DataFrame(rows, columns=[*keys, *ATTRIBUTION_COLUMNS])
