"""Figure 10: the smoke sweep (24 runs) on a warm pool against a cold start."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, timed

ONLY = ("10",)

# ray.shutdown does not wait for Ray's processes to exit: a sweep timed right after a cold one would
# share the CPUs with their exit.
SETTLE_S = 3.0


def median_phases(phases: list[dict[str, float]]) -> str:
    """Median seconds per phase (HARNESS_TIMELINE), Ray's background shutdown left out."""
    names = [k for k in phases[0] if k != "Ray shutdown"]
    return ", ".join(f"{k} {statistics.median(p.get(k, 0.0) for p in phases):.2f}s" for k in names)


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    """Wall time of the whole command, Python start included, each sweep into a fresh results root (every
    run computed), each after SETTLE_S of quiet; medians. The cold sweeps run with no pool up, half
    before the pool starts and half after it stops, the warm ones between: a second Ray on the
    machine starts seconds slower (its dashboard agent retries the HTTP port the first one holds,
    with backoff, and ray.init cannot give it another), which a user's first cold sweep does not
    pay. The first sweep on a new pool is reported apart: its actors trace the smoke sweep's loops
    once, as a cold sweep's do."""
    from harness import timeline

    repeats = opts.warm_repeats
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "HARNESS_POOL_DIR": str(root / "pool")}
        harness = [sys.executable, "-m", "harness"]
        phases: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}

        def sweep(kind: str, i: int) -> float:
            time.sleep(SETTLE_S)
            extra = ["ray.warm=false"] if kind == "cold" else []
            marks = root / f"{kind}-{i}.timeline"
            wall = timed([*harness, "sweep=smoke", f"store.root={root / kind / str(i)}", *extra],
                         {**env, timeline.ENV: str(marks)}, root)
            if i >= 0:
                phases[kind].append(timeline.phases(timeline.read(marks)))
            return wall

        before = (repeats + 1) // 2
        cold = [sweep("cold", i) for i in range(before)]
        up = timed([*harness, "up", "--idle-minutes", "30"], env, root)
        try:
            first = sweep("warm", -1)
            warm = [sweep("warm", i) for i in range(repeats)]
        finally:
            subprocess.run([*harness, "down"], env=env, capture_output=True)
        cold += [sweep("cold", i) for i in range(before, repeats)]
    c, w = statistics.median(cold), statistics.median(warm)
    return [Figure("10", "smoke sweep (24 runs): warm pool vs cold start", c / w, "x faster", "<= 3 s warm, >= 4x",
                   w <= 3.0 and c / w >= 4,
                   f"warm {w:.1f}s, cold {c:.1f}s (medians of {repeats}, {SETTLE_S:g} s apart; cold ones with no pool "
                   f"up, {before} before it started, {repeats - before} after it stopped); the first sweep on a new "
                   f"pool {first:.1f}s; python -m harness up {up:.1f}s once; warm: {median_phases(phases['warm'])} "
                   f"(after Python's own start); cold: {median_phases(phases['cold'])}")]
