"""False alarms against the outcome (``--outcome CHECK``): every other check measured as a
detector of an unhealthy run (``analysis.false_alarms``), coloured from ``AlarmVerdict``. The runs
are grouped as ``--by`` says (default ``auto``: precision, and data size where the runs allow;
the variants, e.g. a bug and its fix, and the seeds pooled), and the section says in one line
what it pooled."""

from __future__ import annotations

import html

import pandas as pd

from harness import analysis as A
from harness.analysis.alarms import AUTO, pooled_text
from harness.analysis.frame import pct
from harness.analysis.verdicts import AlarmVerdict
from harness.report.base import ReportContext, Section, has_outcome
from harness.report.cells import axis_column, check, interval, pval, tone_of
from harness.report.html import details, paragraph, table

TITLE = "False alarms against the outcome"


def body(frame: pd.DataFrame, outcome: str) -> str:
    """False alarms of the detector checks against the ``outcome`` check (``frame`` from
    ``alarms.false_alarms``): what is measured and from how many runs, what the runs are grouped by
    and pooled over (one line), then per detector and group (by default precision, and data size
    where the runs allow) the false-alarm and detection rates with their intervals and the
    verdict, coloured from ``AlarmVerdict``'s tone."""
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
    keys = [k for k in a.get("by", ["precision", "data_size"]) if k in frame.columns]
    config = [axis_column(k) for k in keys]
    per = "detector" + (f" and {' x '.join(k.replace('_', ' ') for k in keys)}" if keys else " (every run pooled)")
    text = (f"The outcome check <b>{named}</b> says whether a run was healthy: a completed run that passes it is "
            "healthy, one that fails it unhealthy. Every other check is taken as a detector that fires when it "
            f"fails. {runs} Per {per}: the false-alarm rate (the share of healthy "
            "runs in which the detector fires) and the detection rate (the share of unhealthy runs in which it "
            f"fires), with {level} Wilson intervals over runs (seeds are the replicates); a rate without runs "
            "under it is unknown (–), never 0. Verdict, the first that applies: <i>noisy</i> (red), false alarms "
            f"in more than {pct(limit)} of healthy runs (the interval's lower limit is above it); <i>informative</i> "
            "(green), it fires more often in unhealthy runs (one-sided Fisher exact test of fired x outcome, "
            f"p &lt; {alpha:g}); <i>quiet</i> (green), false alarms in at most {pct(limit)} of healthy runs (upper "
            "limit); <i>uninformative</i>, the test could have found an association and did not; <i>not enough "
            "data</i>, no healthy or no unhealthy runs, or too few to test. Full table: tables/false_alarms.csv.")
    if frame.empty:
        return paragraph(text) + paragraph("No other check shares a run with the outcome: there is no detector "
                                           "to measure.", "bad")
    pooled = pooled_line(frame)
    counts = frame["status"].value_counts()
    summary = "; ".join(f"{int(counts[v.value])} {v.value.replace('_', ' ')}" for v in AlarmVerdict
                        if counts.get(v.value, 0))

    def rate(k: str, n: str, r_: str, lo: str, hi: str, none: str):
        def cell(r: object) -> str:
            if not getattr(r, n):
                return none
            return (f"{getattr(r, k):,}/{getattr(r, n):,}: {pct(getattr(r, r_))} "
                    f"[{interval(getattr(r, lo), getattr(r, hi))}]")
        return cell

    fa, det = f"false alarms [{level} CI]", f"detection [{level} CI]"
    cols = [("detector", check, "l"), *config,
            ("healthy / unhealthy runs", lambda r: f"{r.outcome_passed:,} / {r.outcome_failed:,}", "r"),
            (fa, rate("fired_when_healthy", "outcome_passed", "false_alarm_rate", "false_alarm_ci_low",
                      "false_alarm_ci_high", "unknown (no healthy runs)"), "r"),
            (det, rate("fired_when_unhealthy", "outcome_failed", "detection_rate", "detection_ci_low",
                       "detection_ci_high", "unknown (no unhealthy runs)"), "r"),
            ("Fisher p", lambda r: pval(r.p_value), "r"), ("verdict", lambda r: str(r.verdict), "l")]
    tone = tone_of(AlarmVerdict)
    conclusive = frame.apply(lambda r: tone(r) in ("good", "bad"), axis=1).astype(bool)
    parts = [paragraph(text), paragraph(html.escape(pooled)),
             paragraph(f"{len(frame)} detector configurations: {summary}.")]
    if conclusive.any():  # the verdicts that say something (coloured), open; the others folded away
        parts.append(table(frame[conclusive], cols, max_rows=80, csv="tables/false_alarms.csv", tone=tone))
    if (~conclusive).any():
        rest = frame[~conclusive]
        words = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in rest["status"].value_counts().items())
        parts.append(details(f"{'The other' if conclusive.any() else 'All'} {len(rest)} configurations ({words})",
                             table(rest, cols, max_rows=80, csv="tables/false_alarms.csv", tone=tone)))
    return "".join(parts)


def pooled_line(frame: pd.DataFrame) -> str:
    """One line: what the runs are grouped by and what they are pooled over (``attrs`` of ``false_alarms``),
    e.g. "Grouped by precision; pooled over: variant (fix=False, fix=True), 30 seeds (data sizes pooled: ...)"."""
    a = frame.attrs
    keys = [str(k).replace("_", " ") for k in a.get("by", [])]
    pooled = pooled_text(dict(a.get("pooled", {})))
    rule = str(a.get("by_rule") or "")
    line = (f"Grouped by {', '.join(keys)}" if keys else "Not grouped") + (
        f"; pooled over: {pooled}" if pooled else "; nothing pooled")
    return line + (f" ({rule})" if rule else "") + "."


def section(by: object = AUTO) -> Section:
    """The section, with the runs grouped by ``by`` (``analysis.false_alarms``: "auto", a list of columns,
    or None to pool every run); ``python -m harness report --by`` builds it."""
    def frame(ctx: ReportContext) -> pd.DataFrame:
        return ctx.table("false_alarms", lambda: A.false_alarms(ctx.df, str(ctx.outcome), by=by, alpha=ctx.alpha))

    return Section(TITLE, lambda ctx: body(frame(ctx), str(ctx.outcome)), applies=has_outcome)


SECTION = section()
