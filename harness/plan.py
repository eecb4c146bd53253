"""Adaptive seeds: per cell, which seeds to run next, and when a cell has enough.

A *cell* is one configuration across seeds (a RunSpec without its seed). With an adaptive
rule (``harness.config.AdaptiveConfig``) each cell runs the seeds of ``sweep.seed`` first,
then ``round`` more at a time, in a fixed order (the integers after the largest configured
seed), until its stopping rule holds or it has run ``max_seeds`` seeds:

* ``width``: every check's run-level failure rate has a Wilson interval (statsmodels
  ``proportion_confint``) at most ``width`` wide, at the stated confidence;
* ``bound``: every check has the completed runs that a distribution-free bound at false-alarm
  rate ``target`` needs (``harness.analysis.bounds.runs_needed``: 299 for 1% at 95%), or the
  runs that saw NaN/Inf are known (Clopper-Pearson lower limit) to exceed the target on their
  own, so that no bound can hold.

A round is judged once all its runs have finished. A round in which no run completed ends
the cell (more seeds would not help). The decision reads only the outcomes of the cell's
runs, which are deterministic, so a sweep interrupted and run again replays the same rounds
from its stored runs and resumes exactly where it stopped. Pure: no Ray, no TF, no I/O.

Anchors from the literature: FLASH (Dutta et al., FSE'18) adds 10 runs a round up to 500
until Geweke's z <= 1; FLEX (Dutta et al., ICSE'21) adds 50 a round up to 1,000.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness import axes
from harness.config import AdaptiveConfig
from harness.grid import RunSpec, make_run_id


class StopReason(str, enum.Enum):
    RUNNING = "running"
    RULE_MET = "rule_met"
    NO_BOUND = "no_bound"  # rule bound: NaN/Inf runs alone exceed the target
    CAP = "cap"  # max_seeds reached before the rule held
    NO_COMPLETED_RUNS = "no_completed_runs"  # a whole round errored, crashed or timed out


@dataclass(frozen=True)
class Outcome:
    """What the stopping rule needs of one finished run: did it complete, and per check,
    did it fail and did it see NaN/Inf."""

    completed: bool
    checks: Mapping[str, tuple[bool, bool]] = field(default_factory=dict)  # name -> (failed, nonfinite)


def cell_key(spec: RunSpec) -> str:
    """A stable id for the cell of ``spec``: the run_id of the same run with seed 0."""
    return make_run_id(replace(spec, seed=0))


def seed_order(first: Sequence[int], cap: int) -> list[int]:
    """The seeds a cell may run, in order: ``first`` (sweep.seed), then the integers after its
    largest, ``cap`` seeds in all."""
    seeds = list(first)[:cap]
    nxt = max(first) + 1
    while len(seeds) < cap:
        seeds.append(nxt)
        nxt += 1
    return seeds


def _wilson_width(failed: int, n: int, confidence: float) -> float:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(failed, n, alpha=1 - confidence, method="wilson")
    return float(hi - lo)


def judge(outcomes: Iterable[Outcome], rule: AdaptiveConfig) -> tuple[StopReason, str]:
    """Does the rule hold on these outcomes of one cell? (reason, detail) where reason is
    RUNNING when more seeds are needed."""
    done = [o for o in outcomes if o.completed]
    if not done:
        return StopReason.RUNNING, "no completed run yet"
    names = sorted({name for o in done for name in o.checks})
    n = len(done)
    details = []
    settled = True
    for name in names:
        failed = sum(o.checks.get(name, (False, False))[0] for o in done)
        nonfinite = sum(o.checks.get(name, (False, False))[1] for o in done)
        if rule.rule == "width":
            w = _wilson_width(failed, n, rule.confidence)
            settled &= w <= rule.width
            details.append(f"{name}: {failed}/{n} failed, interval width {w:.3f}")
        else:
            from harness.analysis.bounds import nonfinite_exceeds, runs_needed

            if nonfinite_exceeds(nonfinite, n, rule.target, rule.confidence):
                return StopReason.NO_BOUND, f"{name}: {nonfinite}/{n} runs saw NaN/Inf, above {rule.target:g}"
            need = runs_needed(rule.target, rule.confidence)
            settled &= n >= need
            details.append(f"{name}: {n}/{need} completed runs")
    return (StopReason.RULE_MET if settled else StopReason.RUNNING), "; ".join(details)


@dataclass
class Cell:
    key: str
    template: RunSpec  # the cell's first spec; others differ in seed (and run_id)
    seeds: list[int]  # every seed the cell may run, in order
    rounds: int = 0  # rounds started
    issued: int = 0  # seeds issued so far (a prefix of ``seeds``)
    round_start: int = 0  # index in ``seeds`` where the current round starts
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # seed -> outcome of a finished run
    reason: StopReason = StopReason.RUNNING
    detail: str = ""

    def spec(self, seed: int) -> RunSpec:
        s = replace(self.template, seed=seed)
        return replace(s, run_id=make_run_id(s))


class Planner:
    """Hands out the runs of each cell round by round and judges each round as its runs finish.

    ``start(stored)`` takes the outcomes already stored (run_id -> Outcome) and returns the
    runs to dispatch now; ``finished(spec, outcome)`` returns the runs of the cell's next round
    once the round it belongs to is complete and the rule does not hold yet."""

    def __init__(self, specs: Sequence[RunSpec], rule: AdaptiveConfig, seeds: Sequence[int]) -> None:
        self.rule = rule
        self.cells: dict[str, Cell] = {}
        if not rule.adaptive:
            raise ValueError("Planner needs an adaptive rule (width or bound); a fixed grid needs no planning")
        order = seed_order(seeds, rule.max_seeds)
        self._first = len(seeds)  # the first round: sweep.seed
        for s in specs:
            key = cell_key(s)
            if key not in self.cells:
                self.cells[key] = Cell(key, s, order)
        self._stored: Mapping[str, Outcome] = {}

    # -- rounds
    def _advance(self, cell: Cell) -> list[RunSpec]:
        """Judge the cell's finished round and issue the next, skipping runs already stored,
        until a round has runs to dispatch (returned) or the cell stops (returns [])."""
        while cell.reason is StopReason.RUNNING:
            if cell.issued > len(cell.outcomes):
                return []  # the current round is still running
            if cell.rounds:  # judge the finished round
                if not any(cell.outcomes[s].completed for s in cell.seeds[cell.round_start:cell.issued]):
                    cell.reason, cell.detail = StopReason.NO_COMPLETED_RUNS, "no run of the last round completed"
                    break
                cell.reason, cell.detail = judge(cell.outcomes.values(), self.rule)
                if cell.reason is not StopReason.RUNNING:
                    break
                if cell.issued >= len(cell.seeds):
                    cell.reason = StopReason.CAP
                    break
            size = self._first if cell.rounds == 0 else self.rule.round
            cell.round_start, cell.issued = cell.issued, min(len(cell.seeds), cell.issued + size)
            cell.rounds += 1
            todo = []
            for seed in cell.seeds[cell.round_start:cell.issued]:
                spec = cell.spec(seed)
                if spec.run_id in self._stored:
                    cell.outcomes[seed] = self._stored[spec.run_id]
                else:
                    todo.append(spec)
            if todo:
                return todo
        return []

    def start(self, stored: Mapping[str, Outcome]) -> list[RunSpec]:
        """The runs to dispatch first; ``stored`` maps run_id -> outcome of runs already stored."""
        self._stored = stored
        return [spec for cell in self.cells.values() for spec in self._advance(cell)]

    def finished(self, spec: RunSpec, outcome: Outcome) -> list[RunSpec]:
        cell = self.cells[cell_key(spec)]
        cell.outcomes[spec.seed] = outcome
        return self._advance(cell)

    # -- reporting
    def specs(self) -> list[RunSpec]:
        """Every run issued so far (stored or run)."""
        return [c.spec(s) for c in self.cells.values() for s in c.seeds[:c.issued]]

    def summary(self) -> list[dict[str, Any]]:
        """One record per cell: its axes, rule, rounds, seeds run, completed runs, stop reason."""
        out = []
        for c in self.cells.values():
            t = c.template
            out.append({
                "cell": c.key, "scenario": t.scenario, "variant": t.variant,
                **{a: t.axis(a) for a in axes.DISPLAY if a not in ("scenario", "seed")},  # the cell's axes
                "rule": self.rule.rule, "rounds": c.rounds, "seeds": c.issued,
                "completed": sum(o.completed for o in c.outcomes.values()),
                "stop": c.reason.value, "detail": c.detail,
            })
        return out
