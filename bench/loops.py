"""The in-process loops that figures 1, 2, 3a and 8 time, and the fresh processes they are timed in.

A figure's sides are a *pair* (registry.PAIRS: a name and the loops it times); ``scripts/bench.py
--pair NAME`` is the child process that times one, printing its medians as a JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import ENTRY, actor_env


@dataclass
class Pair:
    """A side-by-side timing measured in several fresh processes: each process times both
    sides interleaved and keeps the medians; the figure is the process with the median
    ratio. One process can sit in a slow or fast state for its whole life (where its
    threads and memory landed; pyperf spawns many worker processes for this reason),
    which no number of samples inside it averages out."""

    a: float  # that process's median seconds per step of side a
    b: float
    lo: float  # smallest and largest per-process ratio
    hi: float
    processes: int
    more: tuple[float, ...] = ()  # that process's medians of any further sides the pair times

    @property
    def ratio(self) -> float:
        return self.a / self.b

    def spread(self) -> str:
        return f"the median of {self.processes} processes, whose ratios span [{self.lo:.3g}, {self.hi:.3g}]"


def pair_process(name: str, repeats: int, steps: int, env: dict[str, str | None]) -> tuple[float, ...]:
    """The medians of every side of the pair ``name``, timed in one fresh process with ``env`` added to
    this one's (a None value unsets the variable)."""
    out = subprocess.run([sys.executable, str(ENTRY), "--pair", name, "--repeats", str(repeats),
                          "--sample-steps", str(steps)], check=True, capture_output=True, text=True,
                         env={k: v for k, v in {**os.environ, **env}.items() if v is not None})
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def measure_pair(name: str, processes: int, repeats: int, steps: int) -> Pair:
    """Time the pair ``name`` in ``processes`` fresh processes, one after another, each started as an
    actor is (actor_env)."""
    return measure_pairs(name, processes, repeats, steps, [dict(actor_env())])[0]


def measure_pairs(name: str, processes: int, repeats: int, steps: int,
                  envs: list[dict[str, str | None]]) -> list[Pair]:
    """One Pair per environment in ``envs`` (each added to this one's; a None value unsets the variable),
    their processes interleaved (a process of each in turn, ``processes`` rounds) so that a change of the
    machine's speed during the measurement falls on all of them alike."""
    medians: list[list[tuple[float, ...]]] = [[] for _ in envs]
    for _ in range(processes):
        for i, env in enumerate(envs):
            medians[i].append(pair_process(name, repeats, steps, env))
    pairs = []
    for m in medians:
        m.sort(key=lambda ab: ab[0] / ab[1])
        (a, b, *more), lo, hi = m[(len(m) - 1) // 2], m[0], m[-1]
        pairs.append(Pair(a, b, lo[0] / lo[1], hi[0] / hi[1], processes, tuple(more)))
    return pairs


def spec(**kw: Any) -> Any:
    """A RunSpec of the loss_bound scenario, ``kw`` replacing its fields, with its run_id."""
    from dataclasses import replace

    from harness.grid import RunSpec, make_run_id

    base: dict[str, Any] = dict(sweep="bench", scenario="loss_bound", target="harness.scenarios.loss_bound.LossBound",
                                params={"bound": 1.0}, data_size=100_000, batch_size=32, steps=1000, epochs=None,
                                seed=0, precision="fp32", clip_value=10.0)
    base.update(kw)
    s = RunSpec(**base)
    return replace(s, run_id=make_run_id(s))


def hot(loop: Any, data: Any, steps: int) -> None:
    """Bring ``loop`` to the steady state of a structure that many runs of a worker reuse: hot, so
    that a run of ``steps`` steps runs its unrolled variant (harness.engine.loop.CompiledLoop),
    traced and warmed here."""
    loop.unroll_after = 0.0
    loop.run(data, steps=steps, seed=0)


def compiled(data_size: int, steps: int, with_checks: bool = True, unroll: int | None = None) -> Callable[[], float]:
    """Seconds per step of the harness's compiled loop at steady state (traced once, hot, timed per call);
    ``unroll=1``: the loop of single steps, which a loop is until it is hot."""
    import tensorflow as tf

    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.scenarios.loss_bound import LossBound

    seed_everything(0)
    scenario = LossBound()
    data = scenario.build(RunContext(spec(data_size=data_size, steps=steps)))
    if with_checks:
        checks, sc = scenario.checks(), scenario
    else:  # same loop, same forward pass of the assertion, no checks folded in
        class NoChecks:
            def train_step(self, batch: Any, step: Any) -> Any:
                out = scenario.train_step(batch, step)
                out["loss"] = out["loss"] + 0.0 * tf.stop_gradient(out.pop("post_loss"))
                return out
        checks, sc = [], NoChecks()
    loop = compile_loop(sc, data, checks, batch_size=32, unroll=unroll)
    hot(loop, data, steps)

    def run() -> float:
        return loop.run(data, steps=steps, seed=0).train_s / steps
    return run
