"""Figures 4, 5 and 6: one measurement, the 48-run sweep. Its wall time against its lower bound (4),
against one new process per run (5), and its resume (6) against the sweep of figure 4's median."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import ROOT, Figure, cli

ONLY = ("4", "5", "6")

SWEEP48 = ["sweep=smoke", "sweep.scenario=[loss_bound]", "sweep.name=bench48", "sweep.data_size=[1000,100000]",
           "sweep.batch_size=[32]", "sweep.precision=[fp32,fp16,bf16]", "sweep.seed=[0,1,2,3]",
           "sweep.clip_value=[null,1.0]"]

PER_PROCESS = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from harness.engine import init_worker, execute
    from harness.grid import RunSpec
    from harness.records import result_rows
    from harness.store import write_part
    from pathlib import Path
    import json
    init_worker(2)
    spec = RunSpec(**json.loads(sys.argv[1]))
    write_part(Path(sys.argv[2]), spec.run_id, result_rows(spec, execute(spec), "bench"))
""")


@dataclass(frozen=True)
class Sweep48:
    """One cold 48-run sweep, as figure 4 splits it."""

    wall: float
    lower: float  # sum(train_s) / actors
    in_runs: float  # sum(wall_s) / actors: training plus each run's build, trace, copies
    actors: int
    split: str  # HARNESS_TIMELINE's phases outside the runs

    @property
    def ratio(self) -> float:
        return self.wall / self.lower


def sweep48(args: list[str], root: Path) -> Sweep48:
    from harness import load_results, timeline

    marks = root / "timeline.txt"
    wall = cli([*args, f"store.root={root}"], root, {timeline.ENV: str(marks)})
    phases = timeline.phases(timeline.read(marks))
    df = load_results(root / "bench48").drop_duplicates("run_id")
    actors = df["worker"].nunique()
    return Sweep48(wall, df["train_s"].sum() / actors, df["wall_s"].sum() / actors, actors,
                   ", ".join(f"{k} {v:.1f}s" for k, v in phases.items() if k != "runs"))


def wall_vs_lower_bound(sweeps: list[Sweep48], mid: int, steps: int) -> Figure:
    """Figure 4: the median, over cold sweeps one after another, of wall / lower bound (one sweep's ratio
    moves between invocations, mostly with Ray's start); every repeat's ratio is in the detail."""
    m = sweeps[mid]
    # wall = fixed + lower * (1 + per_run / lower): the run length from which the ratio is <= 1.3
    fixed, per_run = m.wall - m.in_runs, m.in_runs - m.lower
    break_even = steps * (fixed + per_run) / (0.3 * m.lower)
    every = ", ".join(f"{s.ratio:.2f}" for s in sorted(sweeps, key=lambda s: s.ratio))
    return Figure("4", f"48-run sweep wall vs sum(train_s)/actors ({steps} steps/run)", m.ratio, "ratio",
                  "<= 1.3", m.ratio <= 1.3,
                  f"median of {len(sweeps)} cold sweeps ({every}); that sweep: wall {m.wall:.1f}s (Ray start "
                  f"included), {m.actors} actors, lower bound {m.lower:.1f}s; per actor {per_run:.1f}s in "
                  f"runs outside training (build, trace, copies), {fixed:.1f}s outside runs (HARNESS_TIMELINE: "
                  f"{m.split}; Ray's shutdown runs during the end); <= 1.3 from about {break_even:,.0f} "
                  f"steps/run")


def resume(args: list[str], root: Path, wall: float) -> Figure:
    """Figure 6: the same command again over the finished sweep's results."""
    rerun = cli([*args, f"store.root={root}"], root)
    return Figure("6", "resume of the finished sweep vs the original", rerun / wall * 100, "% of original", "<= 5%",
                  rerun / wall <= 0.05, f"rerun {rerun:.2f}s, original {wall:.1f}s")


def process_per_run(args: list[str], root: Path, wall: float, per_process_runs: int) -> Figure:
    """Figure 5: a fixed random sample of the sweep's runs, each in a new Python process, one at a time
    (as Hydra's basic launcher does), scaled to the whole sweep."""
    from harness.cli import compose_config
    from harness.config import sweep_config_from_dict
    from harness.grid import expand

    specs = expand(sweep_config_from_dict(compose_config([*args, f"store.root={root}"])))
    n = min(len(specs), max(1, per_process_runs))
    picked = sorted(random.Random(0).sample(range(len(specs)), n))  # a fixed random sample, grid order
    chosen = [specs[i] for i in picked]
    out = root / "per_process"
    t0 = time.perf_counter()
    for s in chosen:
        subprocess.run([sys.executable, "-c", PER_PROCESS.format(root=str(ROOT)),
                        json.dumps({**asdict(s), "params": dict(s.params)}), str(out)], check=True,
                       capture_output=True)
    per_proc = (time.perf_counter() - t0) / len(chosen) * len(specs)
    vs = per_proc / wall
    note = "" if len(chosen) >= len(specs) else \
        f" (timed a fixed random {len(chosen)} of the {len(specs)} runs, scaled to {len(specs)})"
    return Figure("5", "vs one new process per run (basic launcher)", vs, "x faster", ">= 3x", vs >= 3,
                  f"process per run {per_proc:.1f}s{note}, harness {wall:.1f}s (the median sweep of figure 4)")


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    """Figure 4 always (5 and 6 compare against its median sweep), 5 and 6 when asked for; the caller
    keeps the asked ones."""
    args = [*SWEEP48, f"sweep.steps=[{opts.steps}]"]
    with tempfile.TemporaryDirectory() as tmp:
        roots = [Path(tmp) / f"sweep{i}" for i in range(max(1, opts.sweep_repeats))]
        sweeps = []
        for r in roots:
            r.mkdir()
            sweeps.append(sweep48(args, r))
        order = sorted(range(len(sweeps)), key=lambda i: sweeps[i].ratio)
        mid = order[len(order) // 2]  # the median (the command line asks for an odd count)
        root, wall = roots[mid], sweeps[mid].wall
        figs = [wall_vs_lower_bound(sweeps, mid, opts.steps)]
        if "6" in want:
            figs.append(resume(args, root, wall))
        if "5" in want:
            figs.append(process_per_run(args, root, wall, opts.per_process_runs))
    return sorted(figs, key=lambda f: f.key)
