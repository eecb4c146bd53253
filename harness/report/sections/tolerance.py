"""What bound would hold: per check, precision and data size, the bound that keeps the
run-level false-alarm rate at the target with its guarantee (``analysis.calibrate_tolerance``),
or how many more runs it takes and the command that runs them; validation on held-out or
fresh seeds. Colours from ``BoundVerdict`` and ``ValidationVerdict``."""

from __future__ import annotations

import html
import shlex

import numpy as np
import pandas as pd

from harness.analysis.bounds import runs_needed
from harness.analysis.frame import pct
from harness.analysis.verdicts import BoundVerdict, ValidationVerdict
from harness.report.base import ReportContext, Section, has_completed_runs
from harness.report.cells import axis_column, check, comparison, interval, num, tone_of
from harness.report.html import paragraph, table

TITLE = "What bound would hold"


def more_runs_command(command: str | None, target: float, confidence: float) -> str:
    """The command that adds the seeds a guarantee needs: the sweep's own command with
    adaptive=bound at this target (harness.plan)."""
    base = [a for a in shlex.split(command or "") if not a.startswith("adaptive")] or \
        ["python", "-m", "harness", "sweep=NAME"]
    return shlex.join([*base, "adaptive=bound", f"adaptive.target={target:g}", f"adaptive.confidence={confidence:g}"])


def more_runs_cost(tol: pd.DataFrame, df: pd.DataFrame | None) -> tuple[int, float] | None:
    """What the missing guarantees would cost: (runs, seconds of run time), estimated from the stored
    runs. Per precision x data size, the most runs any of its checks still needs, times the distinct
    configurations of that cell (the other swept axes: each gets its own seeds), times the stored runs'
    median wall time there. None without the columns to tell."""
    from harness.analysis.frame import CONFIG_AXES, ok_mask

    needs = tol[tol["bound_status"] == BoundVerdict.NEEDS_RUNS.value]
    cell = [k for k in ("precision", "data_size") if k in needs.columns]
    if df is None or needs.empty or "wall_s" not in df.columns or not cell:
        return None
    runs = df[ok_mask(df)].drop_duplicates("run_id")
    other = [a for a in CONFIG_AXES if a in runs.columns and a not in cell]
    total_runs, total_s = 0, 0.0
    for key, g in needs.groupby(cell, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mine = runs
        for k, v in zip(cell, key):
            mine = mine[mine[k].isna()] if pd.isna(v) else mine[mine[k] == v]
        if mine.empty:
            continue
        configs = len(mine[other].astype(str).drop_duplicates()) if other else 1
        n = int(g["runs_missing"].max()) * configs
        total_runs += n
        total_s += n * float(mine["wall_s"].median())
    return total_runs, total_s


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def body(tol: pd.DataFrame, target: float, gof: str, more_command: str = "",
         cost: tuple[int, float] | None = None) -> str:
    """The answer per check: the recommended bound and its guarantee, or what is missing
    (with ``more_command``, the command that runs the missing seeds)."""
    conf = float(tol.attrs.get("confidence", 0.95))
    need = int(tol.attrs.get("runs_needed", runs_needed(target, conf)))
    keys = [k for k in tol.attrs.get("by", ["check", "precision", "data_size"]) if k != "check" and k in tol]
    held, fresh = tol.attrs.get("heldout_seeds", []), bool(tol.attrs.get("fresh", False))
    per = "".join(f", {k.replace('_', ' ')}" for k in keys)
    test = ("a Kolmogorov-Smirnov test (conservative: the parameters come from the same runs)" if gof == "ks"
            else "an Anderson-Darling test with a Monte Carlo null that refits the GPD")
    text = (f"Per check{per}: a bound that keeps the run-level false-alarm rate at or under {pct(target)} with "
            f"{conf:.0%} confidence. Each completed run (seed) is one sample of the check's worst value. The "
            "recommended bound is distribution-free (Wilks): the r-th largest worst value of n runs (smallest, "
            f"for a lower bound), r chosen so that P(Binomial(n, {pct(target)}) >= r) >= {conf:.0%}. It needs at "
            f"least {need:,} runs (then it is the worst of them); with fewer runs nothing is recommended and the "
            "row says how many more runs it takes. For a strict check (< or >) it is the next value of the "
            "value's dtype beyond that run; compared natively, a value of that dtype (rounded the safe way), so "
            "the check's own rounding keeps the guarantee. A run that saw NaN/Inf fails whatever the bound. "
            f"Last column: the bound in use and its run failure rate, exact limits each one-sided at {conf:.0%}.")
    gpd = ("GPD extrapolation (a model, no guarantee): a generalized Pareto fit to the top 20% of runs, checked "
           f"with {test}; shown is its {conf:.0%} upper confidence bound on the quantile (bootstrap-calibrated "
           "profile likelihood; the lower end for a lower bound) and the point estimate. It shows where the bound "
           "would land; it is never the recommendation. Full reasons: tables/tolerance.csv.")
    counts = tol["bound_status"].value_counts()
    n_of = {v: int(counts.get(v.value, 0)) for v in BoundVerdict}
    more = tol.loc[tol["bound_status"] == BoundVerdict.NEEDS_RUNS.value, "runs_missing"]
    summary = (f"{n_of[BoundVerdict.GUARANTEED]} of {len(tol)} configurations have a guaranteed bound"
               + (f"; {n_of[BoundVerdict.NEEDS_RUNS]} need more runs (up to {int(more.max()):,} more)" if len(more)
                  else "")
               + (f"; {n_of[BoundVerdict.NO_BOUND]} have no bound (runs that saw NaN/Inf)"
                  if n_of[BoundVerdict.NO_BOUND] else "")
               + (f"; {n_of[BoundVerdict.UNKNOWN_OP]} predate recorded ops (rerun them)"
                  if n_of[BoundVerdict.UNKNOWN_OP] else "")
               + (f"; {n_of[BoundVerdict.NO_DATA]} have no evaluated run" if n_of[BoundVerdict.NO_DATA] else "") + ".")
    config = [axis_column(k) for k in keys]
    cols = [("check", check, "l"), *config,
            ("recommended bound", lambda r: f"{comparison(r.op)} {r.recommended_text}"
             if np.isfinite(r.recommended_bound) else "none", "r"),
            ("guarantee", lambda r: str(r.guarantee), "l"),
            ("GPD extrapolation (model, no guarantee)", _est, "l"),
            ("bound in use: run failure rate", lambda r: f"{comparison(r.op)} {num(r.bound)}: {pct(r.rate)} "
             f"[{interval(r.rate_ci_low, r.rate_ci_high)}]" if r.runs else "–", "r")]
    needs = tol["bound_status"] == BoundVerdict.NEEDS_RUNS.value
    parts = [paragraph(summary)]
    if needs.any():  # one line for the configurations that only need more runs, not a row each
        missing = tol.loc[needs, "guarantee"].astype(str)
        checks = tol.loc[needs].groupby("check", sort=True).size()
        which = "; ".join(f"{html.escape(str(c))} ({n} configuration{'s' if n > 1 else ''})" for c, n in checks.items())
        words = (f"each {missing.iloc[0]}" if missing.nunique() == 1 else
                 f"from {int(tol.loc[needs, 'runs_missing'].min()):,} to {int(tol.loc[needs, 'runs_missing'].max()):,} "
                 "more runs each (per row in tables/tolerance.csv)")
        parts.append(paragraph(f"No bound is recommended yet for {int(needs.sum())} configuration(s): {words}. "
                               f"Checks: {which}."))
    if (~needs).any():
        parts.append(table(tol[~needs], cols, max_rows=80, csv="tables/tolerance.csv",
                           tone=tone_of(BoundVerdict, "bound_status"), toned=("recommended bound", "guarantee")))
    if more_command:
        price = (f" It would run about {cost[0]:,} more runs, about {_duration(cost[1])} of run time at the stored "
                 "runs' median wall time (shared among the actors)." if cost and cost[0] else "")
        parts.append(paragraph("To add the seeds the missing guarantees need (the sweep resumes: stored runs are "
                               f"kept): <code>{html.escape(more_command)}</code>.{price}"))
    parts.append(f"<details><summary>How the bound is computed</summary>{paragraph(text, 'note')}"
                 f"{paragraph(gpd, 'note')}</details>")
    where = " and ".join(w for w, on in ((f"the held-out {_seeds(held)}", bool(held)), ("a fresh sweep", fresh))
                         if on)
    val = tol["validation_status"]
    tested = val.isin([ValidationVerdict.HOLDS.value, ValidationVerdict.EXCEEDS.value,
                       ValidationVerdict.INCONCLUSIVE.value])
    if not where:
        parts.append(paragraph(f"Not validated: no seeds held out and no fresh sweep. The guarantee does not need "
                               f"one; {need:,} fresh runs without a failure would confirm a bound.", "note"))
    elif not tested.any():
        parts.append(paragraph(f"Validation on {where}: no recommended bound to validate."))
    elif where:
        exceeds = int((val == ValidationVerdict.EXCEEDS.value).sum())
        parts.append(paragraph(
            f"Validation: each recommended bound applied to runs it was not computed from ({where}), with exact "
            f"(Clopper-Pearson) limits on their failure rate, each one-sided at {conf:.0%}. It holds when the upper "
            f"limit is at most {pct(target)}, exceeds the target when the lower limit is above it; otherwise it is "
            f"inconclusive (showing {pct(target)} at {conf:.0%} takes at least {need:,} runs without a failure). "
            f"{int((val == ValidationVerdict.HOLDS.value).sum())} hold, {exceeds} exceed, "
            f"{int((val == ValidationVerdict.INCONCLUSIVE.value).sum())} inconclusive.",
            "bad" if exceeds else ""))
        vcols = [("check", check, "l"), *config,
                 ("recommended bound", lambda r: f"{comparison(r.op)} {r.recommended_text}", "r"),
                 ("validation", lambda r: str(r.validation), "l")]
        parts.append(table(tol[tested], vcols, max_rows=80, csv="tables/tolerance.csv", toned=("validation",),
                           tone=tone_of(ValidationVerdict, "validation_status")))
    return "".join(parts)


def _seeds(seeds: list) -> str:
    if len(seeds) <= 8:
        return "seed" + ("s " if len(seeds) != 1 else " ") + ", ".join(map(str, seeds))
    return f"{len(seeds):,} seeds ({seeds[0]}-{seeds[-1]})"


def _short(reason: str) -> str:
    """The gist of a refusal ("tail too small", "GPD fit rejected (KS p=0.003 < 0.05)")."""
    return reason.removeprefix("extrapolation: ").split(":")[0].split(" (a fit")[0]


def _est(r: object) -> str:
    """The GPD cell: its confidence bound and point estimate, or why there is none."""
    if not np.isfinite(r.gpd_point):
        return _short(str(r.gpd_note)) or "–"
    bound = num(r.gpd_bound) if np.isfinite(r.gpd_bound) else "unbounded"
    return f"{comparison(r.op)} {bound} (point {num(r.gpd_point)}; GOF p={r.gpd_gof_p:.2f})"


def render(ctx: ReportContext) -> str:
    """The section from the context's tolerance table, with the command for missing runs when some are missing."""
    tol = ctx.tolerance
    needs = tol["bound_status"].isin([BoundVerdict.NEEDS_RUNS.value, BoundVerdict.NO_BOUND.value]).any()
    more = more_runs_command(ctx.command, ctx.target, 1 - ctx.alpha) if needs else ""
    return body(tol, ctx.target, ctx.gof, more, more_runs_cost(tol, ctx.df) if more else None)


SECTION = Section(TITLE, render, applies=has_completed_runs)
