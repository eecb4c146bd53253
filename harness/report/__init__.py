"""The HTML report of a sweep: ``python -m harness.report RESULTS_DIR [--out DIR]``
(or ``python -m harness report RESULTS_DIR``).

Writes ``DIR/index.html`` (default ``RESULTS_DIR_report``, beside the results and outside
the Parquet dataset, so ``pandas.read_parquet(RESULTS_DIR)`` keeps working) with PNG
figures and the full tables as CSV under ``DIR/tables/``, and prints the headline table
(per check x precision x data size: runs, failed, rate, 95% interval) to the terminal.
The page opens with a heatmap per scenario (failing/completed runs per check x precision
x data size, each failing cell linked to its runs and their replay commands), then the
answer per check: the bound that would hold and its guarantee, or how many more runs it
takes and the command that runs them.

Layout: ``build`` assembles the page from ``registry.SECTIONS`` (one module per section in
``sections/``; ``base`` says what a section is and what it sees), ``html`` and ``plots``
draw, ``cli`` is the command line. Statistics live in ``harness.analysis``.
"""

from __future__ import annotations

from harness.report.base import ReportContext, Section
from harness.report.build import Report, build_report, headline, prepare
from harness.report.cli import main, print_headline
from harness.report.sections.tolerance import more_runs_command

__all__ = ["Report", "ReportContext", "Section", "build_report", "headline", "main", "more_runs_command", "prepare",
           "print_headline"]
