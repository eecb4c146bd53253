"""Where a check fails: the cells (precision x data size) whose runs failed it, described in the
fewest words that are exactly true of the stored runs ("only in fp16 at 100,000 rows", "from
100,000 rows on", "in every cell"), with the counts inside and outside those cells.

This is a description of the observed runs, not a test: a cell "fails" when at least one of its
completed runs failed the check. What the description may not say alone, it adds: the rate inside
and outside (with a one-sided Clopper-Pearson upper bound on the rate where no run failed, so "holds
elsewhere" says how much it rests on), and, when the failing cells need two conditions at once,
that neither alone fails (an interaction that a pooled, one-axis-at-a-time reading hides).

    from harness.analysis.where import failure_pattern
    failure_pattern(df)   # one row per (scenario, check): pattern, failed/runs inside and outside, ...

Clopper, C. J. and Pearson, E. S. (1934), "The use of confidence or fiducial limits illustrated in
the case of the binomial", Biometrika 26(4); computed with statsmodels' ``proportion_confint``
(method "beta").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from harness.analysis.frame import check_labels, failed_mask, label, nonfinite_mask, ok_mask, with_variant

CELL_AXES: tuple[str, ...] = ("precision", "data_size")
ORDERED: frozenset[str] = frozenset({"data_size", "batch_size", "steps"})
UNIT = {"data_size": "rows", "batch_size": "a batch", "steps": "steps"}


@dataclass(frozen=True)
class Condition:
    """One test on a cell's axis value, with the words that say it."""

    axis: str
    words: str
    test: Callable[[object], bool]


def _value_words(axis: str, v: object) -> str:
    if axis == "data_size":
        return f"at {label(v)} rows"
    if axis == "precision":
        return f"in {label(v)}"
    return f"at {axis}={label(v)}"


def conditions(axis: str, values: Sequence[object]) -> list[Condition]:
    """The candidate descriptions of a set of cells along one axis: each value, and for an ordered
    axis each threshold ("from 100,000 rows on", "up to 1,000 rows")."""
    out = [Condition(axis, _value_words(axis, v), lambda x, v=v: x == v) for v in values]
    if axis in ORDERED and len(values) > 2:
        vs = sorted(values)
        unit = UNIT.get(axis, axis)
        out += [Condition(axis, f"from {label(t)} {unit} on", lambda x, t=t: x >= t) for t in vs[1:-1]]
        out += [Condition(axis, f"up to {label(t)} {unit}", lambda x, t=t: x <= t) for t in vs[1:-1]]
    return out


def describe(cells: pd.DataFrame, axes: Sequence[str]) -> tuple[str, list[Condition]]:
    """Words for the failing cells of one check (``cells``: one row per cell, the ``axes``
    columns and ``failed``), and the conditions they are made of (empty when the cells are
    listed instead). "" when no cell failed."""
    failing = cells["failed"].to_numpy() > 0
    if not failing.any():
        return "", []
    if failing.all():
        return "in every cell", []
    varying = [a for a in axes if cells[a].nunique(dropna=False) > 1]
    cands = [c for a in varying for c in conditions(a, list(cells[a].drop_duplicates()))]

    def match(conds: Sequence[Condition]) -> bool:
        hit = np.array([all(c.test(row[c.axis]) for c in conds) for _, row in cells.iterrows()], dtype=bool)
        return bool((hit == failing).all())

    for c in cands:
        if match([c]):
            return "only " + c.words, [c]
    for a, b in combinations(cands, 2):
        if a.axis != b.axis and match([a, b]):
            return f"only {a.words} {b.words}", [a, b]
    bad = cells[failing]
    if len(bad) <= 4:
        return "at " + "; ".join(" ".join(_value_words(a, r[a]).split(" ", 1)[1] for a in varying)
                                 for _, r in bad.iterrows()), []
    return f"in {len(bad)} of {len(cells)} cells", []


def _upper(k: int, n: int, alpha: float) -> float:
    """One-sided upper confidence bound on a binomial rate (Clopper-Pearson)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return float("nan")
    return float(proportion_confint(k, n, alpha=2 * alpha, method="beta")[1])


def failure_pattern(df: pd.DataFrame, axes: Sequence[str] = CELL_AXES, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (scenario, check) over completed runs: ``pattern`` (words for where it fails;
    "" when it never failed), ``runs``, ``failed``, ``nonfinite`` (runs that saw NaN/Inf),
    ``inside_failed``/``inside_runs`` (in the failing cells), ``outside_runs`` (the other cells,
    where no run failed), ``outside_upper`` (the 1 - alpha one-sided upper bound on the failure
    rate there), ``interaction`` (words saying neither condition alone fails, or "") and
    ``cells`` (how many cells)."""
    columns = ["scenario", "check", "pattern", "runs", "failed", "nonfinite", "inside_failed", "inside_runs",
               "outside_runs", "outside_upper", "interaction", "cells"]
    ok = with_variant(df[ok_mask(df)])
    if ok.empty:
        return pd.DataFrame(columns=columns)
    axes = [a for a in axes if a in ok.columns]
    scenario = ok["scenario"] if "scenario" in ok.columns else pd.Series("", index=ok.index)
    ok = ok.assign(_name=check_labels(ok).to_numpy(), _scenario=scenario.fillna("").to_numpy(),
                   _failed=failed_mask(ok).to_numpy(), _nonfinite=nonfinite_mask(ok).to_numpy())
    rows = []
    for (sc, name), g in ok.groupby(["_scenario", "_name"], sort=True):
        cells = (g.groupby(axes, dropna=False, sort=True)
                 .agg(runs=("_failed", "size"), failed=("_failed", "sum"), nonfinite=("_nonfinite", "sum"))
                 .reset_index()) if axes else pd.DataFrame({"runs": [len(g)], "failed": [int(g["_failed"].sum())],
                                                           "nonfinite": [int(g["_nonfinite"].sum())]})
        pattern, conds = describe(cells, axes)
        bad = cells["failed"] > 0
        inside, outside = cells[bad], cells[~bad]
        rows.append(dict(scenario=sc, check=name, pattern=pattern, runs=int(cells["runs"].sum()),
                         failed=int(cells["failed"].sum()), nonfinite=int(cells["nonfinite"].sum()),
                         inside_failed=int(inside["failed"].sum()), inside_runs=int(inside["runs"].sum()),
                         outside_runs=int(outside["runs"].sum()),
                         outside_upper=_upper(0, int(outside["runs"].sum()), alpha),
                         interaction=_interaction(cells, conds), cells=len(cells)))
    return pd.DataFrame(rows, columns=columns)


def _interaction(cells: pd.DataFrame, conds: Sequence[Condition]) -> str:
    """For a pattern of two conditions: the cells that meet one but not the other, which hold."""
    if len(conds) != 2:
        return ""
    a, b = conds
    only_a = [r for _, r in cells.iterrows() if a.test(r[a.axis]) and not b.test(r[b.axis])]
    only_b = [r for _, r in cells.iterrows() if b.test(r[b.axis]) and not a.test(r[a.axis])]
    if not only_a or not only_b:
        return ""
    ka, na = sum(int(r["failed"]) for r in only_a), sum(int(r["runs"]) for r in only_a)
    kb, nb = sum(int(r["failed"]) for r in only_b), sum(int(r["runs"]) for r in only_b)
    return (f"neither alone: {a.words} but not {b.words}, {ka} of {na} runs fail; "
            f"{b.words} but not {a.words}, {kb} of {nb}")
