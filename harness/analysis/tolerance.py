"""Tolerance calibration: the bound that keeps the run-level false-alarm rate under a
target, validated on held-out seeds.

A run fails a check when its worst value crosses the bound, so the bound that keeps the
run-level false-alarm rate at ``target`` is the (1 - target) quantile of the runs' worst
values (the ``target`` quantile for a lower-bound check). Two estimates per
configuration, both from the calibration seeds only:

* empirical: ``numpy.quantile(..., method="higher")`` of the worst values;
* extreme value: peaks over threshold with a generalized Pareto fit (``tail.pot_quantile``),
  refused with a stated reason when the tail is too small or the fit is rejected.

Runs that saw NaN/Inf fail whatever the bound: they use up part of the target first
(when they alone exceed it, no bound can hold and the row says so). Each estimate is
then applied to the held-out seeds' runs (a run fails when its worst value lies beyond
the bound: value > b for an upper bound, value < b for a lower one) and its held-out
failure rate is reported beside it with a Wilson interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from harness.analysis.frame import direction_word, failed_mask, group_keys, groupby, ok_mask, pct, require, scores
from harness.analysis.rates import wilson_interval
from harness.analysis.tail import Gof, pot_quantile


def split_seeds(seeds: Iterable[int], holdout: float | Sequence[int] = 0.3) -> tuple[list[int], list[int]]:
    """(calibration seeds, held-out seeds). A fraction holds out the largest seeds (at least
    one when there are two or more seeds); a sequence names the held-out seeds."""
    values = sorted(int(s) for s in pd.unique(pd.Series(seeds, dtype="float64").dropna()))
    if isinstance(holdout, (int, float)) and not isinstance(holdout, bool):
        if not 0 <= holdout < 1:
            raise ValueError(f"holdout fraction must be in [0, 1), not {holdout}")
        k = 0 if len(values) < 2 or holdout == 0 else min(len(values) - 1, max(1, round(holdout * len(values))))
        held = values[len(values) - k:] if k else []
    else:
        held = sorted({int(s) for s in holdout} & set(values))
    return [s for s in values if s not in held], held


def _holdout(test: np.ndarray, q: float, alpha: float) -> tuple[int, float, float, float]:
    """(failed, rate, ci_low, ci_high) of the held-out runs against threshold q on the score."""
    if not np.isfinite(q) or test.size == 0:
        return 0, np.nan, np.nan, np.nan
    failed = int(np.count_nonzero(test > q))
    lo, hi = wilson_interval(failed, test.size, alpha)
    return failed, failed / test.size, float(lo[0]), float(hi[0])


def _verdict(failed: int, n: int, ci_low: float, ci_high: float, target: float) -> str:
    """Holds when the held-out rate is at most the target, or above it only by chance
    (the Wilson interval still contains the target)."""
    if n == 0:
        return "no held-out runs"
    share = f"{failed:,}/{n:,} held-out runs fail ({pct(failed / n)})"
    if failed / n <= target:
        return f"holds: {share}; 95% CI up to {pct(ci_high)}"
    if ci_low <= target:
        return f"holds within noise: {share}; 95% CI {pct(ci_low)}-{pct(ci_high)} includes the {pct(target)} target"
    return f"does not hold: {share}; 95% CI {pct(ci_low)}-{pct(ci_high)} is above the {pct(target)} target"


def _calibrate(train: np.ndarray, target: float, tail_kw: dict) -> dict:
    out: dict = {"empirical": np.nan, "evt": np.nan, "evt_note": "", "note": ""}
    if train.size == 0:
        out["note"] = out["evt_note"] = "no completed runs on the calibration seeds"
        return out
    nonfinite = float(np.mean(np.isinf(train)))
    if nonfinite >= target:
        out["note"] = (f"{pct(nonfinite)} of calibration runs saw NaN/Inf: no bound keeps false alarms "
                       f"under {pct(target)}")
        out["evt_note"] = "not attempted (NaN/Inf runs alone exceed the target)"
        return out
    exceed = (target - nonfinite) / (1.0 - nonfinite)
    finite = train[np.isfinite(train)]
    out["empirical"] = float(np.quantile(finite, 1.0 - exceed, method="higher"))
    if finite.size * exceed < 1:
        out["note"] = (f"empirical = the maximum of {finite.size} calibration runs (a {pct(exceed)} tail needs "
                       f"{int(np.ceil(1 / exceed))})")
    fit = pot_quantile(finite, exceed, **tail_kw)
    out["evt"], out["evt_note"] = fit.value, fit.note
    return out


def calibrate_tolerance(df: pd.DataFrame, by: Sequence[str] | str = ("check", "precision", "data_size"),
                        target: float = 0.01, holdout: float | Sequence[int] = 0.3, gof: Gof = "ks",
                        alpha: float = 0.05, tail_fraction: float = 0.2, min_exceedances: int = 15) -> pd.DataFrame:
    """Recommended bound per configuration (groups of ``by``; must include "check") for a
    run-level false-alarm rate of at most ``target``, with its held-out failure rate.

    Columns: the ``by`` columns; direction (below = upper bound, above = lower bound);
    bound and rate (the bound in use and its run-level failure rate over all seeds);
    n_calib, n_heldout (completed runs); empirical_bound, empirical_heldout_failed,
    empirical_heldout_rate, empirical_heldout_ci_high; evt_bound, evt_note (the fit, or why
    there is none), evt_heldout_failed, evt_heldout_rate, evt_heldout_ci_high;
    recommended_bound and recommended_from (the GPD estimate when it was accepted, else the
    empirical one), verdict (does it hold on the held-out seeds), note. A configuration
    without any completed run has no row (``incomplete_runs`` lists its runs).
    """
    keys = group_keys(by)
    if "check" not in keys:
        raise ValueError("calibrate_tolerance needs 'check' among the grouping columns")
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), not {target}")
    require(df, ("seed", *keys))
    ok = ok_mask(df).to_numpy()
    s = scores(df)
    op = df["op"].to_numpy(dtype=object)
    calib_seeds, held_seeds = split_seeds(df.loc[ok, "seed"].dropna(), holdout)
    held = df["seed"].isin(held_seeds).to_numpy()
    failed = failed_mask(df).to_numpy()
    bound = df["bound"].to_numpy(float, na_value=np.nan)
    tail_kw = {"gof": gof, "tail_fraction": tail_fraction, "min_exceedances": min_exceedances}
    rows = []
    for key, idx in groupby(df, keys).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        idx = idx[ok[idx]]
        if idx.size == 0:  # only runs that did not complete: incomplete_runs lists them
            continue
        row = dict(zip(keys, key))
        direction = direction_word(op[idx[0]])
        bounds = np.unique(bound[idx][np.isfinite(bound[idx])])
        row.update(direction=direction, bound=bounds[0] if bounds.size == 1 else np.nan,
                   rate=float(failed[idx].mean()))
        has = idx[~np.isnan(s[idx])]
        train, test = s[has[~held[has]]], s[has[held[has]]]
        row.update(n_calib=int(train.size), n_heldout=int(test.size))
        if direction is None and not np.isinf(train).all():
            cal = {"empirical": np.nan, "evt": np.nan, "evt_note": "direction unknown (no finite values)",
                   "note": "direction of the check unknown: no run with a finite value"}
        else:
            cal = _calibrate(train, target, tail_kw)
        sign = -1.0 if direction == "above" else 1.0
        use_evt = bool(np.isfinite(cal["evt"]))
        ci_low = {}
        for name, q in (("empirical", cal["empirical"]), ("evt", cal["evt"])):
            k, r, ci_low[name], hi = _holdout(test, q, alpha)
            row.update({f"{name}_bound": sign * q, f"{name}_heldout_failed": k if np.isfinite(r) else np.nan,
                        f"{name}_heldout_rate": r, f"{name}_heldout_ci_high": hi})
        row["evt_note"] = cal["evt_note"]
        pick = "evt" if use_evt else "empirical"
        row["recommended_bound"] = row[f"{pick}_bound"]
        row["recommended_from"] = ("extreme value (GPD)" if use_evt else "empirical quantile") \
            if np.isfinite(row[f"{pick}_bound"]) else "none"
        k = row[f"{pick}_heldout_failed"]
        if not np.isfinite(row["recommended_bound"]):
            row["verdict"] = "no recommendation"
        elif not held_seeds:
            row["verdict"] = "not validated: a single seed leaves none to hold out"
        else:
            row["verdict"] = _verdict(int(k) if np.isfinite(k) else 0, test.size, ci_low[pick],
                                      row[f"{pick}_heldout_ci_high"], target)
        row["note"] = cal["note"]
        rows.append(row)
    cols = [*keys, "direction", "bound", "rate", "n_calib", "n_heldout", "empirical_bound",
            "empirical_heldout_failed", "empirical_heldout_rate", "empirical_heldout_ci_high", "evt_bound",
            "evt_note", "evt_heldout_failed", "evt_heldout_rate", "evt_heldout_ci_high", "recommended_bound",
            "recommended_from", "verdict", "note"]
    out = pd.DataFrame(rows, columns=cols)
    out.attrs.update(target=target, calibration_seeds=calib_seeds, heldout_seeds=held_seeds, gof=gof)
    return out
