"""What every figure shares: the Figure, interleaved medians, timed subprocesses."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The command: the fresh processes of a pair (loops.measure_pairs) are started through it too.
ENTRY = ROOT / "scripts" / "bench.py"


@dataclass
class Figure:
    """One measured figure; ``measured`` and ``met`` may arrive as numpy scalars."""

    key: str
    name: str
    measured: float
    unit: str
    target: str
    met: bool
    detail: str


def median_interleaved(fns: list[Callable[[], float]], repeats: int) -> list[float]:
    """Run each fn ``repeats`` times, interleaved (a b a b ...), return the median of each."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            samples[i].append(fn())
    return [statistics.median(s) for s in samples]


def alternating(fns: list[Callable[[], float]], repeats: int) -> list[float]:
    """median_interleaved, the order reversed every other repeat: no side always runs first
    (right after the other's memory was freed)."""
    samples: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        for i in (range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))):
            samples[i].append(fns[i]())
    return [statistics.median(x) for x in samples]


def timer(fn: Callable[[], object]) -> Callable[[], float]:
    """``fn`` as a sample: the seconds one call takes."""
    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return run


def actor_env() -> dict[str, str]:
    """What an embedded Ray's actor has in its environment beyond the driver's by default: the allocator
    ray.malloc=auto preloads (jemalloc on Linux), if any. The pairs' processes start with it, so that a
    step is timed as an actor runs it."""
    from harness.config import malloc_library
    from harness.raysession import preload_value

    library = malloc_library("auto")
    return {"LD_PRELOAD": preload_value(library)} if library else {}


def allocator_name(env: dict[str, str]) -> str | None:
    """The file name of the allocator ``env`` preloads, if any."""
    preload = env.get("LD_PRELOAD", "").split()
    return Path(preload[0]).name if preload else None


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of ``cmd``; a failure stops the bench with the command's last words."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds of ``python -m harness ARGS`` in ``cwd``, with ``env`` added to this environment."""
    return timed([sys.executable, "-m", "harness", *args], {**os.environ, **(env or {})}, cwd)


def compile_package() -> None:
    """Python writes a module's bytecode cache as it first imports it, unless PYTHONDONTWRITEBYTECODE is
    set (it is on the machine of docs/benchmarks.md): then every process the bench starts compiles the
    harness's modules from source again, which a user's sweeps do only once. So the bench writes the
    caches first, as a first import would (compileall; the sources are unchanged)."""
    import compileall

    compileall.compile_dir(ROOT / "harness", quiet=1)
