#!/usr/bin/env python
"""Where one run's engine time goes: N runs of one structure in this process, no Ray.

    python scripts/run_cost.py normalization            # 100 rows, fp32, 50 runs
    python scripts/run_cost.py loss_bound circles -n 30  # 10 steps each
    python scripts/run_cost.py normalization --rows 1000 --precision fp16
    python scripts/run_cost.py normalization loss_bound circles --docs   # also rewrites docs/engine.md's table

Each run is ``harness.engine.execute(spec, timings=...)`` with its own seed (seeds 0..N-1,
as a sweep's seed axis gives them), on a worker initialised as a Ray actor's is
(``init_worker(threads)``). It prints the median, over the runs after the first, of each
phase execute records (see harness.engine.run.PHASES) and of the whole call, plus the first
run's, which traces: a sweep pays it once per structure and worker, every later run pays
the medians.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from markers import write_block  # noqa: E402
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# name -> (target, data_size, batch_size, steps): (a), (b), (c) of issue 15 item 4
CASES: dict[str, tuple[str, int, int | None, int]] = {
    "normalization": ("harness.scenarios.normalization.Normalization", 100, None, 0),
    "loss_bound": ("harness.scenarios.loss_bound.LossBound", 1000, 32, 10),
    "circles": ("harness.examples.autotrainer_circles.Circles", 1000, 128, 10),
    "train_inference": ("harness.scenarios.train_inference.TrainInference", 1000, 32, 10),
    "activation_bounds": ("harness.scenarios.activation_bounds.ActivationBounds", 100, None, 0),
}


def spec_for(case: str, *, rows: int | None, steps: int | None, precision: str) -> Any:
    """A RunSpec of ``case`` at seed 0 (default parameters), with its run_id, as grid.expand makes it."""
    from harness.grid import RunSpec, make_run_id
    from harness.scenarios.base import definition

    target, data_size, batch_size, default_steps = CASES[case]
    n_steps = 0 if default_steps == 0 else (steps or default_steps)
    spec = RunSpec(sweep="run_cost", scenario=case, target=target, params={}, data_size=rows or data_size,
                   batch_size=batch_size, steps=n_steps, epochs=None, seed=0, precision=precision, clip_value=None,
                   definition=definition(target, {}))
    return replace(spec, run_id=make_run_id(spec))


def measure(spec: Any, runs: int) -> list[dict[str, float]]:
    """Per run: the phases execute recorded and ``total`` (the whole call, timed here)."""
    from harness.engine import execute
    from harness.records import Status

    out = []
    for seed in range(runs):
        s = replace(spec, seed=seed)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        result = execute(s, timings=timings)
        timings["total"] = time.perf_counter() - t0
        if result.status is not Status.OK:
            raise SystemExit(f"run {seed} of {spec.scenario}: {result.error}")
        out.append(timings)
    return out


def table(case: str, samples: list[dict[str, float]]) -> str:
    """One line per phase: the median of the runs after the first, and the first run's."""
    from harness.engine.run import PHASES

    later = samples[1:] or samples
    lines = [f"{case}: {len(samples)} runs (median of runs 2..{len(samples)}; run 1 traces)",
             f"  {'phase':<8} {'median ms':>10} {'run 1 ms':>10}"]
    for phase in (*PHASES, "total"):
        med = statistics.median(t.get(phase, 0.0) for t in later) * 1e3
        lines.append(f"  {phase:<8} {med:>10.2f} {samples[0].get(phase, 0.0) * 1e3:>10.2f}")
    return "\n".join(lines)


DOCS = ROOT / "docs" / "engine.md"


def write_docs(tables: list[str], argv: list[str]) -> None:
    """The tables, headed by the command that produced them, as the run_cost block of DOCS."""
    args = " ".join(a for a in argv if a != "--docs")
    write_block(DOCS, "run_cost", f"Produced by `python scripts/run_cost.py {args} --docs` on "
                f"{datetime.date.today().isoformat()} ({os.cpu_count()} CPUs; milliseconds per phase, see "
                "`harness.engine.run.PHASES`):\n\n```text\n" + "\n".join(tables) + "\n```")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", choices=sorted(CASES))
    ap.add_argument("-n", "--runs", type=int, default=50, help="runs per case (default 50)")
    ap.add_argument("--rows", type=int, default=None, help="data_size (default: the case's)")
    ap.add_argument("--steps", type=int, default=None, help="steps of a training case (default 10)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--threads", type=int, default=1, help="TF threads, as one actor per CPU has (default 1)")
    ap.add_argument("--docs", action="store_true", help=f"also rewrite the table in {DOCS.relative_to(ROOT)}")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)

    from harness.engine import init_worker

    init_worker(args.threads)
    tables = []
    for case in args.cases:
        spec = spec_for(case, rows=args.rows, steps=args.steps, precision=args.precision)
        tables.append(table(case, measure(spec, args.runs)))
        print(tables[-1], flush=True)
    if args.docs:
        write_docs(tables, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
