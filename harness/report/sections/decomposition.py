"""More data, more evaluations? Whether a rise of the run failure rate with data size is
only the evaluation count (``analysis.explain_rise``, ``analysis.decompose``)."""

from __future__ import annotations

import pandas as pd

from harness.analysis.frame import label, pct
from harness.analysis.verdicts import RiseVerdict
from harness.report import plots
from harness.report.base import ReportContext, Section, has_completed_runs
from harness.report.cells import check, count, interval, num, plain, pval, ratio_ci, tone_of
from harness.report.html import details, figure, paragraph, split_table, table

TITLE = "More data, more evaluations?"
FOLD = 30  # a longer per-configuration table is folded away


def body(rise: pd.DataFrame, dec: pd.DataFrame, src: str = "decomposition.png") -> str:
    """The rise verdicts (coloured from ``RiseVerdict``) and the per-configuration
    decomposition, under the figure ``src``."""
    text = ("A check is evaluated once per training step, so with more data (more steps per epoch) a run tests "
            "it more often and fails more often even if each evaluation is as safe as before. If every "
            "evaluation failed independently with the per-evaluation rate p, a run with n evaluations would "
            "fail with probability 1 - (1 - p)^n: the dashed lines. Observed far below that means failures "
            "cluster within runs. The test: a complementary log-log binomial model with offset log(evaluations "
            "per run); its slope over log10(data size) is the change in the per-evaluation hazard beyond the "
            "count (hazard ratio 1 = the count explains everything). The per-evaluation interval treats runs as "
            "clusters (evaluations of one run are not independent): cluster-robust variance, Korn-Graubard "
            "interval.")
    cols = [("check", check, "l"), ("precision", lambda r: label(r.precision), "l"),
            ("evaluations per run", lambda r: f"{count(r.evals_smallest)} → {count(r.evals_largest)}", "r"),
            ("rise p", lambda r: pval(r.total_p), "r"),
            ("hazard ratio / 10x beyond count [95% CI]",
             lambda r: ratio_ci(r.hazard_ratio_beyond, r.beyond_ci_low, r.beyond_ci_high), "r"),
            ("p", lambda r: pval(r.beyond_p), "r"), ("verdict", lambda r: str(r.verdict), "l")]
    dcols = [("check", check, "l"), ("precision", lambda r: label(r.precision), "l"),
             ("data size", lambda r: label(r.data_size), "r"), ("runs", lambda r: f"{r.runs:,}", "r"),
             ("evaluations / run", lambda r: count(r.mean_evaluations), "r"),
             ("per-evaluation rate [95% CI, runs as clusters]",
              lambda r: f"{pct(r.eval_rate)} [{interval(r.eval_ci_low, r.eval_ci_high)}]", "r"),
             ("run rate observed", lambda r: pct(r.run_rate), "r"),
             ("expected from per-evaluation", lambda r: pct(r.expected_run_rate), "r"),
             ("observed / expected", lambda r: num(r.observed_over_expected), "r")]
    never = rise["status"].eq(RiseVerdict.NEVER_FAILS.value)
    per_config = table(dec, dcols, max_rows=80, csv="tables/decomposition.csv", tone=plain)
    return (paragraph(text) + figure(src, "observed vs expected run failure rate")
            + split_table(rise, cols, never, f"{int(never.sum())} check x precision pairs never fail",
                          csv="tables/explain_rise.csv", tone=tone_of(RiseVerdict))
            + (details(f"Per check, precision and data size: {len(dec)} rows", per_config) if len(dec) > FOLD
               else per_config))


def render(ctx: ReportContext) -> str:
    """The decomposition figure (configurations with runs) and both tables."""
    dec = ctx.decomposition
    src = ctx.figure("decomposition", lambda p: plots.plot_decomposition(dec[dec["runs"] > 0], p))
    return body(ctx.explain_rise, dec, src)


SECTION = Section(TITLE, render, applies=has_completed_runs)
