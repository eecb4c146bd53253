"""Figures 3a and 3b: a step's time (3a) and an actor's memory (3b) against the data size."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

from bench.common import ROOT, Figure, actor_env, allocator_name
from bench.loops import compiled, measure_pair

ONLY = ("3",)

PAIRS: dict[str, Callable[[int], list[Callable[[], float]]]] = {
    "flat": lambda steps: [compiled(10_000_000, steps), compiled(1_000, steps)],
}

MEM_PROBE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    from dataclasses import replace
    from harness.engine import init_worker, execute
    from harness.grid import RunSpec, make_run_id

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

    def run(n):
        s = RunSpec(sweep="b", scenario="loss_bound", target="harness.scenarios.loss_bound.LossBound",
                    params={{}}, data_size=n, batch_size=32, steps=500, epochs=None, seed=0, precision="fp32",
                    clip_value=None)
        r = execute(replace(s, run_id=make_run_id(s)))
        assert r.status.value == "ok", r.error

    init_worker(1)
    run(1000)  # an actor after its first run: TF, Keras and the tracing machinery are loaded
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
    base = status("VmRSS")
    run(int(sys.argv[1]))
    print(json.dumps({{"base": base, "peak": status("VmHWM")}}))
""")


def time_per_step(opts: argparse.Namespace) -> Figure:
    p = measure_pair("flat", opts.processes, opts.repeats, opts.sample_steps)
    return Figure("3a", "time per step, 1e7 rows vs 1e3 rows", p.ratio, "ratio", "<= 1.2", p.ratio <= 1.2,
                  f"1e3: {p.b * 1e6:.0f} us/step, 1e7: {p.a * 1e6:.0f} us/step; {p.spread()}")


def memory() -> Figure:
    n = 10_000_000
    env = actor_env()
    out = subprocess.run([sys.executable, "-c", MEM_PROBE.format(root=str(ROOT)), str(n)], capture_output=True,
                         text=True, check=True, env={**os.environ, **env})  # as an actor runs
    m = json.loads(out.stdout.strip().splitlines()[-1])
    tf_baseline, peak = m["base"], m["peak"]
    data_bytes = n * 2 * 4  # x and y, float32
    ratio = (peak - tf_baseline) / data_bytes
    name = allocator_name(env)
    return Figure("3b", "actor peak memory at 1e7 rows, above TF's baseline", ratio, "x data size", "<= 3x",
                  ratio <= 3, f"actor RSS after a first run (TF baseline) {tf_baseline / 2**20:.0f} MiB, peak during "
                  f"the 1e7-row run {peak / 2**20:.0f} MiB, data {data_bytes / 2**20:.0f} MiB; "
                  f"{'preloaded ' + name if name else 'the system allocator'}, as an actor")


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    return [time_per_step(opts), memory()]
