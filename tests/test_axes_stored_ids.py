"""Run ids of sweeps stored before the axes table: the expansion of today must give every one of
them again, so a sweep stored then resumes now with nothing re-run.

``data/run_ids_before_axes.json`` was written by the grid of commit 0653259 (before harness/axes.py):
per sweep, its config and the run_id of each run. The scenario's definition digest is pinned
(``DEFINITION``): it hashes the scenario module's source, which other changes edit by design; the
hash over the axes, parameters and schedule is what must not move.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.config import sweep_config_from_dict
from harness.grid import expand, make_run_id

FIXTURE = Path(__file__).parent / "data" / "run_ids_before_axes.json"
DEFINITION = "0123456789abcdef"

SCEN = {
    "loss_bound": {"_target_": "harness.scenarios.loss_bound.LossBound", "bound": 1.0,
                   "_axes_": {"learning_rate": [0.01, 0.1], "warmup": [0, 3]}},
    "normalization": {"_target_": "harness.scenarios.normalization.Normalization", "_axes_": {"tol": [0.1, 0.2]}},
    "circles": {"_target_": "harness.examples.autotrainer_circles.Circles", "width": 5,
                "_axes_": {"activation": ["relu", "tanh"]}},
}
SWEEPS: dict[str, dict[str, Any]] = {
    "steps": dict(scenario=["loss_bound", "normalization", "circles"], data_size=[100, 1000], batch_size=[16, 64],
                  precision=["fp32", "fp16", "bf16"], seed=[0, 1], clip_value=[None, 1.0], steps=[5, 10],
                  exclude=[{"data_size": 100, "precision": "bf16"}]),
    "epochs": dict(scenario=["loss_bound", "normalization"], data_size=[100, 1000], batch_size=[16, 64],
                   precision=["fp32"], seed=[3], clip_value=[0.5], steps=None, epochs=[1, 2.5]),
}


def run_ids(name: str) -> list[str]:
    cfg = sweep_config_from_dict({"sweep": {"name": name, **SWEEPS[name]}, "scenarios": SCEN})
    return [make_run_id(replace(s, definition=DEFINITION)) for s in expand(cfg)]


def write_fixture() -> None:
    """Only with the code of before the change (how the fixture was made)."""
    FIXTURE.write_text(json.dumps({"sweeps": SWEEPS, "scenarios": SCEN,
                                   "run_ids": {n: run_ids(n) for n in SWEEPS}}, indent=1) + "\n")


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_a_sweep_stored_before_the_axes_table_resumes_with_the_same_run_ids(name: str) -> None:
    stored = json.loads(FIXTURE.read_text())
    assert stored["sweeps"][name] == SWEEPS[name] and stored["scenarios"] == SCEN  # the same definition
    assert run_ids(name) == stored["run_ids"][name]  # every run found stored: none re-run, none new
