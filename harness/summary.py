"""The closing summary of a sweep on the terminal: per check, the run-level failure rate by
precision and data size (seeds pooled as replicates), where failures start, NaN/Inf runs,
and the command for the full report.

The rows are check x precision (x the scenario's swept variant); the columns are the data
sizes. Axes that vary but are not shown (batch size, clip value, steps) are pooled and named
under the table, so nothing is hidden silently.
"""

from __future__ import annotations

import shlex

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.analysis.frame import check_labels, failed_mask, label, nonfinite_mask, ok_mask, with_variant

POOLED = ("batch_size", "clip_value", "steps", "epochs")


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per check x precision x data size over completed runs: runs, failed, rate,
    nonfinite (runs that saw NaN/Inf), first_step (median first failing step among failing
    runs)."""
    ok = with_variant(df[ok_mask(df)])
    if ok.empty:
        return pd.DataFrame(columns=["name", "precision", "data_size", "runs", "failed", "rate", "nonfinite",
                                     "first_step"])
    ok = ok.assign(name=check_labels(ok), _failed=failed_mask(ok).to_numpy(),
                   _nonfinite=nonfinite_mask(ok).to_numpy())
    ok["_first"] = ok["first_failure_step"].astype(float)
    g = ok.groupby(["name", "precision", "data_size"], dropna=False, sort=True)
    out = g.agg(runs=("_failed", "size"), failed=("_failed", "sum"), nonfinite=("_nonfinite", "sum"),
                first_step=("_first", "median")).reset_index()
    out["rate"] = out["failed"] / out["runs"]
    return out


def _rate_table(sizes: list, rows: list[tuple[str, ...]], *, compact: bool) -> Table:
    """The failure-rate table; ``compact``: no borders, shared padding and short headers (the title
    says the size columns are rows), which fits 80 columns for the built-in checks' names."""
    title = "Run-level failure rate: failed/completed runs (seeds pooled)"
    if compact:
        t = Table(title=title + ",\nby rows of data", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
                  show_edge=False)
    else:
        t = Table(title=title, show_lines=False)
    t.add_column("check", no_wrap=True)
    t.add_column("precision", no_wrap=True)
    for s in sizes:
        t.add_column(label(s) if compact else f"{label(s)} rows", justify="right", no_wrap=True)
    t.add_column("from step" if compact else "fails from step", justify="right", no_wrap=True)
    t.add_column("NaN/Inf" if compact else "NaN/Inf runs", justify="right", no_wrap=True)
    for row in rows:
        t.add_row(*row)
    return t


def print_summary(console: Console, df: pd.DataFrame, path: str, elapsed_s: float, new_runs: int,
                  skipped: int) -> None:
    frame = summary_frame(df)
    if len(frame):
        sizes = sorted(frame["data_size"].dropna().unique())
        table_rows = []
        for (name, precision), part in frame.groupby(["name", "precision"], sort=True):
            by = part.set_index("data_size")
            cells = []
            for s in sizes:
                if s not in by.index:
                    cells.append("–")
                    continue
                r = by.loc[s]
                style = "red" if r["failed"] == r["runs"] else "yellow" if r["failed"] else "green"
                cells.append(f"[{style}]{r['rate']:.0%} {int(r['failed'])}/{int(r['runs'])}[/]")
            first = part["first_step"].dropna()
            cells.append(label(float(round(first.median()))) if len(first) else "–")
            cells.append(str(int(part["nonfinite"].sum())))
            table_rows.append((escape(str(name)), str(precision), *cells))
        t = _rate_table(sizes, table_rows, compact=False)
        if console.measure(t, options=console.options.update(max_width=10_000)).maximum > console.width:  # e.g. 80 columns
            t = _rate_table(sizes, table_rows, compact=True)
        console.print(t)
        by_scenario = df.groupby("scenario") if "scenario" in df.columns else [("", df)]
        pooled = sorted({a for _, part in by_scenario for a in POOLED
                         if a in part.columns and part[a].nunique(dropna=False) > 1}, key=POOLED.index)
        if pooled:
            values = [f"{a} ({', '.join(label(v) for v in sorted(df[a].dropna().unique()))}"
                      + (", none" if df.loc[df["status"] == "ok", a].isna().any() and a == "clip_value" else "") + ")"
                      for a in pooled]
            console.print(f"pooled over {'; '.join(values)}: the report splits them", highlight=False)
        for name, rows in frame.groupby("name", sort=True):
            if (rows["failed"] == rows["runs"]).all() and (rows["first_step"] == 0).all():
                console.print(f"{escape(str(name))} fails at step 0 in every run: it does not hold before "
                              "training has started (e.g. the loss of an untrained model); a warm-up "
                              "(checks.below(..., after=N)) or a final check asks what you may mean",
                              highlight=False)
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
