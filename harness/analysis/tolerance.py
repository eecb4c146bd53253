"""Tolerance calibration: per configuration, the bound that keeps the run-level
false-alarm rate at or under ``target`` with a stated ``confidence``, or what is missing.

Seeds are the unit of replication: each completed run gives one sample of the check's
score (``frame.scores``: its worst value for an upper bound, minus it for a lower bound,
+inf when it saw NaN/Inf; the direction comes only from the recorded op). Per group:

* the recommended bound is distribution-free (``bounds.order_statistic_bound``: the r-th
  largest score, Wilks 1941), written for the check's op and value dtype
  (``bounds.safe_bound``). It is given only when GUARANTEED; otherwise it is NaN and the
  ``guarantee`` sentence says what is missing (how many more runs, or why no bound exists);
* beside it, the GPD extrapolation (``bounds.gpd_bound``): point estimate and the upper end
  of its profile-likelihood interval. A model, not a guarantee: never recommended;
* the recommended bound applied to runs it was not computed from: the held-out seeds
  (``holdout``) and/or a ``fresh`` results frame (``bounds.validate``: exact interval,
  a verdict only where the data can tell);
* the bound in use and its observed run-level failure rate with an exact interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from harness.analysis.bounds import (bound_text, exact_limits, gpd_bound, order_statistic_bound, runs_for_finite_bound,
                                     runs_needed, safe_bound, validate)
from harness.analysis.frame import directions, failed_mask, group_keys, groupby, ok_mask, pct, require, scores
from harness.analysis.tail import Gof
from harness.analysis.verdicts import BoundVerdict, ValidationVerdict

COLUMNS = ("op", "compare", "value_dtype", "bound", "runs", "failed", "rate", "rate_ci_low", "rate_ci_high",
           "n", "n_nonfinite", "bound_status", "runs_needed", "runs_missing", "order_rank", "achieved_confidence",
           "order_statistic", "recommended_bound", "recommended_text", "guarantee", "gpd_point", "gpd_bound", "gpd_gof_p", "gpd_note",
           "validation_runs", "validation_failed", "validation_rate", "validation_ci_low", "validation_ci_high",
           "validation_status", "validation_runs_to_decide", "validation", "note")


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


def share(x: float) -> str:
    """A target as a short percentage: 1%, 0.5%, 12.5%."""
    return f"{100 * x:.3g}%"


def ordinal(r: int) -> str:
    """"largest", "2nd largest", "3rd largest", "11th largest"."""
    if r == 1:
        return "largest"
    end = "th" if 10 <= r % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(r % 10, "th")
    return f"{r}{end} largest"


def _key(key: object) -> tuple:
    key = key if isinstance(key, tuple) else (key,)
    return tuple(None if isinstance(v, float) and np.isnan(v) else v for v in key)


def _one(values: np.ndarray) -> object:
    """The single non-null value of a group's column, None when there is none."""
    u = pd.unique(pd.Series(values, dtype=object).dropna())
    return u[0] if len(u) else None


def _guarantee(status: BoundVerdict, os_: object, target: float, confidence: float, extra: str) -> str:
    n, k = os_.n, os_.nonfinite
    if status is BoundVerdict.GUARANTEED:
        return f"false alarms <= {share(target)} of runs with {confidence:.0%} confidence, from {n:,} runs"
    if status is BoundVerdict.NEEDS_RUNS:
        m = runs_for_finite_bound(k, n, target, confidence) if k else np.nan
        return (f"needs {os_.runs_missing:,} more runs (have {n:,}; a {share(target)} guarantee at "
                f"{confidence:.0%} needs {os_.runs_needed:,})" + (f"; with {k:,} of {n:,} runs seeing NaN/Inf, about "
                                                                 f"{m:,.0f} runs in all" if np.isfinite(m) else ""))
    if status is BoundVerdict.NO_BOUND and extra:
        return f"no bound: {extra}"
    if status is BoundVerdict.NO_BOUND and os_.rank and k / n <= target:
        m = runs_for_finite_bound(k, n, target, confidence)
        return (f"no finite bound yet: {k:,} of {n:,} runs saw NaN/Inf and the guarantee would use the "
                f"{ordinal(os_.rank)} run, one of them; " + (f"at that NaN/Inf rate about {m:,.0f} runs would give "
                                                            "one" if np.isfinite(m) else "more runs may give one"))
    if status is BoundVerdict.NO_BOUND:
        return (f"no bound: {k:,} of {n:,} runs saw NaN/Inf, more than {share(target)} of runs with "
                f"{confidence:.0%} confidence; they fail whatever the bound")
    return extra


def _validation_text(v: object, target: float, confidence: float, where: str) -> str:
    if v.status is ValidationVerdict.NOT_VALIDATED:
        return "not validated: " + ("no bound to validate" if v.runs else f"no {where}")
    text = (f"{v.failed:,}/{v.runs:,} {where} fail ({pct(v.rate)}; {confidence:.0%} limits "
            f"{pct(v.ci_low)}-{pct(v.ci_high)})")
    if v.status is ValidationVerdict.HOLDS:
        return f"holds: {text}"
    if v.status is ValidationVerdict.EXCEEDS:
        return f"exceeds the {share(target)} target: {text}"
    more = f"; about {v.runs_to_decide:,.0f} runs at this rate would tell" if np.isfinite(v.runs_to_decide) else ""
    return f"inconclusive: {text}{more}"


def _fresh_scores(fresh: pd.DataFrame | None, keys: list[str]) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """(scores, direction) per group of a fresh results frame: only its runs of the same direction validate."""
    if fresh is None:
        return {}
    require(fresh, ("op", *keys))
    sf, fd = scores(fresh), directions(fresh)
    return {_key(k): (sf[i], fd[i]) for k, i in groupby(fresh, keys).indices.items()}


def _in_use(bounds: np.ndarray, failed_done: np.ndarray, confidence: float) -> dict:
    """The bound in use (NaN unless the group has one) and its observed run-level failure rate, with its
    exact limits, over the group's completed runs (``failed_done``: whether each failed)."""
    finite = np.unique(bounds[np.isfinite(bounds)])
    n, k = failed_done.size, int(failed_done.sum())
    lo, hi = exact_limits(k, max(n, 1), confidence)
    return dict(bound=finite[0] if finite.size == 1 else np.nan, runs=int(n), failed=k, rate=k / n if n else np.nan,
                rate_ci_low=float(lo) if n else np.nan, rate_ci_high=float(hi) if n else np.nan)


def _recommend(os_: object, op: object, ops: np.ndarray, compare: object, dtype: object, sign: float,
               n_runs: int, n_done: int, notes: list[str]) -> tuple[BoundVerdict, str, float]:
    """(status, why there is no bound, the recommended bound or NaN) from the order statistic ``os_``;
    what the recommendation rests on goes to ``notes``."""
    status, extra, rec = os_.status, "", np.nan
    if op is None:
        status = BoundVerdict.UNKNOWN_OP
        extra = (f"the check's op differs between runs ({', '.join(map(str, ops))}): group by the axis "
                 "that changes it" if len(ops) > 1 else "these results predate recorded ops (schema 1 part "
                 "files): the check's direction is unknown; rerun the sweep to calibrate it")
    elif status is BoundVerdict.NO_DATA:
        extra = (f"no completed runs ({n_runs:,} did not complete)" if n_done == 0 else
                 f"no completed run evaluated the check ({n_done:,} completed, none evaluated it)")
    elif status is BoundVerdict.GUARANTEED:
        rec, why = safe_bound(sign * os_.value, op, compare or "exact", dtype)
        notes += [why] if why else []
        if not np.isfinite(rec):
            status, extra = BoundVerdict.NO_BOUND, why
        else:
            notes.append(f"the {ordinal(os_.rank)} of {os_.n:,} runs' worst values (achieved confidence "
                         f"{os_.confidence:.1%})" + (f", rounded to {dtype} (native compare)"
                                                     if compare == "native" and rec != sign * os_.value else ""))
    return status, extra, rec


def _extrapolation(gpd: object, sign: float, op: object, compare: object, dtype: object) -> dict:
    """The GPD columns: its point estimate and upper end (rounded like a recommendation), its fit."""
    return dict(gpd_point=sign * gpd.point if gpd else np.nan,
                gpd_bound=safe_bound(sign * gpd.upper, op, compare or "exact", dtype)[0] if gpd else np.nan,
                gpd_gof_p=gpd.gof_p if gpd else np.nan, gpd_note=gpd.note if gpd else "")


def _validation_columns(v: object) -> dict:
    return dict(validation_runs=v.runs, validation_failed=v.failed if np.isfinite(v.rate) else np.nan,
                validation_rate=v.rate, validation_ci_low=v.ci_low, validation_ci_high=v.ci_high,
                validation_status=v.status.value, validation_runs_to_decide=v.runs_to_decide)


def calibrate_tolerance(df: pd.DataFrame, by: Sequence[str] | str = ("check", "precision", "data_size"),
                        target: float = 0.01, confidence: float = 0.95, holdout: float | Sequence[int] = 0.0,
                        fresh: pd.DataFrame | None = None, gof: Gof = "ks", tail_fraction: float = 0.2,
                        min_exceedances: int = 15) -> pd.DataFrame:
    """Per group of ``by`` (must include "check"; every other axis given groups too): the
    bound that keeps the run-level false-alarm rate <= ``target`` with ``confidence``.

    ``holdout``: a fraction of the largest seeds (or a list of seeds) kept out of the
    calibration to validate on; ``fresh``: another results frame (new seeds, same checks),
    matched by the same group keys, validated on as well.

    Columns: the ``by`` columns; op, compare, value_dtype; the bound in use: bound, runs
    (completed), failed, rate, rate_ci_low, rate_ci_high (exact, each limit one-sided at
    ``confidence``); the calibration: n (runs with a value), n_nonfinite, bound_status
    (BoundVerdict value), runs_needed, runs_missing, order_rank and achieved_confidence (the
    order statistic used), order_statistic, recommended_bound (NaN unless guaranteed),
    recommended_text (the text to paste as the check's bound: it compares exactly as
    recommended_bound, see bounds.bound_text; "" unless guaranteed), guarantee (sentence); the extrapolation: gpd_point, gpd_bound (upper confidence end,
    rounded like a recommendation), gpd_gof_p, gpd_note; the validation:
    validation_runs, validation_failed, validation_rate, validation_ci_low,
    validation_ci_high, validation_status (ValidationVerdict value),
    validation_runs_to_decide, validation (sentence); note.
    """
    keys = group_keys(by)
    if "check" not in keys:
        raise ValueError("calibrate_tolerance needs 'check' among the grouping columns")
    need = runs_needed(target, confidence)  # validates target and confidence
    require(df, ("seed", "op", *keys))
    ok = ok_mask(df).to_numpy()
    s = scores(df)
    calib_seeds, held_seeds = split_seeds(df.loc[ok, "seed"].dropna(), holdout)
    held = df["seed"].isin(held_seeds).to_numpy()
    failed = failed_mask(df).to_numpy()
    cols = {c: df[c].to_numpy(dtype=object) if c in df.columns else np.full(len(df), None, dtype=object)
            for c in ("op", "compare", "value_dtype")}
    bound = df["bound"].to_numpy(float, na_value=np.nan)
    fresh_scores = _fresh_scores(fresh, keys)
    where = " and ".join(w for w, on in (("held-out runs", bool(held_seeds)), ("fresh runs", fresh is not None))
                         if on) or "validation runs"
    tail_kw = {"gof": gof, "tail_fraction": tail_fraction, "min_exceedances": min_exceedances}
    rows = []
    for key, idx in groupby(df, keys).indices.items():
        row: dict = dict(zip(keys, _key(key)))
        done = idx[ok[idx]]
        ops = pd.unique(pd.Series(cols["op"][idx], dtype=object).dropna())
        op = ops[0] if len(ops) == 1 else None
        compare, dtype = _one(cols["compare"][done]), _one(cols["value_dtype"][done])
        row.update(op=op, compare=compare, value_dtype=dtype,
                   **_in_use(bound[idx], failed[done], confidence))
        notes: list[str] = []
        old = int(pd.isna(pd.Series(cols["op"][done], dtype=object)).sum())
        if old and op is not None:
            notes.append(f"{old:,} run(s) predate recorded ops (schema 1) and are left out")
        sign = -1.0 if op in (">", ">=") else 1.0
        train = s[done[~held[done]]]
        os_ = order_statistic_bound(train, target, confidence)
        status, extra, rec = _recommend(os_, op, ops, compare, dtype, sign, idx.size, done.size, notes)
        row.update(n=os_.n, n_nonfinite=os_.nonfinite, bound_status=status.value, runs_needed=need,
                   runs_missing=os_.runs_missing, order_rank=os_.rank, achieved_confidence=os_.confidence,
                   order_statistic=sign * os_.value if op is not None else np.nan,
                   recommended_bound=rec if status is BoundVerdict.GUARANTEED else np.nan,
                   recommended_text=bound_text(rec, compare or "exact", dtype) if status is BoundVerdict.GUARANTEED
                   else "",
                   guarantee=_guarantee(status, os_, target, confidence, extra))
        gpd = gpd_bound(train, target, confidence, **tail_kw) if op is not None and os_.n else None
        row.update(_extrapolation(gpd, sign, op, compare, dtype))
        fs, fd = fresh_scores.get(_key(key), (np.empty(0), np.empty(0)))
        test = np.r_[s[done[held[done]]], fs[fd == sign]]
        v = validate(test, sign * row["recommended_bound"], target, confidence, strict=op in ("<", ">"))
        row.update(_validation_columns(v), validation=_validation_text(v, target, confidence, where),
                   note="; ".join(notes))
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*keys, *COLUMNS])
    out.attrs.update(target=target, confidence=confidence, runs_needed=need, by=keys, gof=gof,
                     calibration_seeds=calib_seeds, heldout_seeds=held_seeds, fresh=fresh is not None)
    return out
