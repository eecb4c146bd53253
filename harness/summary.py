"""The closing summary of a sweep on the terminal: per check, the run-level failure rate by
precision and data size (seeds pooled as replicates), where failures start, NaN/Inf runs,
and the command for the full report.

The rows are check x precision (x the scenario's swept variant, x every other axis of
harness.axes shown as a row, such as learning_rate, where it varies); the columns are the data
sizes. Axes that vary but are not shown (batch size, clip value, steps) are pooled and named
under the table, so nothing is hidden silently.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import axes
from harness.analysis.frame import check_labels, failed_mask, label, nonfinite_mask, ok_mask, pct, with_variant

# the axes beside precision in a row, where they vary (the scenario is in the check's label)
ROWS = tuple(a for a in axes.in_summary("row") if a not in ("scenario", "precision"))
POOLED = axes.in_summary("pooled")


def row_axes(df: pd.DataFrame) -> list[str]:
    """The axes of ROWS that take more than one value in ``df`` (null counts as a value: the scenario's own)."""
    return [a for a in ROWS if a in df.columns and df[a].nunique(dropna=False) > 1]


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per check x precision (x the varying row_axes) x data size over completed runs: runs, failed, rate,
    nonfinite (runs that saw NaN/Inf), first_step (the earliest first failing step among failing
    runs), when (step or final), evaluated and failed_evaluations (summed over the runs),
    worst (the median worst value) and bound (as declared)."""
    ok = with_variant(df[ok_mask(df)])
    rows = row_axes(ok)
    columns = ["name", "precision", *rows, "data_size", "runs", "failed", "rate", "nonfinite", "first_step", "when",
               "evaluated", "failed_evaluations", "worst", "bound"]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    when = ok["when"] if "when" in ok.columns else pd.Series("step", index=ok.index)
    ok = ok.assign(name=check_labels(ok), _failed=failed_mask(ok).to_numpy(),
                   _nonfinite=nonfinite_mask(ok).to_numpy(), _when=when.fillna("step").astype(str),
                   _first=ok["first_failure_step"].astype(float), _n=ok["n_evaluated"].astype(float),
                   _k=ok["n_failed"].astype(float), _worst=ok["worst_value"].astype(float))
    g = ok.groupby(["name", "precision", *rows, "data_size"], dropna=False, sort=True)
    out = g.agg(runs=("_failed", "size"), failed=("_failed", "sum"), nonfinite=("_nonfinite", "sum"),
                first_step=("_first", "min"), when=("_when", "first"), evaluated=("_n", "sum"),
                failed_evaluations=("_k", "sum"), worst=("_worst", "median"), bound=("bound", "first")).reset_index()
    out["rate"] = out["failed"] / out["runs"]
    return out[columns]


def _rate_table(sizes: list, rows: list[tuple[str, ...]], *, compact: bool, by: list[str] = ()) -> Table:
    """The failure-rate table; ``compact``: no borders, shared padding and short headers (the title
    says the size columns are rows), which fits 80 columns for the built-in checks' names."""
    title = "Run-level failure rate: runs with a failing check / completed runs (seeds pooled)"
    if compact:
        t = Table(title=title + ",\nby rows of data", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
                  show_edge=False)
    else:
        t = Table(title=title, show_lines=False)
    t.add_column("check", no_wrap=True)
    t.add_column("precision", no_wrap=True)
    for a in by:  # the other row axes (row_axes)
        t.add_column(a if compact else axes.BY_NAME[a].label, justify="right", no_wrap=True)
    for s in sizes:
        t.add_column(label(s) if compact else f"{label(s)} rows", justify="right", no_wrap=True)
    t.add_column("first fails" if compact else "first fails at step", justify="right", no_wrap=True)
    for row in rows:
        t.add_row(*row)
    return t


def _cell(r: pd.Series) -> str:
    """A table cell: the rate, failed/runs, and the runs that saw NaN/Inf at that data size."""
    if r["evaluated"] == 0:  # its schedule never came up in these runs: not a pass
        return f"[dim]not evaluated 0/{int(r['runs'])}[/]"
    style = "red" if r["failed"] == r["runs"] else "yellow" if r["failed"] else "green"
    nan = f" ({int(r['nonfinite'])} NaN/Inf)" if r["nonfinite"] else ""
    return f"[{style}]{pct(r['rate'])} {int(r['failed'])}/{int(r['runs'])}{nan}[/]"


def _first(part: pd.DataFrame) -> str:
    """The earliest step any run first failed at; "final" for a check judged once, after training."""
    if (part["when"] == "final").all():
        return "final" if part["failed"].sum() else "–"
    first = part["first_step"].dropna()
    return label(int(first.min())) if len(first) else "–"


def _warmed(ok: pd.DataFrame, runs: pd.DataFrame) -> str | None:
    """The name of a check of the same scenario that asks the same (statistic, op, bound, every step)
    from a later step on and held in every one of its runs; None if there is none."""
    need = ["scenario", "statistic", "op", "bound", "after", "when"]
    if any(c not in ok.columns for c in need):
        return None
    first = runs.iloc[0]
    same = ok[(ok["scenario"] == first["scenario"]) & (ok["statistic"] == first["statistic"])
              & (ok["op"] == first["op"]) & (ok["bound"] == first["bound"]) & (ok["when"] == "step")
              & (ok["after"].fillna(0) > (0 if pd.isna(first["after"]) else first["after"]))]
    for name, sib in same.groupby("name", sort=True):
        if not failed_mask(sib).any() and (sib["n_evaluated"] > 0).all():
            return f"{name} (the same bound from step {int(sib['after'].iloc[0])} on) holds in all {len(sib)} runs"
    return None


def _warmup_param(runs: pd.DataFrame) -> str:
    """The scenario's own warm-up parameter as an override, where its stored parameters have one."""
    import json

    if "params" not in runs.columns or "scenario" not in runs.columns:
        return ""
    try:
        params = json.loads(runs["params"].iloc[0] or "{}")
    except (TypeError, ValueError):
        return ""
    return f" (this scenario's parameter: scenarios.{runs['scenario'].iloc[0]}.warmup=N)" if "warmup" in params else ""


def hints(frame: pd.DataFrame, df: pd.DataFrame, path: str) -> list[str]:
    """What the stored data say about a step check that fails in every run, in a line each: how many
    runs never held it and how close the others came (evaluation counts), with a command that shows it
    step by step. Where the same scenario also asks the same bound from a later step on and that held
    everywhere, it says so; otherwise a warm-up is suggested only where most evaluations pass (it
    fails early, then holds), naming the scenario's own ``warmup`` parameter where it has one."""
    out = []
    ok = with_variant(df[ok_mask(df)])
    if ok.empty:
        return out
    ok = ok.assign(name=check_labels(ok).to_numpy())
    for name, rows in frame.groupby("name", sort=True):
        if not (rows["failed"] == rows["runs"]).all() or (rows["when"] == "final").any():
            continue
        runs = ok[ok["name"] == name]
        share = (runs["n_failed"] / runs["n_evaluated"]).astype(float)
        never = int((runs["n_failed"] == runs["n_evaluated"]).sum())
        closest = runs.loc[share.idxmin()]
        bound, worst = rows["bound"].iloc[0], float(runs["worst_value"].median())
        start = " from step 0" if (rows["first_step"] == 0).all() else ""
        line = f"{name} fails{start} in every run (worst value median {worst:.4g}, bound {bound:g})"
        if never:
            line += f"; {never} of {len(runs)} runs never held it (every evaluation failed)"
        if never < len(runs):
            line += (f"; the closest run failed {int(closest['n_failed'])} of {int(closest['n_evaluated'])} "
                     f"evaluations")
        last = "judge" in runs.columns and (runs["judge"] == "last").any()
        warmed = None if last else _warmed(ok, runs)
        if last:  # the last evaluation decides: a warm-up cannot change that
            line += "; it is judged by its last evaluation, which fails"
        elif warmed:
            line += f"; {warmed}: it fails only before training has brought the value under the bound"
        elif share.median() < 0.5:
            line += ("; most evaluations pass, so it may fail only early: a warm-up, checks.below(..., after=N), "
                     f"would ask that{_warmup_param(runs)}")
        out.append(line + f". Step by step: python -m harness replay {shlex.quote(str(path))} "
                          f"run_id={closest['run_id']} --trace")
    return out


def unevaluated(frame: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    """A line per check that some completed runs never evaluated (a schedule starting after the run's
    last step): those runs count as holding it, which they did only vacuously."""
    ok = with_variant(df[ok_mask(df)])
    if ok.empty:
        return []
    ok = ok.assign(name=check_labels(ok).to_numpy())
    out = []
    for name, runs in ok[ok["n_evaluated"] == 0].groupby("name", sort=True):
        after = runs["after"].dropna() if "after" in runs.columns else pd.Series(dtype=float)
        why = f" (its schedule starts at step {int(after.iloc[0])})" if len(after) and after.iloc[0] > 0 else ""
        steps = runs["steps"].dropna() if "steps" in runs.columns else pd.Series(dtype=float)
        had = f"; those runs had {', '.join(label(int(s)) for s in sorted(steps.unique()))} steps" if len(steps) else ""
        out.append(f"{name} was never evaluated in {len(runs)} of {int((ok['name'] == name).sum())} runs{why}{had}: "
                   "they say nothing about it")
    return out


def overflow_hints(frame: pd.DataFrame, df: pd.DataFrame, fixes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where the data show a float16 overflow, in a line per scenario: runs that saw NaN/Inf in fp16
    at a data size where the same check in fp32 saw none; with the scenario's own float32 switch
    (``float32_params``) as the fix to try, unless its runs already used it."""
    import json

    out = []
    if frame.empty or "scenario" not in df.columns:
        return out
    names = check_labels(with_variant(df)).to_numpy()
    scenario_of = dict(zip(names, df["scenario"].to_numpy()))
    for scenario in sorted({scenario_of.get(n) for n in frame["name"]} - {None}):
        mine = frame[frame["name"].map(scenario_of) == scenario]
        fp16, fp32 = mine[mine["precision"] == "fp16"], mine[mine["precision"] == "fp32"]
        clean = {(n, d) for n, d, k in zip(fp32["name"], fp32["data_size"], fp32["nonfinite"]) if k == 0}
        where = np.array([(n, d) in clean for n, d in zip(fp16["name"], fp16["data_size"])], dtype=bool)
        hit = fp16[(fp16["nonfinite"] > 0).to_numpy() & where]
        if hit.empty:
            continue
        sizes = ", ".join(label(s) for s in sorted(hit["data_size"].unique()))
        line = (f"{scenario}: NaN/Inf in fp16 at {sizes} rows where fp32 saw none: a float16 overflow (its "
                f"largest value is 65504) of what the scenario computes in the compute dtype")
        params = [json.loads(p) for p in df.loc[df["scenario"] == scenario, "params"].dropna().unique()]
        fix = {k: v for k, v in (fixes.get(scenario) or {}).items() if not all(p.get(k) == v for p in params)}
        if fix:
            line += "; to compute it in float32: " + " ".join(
                f"scenarios.{scenario}.{k}={json.dumps(v)}" for k, v in fix.items())
        out.append(line)
    return out


def print_summary(console: Console, df: pd.DataFrame, path: str, elapsed_s: float, new_runs: int,
                  skipped: int, fixes: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    frame = summary_frame(df)
    if len(frame):
        sizes = sorted(frame["data_size"].dropna().unique())
        table_rows = []
        rows = [a for a in ROWS if a in frame.columns]
        for key, part in frame.groupby(["name", "precision", *rows], sort=True, dropna=False):
            by = part.set_index("data_size")
            cells = [_cell(by.loc[s]) if s in by.index else "–" for s in sizes]
            table_rows.append((escape(str(key[0])), *(axes.show(v) for v in key[1:]), *cells, _first(part)))
        t = _rate_table(sizes, table_rows, compact=False, by=rows)
        if console.measure(t, options=console.options.update(max_width=10_000)).maximum > console.width:  # e.g. 80 columns
            t = _rate_table(sizes, table_rows, compact=True, by=rows)
        console.print(t)
        by_scenario = df.groupby("scenario") if "scenario" in df.columns else [("", df)]
        pooled = sorted({a for _, part in by_scenario for a in POOLED
                         if a in part.columns and part[a].nunique(dropna=False) > 1}, key=POOLED.index)
        if pooled:
            values = [f"{a} ({', '.join(label(v) for v in sorted(df[a].dropna().unique()))}"
                      + (", none" if df.loc[df["status"] == "ok", a].isna().any() and axes.BY_NAME[a].nullable
                         else "") + ")"
                      for a in pooled]
            console.print(f"pooled over {'; '.join(values)}: the report's 'Which axis moves the failure rate "
                          "most?' compares them", highlight=False)
        for line in [*hints(frame, df, path), *unevaluated(frame, df), *overflow_hints(frame, df, fixes or {})]:
            console.print(escape(line), highlight=False, soft_wrap=True)
    runs = df.drop_duplicates("run_id")
    status = runs["status"].value_counts().to_dict()
    incomplete = {k: v for k, v in status.items() if k != "ok"}
    console.print(f"{len(runs)} runs stored ({new_runs} new, {skipped} already stored) in {elapsed_s:.1f}s; "
                  + (f"did not complete: {incomplete}" if incomplete else "all completed"), highlight=False)
    console.print(f"results: {path}", highlight=False, soft_wrap=True, markup=False)  # "[b]" in a name is no markup
    # quoted for the shell, so the line can be pasted whatever the path holds (a space, an apostrophe, $)
    console.print(f"report:  python -m harness report {shlex.quote(str(path))}", highlight=False, soft_wrap=True,
                  markup=False)


def print_bounds(console: Console, df: pd.DataFrame, target: float, confidence: float, max_lines: int = 24) -> None:
    """The answer of an ``adaptive=bound`` sweep, on the terminal: per check x precision x data size
    (as the report groups them), the recommended bound (the text to paste: it compares exactly as the
    bound) and its guarantee, or why there is none and how many more runs it takes."""
    from harness.analysis.tolerance import calibrate_tolerance, share
    from harness.analysis.verdicts import BoundVerdict

    if df.empty:
        return
    work = with_variant(df)
    tol = calibrate_tolerance(work.assign(check=check_labels(work).to_numpy()), by=["check", "precision", "data_size"],
                              target=target, confidence=confidence)
    if tol.empty:
        return
    ops = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}
    console.print(f"bounds for a {share(target)} false-alarm rate per run, with {confidence:.0%} confidence "
                  "(distribution-free: the report has the details):", highlight=False)
    for i, r in enumerate(tol.itertuples()):
        if i == max_lines:
            console.print(f"  ... {len(tol) - max_lines} more in the report", highlight=False)
            break
        where = f"{escape(str(r.check))} {r.precision} {label(r.data_size)} rows"
        if r.bound_status == BoundVerdict.GUARANTEED.value:
            console.print(f"  {where}: [bold]{ops.get(r.op, r.op)} {r.recommended_text}[/] ({r.guarantee})",
                          highlight=False)
        else:
            console.print(f"  {where}: no bound: {r.guarantee}", highlight=False)
