"""The plain progress lines of a sweep (a log, a pipe): counts, elapsed time and an ETA that does not
count Ray's start and TensorFlow's import as run time."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from conftest import make_spec
from harness import progress as progress_module
from harness.progress import SweepProgress
from harness.records import RunResult, Status


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ok() -> RunResult:
    return RunResult(run_id="r", status=Status.OK)


def test_the_eta_extrapolates_the_runs_from_when_ray_and_the_actors_were_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    out = io.StringIO()
    with SweepProgress(Console(file=out, force_terminal=False, width=200), total=4, skipped=0) as p:
        clock.now += 60  # Ray's start and the actors' TensorFlow import
        p.started()
        for i in range(4):
            clock.now += 2  # each run takes 2 s
            p.finished(make_spec(seed=i), _ok())
    lines = out.getvalue().splitlines()
    assert lines[0] == "runs 1/4  held 1  broke a check 0  did not complete 0  elapsed 62s  eta 6s", lines
    assert lines[-1].endswith("elapsed 68s  eta 0s"), lines


def test_without_a_start_signal_the_eta_counts_from_the_beginning(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    out = io.StringIO()
    with SweepProgress(Console(file=out, force_terminal=False, width=200), total=2, skipped=0) as p:
        clock.now += 10
        p.finished(make_spec(), _ok())
    assert out.getvalue().splitlines()[0] == "runs 1/2  held 1  broke a check 0  did not complete 0  elapsed 10s  eta 10s"


def test_the_bar_says_starting_until_ray_and_the_actors_are_up() -> None:
    """A cold start takes seconds before the first run: the bar at 0 says why, then counts runs."""
    out = io.StringIO()
    with SweepProgress(Console(file=out, force_terminal=True, width=200), total=2, skipped=0) as p:
        assert p._progress.tasks[0].description == "starting"
        p._progress.refresh()
        p.started()
        assert p._progress.tasks[0].description == "runs"
        p.finished(make_spec(), _ok())
    assert "starting" in out.getvalue() and "runs" in out.getvalue()
