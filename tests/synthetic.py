"""Test fixtures, not an analysis: synthetic results frames with known answers, used by
the tests (``tests/test_analysis_*.py``, ``tests/test_report.py``) and by
``scripts/bench.py`` (which puts ``tests/`` on its path). Nothing in ``harness`` imports it.

Each run evaluates each check ``n_evaluated`` times; every evaluation independently
fails with probability ``p`` (a function of the run's axes), so the run-level failure
probability is exactly 1 - (1 - p)^n. The value behind an evaluation is
``bound + scale * (Z - z_p)`` with Z standard normal and z_p its (1 - p) quantile
(mirrored for a lower-bound check). The worst value and the failure count are drawn
exactly from their joint law: n_failed ~ Binomial(n, p), then the maximum of the
failing (or, with no failure, of the passing) evaluations by inverse CDF, with no loop over
runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from harness.records import CORE_SCHEMA, SCHEMA_VERSION

Rate = Callable[[pd.DataFrame], np.ndarray]


def _axes(data_sizes: Iterable[int], batch_sizes: Iterable[int], precisions: Iterable[str],
          clip_values: Iterable[float | None], seeds: Iterable[int]) -> pd.DataFrame:
    idx = pd.MultiIndex.from_product([list(data_sizes), list(batch_sizes), list(precisions),
                                      [np.nan if c is None else float(c) for c in clip_values], list(seeds)],
                                     names=["data_size", "batch_size", "precision", "clip_value", "seed"])
    return idx.to_frame(index=False)


def synthetic_results(*, checks: Mapping[str, tuple[str, float]] | None = None, data_sizes: Iterable[int] = (1000,),
                      batch_sizes: Iterable[int] = (32,), precisions: Iterable[str] = ("fp32",),
                      clip_values: Iterable[float | None] = (None,), seeds: Iterable[int] = range(10),
                      steps: int | None = 100, epochs: float | None = None, eval_rate: float | Rate = 0.001,
                      scale: float = 0.1, nonfinite_rate: float = 0.0, error_rate: float = 0.0,
                      sweep: str = "synthetic", seed: int = 0) -> pd.DataFrame:
    """A results frame with CORE_SCHEMA columns: the product of the axes, one row per
    (run, check). ``checks`` maps name -> (direction "below"/"above", bound). Steps are
    ``steps`` (fixed) or ``ceil(data_size / batch_size) * epochs`` when ``epochs`` is set.
    ``eval_rate`` is the per-evaluation failure probability, a number or a function of the
    rows' axes (a frame with data_size, batch_size, precision, clip_value, seed, steps,
    check) returning an array. ``nonfinite_rate`` of runs see a NaN; ``error_rate`` of runs
    end with status "error" (check values null)."""
    from scipy import stats

    checks = dict(checks or {"loss_below": ("below", 1.0)})
    rng = np.random.default_rng(seed)
    runs = _axes(data_sizes, batch_sizes, precisions, clip_values, seeds)
    if epochs is not None:
        runs["steps"] = (np.ceil(runs["data_size"] / runs["batch_size"]) * epochs).astype("int64")
    else:
        runs["steps"] = int(steps or 0)
    runs["run_id"] = [f"r{i:08x}" for i in range(len(runs))]
    runs["status"] = np.where(rng.random(len(runs)) < error_rate, "error", "ok")
    runs["nonfinite"] = rng.random(len(runs)) < nonfinite_rate
    df = runs.loc[runs.index.repeat(len(checks))].reset_index(drop=True)
    names = list(checks)
    df["check"] = np.tile(names, len(runs))
    direction = df["check"].map({k: v[0] for k, v in checks.items()}).to_numpy()
    bound = df["check"].map({k: float(v[1]) for k, v in checks.items()}).to_numpy(float)
    n = df["steps"].to_numpy("int64")
    p = np.broadcast_to(np.asarray(eval_rate(df) if callable(eval_rate) else eval_rate, dtype=float), n.shape)
    p = np.clip(p, 1e-15, 1 - 1e-15)
    k = rng.binomial(n, p)
    u = rng.random(len(df))
    with np.errstate(divide="ignore"):
        cdf = np.where(k > 0, (1 - p) + p * u ** (1.0 / np.maximum(k, 1)), (1 - p) * u ** (1.0 / np.maximum(n, 1)))
    z = stats.norm.ppf(cdf) - stats.norm.ppf(1 - p)  # > 0 exactly when some evaluation failed
    sign = np.where(direction == "above", -1.0, 1.0)
    value = bound + sign * scale * z
    margin = -scale * z
    bad = df["nonfinite"].to_numpy()
    k = np.where(bad, np.maximum(k, 1), k)
    value = np.where(bad, np.nan, value)
    margin = np.where(bad, -np.inf, margin)
    ok = (df["status"] == "ok").to_numpy()
    out = pd.DataFrame({
        "sweep": sweep, "run_id": df["run_id"], "scenario": "synthetic", "data_size": df["data_size"],
        "batch_size": df["batch_size"], "steps": df["steps"], "epochs": np.nan if epochs is None else float(epochs),
        "schedule": "steps" if epochs is None else "epochs", "seed": df["seed"], "precision": df["precision"],
        "clip_value": df["clip_value"], "params": json.dumps({}), "variant": "", "check": df["check"],
        "op": np.where(direction == "above", ">=", "<="), "compare": "exact", "when": "step", "bound": bound,
        "bound_compared": bound, "value_dtype": "float64",
        "n_evaluated": pd.array(np.where(ok, n, 0), dtype="Int64"),
        "n_failed": pd.array(k, dtype="Int64"), "n_nonfinite": pd.array(bad.astype(int), dtype="Int64"),
        "first_failure_step": pd.array(np.where(k > 0, 0, -1), dtype="Int64"),
        "worst_value": value, "worst_margin": margin, "passed": pd.array(k == 0, dtype="boolean"),
        "status": df["status"], "error": np.where(ok, None, "RuntimeError: synthetic"),
    })
    for col in ("n_evaluated", "n_failed", "n_nonfinite", "first_failure_step", "passed"):
        out.loc[~ok, col] = pd.NA
    out.loc[~ok, ["worst_value", "worst_margin"]] = np.nan
    out.loc[out["first_failure_step"] == -1, "first_failure_step"] = pd.NA
    for field in CORE_SCHEMA:
        if field.name not in out.columns:
            out[field.name] = None if str(field.type) == "string" else np.nan
    out["schema_version"] = SCHEMA_VERSION
    return out[list(CORE_SCHEMA.names)]


def write_results(df: pd.DataFrame, directory: str, parts: int = 1) -> None:
    """Write ``df`` as ``parts`` Parquet part files readable by ``harness.load_results``."""
    import pyarrow as pa

    from harness.store import write_part

    ids = df["run_id"].unique()
    for i, chunk in enumerate(np.array_split(ids, max(1, parts))):
        part = df[df["run_id"].isin(chunk)]
        table = pa.Table.from_pandas(part, schema=CORE_SCHEMA, preserve_index=False)
        write_part(Path(directory), f"part{i:05d}", table)


def results_frame(records: Iterable[Mapping[str, object]], **defaults: object) -> pd.DataFrame:
    """A results frame from partial rows (hand-made test cases): every CORE_SCHEMA column,
    missing values from ``defaults`` or the schema's neutral value; ``passed`` follows
    n_failed and status unless given."""
    base: dict[str, object] = {"sweep": "hand", "scenario": "hand", "data_size": 1000, "batch_size": 32,
                               "steps": 100, "epochs": np.nan, "schedule": "steps", "seed": 0, "precision": "fp32",
                               "clip_value": np.nan, "params": "{}", "variant": "", "check": "loss_below",
                               "op": "<", "compare": "exact", "when": "step", "bound": 1.0,
                               "n_evaluated": 100, "n_failed": 0, "n_nonfinite": 0, "status": "ok"}
    base.update(defaults)
    rows = []
    for i, rec in enumerate(records):
        row = {**base, "run_id": f"h{i:06d}", **rec}
        ok = row["status"] == "ok"
        if "passed" not in rec:
            row["passed"] = (row["n_failed"] == 0) if ok else None
        if "worst_value" not in rec:
            row["worst_value"] = (row["bound"] + 0.1 if row["n_failed"] else row["bound"] - 0.1) if ok else np.nan
        if "worst_margin" not in rec:
            up = row["op"] in ("<", "<=")
            row["worst_margin"] = ((row["bound"] - row["worst_value"]) if up else (row["worst_value"] - row["bound"])
                                   ) if ok else np.nan
        row.setdefault("bound_compared", row["bound"])
        if not ok:
            for col in ("n_evaluated", "n_failed", "n_nonfinite", "worst_value", "worst_margin"):
                row[col] = None
        rows.append(row)
    df = pd.DataFrame(rows)
    for field in CORE_SCHEMA:
        if field.name not in df.columns:
            df[field.name] = None
    return df[[*CORE_SCHEMA.names, *(c for c in df.columns if c not in CORE_SCHEMA.names)]]
