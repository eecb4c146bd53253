"""Terminal progress while a sweep runs, and the closing summary.

On a terminal: a live bar with runs done, pass/fail/error counts and ETA. Elsewhere
(CI logs, `ray job submit`): a plain line every ~5% of the runs.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from harness.grid import RunSpec
from harness.records import RunResult, Status

AXIS_COLUMNS = ("scenario", "data_size", "batch_size", "precision", "clip_value", "steps", "epochs")  # seeds are replicates


def run_outcome(result: RunResult) -> str:
    """passed (every check held), failed (some check failed) or the status of a run that did not complete."""
    if result.status is not Status.OK:
        return result.status.value
    return "passed" if all(c.passed for c in result.checks) else "failed"


class SweepProgress:
    def __init__(self, console: Console, total: int, skipped: int) -> None:
        self.console = console
        self.total = total
        self.skipped = skipped
        self.counts: Counter[str] = Counter()
        self.done = 0
        self._t0 = time.monotonic()
        self._live = console.is_terminal
        self._every = max(1, total // 20)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[green]{task.fields[passed]} passed[/] [red]{task.fields[failed]} failed[/] "
                       "[yellow]{task.fields[errors]} errors[/]"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )
        self._task = self._progress.add_task("runs", total=total, passed=0, failed=0, errors=0)

    def __enter__(self) -> SweepProgress:
        if self._live:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live:
            self._progress.stop()

    def grow(self, n: int) -> None:
        """``n`` more runs to do (adaptive seeds add rounds while the sweep runs)."""
        if n:
            self.total += n
            self._every = max(1, self.total // 20)
            self._progress.update(self._task, total=self.total)

    def finished(self, spec: RunSpec, result: RunResult) -> None:
        outcome = run_outcome(result)
        self.counts[outcome] += 1
        self.done += 1
        errors = sum(v for k, v in self.counts.items() if k not in ("passed", "failed"))
        self._progress.update(self._task, advance=1, passed=self.counts["passed"], failed=self.counts["failed"],
                              errors=errors)
        if result.status is not Status.OK:
            self.console.print(f"[yellow]{result.status.value}[/] run {spec.run_id} "
                               f"({spec.scenario} n={spec.data_size} {spec.precision} seed={spec.seed}): "
                               f"{escape(str(result.error))}", highlight=False, soft_wrap=True)
        if not self._live and (self.done % self._every == 0 or self.done == self.total):
            elapsed = time.monotonic() - self._t0
            eta = elapsed / self.done * (self.total - self.done)
            self.console.print(f"runs {self.done}/{self.total}  passed {self.counts['passed']}  failed "
                               f"{self.counts['failed']}  errors {errors}  elapsed {elapsed:.0f}s  eta {eta:.0f}s",
                               highlight=False)


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Run-level failure rate of each check by each axis that varies (completed runs only);
    one line per check ("all") when no axis varies."""
    ok = df[df["status"] == "ok"].assign(all="", failed=lambda d: ~d["passed"].astype(bool))
    axes = [a for a in AXIS_COLUMNS if a in ok and ok[a].nunique(dropna=False) > 1] or ["all"]
    parts = []
    for axis in axes:
        g = ok.groupby(["check", axis], dropna=False)["failed"].agg(runs="size", failed="sum").reset_index()
        parts.append(g.rename(columns={axis: "value"}).assign(axis=axis))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["check", "axis", "value", "runs",
                                                                                  "failed"])
    out["rate"] = out["failed"] / out["runs"]
    return out[["check", "axis", "value", "runs", "failed", "rate"]]


def print_summary(console: Console, df: pd.DataFrame, path: str, elapsed_s: float, new_runs: int,
                  skipped: int) -> None:
    table = Table(title="Failure rate per check by axis (completed runs)", show_lines=False)
    for col, just in (("check", "left"), ("axis", "left"), ("value", "right"), ("runs", "right"),
                      ("failed", "right"), ("rate", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in summary_frame(df).itertuples():
        value = "none" if r.value is None or (isinstance(r.value, float) and pd.isna(r.value)) else f"{r.value:g}" \
            if isinstance(r.value, float) else str(r.value)
        table.add_row(escape(str(r.check)), r.axis, escape(value), str(r.runs), str(r.failed), f"{r.rate:.0%}")
    console.print(table)
    runs = df.drop_duplicates("run_id")
    status = runs["status"].value_counts().to_dict()
    incomplete = {k: v for k, v in status.items() if k != "ok"}
    console.print(f"{len(runs)} runs stored ({new_runs} new, {skipped} already stored) in {elapsed_s:.1f}s; "
                  + (f"did not complete: {incomplete}" if incomplete else "all completed"), highlight=False)
    console.print(f"results: {path}", highlight=False, soft_wrap=True)
    console.print(f"report:  python -m harness.report {path}", highlight=False, soft_wrap=True)
