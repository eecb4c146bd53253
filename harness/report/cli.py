"""``python -m harness.report RESULTS_DIR`` (and ``python -m harness report``): the options,
reading the results, the report, and the headline table on the terminal.

Exit codes: 0 written, 2 bad input (missing directory, no finished runs, an unreadable
``--fresh``, an ``--outcome`` that names no check, a ``--by`` that names no column, an option out of
range).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import analysis as A
from harness.analysis.frame import label, pct
from harness.report.build import build_report, prepare

TERMINAL_ROWS = 40


def print_headline(console: Console, head: pd.DataFrame, out: Path | None = None) -> None:
    """The headline table on the terminal (rich)."""
    t = Table(title="Run-level failure rate (completed runs)")
    incomplete = bool(head["incomplete"].sum())
    columns = [("check", "left"), ("precision", "left"), ("data size", "right"), ("runs", "right"),
               ("failed", "right"), ("rate", "right"), ("95% CI", "right")]
    for col, just in columns + ([("did not complete", "right")] if incomplete else []):
        t.add_column(col, justify=just, no_wrap=col in ("check", "95% CI"))  # type: ignore[arg-type]
    for r in head.head(TERMINAL_ROWS).itertuples():
        ci = "–" if not np.isfinite(r.ci_low) else f"{pct(r.ci_low)}–{pct(r.ci_high)}"
        check = escape(r.check) if isinstance(r.check, str) and r.check else "(none declared)"  # "[" is markup
        cells = [check, label(r.precision), label(r.data_size), f"{r.n:,}", f"{r.failed:,}", pct(r.rate), ci]
        t.add_row(*cells, *([str(r.incomplete)] if incomplete else []))
    console.print(t)
    if len(head) > TERMINAL_ROWS:
        console.print(f"... {len(head) - TERMINAL_ROWS} more rows in the report", highlight=False)
    if out is not None:
        console.print(f"report: {out / 'index.html'}", highlight=False)


def sweep_guarantee(meta: dict) -> tuple[float, float] | None:
    """(target, confidence) an ``adaptive=bound`` sweep ran for, from its ``_sweep.yaml``; None for
    another rule (or metadata that does not say)."""
    adaptive = (meta.get("config") or {}).get("adaptive") if isinstance(meta.get("config"), dict) else None
    if not isinstance(adaptive, dict) or adaptive.get("rule") != "bound":
        return None
    try:
        target, confidence = float(adaptive.get("target", 0.01)), float(adaptive.get("confidence", 0.95))
    except (TypeError, ValueError):
        return None
    return (target, confidence) if 0 < target < 1 and 0 < confidence < 1 else None


def _planned_runs(results: Path, meta: dict) -> int | None:
    """The runs the sweep planned: its plan file (with adaptive seeds, the rounds planned so far),
    else ``runs`` of its ``_sweep.yaml`` (``meta``: the first plan)."""
    from harness.store import read_plan

    plan = read_plan(results)
    if plan is not None:
        return len(plan)
    value = meta.get("runs")
    return int(value) if isinstance(value, (int, float)) else None


def _alarm_grouping(text: str, columns: Sequence[str], outcome: str | None) -> tuple[object, str]:
    """``--by``: ("auto" | None | [columns], "") or (None, the one-line problem)."""
    from harness.analysis.alarms import AUTO

    if outcome is None:
        return None, "groups the false-alarm table, which needs --outcome CHECK"
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == [AUTO]:
        return AUTO, ""
    if words in ([], ["none"]):
        return None, ""
    extra = "variant"  # the report adds it (report.prepare) when a part file predates the column
    unknown = [w for w in words if w not in columns and w != extra]
    if unknown or AUTO in words or "none" in words:
        bad = ", ".join(unknown or [w for w in words if w in (AUTO, "none")])
        return None, (f"{bad}: not a column of the results to group by (e.g. precision,data_size,variant; "
                      "or auto, or none alone)")
    return [w for w in words if w != "check"], ""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, write the report, print the headline; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m harness.report",
                                     description="Analyse a sweep's results and write an HTML report.")
    parser.add_argument("results", help="results directory of a sweep (e.g. results/smoke)")
    parser.add_argument("-o", "--out", help="output directory (default: RESULTS_report, beside RESULTS)")
    parser.add_argument("--target", type=float, default=None,
                        help="run-level false-alarm target (default: the sweep's adaptive.target when it ran with "
                             "adaptive=bound, else 0.01)")
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="fraction of seeds held out from the bound to validate it (default 0: all runs count "
                             "toward the guarantee; validate with --fresh instead)")
    parser.add_argument("--fresh", metavar="DIR",
                        help="results of the same sweep on seeds it never saw: the recommended bounds are "
                             "validated on them")
    parser.add_argument("--gof", choices=("ks", "ad"), default="ks",
                        help="GPD goodness of fit: ks (fast) or ad (Anderson-Darling, Monte Carlo; slower)")
    parser.add_argument("--all-runs", action="store_true",
                        help="also analyse stored runs of earlier definitions of the sweep (edited checks or code, "
                             "another grid); by default only the runs its current definition plans (_plan.json)")
    parser.add_argument("--outcome", metavar="CHECK",
                        help="a check whose pass/fail says whether a run was healthy (bare name or scenario/check): "
                             "every other check is measured as a detector against it (false alarms, detection)")
    parser.add_argument("--by", metavar="AXES", default=None,
                        help="with --outcome: how the runs are grouped, comma-separated columns (e.g. "
                             "precision,data_size,variant); 'auto' (default): precision, and data size where "
                             "every data-size cell has enough healthy and unhealthy runs to test, pooling the "
                             "variants (a bug and its fix) and seeds; 'none': pool every run")
    args = parser.parse_args(argv)
    from harness.store import read_sweep_doc

    results = Path(args.results)
    meta = read_sweep_doc(results)  # the sweep's config, command and plan; {} for a root of several sweeps
    ran_for = sweep_guarantee(meta)  # the report answers the question the sweep ran for
    alpha = 0.05 if ran_for is None else 1 - ran_for[1]  # the sweep's confidence, also with another --target
    if args.target is None:
        args.target = ran_for[0] if ran_for is not None else 0.01
    if not 0 < args.target < 1:
        parser.error(f"--target must be in (0, 1), not {args.target}")
    if not 0 <= args.holdout < 1:
        parser.error(f"--holdout must be in [0, 1), not {args.holdout}")
    console = Console()
    if not console.is_terminal:  # a log or a pipe: do not squeeze the table into 80 columns
        console = Console(width=120)
    if not results.is_dir():
        print(f"error: {results} is not a results directory", file=sys.stderr)
        return 2
    from harness.store import load_results

    try:
        df = load_results(results, quarantine=True)  # a damaged part file is moved aside, named once
    except Exception as exc:  # unreadable directory
        print(f"error: cannot read results in {results}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if df.empty:
        print(f"error: no finished runs in {results} (no readable part files)", file=sys.stderr)
        return 2
    df, left_out = current_runs(df, results, args.all_runs)
    if df.empty:
        print(f"error: none of the {left_out:,} stored runs in {results} is of the sweep's current definition "
              "(_plan.json); --all-runs analyses them", file=sys.stderr)
        return 2
    fresh = None
    if args.fresh:
        try:
            fresh = load_results(args.fresh, quarantine=True)
        except Exception as exc:  # missing or unreadable
            print(f"error: --fresh: cannot read results in {args.fresh}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    if args.outcome is not None:  # the names the report uses (scenario/check), from one row per distinct check
        try:
            A.match_outcome(prepare(df.drop_duplicates([c for c in ("scenario", "variant", "params", "check")
                                                        if c in df.columns]))["check"].unique(), args.outcome)
        except ValueError as exc:
            print(f"error: --outcome: {exc}", file=sys.stderr)
            return 2
    sections = None
    if args.by is not None:
        by, problem = _alarm_grouping(args.by, df.columns, args.outcome)
        if problem:
            print(f"error: --by: {problem}", file=sys.stderr)
            return 2
        from harness.report import registry
        from harness.report.sections import alarms

        sections = [alarms.section(by) if s is alarms.SECTION else s for s in registry.SECTIONS]
    out = Path(args.out) if args.out else results.parent / f"{results.resolve().name}_report"
    sweeps = sorted(df["sweep"].dropna().unique()) if "sweep" in df.columns else []
    title = ", ".join(sweeps) or results.name
    rep = build_report(df, out, title=title, target=args.target, holdout=args.holdout, fresh=fresh, gof=args.gof,
                       planned_runs=_planned_runs(results, meta), command=meta.get("command"),
                       outcome=args.outcome, results_path=str(results), alpha=alpha, sections=sections,
                       fixes=meta.get("float32_params") or {})
    if ran_for is not None:
        from harness.analysis.tolerance import share

        console.print(f"bounds at a {share(args.target)} false-alarm target with {1 - alpha:.0%} confidence"
                      + (" (the sweep's adaptive.target)" if args.target == ran_for[0] else " (--target)"),
                      highlight=False)
    if left_out:
        console.print(f"left out {left_out:,} stored run(s) of other definitions of this sweep (an edited check or "
                      "scenario, another grid): --all-runs includes them", highlight=False)
    print_headline(console, rep.headline, rep.out)
    return 0


def current_runs(df: pd.DataFrame, results: Path, all_runs: bool = False) -> tuple[pd.DataFrame, int]:
    """(the rows of the runs the sweep's current definition plans, how many stored runs were left
    out). All rows when ``all_runs`` or when the sweep recorded no plan (an earlier version)."""
    from harness.store import read_plan

    plan = None if all_runs else read_plan(results)
    if plan is None:
        return df, 0
    mine = df["run_id"].isin(plan)
    return df[mine], int(df.loc[~mine, "run_id"].nunique())
