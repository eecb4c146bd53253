"""-n says what a sweep would cost: runs stored already, long runs, and a time estimate from stored runs of
the same configuration."""

from __future__ import annotations

from pathlib import Path

from harness.cli import compose_config
from harness.config import sweep_config_from_dict
from harness.grid import expand
from harness.listing import cost_lines
from harness.records import CheckMeaning, CheckResult, RunResult, Status, result_rows
from harness.store import write_batch


def _cfg(tmp_path: Path, *extra: str):
    return sweep_config_from_dict(compose_config(["sweep=smoke", "sweep.scenario=[loss_bound]", "sweep.data_size=[1000]",
                                                  "sweep.clip_value=[null]", "sweep.precision=[fp32]",
                                                  f"store.root={tmp_path}", "ray.num_actors=1", *extra]))


def _store(tmp_path: Path, specs, wall_s: float) -> None:
    meaning = CheckMeaning("loss_below", 1.0, "<", "native", "step")
    tables = [result_rows(s, RunResult(run_id=s.run_id, status=Status.OK, declared=(meaning,), wall_s=wall_s,
                                       checks=(CheckResult("loss_below", 1.0, 100, 0, 0, None, 0.5, 0.5, 1.0, "float32"),),
                                       steps=s.steps), "0") for s in specs]
    write_batch(tmp_path / "smoke", tables)


def test_dry_run_counts_stored_runs_and_estimates_the_rest_from_their_time_per_step(tmp_path: Path) -> None:
    first = expand(_cfg(tmp_path, "sweep.seed=[0,1]", "sweep.steps=[100]"))
    _store(tmp_path, first, wall_s=2.0)  # 100 steps in 2 s: 20 ms a step
    cfg = _cfg(tmp_path, "sweep.seed=[0,1,2,3,4,5,6,7,8,9]", "sweep.steps=[1000]")
    specs = expand(cfg)
    lines = cost_lines(cfg, specs, tmp_path / "smoke")
    assert lines[0] == "0 of the 10 runs are stored already, 10 to run"  # 1000 steps: other run ids
    assert "about 3 min of runs on 1 actor(s) for the 10 runs" in lines[-1]  # 10 runs x 1000 steps x 20 ms = 200 s
    cfg = _cfg(tmp_path, "sweep.seed=[0,1,2,3,4,5,6,7,8,9]", "sweep.steps=[100]")
    lines = cost_lines(cfg, expand(cfg), tmp_path / "smoke")
    assert lines[0] == "2 of the 10 runs are stored already, 8 to run" and "about 16 s" in lines[-1]


def test_dry_run_names_long_runs_and_says_when_it_cannot_estimate(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "sweep.steps=[62500]")
    lines = cost_lines(cfg, expand(cfg), tmp_path / "smoke")
    assert lines[1] == "2 of them train more than 10,000 steps (the longest 62,500; 125,000 steps in all)"
    assert lines[2].startswith("no stored run to estimate the time from")


def test_dry_run_follows_sweep_rerun(tmp_path: Path) -> None:
    first = expand(_cfg(tmp_path, "sweep.seed=[0,1]"))
    _store(tmp_path, first, wall_s=2.0)
    cfg = _cfg(tmp_path, "sweep.seed=[0,1]", "sweep.rerun=all")
    assert cost_lines(cfg, expand(cfg), tmp_path / "smoke")[0].startswith("0 of the 2 runs are stored already, 2 to run")
