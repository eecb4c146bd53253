"""Shared fixtures. Real TF and real Ray: nothing is mocked."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# test-only scenarios (tests/plugins) must be importable by Ray workers too
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
sys.path.insert(0, str(TESTS))
# a warm pool the developer keeps up (python -m harness up) must not serve the tests' sweeps
os.environ["HARNESS_POOL_DIR"] = tempfile.mkdtemp(prefix="harness-pool-")


def make_spec(**kw: Any) -> Any:
    """A RunSpec with a proper run_id; defaults: a small loss_bound run."""
    from harness.grid import RunSpec, make_run_id

    base: dict[str, Any] = dict(sweep="t", scenario="loss_bound", target="harness.scenarios.loss_bound.LossBound",
                                params={"bound": 1.0}, data_size=1000, batch_size=32, steps=50, epochs=None,
                                seed=0, precision="fp32", clip_value=None)
    base.update(kw)
    spec = RunSpec(**base)
    return replace(spec, run_id=make_run_id(spec))


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: Mapping[str, str] | None = None) -> Any:
    import subprocess

    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def gated_sweep(tmp_path: Path, free: int) -> list[str]:
    """A 16-run sweep of plugins.gated.Gated: seeds 0..free-1 run at once, the others wait until
    ``tmp_path/gate`` exists. So how many runs finish before the test acts is an event the test
    sets, the same on 1 or 16 cores; 8 actors (of a quarter CPU each) as on a larger machine."""
    return ["sweep=smoke", "+scenarios.gated._target_=plugins.gated.Gated", f"+scenarios.gated.gate={tmp_path / 'gate'}",
            f"+scenarios.gated.free_seeds=[{','.join(map(str, range(free)))}]", "sweep.scenario=[gated]",
            "sweep.seed=range(0,8)", "sweep.data_size=[1000]", "sweep.precision=[fp32,fp16]", "sweep.clip_value=[null]",
            "sweep.batch_size=[32]", "sweep.steps=[200]", "ray.num_actors=8", "ray.num_cpus_per_actor=0.25",
            f"store.root={tmp_path}"]


@pytest.fixture(scope="session")
def tf_worker() -> None:
    """Initialise TF in this process once (threads, determinism) for in-process engine tests."""
    from harness.engine import init_worker

    init_worker(2)
