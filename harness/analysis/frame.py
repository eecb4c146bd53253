"""Shared vocabulary of the analysis layer: axes, completed rows, incomplete runs,
check directions (read from the recorded op, never inferred) and the score a tolerance is
set on.

Every function takes the tidy results frame (one row per (run, check), see
``harness.records.CORE_SCHEMA``) and never filters silently: rows of runs that did not
complete are either counted apart (``incomplete``) or listed (``incomplete_runs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from harness import axes as table

# Run-level axes of a sweep, in display order (harness.axes), and the scenario's parameters.
# ``seed`` is the replicate axis.
AXES: tuple[str, ...] = (*table.COLUMNS, "params")
# The axes that define a configuration (everything but the seed).
CONFIG_AXES: tuple[str, ...] = tuple(a for a in AXES if a != "seed")
REQUIRED: tuple[str, ...] = ("run_id", "check", "op", "status", "passed", "bound", "n_evaluated", "n_failed",
                             "n_nonfinite", "worst_value", "worst_margin")


def require(df: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise a KeyError naming every missing column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"results frame lacks column(s): {', '.join(missing)}")


def ok_mask(df: pd.DataFrame) -> pd.Series:
    """Rows of runs that completed (status ``ok``): the only rows with check values."""
    return df["status"].eq("ok").fillna(False).astype(bool)


def failed_mask(df: pd.DataFrame) -> pd.Series:
    """Rows of completed runs whose check failed at least once (``passed`` is False)."""
    passed = df["passed"]
    if passed.dtype == bool:
        failed = ~passed.to_numpy()
    elif isinstance(passed.dtype, pd.BooleanDtype):
        failed = ~passed.to_numpy(dtype=bool, na_value=True)
    else:  # object (True/False/None) or nullable boolean: compare, never cast (fast on 1e6 rows)
        failed = passed.to_numpy(dtype=object) == False  # noqa: E712 - elementwise on an object array
    return ok_mask(df) & failed


def nonfinite_mask(df: pd.DataFrame) -> pd.Series:
    """Rows of completed runs in which the check saw a NaN or Inf."""
    return ok_mask(df) & (df["n_nonfinite"].fillna(0).to_numpy() > 0)


def completed(df: pd.DataFrame) -> pd.DataFrame:
    """Only the rows of completed runs (status ``ok``)."""
    return df[ok_mask(df)]


def present(df: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The columns of ``columns`` that ``df`` has, in order."""
    return [c for c in columns if c in df.columns]


def varying(df: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The columns of ``columns`` (present in ``df``) that take more than one value (null counts as a value)."""
    return [c for c in present(df, columns) if df[c].nunique(dropna=False) > 1]


def derived_steps(df: pd.DataFrame) -> bool:
    """True when ``steps`` is determined by data size, batch size and epochs (an epochs
    schedule), so it is not an axis of its own."""
    if "steps" not in df.columns or "epochs" not in df.columns or df.empty or df["epochs"].isna().all():
        return False
    keys = present(df, ("data_size", "batch_size", "epochs"))
    return bool(df.groupby(keys, dropna=False)["steps"].nunique(dropna=False).max() <= 1)


def with_variant(df: pd.DataFrame) -> pd.DataFrame:
    """Ensure a ``variant`` column: the scenario parameters swept within each scenario
    (``_axes_``), as ``"key=value, key=value"``; empty where none are swept. Runs record it
    (schema 2); for rows of older part files (variant null) it is read off the recorded
    ``params`` JSON: the parameters that differ between runs of the same scenario."""
    import json

    recorded = df["variant"] if "variant" in df.columns else pd.Series(None, index=df.index, dtype=object)
    if recorded.notna().all():
        return df if "variant" in df.columns else df.assign(variant=recorded)
    variant = pd.Series("", index=df.index, dtype=object)
    if "params" in df.columns and "scenario" in df.columns:
        for _, idx in df.groupby("scenario", sort=False).groups.items():
            distinct = df.loc[idx, "params"].fillna("{}").astype(str)
            if distinct.nunique() < 2:
                continue
            parsed = {text: json.loads(text) for text in distinct.unique()}
            keys = sorted({k for p in parsed.values() for k in p})
            vary = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in parsed.values()}) > 1]
            names = {text: ", ".join(f"{k}={p.get(k)}" for k in vary) for text, p in parsed.items()}
            variant.loc[idx] = distinct.map(names)
    return df.assign(variant=recorded.where(recorded.notna(), variant))


def check_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's check as people read it: ``check``, or ``scenario/check`` when the frame has
    several scenarios (equal check names of different workloads stay apart), with the swept
    variant in brackets, ``scenario[key=value]/check``, when the scenario's parameters are swept.
    ``df`` needs a ``variant`` column (see with_variant)."""
    name = df["check"].astype(str)
    if "scenario" not in df.columns:
        return name
    variant = df["variant"].fillna("").astype(str)
    split = variant != ""
    if df["scenario"].nunique() > 1 or split.any():
        name = df["scenario"].astype(str) + np.where(split, "[" + variant + "]", "") + "/" + name
    return name


def factor_axes(df: pd.DataFrame) -> list[str]:
    """Axes that vary across configurations (seed and derived steps excluded); with a
    ``variant`` column (see with_variant), it stands for ``params``."""
    axes = varying(df, CONFIG_AXES)
    if "params" in axes and "variant" in df.columns:
        if df["variant"].nunique() > 1:
            axes[axes.index("params")] = "variant"
        else:  # params differ only between scenarios: the scenario axis says it
            axes.remove("params")
    if "steps" in axes and derived_steps(df):
        axes.remove("steps")
    if "schedule" in axes:  # schedule is implied by steps/epochs
        axes.remove("schedule")
    return axes


def group_keys(by: Sequence[str] | str | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def groupby(df: pd.DataFrame, by: Sequence[str]) -> pd.core.groupby.DataFrameGroupBy:
    """Group on ``by`` keeping null keys (e.g. clip_value = none), sorted, only observed keys."""
    return df.groupby(list(by), dropna=False, sort=True, observed=True)


def incomplete_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run that did not complete (status error, crashed or timeout):
    run_id, status, error, the axes, and the checks it declared."""
    require(df, ("run_id", "status"))
    bad = df[~ok_mask(df)]
    cols = ["run_id", "status", *present(bad, ("error",)), *present(bad, AXES)]
    cols += present(bad, ("wall_s", "worker"))
    runs = bad.drop_duplicates("run_id")[cols].reset_index(drop=True)
    if "check" in bad.columns and not bad.empty:
        names = bad.groupby("run_id", sort=False)["check"].agg(lambda s: ", ".join(x for x in s if x))
        runs["checks"] = runs["run_id"].map(names).fillna("")
    else:
        runs["checks"] = pd.Series(dtype="str")
    return runs


UPPER_OPS: tuple[str, ...] = ("<", "<=")
LOWER_OPS: tuple[str, ...] = (">", ">=")


def directions(df: pd.DataFrame) -> np.ndarray:
    """Per row, from the recorded op: +1.0 for an upper bound (< or <=), -1.0 for a lower
    bound (> or >=), NaN where the op is not recorded (part files of schema version 1,
    written before the op was stored: nothing is inferred for them)."""
    require(df, ("op",))
    op = df["op"].to_numpy(dtype=object)
    out = np.full(len(df), np.nan)
    out[np.isin(op, UPPER_OPS)] = 1.0
    out[np.isin(op, LOWER_OPS)] = -1.0
    return out


def direction_word(op: object) -> str | None:
    """"below" (the bound is a ceiling), "above" (a floor) or None (op not recorded)."""
    return "below" if op in UPPER_OPS else "above" if op in LOWER_OPS else None


def scores(df: pd.DataFrame) -> np.ndarray:
    """A direction-free "badness" of each row's worst value: worst_value for upper-bound
    checks, -worst_value for lower-bound checks (the direction read from the recorded op),
    +inf when the run saw a NaN/Inf; NaN when the run did not complete or evaluated nothing,
    or the op is not recorded (schema 1) and the value is finite."""
    v = df["worst_value"].to_numpy(float, na_value=np.nan)
    m = df["worst_margin"].to_numpy(float, na_value=np.nan)
    s = directions(df) * v
    s[m == -np.inf] = np.inf  # a NaN/Inf was seen: worse than any bound, whatever the direction
    ok = ok_mask(df).to_numpy() & (df["n_evaluated"].fillna(0).to_numpy() > 0)
    s[~ok] = np.nan
    return s


def label(value: object) -> str:
    """A display string for an axis value (null clip_value reads ``none``)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "none"
    if isinstance(value, (float, np.floating)):
        return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return str(value)


def pct(x: float | None) -> str:
    """A rate as a percentage with as many digits as it needs (0.021%, 4.7%, 43%); "–" for NaN."""
    if x is None or not np.isfinite(x):
        return "–"
    if x == 0 or x >= 0.1:
        return f"{x:.0%}"
    return f"{x:.1%}" if x >= 0.01 else f"{100 * x:.2g}%"


def pformat(p: float) -> str:
    """A p-value for prose: "p=0.0072", floored at "p<1e-16"."""
    return "p=–" if not np.isfinite(p) else "p<1e-16" if p < 1e-16 else f"p={p:.2g}"


# the columns of the tidy frame that belong to a (run, check) row; every other column is the run's
CHECK_COLUMNS: tuple[str, ...] = ("check", "op", "compare", "when", "every", "after", "judge", "statistic", "window",
                                  "on", "bound", "bound_compared", "value_dtype", "n_evaluated", "n_failed",
                                  "n_nonfinite", "first_failure_step", "worst_value", "worst_margin", "passed")
WIDE_FIELDS: tuple[str, ...] = ("passed", "worst_margin")


def wide(df: pd.DataFrame, fields: Sequence[str] = WIDE_FIELDS, *, sep: str = "/") -> pd.DataFrame:
    """The results as one row per run, a column per check and field: the wide frame next to the
    tidy one (one row per (run, check)), as Ray Tune's ``ResultGrid.get_dataframe()`` gives one
    row per trial.

        w = A.wide(harness.load_results("results/smoke"))
        w.groupby(["precision", "data_size"])["loss_below/passed"].mean()   # one check's run failure rate
        w[w.status == "ok"].groupby("precision").passed.mean()              # runs that passed every check
        A.wide(df, ["passed", "worst_value", "first_failure_step"])         # other fields of each check

    Columns: the axes (``AXES``: scenario, data_size, ..., params, then variant), ``run_id``, ``status``, ``passed`` (the run passed every check it
    declared; null for a run that did not complete), then the frame's other run-level columns
    (error, wall_s, worker, final_loss, scenario extras, ...), then for each check, in the order
    the frame first names them, ``<check>/<field>`` for each of ``fields`` (any per-check column:
    passed, worst_margin, worst_value, n_failed, first_failure_step, bound, ...). When the frame
    holds several scenarios the check columns are ``<scenario>/<check>/<field>``, so equal check
    names of different workloads stay apart; a run has null in the columns of checks it does not
    declare. ``w.filter(like="/passed")`` selects every check's ``passed``. Counts are nullable
    integers (``Int64``) and ``passed`` nullable booleans, so a null stays a null. A run stored
    twice (``pandas.read_parquet`` reads every copy; ``load_results`` keeps one) keeps its last
    rows. Rows are in the order the frame first names each run."""
    require(df, ("run_id", "check", *fields))
    bad = [f for f in fields if f not in CHECK_COLUMNS]
    if bad:
        raise KeyError(f"not a per-check column: {', '.join(bad)} (one of {', '.join(CHECK_COLUMNS[1:])})")
    df = df.drop_duplicates(["run_id", "check"], keep="last")
    run_cols = [c for c in df.columns if c not in CHECK_COLUMNS]
    runs = df.drop_duplicates("run_id")[run_cols].set_index("run_id", drop=False)
    named = df[df["check"].fillna("").astype(str) != ""]
    several = "scenario" in df.columns and df["scenario"].nunique() > 1
    key = (named["scenario"].astype(str) + sep + named["check"].astype(str)) if several else named["check"].astype(str)
    order = list(dict.fromkeys(key))
    columns: dict[str, pd.Series] = {}
    by_run = named.assign(_key=key.to_numpy()).set_index(["run_id", "_key"])
    tables = {f: by_run[f].unstack("_key") for f in fields} if len(by_run) else {}
    for k in order:
        for f in fields:
            columns[f"{k}{sep}{f}"] = _typed(tables[f][k].reindex(runs.index), df[f].dtype)
    passed = _all_passed(df).reindex(runs.index)
    axes = [*present(runs, AXES), *present(runs, ("variant",))]
    head = [*axes, "run_id", *present(runs, ("status",))]
    rest = [c for c in run_cols if c not in head]
    out = pd.concat([runs[head], passed.rename("passed"), runs[rest], pd.DataFrame(columns, index=runs.index)], axis=1)
    return out.reset_index(drop=True)


def _typed(col: pd.Series, dtype: object) -> pd.Series:
    """A pivoted column in its nullable dtype: Int64 for integers, boolean for booleans (the
    pivot leaves them object or float where a run lacks the check)."""
    if pd.api.types.is_bool_dtype(dtype) or (dtype == object and col.dropna().map(type).eq(bool).all()
                                             and col.notna().any()):
        return col.astype("boolean")
    if pd.api.types.is_integer_dtype(dtype):
        return col.astype("Int64")
    if pd.api.types.is_float_dtype(dtype):
        return col.astype("float64")
    return col


def _all_passed(df: pd.DataFrame) -> pd.Series:
    """Per run_id: every declared check passed (nullable boolean; null for a run that did not
    complete)."""
    done = ok_mask(df)
    failed = pd.Series(failed_mask(df).to_numpy(), index=df.index)
    per_run = failed.groupby(df["run_id"], sort=False).any()
    complete = done.groupby(df["run_id"], sort=False).all()
    return (~per_run).astype("boolean").where(complete, pd.NA)
