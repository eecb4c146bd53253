"""Assemble the report: prepare the frame, build the context, render every registered
section that applies, write ``index.html``, the figures and ``tables/*.csv``."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness import analysis as A
from harness.analysis.frame import check_labels
from harness.analysis.tail import Gof
from harness.report.base import HEADLINE_BY, ReportContext, Section
from harness.report.html import page


@dataclass
class Report:
    """What ``build_report`` computed and where it wrote it."""

    out: Path
    headline: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)  # the titles on the page, in order


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """The frame the report analyses: with several scenarios, checks are named
    ``scenario/check`` so that equal check names of different workloads stay apart, and
    a scenario whose parameters are swept is split by them: ``scenario[key=value]/check``."""
    df = A.with_variant(df)
    return df.assign(check=check_labels(df))


def headline(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per check x precision x data size: runs, failed, rate, 95% Wilson interval, NaN/Inf
    runs and runs that did not complete."""
    return A.failure_rates(df, by=list(HEADLINE_BY), level="run", alpha=alpha)


def build_report(df: pd.DataFrame, out: Path, *, title: str = "sweep", target: float = 0.01,
                 holdout: float = 0.0, fresh: pd.DataFrame | None = None, gof: Gof = "ks",
                 planned_runs: int | None = None, command: str | None = None, alpha: float = 0.05,
                 results_path: str = "RESULTS", outcome: str | None = None,
                 sections: Sequence[Section] | None = None,
                 fixes: Mapping[str, Mapping[str, Any]] | None = None) -> Report:
    """Analyse ``df`` (one row per (run, check)) and write the report into ``out``.

    The page is the ``sections`` (default: ``registry.SECTIONS``, read at call time) whose
    ``applies`` holds, in order. The bound calibration guarantees its false-alarm rate at
    confidence 1 - alpha; it is validated on the ``holdout`` fraction of seeds (default
    none) and on ``fresh``, the results of a sweep on seeds it never saw. ``command`` (the
    sweep's own, from _sweep.yaml) is extended into the command that adds the runs a
    guarantee still needs; ``results_path`` goes into the replay commands; ``fixes`` (each
    scenario's ``float32_params``, from _sweep.yaml) is named where fp16 overflows. With ``outcome``
    (a check name, bare or ``scenario/check``), the other checks are measured as detectors
    against it; an outcome that matches no check is a ValueError before anything is written."""
    from harness.report import registry

    raw, df = df, prepare(df)
    if outcome is not None:
        A.match_outcome(df["check"].unique(), outcome)
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(df, out, alpha=alpha, target=target, holdout=holdout,
                        fresh=None if fresh is None else prepare(fresh), gof=gof, planned_runs=planned_runs,
                        command=command, results_path=results_path, outcome=outcome, raw=raw, fixes=fixes or {})
    head = ctx.headline
    shown = [s for s in (registry.SECTIONS if sections is None else sections) if s.applies(ctx)]
    parts = [s.html(ctx) for s in shown]
    _ = ctx.incomplete_runs  # tables/incomplete_runs.csv is written even when no section shows it
    for name, frame in ctx.tables.items():
        frame.to_csv(out / "tables" / f"{name}.csv", index=False)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (out / "index.html").write_text(page(f"harness report: {title}", f"generated {stamp}", parts))
    return Report(out, head, dict(ctx.tables), dict(ctx.figures), [s.title for s in shown])
