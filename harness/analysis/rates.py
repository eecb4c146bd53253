"""Failure rates with 95% Wilson intervals, per run or per check evaluation.

Runs that did not complete (status error, crashed, timeout) carry no check values:
they are counted apart in the ``incomplete`` column, never dropped silently, so a
sweep that is still running or partly failed reads correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from harness.analysis.frame import failed_mask, group_keys, groupby, nonfinite_mask, ok_mask, require

Level = Literal["run", "check"]
RATE_COLUMNS = ("n", "failed", "rate", "ci_low", "ci_high", "nonfinite", "runs", "incomplete")


def wilson_interval(failed: np.ndarray | Sequence[float] | float, n: np.ndarray | Sequence[float] | float,
                    alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for failed/n (statsmodels ``proportion_confint``); NaN where n == 0."""
    from statsmodels.stats.proportion import proportion_confint

    k = np.atleast_1d(np.asarray(failed, dtype=float))
    m = np.atleast_1d(np.asarray(n, dtype=float))
    lo = np.full(m.shape, np.nan)
    hi = np.full(m.shape, np.nan)
    some = m > 0
    if some.any():
        lo[some], hi[some] = proportion_confint(k[some], m[some], alpha=alpha, method="wilson")
    lo[some & (k == 0)] = 0.0  # exact ends instead of floating-point dust
    hi[some & (k == m)] = 1.0
    return lo, hi


def _with_interval(out: pd.DataFrame, alpha: float) -> pd.DataFrame:
    n = out["n"].to_numpy(float)
    k = out["failed"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate"] = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
    out["ci_low"], out["ci_high"] = wilson_interval(k, n, alpha)
    return out


def failure_rates(df: pd.DataFrame, by: Sequence[str] | str | None = ("check",), level: Level = "run",
                  alpha: float = 0.05) -> pd.DataFrame:
    """Failure counts and rates with a (1 - alpha) Wilson interval, one row per group of ``by``.

    level="run": the unit is a completed run (a (run, check) row when "check" is in
    ``by``; otherwise a run fails when any of its checks failed). level="check": the unit
    is one evaluation of a check (sum of n_failed over sum of n_evaluated); evaluations
    within a run are correlated, so read that interval as a lower bound on the uncertainty.

    Columns: the ``by`` columns, then n (runs or evaluations), failed, rate, ci_low,
    ci_high, nonfinite (units that saw NaN/Inf), runs (completed runs), incomplete (runs
    of the group that errored, crashed or timed out; they are not in n).
    """
    if level not in ("run", "check"):
        raise ValueError(f"level must be 'run' or 'check', not {level!r}")
    keys = group_keys(by)
    require(df, ("run_id", "status", "passed", "n_evaluated", "n_failed", "n_nonfinite", *keys))
    ok = ok_mask(df)
    work = pd.DataFrame({k: df[k] for k in keys})
    work["_g"] = 0  # a constant key so that by=[] means "everything"
    keys_g = [*keys, "_g"]
    work["run_id"] = df["run_id"].to_numpy()
    work["_ok"] = ok.to_numpy()
    work["_okrun"] = work["run_id"].where(work["_ok"])
    work["_badrun"] = work["run_id"].where(~work["_ok"])
    if level == "run":
        work["_failed"] = failed_mask(df).to_numpy()
        work["_nonfinite"] = nonfinite_mask(df).to_numpy()
        if "check" not in keys:  # unit = run: collapse its checks first
            work = groupby(work, ["run_id", *keys_g]).agg(
                _ok=("_ok", "max"), _failed=("_failed", "max"), _nonfinite=("_nonfinite", "max"),
                _okrun=("_okrun", "first"), _badrun=("_badrun", "first")).reset_index()
        g = groupby(work, keys_g)
        out = g.agg(n=("_ok", "sum"), failed=("_failed", "sum"), nonfinite=("_nonfinite", "sum"),
                    runs=("_okrun", "nunique"), incomplete=("_badrun", "nunique"))
    else:
        work["_n"] = df["n_evaluated"].where(ok, 0).fillna(0).to_numpy()
        work["_failed"] = df["n_failed"].where(ok, 0).fillna(0).to_numpy()
        work["_nonfinite"] = df["n_nonfinite"].where(ok, 0).fillna(0).to_numpy()
        g = groupby(work, keys_g)
        out = g.agg(n=("_n", "sum"), failed=("_failed", "sum"), nonfinite=("_nonfinite", "sum"),
                    runs=("_okrun", "nunique"), incomplete=("_badrun", "nunique"))
    out = out.reset_index().drop(columns="_g")
    out = out.astype({"n": "int64", "failed": "int64", "nonfinite": "int64", "runs": "int64",
                      "incomplete": "int64"})
    out = _with_interval(out, alpha)
    out.attrs["level"] = level
    return out[[*keys, *RATE_COLUMNS]]
