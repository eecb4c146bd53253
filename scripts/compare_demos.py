#!/usr/bin/env python
"""The README's three demonstrations of ``python -m harness compare``, each a pair of real sweeps:

1. oneDNN: TensorFlow's default on this machine against ``TF_ENABLE_ONEDNN_OPTS`` set the other way,
   every built-in scenario x fp32/fp16/bf16;
2. the allocator: ``ray.malloc=jemalloc`` against ``ray.malloc=system``, the same grid;
3. a fix: normalization at 100,000 rows, whose fp16 statistics overflow, against the same with
   ``scenarios.normalization.accumulate_float32=true``.

    python scripts/compare_demos.py              # run them in a temporary directory, print the outputs
    python scripts/compare_demos.py --readme     # and rewrite the compare-demos block of README.md
    python scripts/compare_demos.py --keep DIR   # keep the sweeps in DIR/results (a rerun resumes them)

Each sweep runs as ``python -m harness ... ray.warm=false`` in its own embedded Ray (so an
environment variable reaches its actors); the outputs show the results root as ``results/``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from markers import write_block

ROOT = Path(__file__).resolve().parents[1]
GRID = ["sweep=smoke", "sweep.scenario=[loss_bound,normalization,activation_bounds,train_inference,circles]",
        "sweep.precision=[fp32,fp16,bf16]", "sweep.data_size=[1000]", "sweep.clip_value=[null]", "sweep.steps=[150]",
        "sweep.seed=range(0,10)"]
FIX = ["sweep=smoke", "sweep.scenario=[normalization]", "sweep.precision=[fp32,fp16]", "sweep.data_size=[100000]",
       "sweep.seed=range(0,20)"]


def sweep(root: Path, name: str, overrides: list[str], env: dict[str, str] | None = None) -> str:
    """Run one side; its results directory relative to ``root``'s parent (``results/NAME``)."""
    cmd = [sys.executable, "-m", "harness", *overrides, f"sweep.name={name}", f"store.root={root}", "ray.warm=false"]
    done = subprocess.run(cmd, cwd=root.parent, text=True, capture_output=True, env={**os.environ, **(env or {})})
    if done.returncode not in (0, 1):
        sys.exit(f"compare_demos: {name} exited {done.returncode}: {done.stderr[-1500:]}")
    return f"results/{name}"


def compare(root: Path, before: str, after: str, *extra: str) -> str:
    cmd = [sys.executable, "-m", "harness", "compare", before, after, *extra]
    done = subprocess.run(cmd, cwd=root.parent, text=True, capture_output=True, env={**os.environ, "COLUMNS": "110"})
    if done.returncode not in (0, 1):
        sys.exit(f"compare_demos: compare exited {done.returncode}: {done.stderr[-1500:]}")
    return f"$ python -m harness compare {before} {after}{' ' if extra else ''}{' '.join(extra)}\n{done.stdout.rstrip()}"


def onednn_default() -> bool:
    """Whether TensorFlow uses oneDNN here when TF_ENABLE_ONEDNN_OPTS is unset (harness's own probe)."""
    probe = "from harness.engine.runtime import onednn_enabled; print(onednn_enabled())"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", probe], text=True, capture_output=True, env=env, cwd=ROOT)
    return out.stdout.strip().endswith("True")


def demos(keep: Path | None = None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = (keep if keep is not None else Path(tmp)) / "results"
        root.parent.mkdir(parents=True, exist_ok=True)
        on = onednn_default()
        base = sweep(root, "default", GRID)
        other = sweep(root, "onednn_off" if on else "onednn_on", GRID, {"TF_ENABLE_ONEDNN_OPTS": "0" if on else "1"})
        system = sweep(root, "malloc_system", [*GRID, "ray.malloc=system"])
        jemalloc = sweep(root, "malloc_jemalloc", [*GRID, "ray.malloc=jemalloc"])
        broken = sweep(root, "fp16_stats", FIX)
        fixed = sweep(root, "fp16_stats_float32", [*FIX, "scenarios.normalization.accumulate_float32=true"])
        blocks = [
            f"oneDNN (TensorFlow's default here: {'on' if on else 'off'}), every built-in scenario x precision, 10 seeds:",
            compare(root, base, other),
            "The allocator, the same grid:",
            compare(root, jemalloc, system),
            "A fix: the normalization statistics computed in float32, 20 seeds at 100,000 rows:",
            compare(root, broken, fixed, "--fail-on", "worse"),
        ]
    return "\n\n".join(f"```text\n{b}\n```" if b.startswith("$") else b for b in blocks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="rewrite the compare-demos block of README.md")
    parser.add_argument("--keep", type=Path, help="store the sweeps under KEEP/results (a rerun resumes them)")
    args = parser.parse_args()
    body = "Produced by `python scripts/compare_demos.py --readme`:\n\n" + demos(args.keep)
    print(body)
    if args.readme:
        write_block(ROOT / "README.md", "compare-demos", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
