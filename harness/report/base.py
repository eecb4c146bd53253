"""What a report section is and what it sees.

A ``Section`` is a title, ``applies(ctx) -> bool`` and ``render(ctx) -> str`` (the HTML
under the title). The page is the sections of ``harness.report.registry.SECTIONS`` that
apply, in order. ``ReportContext`` carries the prepared results frame, the options, and
the analyses, each computed once on first use and kept as a CSV table of the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from harness import analysis as A
from harness.analysis.frame import ok_mask
from harness.analysis.tail import Gof
from harness.report.html import section

HEADLINE_BY = ("check", "precision", "data_size")


@dataclass
class ReportContext:
    """The inputs of every section: ``df`` is the prepared frame (see ``report.prepare``),
    ``fresh`` the prepared results of a validation sweep (or None); ``tables`` and
    ``figures`` collect what the sections computed and drew (written as
    ``tables/NAME.csv`` and ``NAME.png``)."""

    df: pd.DataFrame
    out: Path
    alpha: float = 0.05
    target: float = 0.01
    holdout: float = 0.0
    fresh: pd.DataFrame | None = None
    gof: Gof = "ks"
    planned_runs: int | None = None
    command: str | None = None
    results_path: str = "RESULTS"
    outcome: str | None = None
    raw: pd.DataFrame | None = None  # the frame as loaded (check names bare), for the summary's hints
    fixes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # each scenario's float32_params
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    def table(self, name: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """The table ``name``, computed by ``compute`` on first use and kept (it becomes
        ``tables/NAME.csv``)."""
        if name not in self.tables:
            self.tables[name] = compute()
        return self.tables[name]

    def figure(self, name: str, draw: Callable[[Path], Path]) -> str:
        """Draw the figure ``name`` into ``out/NAME.png`` (``draw(path) -> path``) and
        return its file name relative to the page."""
        self.figures[name] = draw(self.out / f"{name}.png")
        return f"{name}.png"

    @cached_property
    def completed_runs(self) -> int:
        """Rows of completed runs (0: nothing to analyse)."""
        return int(ok_mask(self.df).sum())

    @property
    def headline(self) -> pd.DataFrame:
        """Per check x precision x data size: runs, failed, rate, Wilson interval, NaN/Inf, incomplete."""
        return self.table("headline", lambda: A.failure_rates(self.df, by=list(HEADLINE_BY), level="run",
                                                               alpha=self.alpha))

    @property
    def trend(self) -> pd.DataFrame:
        """Does the run failure rate change with data size (per check x precision)?"""
        return self.table("trend", lambda: A.trend(self.df, by=["check", "precision"], alpha=self.alpha))

    @property
    def explain_rise(self) -> pd.DataFrame:
        """Is a rise only the evaluation count (per check x precision)?"""
        return self.table("explain_rise", lambda: A.explain_rise(self.df, by=["check", "precision"],
                                                                 alpha=self.alpha))

    @property
    def decomposition(self) -> pd.DataFrame:
        """Per-evaluation against per-run rates (per check x precision x data size)."""
        return self.table("decomposition", lambda: A.decompose(self.df, by=list(HEADLINE_BY), alpha=self.alpha))

    @property
    def tolerance(self) -> pd.DataFrame:
        """The bound with a guarantee, or what is missing (per check x precision x data size)."""
        return self.table("tolerance", lambda: A.calibrate_tolerance(
            self.df, by=list(HEADLINE_BY), target=self.target, confidence=1 - self.alpha, holdout=self.holdout,
            fresh=self.fresh, gof=self.gof))

    @property
    def attribution(self) -> pd.DataFrame:
        """Which axis moves each check's failure rate most."""
        return self.table("attribution", lambda: A.attribute_factors(self.df, alpha=self.alpha))

    @property
    def false_alarms(self) -> pd.DataFrame:
        """The detector checks against the ``outcome`` check (needs ``outcome``)."""
        if self.outcome is None:
            raise ValueError("false_alarms needs an outcome check")
        by = [k for k in ("precision", "data_size") if k in self.df.columns]
        return self.table("false_alarms", lambda: A.false_alarms(self.df, str(self.outcome), by=by, alpha=self.alpha))

    @property
    def incomplete_runs(self) -> pd.DataFrame:
        """One row per run that errored, crashed or timed out."""
        return self.table("incomplete_runs", lambda: A.incomplete_runs(self.df))


def always(ctx: ReportContext) -> bool:
    """Every report has the section."""
    return True


def has_completed_runs(ctx: ReportContext) -> bool:
    """Some run completed: there is something to analyse."""
    return ctx.completed_runs > 0


def has_no_completed_runs(ctx: ReportContext) -> bool:
    """No run completed: the report says so instead of analysing."""
    return ctx.completed_runs == 0


def has_outcome(ctx: ReportContext) -> bool:
    """An outcome check was given (``--outcome``) and some run completed."""
    return ctx.outcome is not None and ctx.completed_runs > 0


@dataclass(frozen=True)
class Section:
    """One part of the page: ``render(ctx)`` is the HTML under the ``title``; a section
    whose ``applies(ctx)`` is False is left out of the page (and out of the navigation)."""

    title: str
    render: Callable[[ReportContext], str]
    applies: Callable[[ReportContext], bool] = always

    def html(self, ctx: ReportContext) -> str:
        """The whole ``<section>``: the title (a navigation target) and the rendered body."""
        return section(self.title, self.render(ctx))
