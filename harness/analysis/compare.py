"""Compare two sweeps: did a change make an assertion fail more often, per cell, paired by seed?

``compare(before, after)`` takes two results frames (``harness.load_results``) and returns one row
per (cell, check): both run-level failure rates with Wilson intervals, the difference after -
before with its interval and an exact p-value (paired by seed where both sides ran the seed, else
independent; see :mod:`harness.analysis.paired`), how many paired runs are identical in every
recorded value of the check and how many flipped each way, the paired shift of ``worst_margin``,
and a :class:`~harness.analysis.verdicts.CompareVerdict`.

Matching. A setting that takes one value on each side and differs between them (an axis such as
``clip_value``, or a scenario parameter such as ``accumulate_float32``) is the change being
compared: it is left out of the match and listed in ``attrs["changed"]``. Runs are then matched on
every other axis and the seed, checks on name and op (a bound that differs is listed as changed).
A cell, check or seed present on one side only is kept: its rows carry the verdict
``only_before``/``only_after``, and ``attrs["unpaired"]`` counts the seeds each side ran alone.

Multiplicity: the worse/better verdicts control the family-wise error rate over every compared
row with Holm's step-down method (Holm 1979; statsmodels multipletests "holm") on the exact
p-values. A paired row with too few flips to reach significance at alpha (five or fewer: McNemar's
smallest p-value is 2 / 2^flips) cannot be rejected at any level and is left out of the family
(Tarone 1990), so cells whose runs did not change cost the others no power; ``tested`` says which. The equivalence verdict (``margin``) is a two one-sided test (Schuirmann 1987) per row:
the 1 - 2 alpha interval of the difference inside (-margin, margin). Simulated error rates and power
are in docs/compare.md (python scripts/compare_tables.py --write).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.frame import CONFIG_AXES, failed_mask, label, ok_mask, present, require, with_variant
from harness.analysis.paired import (fisher_min_p, holm_family, independent_difference, mcnemar_min_p,
                                     paired_difference,
                                     paired_shift, runs_needed_independent, runs_needed_paired)
from harness.analysis.rates import wilson_interval
from harness.analysis.verdicts import CompareVerdict

# what a check recorded about a run: two paired runs equal in all of these are identical
IDENTITY_VALUES: tuple[str, ...] = ("passed", "n_evaluated", "n_failed", "n_nonfinite", "worst_value",
                                    "first_failure_step")
SIDES: tuple[str, str] = ("before", "after")
RUN_AXES: tuple[str, ...] = tuple(a for a in CONFIG_AXES if a != "params")


def compare(before: pd.DataFrame, after: pd.DataFrame, *, by: Sequence[str] | None = None,
            margin: float | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (cell, check) of the two sweeps; see the module's docstring. ``by`` names the
    axes a cell is made of (default: every axis that varies, scenario always); runs are paired on
    all axes and the seed whatever ``by`` says."""
    for df in (before, after):
        require(df, ("run_id", "check", "op", "status", "passed", "seed", "scenario", *IDENTITY_VALUES,
                     "worst_margin"))
    if margin is not None and not (0 < margin < 1):
        raise ValueError(f"--margin: {margin!r} is not a rate difference strictly between 0 and 1")
    if margin is not None and not alpha < 0.5:
        raise ValueError(f"--alpha: {alpha!r} with --margin: the equivalence test's interval is 1 - 2 alpha, "
                         "so alpha must be below 0.5")
    sides, changed, changed_axes = _matchable(with_variant(before), with_variant(after))
    cells = _cell_axes(sides, by, changed_axes)
    keys = [*cells, "check", "op"]
    runs = _paired_runs(sides, keys)
    flips: list[dict[str, Any]] = []
    groups = sorted(runs.groupby(keys, dropna=False, sort=False), key=lambda group: _sort_key(group[0]))
    out = pd.DataFrame([_row(key, keys, part, margin, alpha, flips) for key, part in groups])
    if not out.empty:
        out = _decide(out, margin, alpha)
    out.attrs["changed"] = changed + _changed_bounds(sides)
    out.attrs["unpaired"] = _unpaired_seeds(runs, keys)
    out.attrs["cells"] = cells
    out["where"] = cell_labels(out) if not out.empty else pd.Series(dtype=object)
    flips_frame = pd.DataFrame(flips, columns=[*keys, "seed", "flip", "before_run_id", "after_run_id",
                                               "before_worst_value", "after_worst_value"])
    places = {tuple(r[:-1]): r[-1] for r in out[[*keys, "where"]].itertuples(index=False)} if not out.empty else {}
    flips_frame["where"] = [places.get(tuple(r)) for r in flips_frame[keys].itertuples(index=False)]
    out.attrs["flips"] = flips_frame
    out.attrs["alpha"], out.attrs["margin"] = alpha, margin
    return out


def cell_labels(result: pd.DataFrame) -> pd.Series:
    """Each row's cell as people read it: the scenario, its swept variant, and the axes that vary
    among that scenario's rows (an axis a scenario collapses, e.g. batch size where it does not
    train, is left out), e.g. ``normalization fp16 data_size 100,000``."""
    cells = [c for c in result.attrs.get("cells", []) if c in result.columns]
    out = pd.Series("", index=result.index, dtype=object)
    for _, part in result.groupby("scenario", sort=False) if "scenario" in result.columns else [(None, result)]:
        shown = [c for c in cells if c not in ("scenario", "cell_variant") and part[c].map(label).nunique() > 1]
        for i, row in part.iterrows():
            words = [str(row["scenario"])] if "scenario" in part.columns else []
            if str(row.get("cell_variant", "") or ""):
                words.append(f"[{row['cell_variant']}]")
            words += [label(row[c]) if c == "precision" else f"{c} {label(row[c])}" for c in shown]
            out[i] = " ".join(words)
    return out


# --------------------------------------------------------------------------- matching


def _params(df: pd.DataFrame) -> pd.Series:
    return df["params"].fillna("{}").astype(str).map(json.loads) if "params" in df.columns else \
        pd.Series([{}] * len(df), index=df.index)


def _matchable(before: pd.DataFrame, after: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[str], list[str]]:
    """Both frames with a ``match`` column (the run's axes and parameters less the settings that are
    the change), the list of those settings as "name: before -> after", and the axes among them."""
    changed: list[str] = []
    drop_axes = []
    for axis in present(before, RUN_AXES):
        if axis not in after.columns or axis in ("schedule",):
            continue
        b, a = before[axis].drop_duplicates(), after[axis].drop_duplicates()
        if len(b) == 1 and len(a) == 1 and label(b.iloc[0]) != label(a.iloc[0]):
            drop_axes.append(axis)
            changed.append(f"{axis}: {label(b.iloc[0])} -> {label(a.iloc[0])}")
    pb, pa = _params(before), _params(after)
    drop_params: dict[str, set[str]] = {}
    for scenario in sorted(set(before["scenario"]) & set(after["scenario"])):
        ob, oa = pb[before["scenario"] == scenario], pa[after["scenario"] == scenario]
        for key in sorted({k for p in ob for k in p} | {k for p in oa for k in p}):
            vb = {json.dumps(p.get(key), sort_keys=True) for p in ob}
            va = {json.dumps(p.get(key), sort_keys=True) for p in oa}
            if len(vb) == 1 and len(va) == 1 and vb != va:
                drop_params.setdefault(scenario, set()).add(key)
                changed.append(f"scenarios.{scenario}.{key}: {next(iter(vb))} -> {next(iter(va))}")
    out = {}
    for side, df, params in (("before", before, pb), ("after", after, pa)):
        keep = [a for a in present(df, RUN_AXES) if a not in drop_axes and a != "variant"]
        rest = [json.dumps({k: v for k, v in p.items() if k not in drop_params.get(s, set())}, sort_keys=True)
                for p, s in zip(params, df["scenario"])]
        parts = [df[a].map(label).astype(str) for a in keep]
        match = pd.Series(rest, index=df.index, dtype=object)
        for a, part in zip(keep, parts):
            match = match + "|" + a + "=" + part
        variant = _variant_without(df, drop_params)
        out[side] = df.assign(match=match, cell_variant=variant)
    return out, changed, drop_axes


def _variant_without(df: pd.DataFrame, drop: dict[str, set[str]]) -> pd.Series:
    """The swept-parameter label of each row without the parameters that are the change."""
    def strip(variant: Any, scenario: str) -> str:
        parts = [p for p in str(variant or "").split(", ") if p and p.split("=", 1)[0] not in drop.get(scenario, set())]
        return ", ".join(parts)

    return pd.Series([strip(v, s) for v, s in zip(df["variant"], df["scenario"])], index=df.index, dtype=object)


def _cell_axes(sides: dict[str, pd.DataFrame], by: Sequence[str] | None, changed: Sequence[str] = ()) -> list[str]:
    """The axes a cell is made of: ``by`` (validated), else every axis that varies, scenario first;
    never an axis that is the change being compared (its two values are the two sides)."""
    both = pd.concat([sides["before"], sides["after"]], ignore_index=True)
    allowed = [a for a in (*present(both, RUN_AXES), "cell_variant") if a not in changed and a != "schedule"]
    if by is not None:
        wrong = [a for a in by if a not in allowed]
        if wrong or len(set(by)) != len(by):
            what = f"{wrong[0]} is not an axis a cell can be made of" if wrong else "an axis is named twice"
            raise KeyError(f"--by: {what} (axes: {', '.join(allowed)})")
        return list(by)
    axes = ["scenario", *[a for a in allowed if a not in ("scenario", "cell_variant")
                          and both[a].map(label).nunique() > 1]]
    if both["cell_variant"].nunique() > 1:
        axes.insert(1, "cell_variant")
    return axes


RUN_COLUMNS: tuple[str, ...] = ("run_id", "failed", "incomplete", *IDENTITY_VALUES, "worst_margin")


def _paired_runs(sides: dict[str, pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """One row per (cell, check, run key, seed) of either side, with each side's values suffixed
    ``_before``/``_after`` (null where that side lacks the run). A run that did not complete (error,
    crash, timeout) is a run that did not hold the check: ``failed`` and ``incomplete`` are true for
    it, so a change that makes runs error is compared as one that makes them fail. Rows of a run that
    ended before declaring its checks (check "") are not a check's rows: ``attrs["undeclared"]``
    counts those runs per side."""
    textual = {k for k in keys for df in sides.values() if df[k].dtype.kind in "fO" or df[k].isna().any()
               or str(df[k].dtype) in ("str", "string")}
    frames, undeclared = [], {}
    for side, df in sides.items():
        blank = df["check"].fillna("").astype(str) == ""
        undeclared[side] = int(df.loc[blank, "run_id"].nunique())
        df = df[~blank]
        done = ok_mask(df).to_numpy()
        df = df.assign(failed=failed_mask(df).to_numpy() | ~done, incomplete=~done)
        for k in keys:  # one spelling of a key on both sides (none for a null clip_value, 1000 for 1000.0)
            df[k] = df[k].map(label) if k in textual else df[k]
        kept = df.drop_duplicates([*keys, "match", "seed"], keep="last")
        frames.append(kept[[*keys, "match", "seed", *RUN_COLUMNS]]
                      .rename(columns={c: f"{c}_{side}" for c in RUN_COLUMNS}))
    runs = frames[0].merge(frames[1], on=[*keys, "match", "seed"], how="outer")
    runs.attrs["undeclared"] = undeclared
    return runs


def _sort_key(key: tuple) -> tuple:
    def one(k: Any) -> tuple:
        if isinstance(k, (int, float, np.integer, np.floating)):
            return (0, float(k), "")
        try:  # a label such as "100,000"
            return (0, float(str(k).replace(",", "")), "")
        except ValueError:
            return (1, 0.0, str(k))
    return tuple(one(k) for k in key)


# --------------------------------------------------------------------------- per row


def _identical(both: pd.DataFrame) -> np.ndarray:
    """Per paired run: every recorded value of the check equal on both sides (NaN equals NaN)."""
    same = np.ones(len(both), dtype=bool)
    for col in IDENTITY_VALUES:
        x, y = both[f"{col}_before"].to_numpy(dtype=object), both[f"{col}_after"].to_numpy(dtype=object)
        missing_x, missing_y = pd.isna(x), pd.isna(y)
        equal = np.array([u == v for u, v in zip(x, y)], dtype=bool) if len(x) else np.zeros(0, bool)
        same &= (missing_x & missing_y) | (~missing_x & ~missing_y & equal)
    return same


def _side(part: pd.DataFrame, side: str) -> pd.DataFrame:
    return part[part[f"run_id_{side}"].notna()]


def _row(key: tuple, keys: list[str], part: pd.DataFrame, margin: float | None, alpha: float,
         flips: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell and check. Paired by seed when every run of the side with fewer runs has its seed on
    the other side (the usual case, and the one where the other side only added seeds); else the two
    sides' runs are compared as independent samples (a partial overlap of seeds would let a few
    pairs stand for many unpaired runs)."""
    row: dict[str, Any] = dict(zip(keys, key))
    b, a = _side(part, "before"), _side(part, "after")
    for side, runs in (("before", b), ("after", a)):
        n, failed = len(runs), int(runs[f"failed_{side}"].astype(bool).sum())
        low, high = wilson_interval(failed, n, alpha)
        row.update({f"{side}_runs": n, f"{side}_failed": failed, f"{side}_rate": failed / n if n else math.nan,
                    f"{side}_low": float(low[0]), f"{side}_high": float(high[0]),
                    f"{side}_incomplete": int(runs[f"incomplete_{side}"].astype(bool).sum())})
    if not len(b) or not len(a):
        row["status"] = CompareVerdict.ONLY_BEFORE if not len(a) else CompareVerdict.ONLY_AFTER
        return row
    both = part[part["run_id_before"].notna() & part["run_id_after"].notna()]
    fb, fa = both["failed_before"].astype(bool).to_numpy(), both["failed_after"].astype(bool).to_numpy()
    worse, better = int((~fb & fa).sum()), int((fb & ~fa).sum())
    paired = len(both) > 0 and len(both) == min(len(b), len(a))
    row.update(pairs=len(both), identical=int(_identical(both).sum()), flipped_to_fail=worse, flipped_to_pass=better,
               paired_before_failed=int(fb.sum()), paired_after_failed=int(fa.sum()))
    for i in np.flatnonzero(fb != fa):
        r = both.iloc[i]
        flips.append({**dict(zip(keys, key)), "seed": r["seed"], "flip": "to_fail" if fa[i] else "to_pass",
                      "before_run_id": r["run_id_before"], "after_run_id": r["run_id_after"],
                      "before_worst_value": r["worst_value_before"], "after_worst_value": r["worst_value_after"]})
    if len(both):
        shift = paired_shift(both["worst_margin_before"].to_numpy(float), both["worst_margin_after"].to_numpy(float),
                             alpha)
        row.update(shift_median=shift.median, shift_low=shift.low, shift_high=shift.high, shift_p=shift.p,
                   shift_pairs=shift.n)
    if paired:
        d = paired_difference(worse, better, len(both), alpha)
        d_eq = paired_difference(worse, better, len(both), 2 * alpha) if margin is not None else None
        row["min_p"] = mcnemar_min_p(worse + better)
    else:
        counts = (row["before_failed"], len(b), row["after_failed"], len(a))
        d = independent_difference(*counts, alpha)
        d_eq = independent_difference(*counts, 2 * alpha) if margin is not None else None
        row["min_p"] = fisher_min_p(*counts)
    row.update(diff=d.diff, diff_low=d.low, diff_high=d.high, p=d.p, method=d.method)
    if d_eq is not None:
        row.update(equivalent=bool(d_eq.low > -margin and d_eq.high < margin))
    row["_discordant"] = (worse + better + 1) / (len(both) + 2) if paired else math.nan
    return row


def _decide(out: pd.DataFrame, margin: float | None, alpha: float) -> pd.DataFrame:
    """Holm over the rows with a p-value, then each row's verdict and, where the data cannot say,
    how many more seeds would (at ``alpha`` / the number of tests, Holm's first step)."""
    out = out.copy()
    for col in ("p", "diff", "pairs", "identical", "equivalent", "_discordant"):
        if col not in out.columns:
            out[col] = np.nan
    if "method" not in out.columns:
        out["method"] = None
    if "min_p" not in out.columns:
        out["min_p"] = np.nan
    tested, adjusted = holm_family(out["p"].to_numpy(float), out["min_p"].to_numpy(float), alpha)
    out["tested"], out["p_adjusted"] = tested, adjusted
    testable = tested
    tests = max(int(testable.sum()), 1)
    status, needed = [], []
    for _, r in out.iterrows():
        if isinstance(r.get("status"), str):  # set by _row for a side without the cell (pandas may store it as str)
            status.append(CompareVerdict(r["status"]))
            needed.append(math.nan)
            continue
        significant = r["p_adjusted"] < alpha
        if significant:
            status.append(CompareVerdict.WORSE if r["diff"] > 0 else CompareVerdict.BETTER)
            needed.append(math.nan)
        elif r["pairs"] > 0 and r["identical"] == r["pairs"]:
            status.append(CompareVerdict.IDENTICAL)
            needed.append(math.nan)
        elif margin is not None and r["equivalent"] is True:
            status.append(CompareVerdict.SAME)
            needed.append(math.nan)
        else:
            status.append(CompareVerdict.NOT_ENOUGH_DATA)
            needed.append(_more_seeds(r, margin, alpha / tests))
    out["status"] = pd.Series(status, index=out.index, dtype=object)  # the enums themselves, not their strings
    out["more_seeds"] = needed
    return out.drop(columns=["_discordant"])


POWER = 0.8  # the power "more seeds" is sized for


def _more_seeds(r: pd.Series, margin: float | None, alpha: float, power: float = POWER) -> float:
    """Seeds beyond those run that would detect a change of the margin (or, without one, of the
    difference seen) with ``power``; NaN when there is no change to size the design on."""
    effect = margin if margin is not None else abs(r["diff"]) if r["diff"] == r["diff"] else math.nan
    if not effect > 0:
        return math.nan
    if r["method"] == "paired":
        total = runs_needed_paired(effect, max(r["_discordant"], effect), alpha, power)
        return max(total - r["pairs"], 0.0)
    base = r["before_rate"] if r["before_rate"] == r["before_rate"] else 0.0
    total = runs_needed_independent(base, effect, alpha, power)
    return max(total - min(r["before_runs"], r["after_runs"]), 0.0)


def _changed_bounds(sides: dict[str, pd.DataFrame]) -> list[str]:
    """Checks whose bound as compared differs between the sides, per precision (a bound is compared
    in the precision's dtype unless the scenario compares in float32)."""
    out: list[str] = []
    if "bound_compared" not in sides["before"].columns or "bound_compared" not in sides["after"].columns:
        return out
    keys = ["scenario", "check", *present(sides["before"], ("precision",))]
    b = sides["before"].groupby(keys)["bound_compared"].unique()
    a = sides["after"].groupby(keys)["bound_compared"].unique()
    for key in b.index.intersection(a.index):
        vb, va = sorted(map(label, b[key])), sorted(map(label, a[key]))
        if vb != va:
            where = f" in {key[2]}" if len(key) > 2 else ""
            out.append(f"{key[0]}/{key[1]} bound{where}: {', '.join(vb)} -> {', '.join(va)}")
    return out


def _unpaired_seeds(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per cell and check present on both sides: the seeds only one side ran (counts and a short list)."""
    rows = []
    for key, part in runs.groupby(keys, dropna=False, sort=False):
        b, a = part["run_id_before"].notna(), part["run_id_after"].notna()
        if not b.any() or not a.any():
            continue
        only_b, only_a = part.loc[b & ~a, "seed"], part.loc[a & ~b, "seed"]
        if len(only_b) or len(only_a):
            rows.append({"key": key, "only_before": len(only_b), "only_after": len(only_a),
                         "seeds_only_before": _seed_list(only_b), "seeds_only_after": _seed_list(only_a)})
    return pd.DataFrame(rows, columns=["key", "only_before", "only_after", "seeds_only_before", "seeds_only_after"])


def _seed_list(seeds: pd.Series, limit: int = 8) -> str:
    seeds = sorted({int(s) for s in seeds})
    text = ", ".join(map(str, seeds[:limit]))
    return text + (f", ... ({len(seeds)} seeds)" if len(seeds) > limit else "")
