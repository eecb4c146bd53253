"""Terminal progress while a sweep runs (the closing summary is harness.summary).

On a terminal: a live bar with runs done, how many held every check, broke one or did not
complete, and the ETA. Elsewhere
(CI logs, `ray job submit`): a plain line every ~5% of the runs (every run when there are fewer than 40).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from harness.grid import RunSpec
from harness.records import RunResult, Status



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
        self._t_runs = self._t0  # when Ray and the actors were up (see started)
        self._live = console.is_terminal
        self._every = max(1, total // 20)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            # runs, not checks: a run "held" when every check held, "broke" when a check failed in it
            TextColumn("[green]{task.fields[passed]} held[/] [red]{task.fields[failed]} broke a check[/] "
                       "[yellow]{task.fields[errors]} did not complete[/]"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )
        # "starting" while Ray and the actors come up (a cold start takes seconds): a bar at 0 that says why
        self._task = self._progress.add_task("starting", total=total, passed=0, failed=0, errors=0)

    def __enter__(self) -> SweepProgress:
        if self._live:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live:
            self._progress.stop()

    def started(self) -> None:
        """Ray and the actors are up: the ETA extrapolates the run rate from here, so that Ray's start
        and TensorFlow's import, paid once, are not counted as if every run paid them."""
        self._t_runs = time.monotonic()
        self._progress.update(self._task, description="runs")

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
                              errors=errors, description="runs")
        if result.status is not Status.OK:
            self.console.print(f"[yellow]{result.status.value}[/] run {spec.run_id} "
                               f"({spec.scenario} n={spec.data_size} {spec.precision} seed={spec.seed}): "
                               f"{escape(str(result.error))}", highlight=False, soft_wrap=True)
        if not self._live and (self.done % self._every == 0 or self.done == self.total):
            now = time.monotonic()
            elapsed = now - self._t0
            eta = (now - self._t_runs) / self.done * (self.total - self.done)
            self.console.print(f"runs {self.done}/{self.total}  held {self.counts['passed']}  broke a check "
                               f"{self.counts['failed']}  did not complete {errors}  elapsed {elapsed:.0f}s  "
                               f"eta {eta:.0f}s", highlight=False)
