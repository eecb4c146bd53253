"""The sections of the HTML report: each takes an analysis frame and returns HTML with
a plain-words explanation, its figure and its table. Too little data is said in words."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from harness.analysis.frame import label, ok_mask, pct, pformat
from harness.analysis.html import figure, paragraph, section, table


def interval(lo: float, hi: float) -> str:
    return "–" if not (np.isfinite(lo) and np.isfinite(hi)) else f"{pct(lo)} – {pct(hi)}"


def num(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.4g}"


def pval(x: float) -> str:
    return pformat(x).removeprefix("p=").removeprefix("p") if x is not None else "–"


def count(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


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
                   table(head, cols, max_rows=120, csv="tables/headline.csv"))


def trend(tr: pd.DataFrame) -> str:
    text = ("Per check and precision, a logistic regression of run failure on log10(data size): the odds ratio "
            "is the factor by which the odds of a failing run change per 10x more data, with its 95% interval "
            "and a likelihood-ratio p-value. When the rate jumps from 0 to 1 between sizes the logistic slope is "
            "infinite and the p-value comes from the Cochran-Armitage trend test instead. The change column is "
            "the rate at the largest size minus the rate at the smallest (Newcombe interval).")
    parts = [paragraph(text)]
    if len(tr) and (tr["sizes"] < 2).all():
        parts.append(paragraph("Only one data size in these results: no trend over data size can be estimated.",
                               "bad"))
    cols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("sizes", lambda r: f"{r.sizes:,}", "r"), ("runs", lambda r: f"{r.runs:,}", "r"),
            ("failed", lambda r: f"{r.failed:,}", "r"),
            ("odds ratio / 10x [95% CI]", lambda r: "–" if not np.isfinite(r.odds_ratio) else
             f"{r.odds_ratio:.3g} [{np.exp(r.ci_low):.3g}, {np.exp(r.ci_high):.3g}]", "r"),
            ("p", lambda r: pval(r.p_value), "r"),
            ("change smallest→largest", lambda r: "–" if not np.isfinite(r.rate_diff) else
             f"{r.rate_diff:+.0%} [{interval(r.diff_ci_low, r.diff_ci_high)}]"
             if np.isfinite(r.diff_ci_low) else f"{r.rate_diff:+.0%}", "r"),
            ("verdict", lambda r: str(r.verdict), "l")]
    return section("Does the failure rate rise with data size?", *parts, table(tr, cols, csv="tables/trend.csv"))


def decomposition(rise: pd.DataFrame, dec: pd.DataFrame) -> str:
    text = ("A check is evaluated once per training step, so with more data (more steps per epoch) a run tests "
            "it more often and fails more often even if each evaluation is as safe as before. If every "
            "evaluation failed independently with the per-evaluation rate p, a run with n evaluations would "
            "fail with probability 1 - (1 - p)^n: the dashed lines. Observed far below that means failures "
            "cluster within runs. The test: a complementary log-log binomial model with offset log(evaluations "
            "per run); its slope over log10(data size) is the change in the per-evaluation hazard beyond the "
            "count (hazard ratio 1 = the count explains everything).")
    cols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("evaluations per run", lambda r: f"{count(r.evals_smallest)} → {count(r.evals_largest)}", "r"),
            ("rise p", lambda r: pval(r.total_p), "r"),
            ("hazard ratio / 10x beyond count [95% CI]", lambda r: "–" if not np.isfinite(r.hazard_ratio_beyond)
             else f"{r.hazard_ratio_beyond:.3g} [{np.exp(r.beyond_ci_low):.3g}, {np.exp(r.beyond_ci_high):.3g}]",
             "r"),
            ("p", lambda r: pval(r.beyond_p), "r"), ("verdict", lambda r: str(r.verdict), "l")]
    dcols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
             ("data size", lambda r: label(r.data_size), "r"), ("runs", lambda r: f"{r.runs:,}", "r"),
             ("evaluations / run", lambda r: count(r.mean_evaluations), "r"),
             ("per-evaluation rate [95% CI]",
              lambda r: f"{pct(r.eval_rate)} [{interval(r.eval_ci_low, r.eval_ci_high)}]", "r"),
             ("run rate observed", lambda r: pct(r.run_rate), "r"),
             ("expected from per-evaluation", lambda r: pct(r.expected_run_rate), "r"),
             ("observed / expected", lambda r: num(r.observed_over_expected), "r")]
    return section("More data, more evaluations?", paragraph(text),
                   figure("decomposition.png", "observed vs expected run failure rate"),
                   table(rise, cols, csv="tables/explain_rise.csv"),
                   table(dec, dcols, max_rows=80, csv="tables/decomposition.csv"))


def margins(df: pd.DataFrame) -> str:
    bad = int(((df["worst_margin"] == -np.inf) & ok_mask(df)).sum())
    text = ("Each completed run's worst margin: the signed distance of its worst value to the bound, "
            "positive = held, negative = violated (the shaded band). Boxes show the quartiles, dots a sample "
            "of runs. " + (f"{bad} run-check(s) saw NaN/Inf; they have no finite margin and are counted in red "
                          "at the bottom of their panel." if bad else "No run saw NaN or Inf."))
    return section("Worst margins against the bound", paragraph(text), figure("margins.png", "worst margins"))


def tolerance(tol: pd.DataFrame, target: float, gof: str) -> str:
    calib, held = tol.attrs.get("calibration_seeds", []), tol.attrs.get("heldout_seeds", [])
    test = ("a Kolmogorov-Smirnov test against the fitted GPD (conservative: its parameters come from the "
            "same data)" if gof == "ks" else "an Anderson-Darling test with a Monte Carlo null that refits the GPD")
    text = (f"For each check, precision and data size, the bound that keeps the run-level false-alarm rate at "
            f"or under {pct(target)}, set on {_seeds(calib)} and tried on the held-out "
            f"{_seeds(held) if held else 'seeds (none: a single seed)'}. Empirical: the "
            f"{1 - target:.0%} quantile of the runs' worst values. Extreme value: peaks over threshold, a "
            f"generalized Pareto fit to the top 20% of runs, checked with {test}. The fit is not attempted when fewer "
            "than 15 runs lie above the threshold (\"tail too small\": about 75 calibration runs per row are "
            "needed) and not used when the test rejects it; the empirical bound is recommended then. A recommended "
            "bound holds when its held-out failure rate is at most the target, or above it only within noise "
            "(the 95% interval still contains the target). The full reasons are in tables/tolerance.csv.")
    cols = [("check", _check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("data size", lambda r: label(r.data_size), "r"),
            ("bound in use (run failure rate)", lambda r: f"{_cmp(r.direction)} {num(r.bound)} ({pct(r.rate)})", "r"),
            ("runs calib / held-out", lambda r: f"{r.n_calib:,} / {r.n_heldout:,}", "r"),
            ("empirical (held-out fail)", lambda r: _est(r.empirical_bound, r.empirical_heldout_rate), "r"),
            ("extreme value (held-out fail)", lambda r: _est(r.evt_bound, r.evt_heldout_rate)
             if np.isfinite(r.evt_bound) else _short(str(r.evt_note)), "l"),
            ("recommended", lambda r: f"{_cmp(r.direction)} {num(r.recommended_bound)}"
             if np.isfinite(r.recommended_bound) else "none", "r"),
            ("verdict", lambda r: str(r.verdict), "l"), ("note", lambda r: str(r.note), "l")]
    return section("Tolerance calibration", paragraph(text), table(tol, cols, max_rows=80, csv="tables/tolerance.csv"))


def _seeds(seeds: list) -> str:
    if len(seeds) <= 8:
        return "seed" + ("s " if len(seeds) != 1 else " ") + ", ".join(map(str, seeds))
    return f"{len(seeds):,} seeds ({seeds[0]}-{seeds[-1]})"


def _short(reason: str) -> str:
    """The gist of a refusal ("tail too small", "GPD fit rejected (KS p=0.003 < 0.05)")."""
    return reason.split(":")[0].split(" (a fit")[0]


def _cmp(direction: object) -> str:
    return {"below": "value ≤", "above": "value ≥"}.get(str(direction), "?")


def _est(bound: float, rate: float) -> str:
    return "–" if not np.isfinite(bound) else f"{bound:.4g} ({pct(rate)})"


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
