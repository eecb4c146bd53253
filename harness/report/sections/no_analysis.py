"""When no run completed: say so (the runs are listed under "Runs that did not complete")."""

from __future__ import annotations

from harness.report.base import Section, has_no_completed_runs
from harness.report.html import paragraph

TITLE = "Analysis"
TEXT = ("No run completed, so there is nothing to analyse: every stored run errored, crashed or timed out "
        "(listed below).")

SECTION = Section(TITLE, lambda ctx: paragraph(TEXT), applies=has_no_completed_runs)
