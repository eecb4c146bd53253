"""The sections of the HTML report: each takes an analysis frame and returns HTML with
a plain-words explanation, its figure and its table. Too little data is said in words."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from harness.analysis.frame import failed_mask, label, ok_mask, pct, pformat
from harness.analysis.html import figure, paragraph, section, table
from harness.analysis.verdicts import RiseVerdict, TrendVerdict, Verdict


def interval(lo: float, hi: float) -> str:
    return "–" if not (np.isfinite(lo) and np.isfinite(hi)) else f"{pct(lo)} – {pct(hi)}"


def num(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.4g}"


def pval(x: float) -> str:
    return pformat(x).removeprefix("p=").removeprefix("p") if x is not None else "–"


def count(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _plain(r: object) -> str:
    """No colour: a table without verdicts (nothing is read off the wording)."""
    return "neutral"


def _tone(kind: type[Verdict], column: str = "status"):
    """Row -> the tone of its ``column``, a value of ``kind`` ("neutral" when absent)."""
    def tone(r: object) -> str:
        try:
            return kind(getattr(r, column)).tone
        except (AttributeError, ValueError):
            return "neutral"
    return tone


def _ratio_ci(ratio: float, lo: float, hi: float) -> str:
    """An odds/hazard ratio with its interval; ∞ for an unbounded end, "–" when there is none."""
    def x(v: float) -> str:
        return "∞" if v == np.inf else f"{v:.3g}"
    if not (np.isfinite(lo) or np.isfinite(hi)) or np.isnan(ratio):
        return "–"
    return f"{x(ratio)} [{x(np.exp(lo))}, {x(np.exp(hi))}]"


def _check(r: object) -> str:
    c = getattr(r, "check")
    return c if isinstance(c, str) and c else "(none declared)"


def rates(head: pd.DataFrame, alpha: float = 0.05) -> str:
    text = ("A run fails a check when any evaluation of it fails; a NaN or Inf always fails. Rates are over "
            f"completed runs, with {1 - alpha:.0%} Wilson intervals (the bands). Runs that errored, crashed or "
            "timed out are not in the rate: they are counted in the last column and listed at the end.")
    cols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("data size", lambda r: label(r.data_size), "r"), ("runs", lambda r: f"{r.n:,}", "r"),
            ("failed", lambda r: f"{r.failed:,}", "r"), ("rate", lambda r: pct(r.rate), "r"),
            (f"{1 - alpha:.0%} CI", lambda r: interval(r.ci_low, r.ci_high), "r"),
            ("NaN/Inf", lambda r: str(r.nonfinite), "r"), ("did not complete", lambda r: str(r.incomplete), "r")]
    return section("Failure rate by data size", paragraph(text), figure("rates.png", "failure rate vs data size"),
                   table(head, cols, max_rows=120, csv="tables/headline.csv", tone=_plain))


def trend(tr: pd.DataFrame) -> str:
    text = ("Per check and precision, a logistic regression of run failure on log10(data size): the odds ratio "
            "is the factor by which the odds of a failing run change per 10x more data, with its 95% "
            "profile-likelihood interval and a likelihood-ratio p-value; two data sizes are enough. When the "
            "data are separated (no failing run at a smaller size than a passing run, e.g. 0% failing at the "
            "smallest size; checked from the counts) the logistic slope is unbounded: the odds ratio reads ∞ "
            "with the finite end of its interval, and the p-value comes from the Cochran-Armitage trend test. "
            "The change column is the rate at the largest size minus the rate at the smallest (Newcombe "
            "interval). Red: the rate rises; green: it falls, or the check never fails; uncoloured: no evidence "
            "of a trend, which says nothing about how often the check fails (the verdict gives the rates).")
    parts = [paragraph(text)]
    if len(tr) and (tr["sizes"] < 2).all():
        parts.append(paragraph("Only one data size in these results: no trend over data size can be estimated.",
                               "bad"))
    cols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("sizes", lambda r: f"{r.sizes:,}", "r"), ("runs", lambda r: f"{r.runs:,}", "r"),
            ("failed", lambda r: f"{r.failed:,}", "r"),
            ("odds ratio / 10x [95% CI]", lambda r: _ratio_ci(r.odds_ratio, r.ci_low, r.ci_high), "r"),
            ("p", lambda r: pval(r.p_value), "r"),
            ("change smallest→largest", lambda r: "–" if not np.isfinite(r.rate_diff) else
             f"{r.rate_diff:+.0%} [{interval(r.diff_ci_low, r.diff_ci_high)}]"
             if np.isfinite(r.diff_ci_low) else f"{r.rate_diff:+.0%}", "r"),
            ("verdict", lambda r: str(r.verdict), "l")]
    return section("Does the failure rate rise with data size?", *parts,
                   table(tr, cols, csv="tables/trend.csv", tone=_tone(TrendVerdict)))


def decomposition(rise: pd.DataFrame, dec: pd.DataFrame) -> str:
    text = ("A check is evaluated once per training step, so with more data (more steps per epoch) a run tests "
            "it more often and fails more often even if each evaluation is as safe as before. If every "
            "evaluation failed independently with the per-evaluation rate p, a run with n evaluations would "
            "fail with probability 1 - (1 - p)^n: the dashed lines. Observed far below that means failures "
            "cluster within runs. The test: a complementary log-log binomial model with offset log(evaluations "
            "per run); its slope over log10(data size) is the change in the per-evaluation hazard beyond the "
            "count (hazard ratio 1 = the count explains everything). The per-evaluation interval treats runs as "
            "clusters (evaluations of one run are not independent): cluster-robust variance, Korn-Graubard "
            "interval.")
    cols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("evaluations per run", lambda r: f"{count(r.evals_smallest)} → {count(r.evals_largest)}", "r"),
            ("rise p", lambda r: pval(r.total_p), "r"),
            ("hazard ratio / 10x beyond count [95% CI]",
             lambda r: _ratio_ci(r.hazard_ratio_beyond, r.beyond_ci_low, r.beyond_ci_high), "r"),
            ("p", lambda r: pval(r.beyond_p), "r"), ("verdict", lambda r: str(r.verdict), "l")]
    dcols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
             ("data size", lambda r: label(r.data_size), "r"), ("runs", lambda r: f"{r.runs:,}", "r"),
             ("evaluations / run", lambda r: count(r.mean_evaluations), "r"),
             ("per-evaluation rate [95% CI, runs as clusters]",
              lambda r: f"{pct(r.eval_rate)} [{interval(r.eval_ci_low, r.eval_ci_high)}]", "r"),
             ("run rate observed", lambda r: pct(r.run_rate), "r"),
             ("expected from per-evaluation", lambda r: pct(r.expected_run_rate), "r"),
             ("observed / expected", lambda r: num(r.observed_over_expected), "r")]
    return section("More data, more evaluations?", paragraph(text),
                   figure("decomposition.png", "observed vs expected run failure rate"),
                   table(rise, cols, csv="tables/explain_rise.csv", tone=_tone(RiseVerdict)),
                   table(dec, dcols, max_rows=80, csv="tables/decomposition.csv", tone=_plain))


def margins(df: pd.DataFrame) -> str:
    bad = int(((df["worst_margin"] == -np.inf) & ok_mask(df)).sum())
    text = ("Each completed run's worst margin: the signed distance of its worst value to the bound, "
            "positive = held, negative = violated (the shaded band). Boxes show the quartiles, dots a sample "
            "of runs. " + (f"{bad} run-check(s) saw NaN/Inf; they have no finite margin and are counted in red "
                          "at the bottom of their panel." if bad else "No run saw NaN or Inf."))
    return section("Worst margins against the bound", paragraph(text), figure("margins.png", "worst margins"))


def tolerance(tol: pd.DataFrame, target: float, gof: str, more_command: str = "") -> str:
    """The answer per check: the recommended bound and its guarantee, or what is missing
    (with ``more_command``, the command that runs the missing seeds)."""
    from harness.analysis.bounds import runs_needed
    from harness.analysis.verdicts import BoundVerdict, ValidationVerdict

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
    config = [(k.replace("_", " "), (lambda k: lambda r: label(getattr(r, k)))(k), "l") for k in keys]
    cols = [("check", _check, "l"), *config,
            ("recommended bound", lambda r: f"{_cmp(r.op)} {float(r.recommended_bound)!r}"
             if np.isfinite(r.recommended_bound) else "none", "r"),
            ("guarantee", lambda r: str(r.guarantee), "l"),
            ("GPD extrapolation (model, no guarantee)", _est, "l"),
            ("bound in use: run failure rate", lambda r: f"{_cmp(r.op)} {num(r.bound)}: {pct(r.rate)} "
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
                           tone=_tone(BoundVerdict, "bound_status"), toned=("recommended bound", "guarantee")))
    if more_command:
        parts.append(paragraph("To add the seeds the missing guarantees need (the sweep resumes: stored runs are "
                               f"kept): <code>{html.escape(more_command)}</code>"))
    parts += [paragraph(text, "note"), paragraph(gpd, "note")]
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
        vcols = [("check", _check, "l"), *config,
                 ("recommended bound", lambda r: f"{_cmp(r.op)} {float(r.recommended_bound)!r}", "r"),
                 ("validation", lambda r: str(r.validation), "l")]
        parts.append(table(tol[tested], vcols, max_rows=80, csv="tables/tolerance.csv", toned=("validation",),
                           tone=_tone(ValidationVerdict, "validation_status")))
    return section("What bound would hold", *parts)


def _seeds(seeds: list) -> str:
    if len(seeds) <= 8:
        return "seed" + ("s " if len(seeds) != 1 else " ") + ", ".join(map(str, seeds))
    return f"{len(seeds):,} seeds ({seeds[0]}-{seeds[-1]})"


def _short(reason: str) -> str:
    """The gist of a refusal ("tail too small", "GPD fit rejected (KS p=0.003 < 0.05)")."""
    return reason.removeprefix("extrapolation: ").split(":")[0].split(" (a fit")[0]


def _cmp(op: object) -> str:
    return f"value {op}" if op in ("<", "<=", ">", ">=") else "?"


def _est(r: object) -> str:
    """The GPD cell: its confidence bound and point estimate, or why there is none."""
    if not np.isfinite(r.gpd_point):
        return _short(str(r.gpd_note)) or "–"
    bound = num(r.gpd_bound) if np.isfinite(r.gpd_bound) else "unbounded"
    return f"{_cmp(r.op)} {bound} (point {num(r.gpd_point)}; GOF p={r.gpd_gof_p:.2f})"


def attribution(attr: pd.DataFrame, has_figure: bool) -> str:
    text = ("Per check, the failure rate at each level of every axis that varies (seeds are replicates, not "
            "factors), and a logistic model over all those axes at once: an axis's likelihood-ratio statistic is "
            "what dropping it from the model costs, so it ranks the axes by what each explains that the others "
            "do not.")
    cols = [("check", _check, "l"), ("rank", lambda r: "" if not np.isfinite(r.rank) else str(int(r.rank)), "r"),
            ("axis", lambda r: str(r.axis) or "–", "l"),
            ("lowest level", lambda r: "–" if not isinstance(r.lowest, str) else f"{r.lowest}: {pct(r.lowest_rate)}",
             "r"),
            ("highest level", lambda r: "–" if not isinstance(r.highest, str) else
             f"{r.highest}: {pct(r.highest_rate)}", "r"),
            ("LR χ² (df)", lambda r: "–" if not np.isfinite(r.lr_chi2) else f"{r.lr_chi2:.3g} ({int(r.df)})", "r"),
            ("p", lambda r: pval(r.p_value), "r"), ("verdict", lambda r: str(r.verdict), "l")]
    parts = [paragraph(text)]
    if has_figure:
        parts.append(figure("attribution.png", "failure-rate range per axis"))
    return section("Which axis moves the failure rate most?", *parts,
                   table(attr, cols, max_rows=80, csv="tables/attribution.csv"))


def failing_runs(df: pd.DataFrame, results: str, per_cell: int = 3) -> str:
    """Where to look: for each check x precision x data size with failing runs, a few of their
    run ids (lowest seeds first), where they first failed, and the command that replays the
    first one in-process (python -m harness replay)."""
    title = "Failing runs and how to replay them"
    failed = df[failed_mask(df)]
    if failed.empty:
        return section(title, paragraph("No completed run failed a check.", "good"))
    keys = [k for k in ("check", "precision", "data_size") if k in failed.columns]
    rows = []
    for key, g in failed.sort_values(["seed", "run_id"]).groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        first = g["first_failure_step"].dropna()
        rows.append({**dict(zip(keys, key)), "failing": g["run_id"].nunique(), "runs": ", ".join(
            f"{r} (seed {s})" for r, s in zip(g["run_id"].head(per_cell), g["seed"].head(per_cell))),
            "first_step": int(first.min()) if len(first) else None,
            "replay": f"python -m harness replay {results} run_id={g['run_id'].iloc[0]}"})
    frame = pd.DataFrame(rows)
    cols = [("check", _check, "l"), *[(k.replace("_", " "), (lambda k: lambda r: label(getattr(r, k)))(k), "l")
                                      for k in keys if k != "check"],
            ("failing runs", lambda r: f"{r.failing:,}", "r"), ("first failing step", lambda r: label(r.first_step), "r"),
            ("some of them", lambda r: str(r.runs), "l"), ("replay the first", lambda r: str(r.replay), "l")]
    text = ("Every configuration with failing runs, with a few run ids and the command that runs the first of them "
            "again in this process, bit for bit (add threads=N to match the sweep's actors).")
    return section(title, paragraph(text), table(frame, cols, max_rows=60))


def incomplete(bad: pd.DataFrame, total_runs: int) -> str:
    title = "Runs that did not complete"
    if bad.empty:
        return section(title, paragraph(f"All {total_runs} stored runs completed.", "good"))
    first_line = bad["error"].fillna("(no message)").astype(str).str.split("\n").str[0].str.slice(0, 160)
    counts = bad.assign(error=first_line).groupby(["status", "error"], dropna=False).size()
    counts = counts.rename("runs").reset_index().sort_values("runs", ascending=False)
    text = (f"{len(bad)} of {total_runs} stored runs did not complete. They have no check values and are not "
            "in any rate above; here they are, grouped by what went wrong, then one per run.")
    ccols = [("status", lambda r: str(r.status), "l"), ("runs", lambda r: f"{r.runs:,}", "r"),
             ("error", lambda r: str(r.error), "l")]
    rcols = [("run", lambda r: str(r.run_id), "l"), ("status", lambda r: str(r.status), "l"),
             *[(a.replace("_", " "), (lambda a: lambda r: label(getattr(r, a)))(a), "r")
               for a in ("data_size", "batch_size", "precision", "seed", "clip_value") if a in bad.columns],
             ("error", lambda r: (str(r.error) if isinstance(r.error, str) else "")[:200], "l")]
    return section(title, paragraph(html.escape(text)), table(counts, ccols, max_rows=30),
                   table(bad, rcols, max_rows=50, csv="tables/incomplete_runs.csv"))


def alarms(frame: pd.DataFrame, outcome: str) -> str:
    """False alarms of the detector checks against the ``outcome`` check (``frame`` from
    ``alarms.false_alarms``): what is measured and from how many runs, then per detector x
    precision x data size the false-alarm and detection rates with their intervals and the
    verdict, coloured from ``AlarmVerdict``'s tone."""
    from harness.analysis.verdicts import AlarmVerdict

    a = frame.attrs
    alpha, limit = float(a.get("alpha", 0.05)), float(a.get("max_false_alarm", 0.05))
    level = f"{1 - alpha:.0%}"
    matched = [str(c) for c in a.get("outcome_checks", [outcome])]
    named = html.escape(outcome) if matched == [outcome] else (
        f"{html.escape(outcome)} (here: {html.escape(', '.join(matched))})")
    judged, done = int(a.get("outcome_judged", 0)), int(a.get("outcome_completed", 0))
    runs = (f"Of the {int(a.get('outcome_runs', 0)):,} runs with the outcome check, {judged:,} completed with a "
            f"result: {int(a.get('healthy_runs', 0)):,} healthy and {int(a.get('unhealthy_runs', 0)):,} unhealthy"
            + (f"; {int(a.get('incomplete_runs', 0)):,} did not complete and are not counted"
               if a.get("incomplete_runs") else "")
            + (f"; {done - judged:,} completed without an outcome result and are not counted" if done > judged else "")
            + ".")
    text = (f"The outcome check <b>{named}</b> says whether a run was healthy: a completed run that passes it is "
            "healthy, one that fails it unhealthy. Every other check is taken as a detector that fires when it "
            f"fails. {runs} Per detector, precision and data size: the false-alarm rate (the share of healthy "
            "runs in which the detector fires) and the detection rate (the share of unhealthy runs in which it "
            f"fires), with {level} Wilson intervals over runs (seeds are the replicates); a rate without runs "
            "under it is unknown (–), never 0. Verdict, the first that applies: <i>noisy</i> (red), false alarms "
            f"in more than {pct(limit)} of healthy runs (the interval's lower limit is above it); <i>informative</i> "
            "(green), it fires more often in unhealthy runs (one-sided Fisher exact test of fired x outcome, "
            f"p &lt; {alpha:g}); <i>quiet</i> (green), false alarms in at most {pct(limit)} of healthy runs (upper "
            "limit); <i>uninformative</i>, the test could have found an association and did not; <i>not enough "
            "data</i>, no healthy or no unhealthy runs, or too few to test. Full table: tables/false_alarms.csv.")
    if frame.empty:
        return section("False alarms against the outcome", paragraph(text),
                       paragraph("No other check shares a run with the outcome: there is no detector to measure.",
                                 "bad"))
    counts = frame["status"].value_counts()
    summary = "; ".join(f"{int(counts[v.value])} {v.value.replace('_', ' ')}" for v in AlarmVerdict
                        if counts.get(v.value, 0))
    keys = [k for k in a.get("by", ["precision", "data_size"]) if k in frame.columns]
    config = [(k.replace("_", " "), (lambda k: lambda r: label(getattr(r, k)))(k), "l") for k in keys]

    def rate(k: str, n: str, r_: str, lo: str, hi: str, none: str):
        def cell(r: object) -> str:
            if not getattr(r, n):
                return none
            return (f"{getattr(r, k):,}/{getattr(r, n):,}: {pct(getattr(r, r_))} "
                    f"[{interval(getattr(r, lo), getattr(r, hi))}]")
        return cell

    fa, det = f"false alarms [{level} CI]", f"detection [{level} CI]"
    cols = [("detector", _check, "l"), *config,
            ("healthy / unhealthy runs", lambda r: f"{r.outcome_passed:,} / {r.outcome_failed:,}", "r"),
            (fa, rate("fired_when_healthy", "outcome_passed", "false_alarm_rate", "false_alarm_ci_low",
                      "false_alarm_ci_high", "unknown (no healthy runs)"), "r"),
            (det, rate("fired_when_unhealthy", "outcome_failed", "detection_rate", "detection_ci_low",
                       "detection_ci_high", "unknown (no unhealthy runs)"), "r"),
            ("Fisher p", lambda r: pval(r.p_value), "r"), ("verdict", lambda r: str(r.verdict), "l")]
    return section("False alarms against the outcome", paragraph(text),
                   paragraph(f"{len(frame)} detector configurations: {summary}."),
                   table(frame, cols, max_rows=80, csv="tables/false_alarms.csv", tone=_tone(AlarmVerdict)))
