"""The one list of the report's sections, in page order.

To add an analysis to the report: the statistics in a module of ``harness.analysis``
(returning a frame with an enum ``status``), a module in ``harness.report.sections``
defining ``SECTION = Section(TITLE, render, applies=...)``, and one line here. Sections
whose ``applies(ctx)`` is False are left out of the page.
"""

from __future__ import annotations

from harness.report.base import Section
from harness.report.sections import (alarms, answer, attribution, decomposition, failing, findings, incomplete,
                                     margins, no_analysis, overview, rates, summary, tolerance, trend)

SECTIONS: list[Section] = [
    answer.SECTION,         # per scenario: what breaks where, how often, the cause, what to try next
    summary.SECTION,        # what is in the results
    no_analysis.SECTION,    # only when no run completed
    overview.SECTION,       # heatmap per scenario: check x precision x data size, linked to the failing runs
    alarms.SECTION,         # only with --outcome: the question the user asked
    findings.SECTION,
    tolerance.SECTION,      # the bound that would hold, or the runs it takes (and what they would cost)
    rates.SECTION,
    trend.SECTION,
    decomposition.SECTION,
    margins.SECTION,
    attribution.SECTION,
    failing.SECTION,        # the overview's cells link here
    incomplete.SECTION,
]
