"""Adaptive seeds: rounds, stopping rules, the fixed seed order and exact resume."""

from __future__ import annotations

from typing import Any

import pytest

from harness.config import AdaptiveConfig, ConfigError, sweep_config_from_dict
from harness.grid import expand
from harness.plan import Outcome, Planner, StopReason, cell_key, judge, seed_order

SCEN = {"loss_bound": {"_target_": "harness.scenarios.loss_bound.LossBound", "bound": 1.0}}


def specs(**sweep: Any) -> list:
    base = dict(name="p", scenario=["loss_bound"], data_size=[100, 1000], batch_size=[16], precision=["fp32"],
                seed=[0, 1], clip_value=[None], steps=[10])
    base.update(sweep)
    return expand(sweep_config_from_dict({"sweep": base, "scenarios": SCEN}))


def ok(failed: bool, nonfinite: bool = False) -> Outcome:
    return Outcome(True, {"loss_below": (failed, nonfinite)})


def drive(planner: Planner, fails: Any, stored: dict | None = None) -> list:
    """Run the planner to the end; ``fails(spec)`` says whether a run fails. Returns the specs run."""
    queue = planner.start(stored or {})
    ran = []
    while queue:
        spec = queue.pop(0)
        ran.append(spec)
        queue += planner.finished(spec, ok(fails(spec)))
    return ran


def test_seed_order_is_the_configured_seeds_then_the_next_integers() -> None:
    assert seed_order([5, 2], 6) == [5, 2, 6, 7, 8, 9]
    assert seed_order([0, 1, 2], 2) == [0, 1]


def test_width_rule_stops_never_failing_cells_early_and_runs_noisy_cells_longer() -> None:
    rule = AdaptiveConfig(rule="width", width=0.3, round=5, max_seeds=200)
    planner = Planner(specs(), rule, (0, 1))
    ran = drive(planner, lambda s: s.data_size == 1000 and s.seed % 2 == 0)  # 0% vs 50% failing
    by_cell = {c.template.data_size: c for c in planner.cells.values()}
    quiet, noisy = by_cell[100], by_cell[1000]
    assert quiet.reason is StopReason.RULE_MET and noisy.reason is StopReason.RULE_MET
    assert quiet.issued < noisy.issued  # a 0/n cell settles with fewer seeds than a 50% one
    assert noisy.issued == 42  # Wilson width of 21/42 at 95% first <= 0.3 within the round grid 2, 7, 12, ...
    assert [s.seed for s in ran if s.data_size == 100] == list(range(quiet.issued))
    assert len(ran) == quiet.issued + noisy.issued


def test_bound_rule_needs_299_completed_runs_for_one_percent() -> None:
    rule = AdaptiveConfig(rule="bound", target=0.01, confidence=0.95, round=50, max_seeds=1000)
    planner = Planner(specs(data_size=[100]), rule, (0, 1))
    drive(planner, lambda s: False)
    cell = next(iter(planner.cells.values()))
    assert cell.reason is StopReason.RULE_MET and cell.issued == 302  # 2, then rounds of 50, first >= 299


def test_bound_rule_stops_when_nan_runs_alone_exceed_the_target() -> None:
    rule = AdaptiveConfig(rule="bound", target=0.01, round=10, max_seeds=1000)
    verdict, detail = judge([ok(True, True)] * 5 + [ok(False)] * 15, rule)
    assert verdict is StopReason.NO_BOUND and "5/20" in detail


def test_cap_and_a_round_without_completed_runs_stop_a_cell() -> None:
    rule = AdaptiveConfig(rule="width", width=0.01, round=10, max_seeds=30)
    planner = Planner(specs(data_size=[100]), rule, (0, 1))
    drive(planner, lambda s: s.seed % 2 == 0)
    assert next(iter(planner.cells.values())).reason is StopReason.CAP
    broken = Planner(specs(data_size=[100]), rule, (0, 1))
    queue = broken.start({})
    while queue:
        queue = [*queue[1:], *broken.finished(queue[0], Outcome(False))]
    cell = next(iter(broken.cells.values()))
    assert cell.reason is StopReason.NO_COMPLETED_RUNS and cell.issued == 2


def test_resume_replays_the_stored_rounds_and_continues_exactly() -> None:
    rule = AdaptiveConfig(rule="width", width=0.3, round=5, max_seeds=200)
    fails = lambda s: s.seed % 3 == 0  # noqa: E731
    full = drive(Planner(specs(), rule, (0, 1)), fails)
    stored = {s.run_id: ok(fails(s)) for s in full[: len(full) // 2]}  # interrupted half way
    resumed = Planner(specs(), rule, (0, 1))
    rest = drive(resumed, fails, stored)
    assert {s.run_id for s in rest} | set(stored) == {s.run_id for s in full}
    assert not {s.run_id for s in rest} & set(stored)
    assert {s.run_id for s in resumed.specs()} == {s.run_id for s in full}


def test_cells_are_configurations_without_the_seed() -> None:
    a, b = specs(data_size=[100])
    assert cell_key(a) == cell_key(b) and a.run_id != b.run_id


@pytest.mark.parametrize("override, key", [
    ({"rule": "sometimes"}, "adaptive.rule"), ({"rule": "width", "width": 0}, "adaptive.width"),
    ({"rule": "bound", "target": 1.5}, "adaptive.target"), ({"rule": "width", "round": 0}, "adaptive.round"),
    ({"rule": "width", "max_seeds": 1}, "adaptive.max_seeds"), ({"rule": "width", "every": 3}, "adaptive.every"),
])
def test_bad_adaptive_settings_name_the_key(override: dict, key: str) -> None:
    sweep = dict(name="p", scenario=["loss_bound"], data_size=[100], batch_size=[16], precision=["fp32"],
                 seed=[0, 1], clip_value=[None], steps=[10])
    with pytest.raises(ConfigError, match=f"^{key}"):
        sweep_config_from_dict({"sweep": sweep, "scenarios": SCEN, "adaptive": override})
