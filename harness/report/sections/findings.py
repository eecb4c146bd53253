"""Key findings: one line per trend verdict, per rise that the evaluation count does or
does not explain, per check's most influential axis, and the tolerance tally."""

from __future__ import annotations

import html

import pandas as pd

from harness.analysis.frame import label, pct
from harness.analysis.verdicts import BoundVerdict, RiseVerdict, ValidationVerdict
from harness.report.base import ReportContext, Section, has_completed_runs

TITLE = "Key findings"
MAX_ITEMS = 30


def body(trend: pd.DataFrame, rise: pd.DataFrame, attr: pd.DataFrame, tol: pd.DataFrame,
         pattern: pd.DataFrame | None = None) -> str:
    """A list of at most MAX_ITEMS findings ("" when there is none). With ``pattern``
    (``analysis.where.failure_pattern``), an axis ranked first over pooled runs is followed by where
    the failures really are when they need two conditions at once (pooling would mislead)."""
    stratified = {} if pattern is None else {r.check: r for r in pattern.itertuples() if r.interaction}
    items = [f"<b>{html.escape(r.check)}</b> ({html.escape(label(r.precision))}): {html.escape(r.verdict)}"
             for r in trend.itertuples()]
    told = {RiseVerdict.EXPLAINED.value, RiseVerdict.NOT_EXPLAINED.value, RiseVerdict.RATE_RISES.value,
            RiseVerdict.LESS_THAN_COUNT.value}
    items += [f"<b>{html.escape(r.check)}</b> ({html.escape(label(r.precision))}), more evaluations per run? "
              f"{html.escape(r.verdict)}" for r in rise.itertuples() if getattr(r, "status", None) in told]
    items += [f"<b>{html.escape(r.check)}</b>: <i>{html.escape(r.axis)}</i> {html.escape(r.verdict)}"
              + (f", pooled over the other axes; stratified, it fails {html.escape(stratified[r.check].pattern)}"
                 f" ({html.escape(stratified[r.check].interaction)})" if r.check in stratified else "")
              for r in attr[attr["rank"] == 1].itertuples()]
    if len(tol):
        items.append(_tolerance(tol))
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items[:MAX_ITEMS]) + "</ul>" if items else ""


def _tolerance(tol: pd.DataFrame) -> str:
    B, V = BoundVerdict, ValidationVerdict
    status, val = tol["bound_status"], tol["validation_status"]
    more = tol.loc[status == B.NEEDS_RUNS.value, "runs_missing"]
    n = {v: int((status == v.value).sum()) for v in B} | {v: int((val == v.value).sum()) for v in V}
    item = (f"tolerance (false alarms <= {pct(tol.attrs['target'])} of runs at "
            f"{tol.attrs['confidence']:.0%} confidence): {n[B.GUARANTEED]} of {len(tol)} configurations have a "
            "guaranteed bound")
    item += f"; {len(more)} need more runs (up to {int(more.max()):,} more)" if len(more) else ""
    item += f"; {n[B.NO_BOUND]} have no bound (NaN/Inf runs)" if n[B.NO_BOUND] else ""
    item += f"; {n[B.UNKNOWN_OP]} predate recorded ops (rerun)" if n[B.UNKNOWN_OP] else ""
    if n[V.HOLDS] + n[V.EXCEEDS] + n[V.INCONCLUSIVE]:
        item += (f"; validated on unseen runs: {n[V.HOLDS]} hold, {n[V.EXCEEDS]} exceed the target, "
                 f"{n[V.INCONCLUSIVE]} inconclusive")
    return item


def render(ctx: ReportContext) -> str:
    """The findings of the context's trend, rise, attribution and tolerance analyses."""
    from harness.analysis.where import failure_pattern

    return body(ctx.trend, ctx.explain_rise, ctx.attribution, ctx.tolerance,
                failure_pattern(ctx.raw if ctx.raw is not None else ctx.df))


SECTION = Section(TITLE, render, applies=has_completed_runs)
