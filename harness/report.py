"""The HTML report of a sweep: ``python -m harness.report RESULTS_DIR [--out DIR]``.

Writes ``DIR/index.html`` (default ``RESULTS_DIR_report``, beside the results and outside
the Parquet dataset, so ``pandas.read_parquet(RESULTS_DIR)`` keeps working) with PNG
figures and the full tables as CSV under ``DIR/tables/``, and prints the headline table
(per check x precision x data size: runs, failed, rate, 95% interval) to the terminal.
The report opens with the answer per check: the bound that would hold and its guarantee,
or how many more runs it takes and the command that runs them.
Exit codes: 0 written, 2 bad input (missing directory or no finished runs).
"""

from __future__ import annotations

import argparse
import datetime
import html
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import analysis as A
from harness.analysis import sections as S
from harness.analysis.frame import check_labels, label, ok_mask
from harness.analysis.html import page, paragraph, section
from harness.analysis.tail import Gof
from harness.analysis.verdicts import BoundVerdict, RiseVerdict

HEADLINE_BY = ("check", "precision", "data_size")
TERMINAL_ROWS = 40


@dataclass
class Report:
    """What ``build_report`` computed and where it wrote it."""

    out: Path
    headline: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """The frame the report analyses: with several scenarios, checks are named
    ``scenario/check`` so that equal check names of different workloads stay apart, and
    a scenario whose parameters are swept is split by them: ``scenario[key=value]/check``."""
    df = A.with_variant(df)
    return df.assign(check=check_labels(df))


def headline(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per check x precision x data size: runs, failed, rate, 95% Wilson interval, NaN/Inf
    runs and runs that did not complete."""
    return A.failure_rates(df, by=list(HEADLINE_BY), level="run", alpha=alpha)


def print_headline(console: Console, head: pd.DataFrame, out: Path | None = None) -> None:
    """The headline table on the terminal (rich)."""
    t = Table(title="Run-level failure rate (completed runs)")
    incomplete = bool(head["incomplete"].sum())
    columns = [("check", "left"), ("precision", "left"), ("data size", "right"), ("runs", "right"),
               ("failed", "right"), ("rate", "right"), ("95% CI", "right")]
    for col, just in columns + ([("did not complete", "right")] if incomplete else []):
        t.add_column(col, justify=just, no_wrap=col in ("check", "95% CI"))  # type: ignore[arg-type]
    for r in head.head(TERMINAL_ROWS).itertuples():
        ci = "–" if not np.isfinite(r.ci_low) else f"{S.pct(r.ci_low)}–{S.pct(r.ci_high)}"
        check = escape(r.check) if isinstance(r.check, str) and r.check else "(none declared)"  # "[" is markup
        cells = [check, label(r.precision), label(r.data_size), f"{r.n:,}", f"{r.failed:,}", S.pct(r.rate), ci]
        t.add_row(*cells, *([str(r.incomplete)] if incomplete else []))
    console.print(t)
    if len(head) > TERMINAL_ROWS:
        console.print(f"... {len(head) - TERMINAL_ROWS} more rows in the report", highlight=False)
    if out is not None:
        console.print(f"report: {out / 'index.html'}", highlight=False)


def _sweep_meta(results: Path) -> dict:
    """The sweep's ``_sweep.yaml`` (planned runs, the command that ran it), or {}."""
    try:
        import yaml

        meta = yaml.safe_load((results / "_sweep.yaml").read_text())
        return meta if isinstance(meta, dict) else {}
    except Exception:  # no or unreadable metadata: the header just omits the plan
        return {}


def _planned_runs(results: Path) -> int | None:
    value = _sweep_meta(results).get("runs")
    return int(value) if isinstance(value, (int, float)) else None


def more_runs_command(command: str | None, target: float, confidence: float) -> str:
    """The command that adds the seeds a guarantee needs: the sweep's own command with
    adaptive=bound at this target (harness.plan)."""
    import shlex

    base = [a for a in shlex.split(command or "") if not a.startswith("adaptive")] or \
        ["python", "-m", "harness", "sweep=NAME"]
    return shlex.join([*base, "adaptive=bound", f"adaptive.target={target:g}", f"adaptive.confidence={confidence:g}"])


def _sorted(values: np.ndarray) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return sorted(values, key=str)


def _summary(df: pd.DataFrame, planned: int | None) -> str:
    runs = df.drop_duplicates("run_id")
    status = runs["status"].value_counts()
    done = int(status.get("ok", 0))
    stored = f"{len(runs)} of {planned} planned runs stored" if planned else f"{len(runs)} runs stored"
    bad = ", ".join(f"{v} {k}" for k, v in status.items() if k != "ok") or "none"
    checks = ", ".join(sorted(c for c in df["check"].dropna().unique() if c)) or "none"

    def values(a: str) -> str:
        vs = _sorted(df[a].dropna().unique())
        if a == "variant":  # each value is itself a "k=v, k=v" list
            return "; ".join(f"[{v}]" if v else "(not swept)" for v in vs[:8]) + ("; ..." if len(vs) > 8 else "")
        return ", ".join(label(v) for v in vs[:8]) + (", ..." if len(vs) > 8 else "") + \
            (", none" if df[a].isna().any() else "")

    axes = [f"{a} ({values(a)})" for a in A.factor_axes(df)]
    items = [stored + (" &mdash; the sweep may still be running or was cut short" if planned and len(runs) < planned
                       else ""), f"{done} completed; did not complete: {bad}", f"checks: {html.escape(checks)}",
             "axes that vary: " + html.escape("; ".join(axes) or "none (a single configuration)"),
             f"seeds: {df['seed'].nunique()}"]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _findings(trend: pd.DataFrame, rise: pd.DataFrame, attr: pd.DataFrame, tol: pd.DataFrame) -> str:
    items = [f"<b>{html.escape(r.check)}</b> ({html.escape(label(r.precision))}): {html.escape(r.verdict)}"
             for r in trend.itertuples()]
    told = {RiseVerdict.EXPLAINED.value, RiseVerdict.NOT_EXPLAINED.value, RiseVerdict.RATE_RISES.value,
            RiseVerdict.LESS_THAN_COUNT.value}
    items += [f"<b>{html.escape(r.check)}</b> ({html.escape(label(r.precision))}), more evaluations per run? "
              f"{html.escape(r.verdict)}" for r in rise.itertuples() if getattr(r, "status", None) in told]
    items += [f"<b>{html.escape(r.check)}</b>: <i>{html.escape(r.axis)}</i> {html.escape(r.verdict)}"
              for r in attr[attr["rank"] == 1].itertuples()]
    if len(tol):
        from harness.analysis.verdicts import BoundVerdict as B, ValidationVerdict as V

        status, val = tol["bound_status"], tol["validation_status"]
        more = tol.loc[status == B.NEEDS_RUNS.value, "runs_missing"]
        n = {v: int((status == v.value).sum()) for v in B} | {v: int((val == v.value).sum()) for v in V}
        item = (f"tolerance (false alarms <= {S.pct(tol.attrs['target'])} of runs at "
                f"{tol.attrs['confidence']:.0%} confidence): {n[B.GUARANTEED]} of {len(tol)} configurations have a "
                "guaranteed bound")
        item += f"; {len(more)} need more runs (up to {int(more.max()):,} more)" if len(more) else ""
        item += f"; {n[B.NO_BOUND]} have no bound (NaN/Inf runs)" if n[B.NO_BOUND] else ""
        item += f"; {n[B.UNKNOWN_OP]} predate recorded ops (rerun)" if n[B.UNKNOWN_OP] else ""
        if n[V.HOLDS] + n[V.EXCEEDS] + n[V.INCONCLUSIVE]:
            item += (f"; validated on unseen runs: {n[V.HOLDS]} hold, {n[V.EXCEEDS]} exceed the target, "
                     f"{n[V.INCONCLUSIVE]} inconclusive")
        items.append(item)
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items[:30]) + "</ul>" if items else ""


def build_report(df: pd.DataFrame, out: Path, *, title: str = "sweep", target: float = 0.01,
                 holdout: float = 0.0, fresh: pd.DataFrame | None = None, gof: Gof = "ks",
                 planned_runs: int | None = None, command: str | None = None, alpha: float = 0.05,
                 results_path: str = "RESULTS",
                 outcome: str | None = None) -> Report:
    """Analyse ``df`` (one row per (run, check)) and write the report into ``out``.

    The bound calibration guarantees its false-alarm rate at confidence 1 - alpha; it is
    validated on the ``holdout`` fraction of seeds (default none: every run counts toward
    the guarantee) and on ``fresh``, the results of a sweep on seeds it never saw.
    ``command`` (the sweep's own, from _sweep.yaml) is extended into the command that adds
    the runs a guarantee still needs. With ``outcome`` (a check name, bare or
    ``scenario/check``), the other checks are measured as detectors against it (false-alarm
    and detection rates, ``analysis.false_alarms``); an outcome that matches no check is a
    ValueError before anything is written."""
    from harness.analysis import plots

    df = prepare(df)
    if outcome is not None:
        A.match_outcome(df["check"].unique(), outcome)
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    n_ok = int(ok_mask(df).sum())
    head = headline(df, alpha)
    rep = Report(out, head)
    sections = [section("Summary", _summary(df, planned_runs))]
    if n_ok == 0:
        sections.append(section("Analysis", paragraph("No run completed, so there is nothing to analyse: "
                                                       "every stored run errored, crashed or timed out "
                                                       "(listed below).")))
        tr = rise = attr = tol = pd.DataFrame(columns=["check", "precision", "verdict", "axis", "rank"])
    else:
        tr = A.trend(df, by=["check", "precision"], alpha=alpha)
        rise = A.explain_rise(df, by=["check", "precision"], alpha=alpha)
        dec = A.decompose(df, by=list(HEADLINE_BY), alpha=alpha)
        tol = A.calibrate_tolerance(df, by=list(HEADLINE_BY), target=target, confidence=1 - alpha, holdout=holdout,
                                    fresh=None if fresh is None else prepare(fresh), gof=gof)
        attr = A.attribute_factors(df, alpha=alpha)
        rep.tables.update(trend=tr, explain_rise=rise, decomposition=dec, tolerance=tol, attribution=attr)
        rep.figures["rates"] = plots.plot_rates(head[head["n"] > 0], out / "rates.png")
        rep.figures["decomposition"] = plots.plot_decomposition(dec[dec["runs"] > 0], out / "decomposition.png")
        rep.figures["margins"] = plots.plot_margins(df, out / "margins.png")
        if (attr["axis"].astype(str) != "").any():
            rep.figures["attribution"] = plots.plot_attribution(attr, out / "attribution.png")
        needs = tol["bound_status"].isin([BoundVerdict.NEEDS_RUNS.value, BoundVerdict.NO_BOUND.value]).any()
        more = more_runs_command(command, target, 1 - alpha) if needs else ""
        sections += [S.tolerance(tol, target, gof, more), section("Key findings", _findings(tr, rise, attr, tol)),
                     S.rates(head, alpha), S.trend(tr), S.decomposition(rise, dec), S.margins(df),
                     S.attribution(attr, "attribution" in rep.figures)]
        if outcome is not None:  # the question the user asked: right after the summary
            alarms = A.false_alarms(df, outcome, by=[k for k in ("precision", "data_size") if k in df.columns],
                                    alpha=alpha)
            rep.tables["false_alarms"] = alarms
            sections.insert(1, S.alarms(alarms, outcome))
    if n_ok:
        sections.append(S.failing_runs(df, results_path))
    bad = A.incomplete_runs(df)
    rep.tables["incomplete_runs"] = bad
    sections.append(S.incomplete(bad, df["run_id"].nunique()))
    rep.tables["headline"] = head
    for name, frame in rep.tables.items():
        frame.to_csv(out / "tables" / f"{name}.csv", index=False)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (out / "index.html").write_text(page(f"harness report: {title}", f"generated {stamp}", sections))
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report",
                                     description="Analyse a sweep's results and write an HTML report.")
    parser.add_argument("results", help="results directory of a sweep (e.g. results/smoke)")
    parser.add_argument("--out", help="output directory (default: RESULTS_report, beside RESULTS)")
    parser.add_argument("--target", type=float, default=0.01, help="run-level false-alarm target (default 0.01)")
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="fraction of seeds held out from the bound to validate it (default 0: all runs count "
                             "toward the guarantee; validate with --fresh instead)")
    parser.add_argument("--fresh", metavar="DIR",
                        help="results of the same sweep on seeds it never saw: the recommended bounds are "
                             "validated on them")
    parser.add_argument("--gof", choices=("ks", "ad"), default="ks",
                        help="GPD goodness of fit: ks (fast) or ad (Anderson-Darling, Monte Carlo; slower)")
    parser.add_argument("--outcome", metavar="CHECK",
                        help="a check whose pass/fail says whether a run was healthy (bare name or scenario/check): "
                             "every other check is measured as a detector against it (false alarms, detection)")
    args = parser.parse_args(argv)
    if not 0 < args.target < 1:
        parser.error(f"--target must be in (0, 1), not {args.target}")
    if not 0 <= args.holdout < 1:
        parser.error(f"--holdout must be in [0, 1), not {args.holdout}")
    console = Console()
    if not console.is_terminal:  # a log or a pipe: do not squeeze the table into 80 columns
        console = Console(width=120)
    results = Path(args.results)
    if not results.is_dir():
        print(f"error: {results} is not a results directory", file=sys.stderr)
        return 2
    from harness.store import load_results

    try:
        df = load_results(results)
    except Exception as exc:  # unreadable directory
        print(f"error: cannot read results in {results}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if df.empty:
        print(f"error: no finished runs in {results} (no readable part files)", file=sys.stderr)
        return 2
    fresh = None
    if args.fresh:
        try:
            fresh = load_results(args.fresh)
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
    out = Path(args.out) if args.out else results.parent / f"{results.resolve().name}_report"
    sweeps = sorted(df["sweep"].dropna().unique()) if "sweep" in df.columns else []
    title = ", ".join(sweeps) or results.name
    rep = build_report(df, out, title=title, target=args.target, holdout=args.holdout, fresh=fresh, gof=args.gof,
                       planned_runs=_planned_runs(results), command=_sweep_meta(results).get("command"),
                       outcome=args.outcome, results_path=str(results))
    print_headline(console, rep.headline, rep.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
