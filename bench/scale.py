"""Figure 11: sweeps of many trivial runs, and how each of their costs grows with the number of runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, timed

ONLY = ("11",)

SCALE_ARGS = ["sweep=smoke", "sweep.name=scale", "sweep.scenario=[normalization]", "sweep.data_size=[100]",
              "sweep.precision=[fp32]"]
COSTS = ("wall", "cpu", "peak", "size", "load", "report", "resume")


def proc_sample(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, resident bytes) of one process, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    rss = next((int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmRSS:")), 0)
    return (int(stat[11]) + int(stat[12])) / ticks, float(rss)  # utime + stime of this process alone


def watched(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS bytes) of the command's own process (the driver, not its Ray workers),
    sampled every 0.2 s from /proc."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = cpu = 0.0
    while proc.poll() is None:
        got = proc_sample(proc.pid)
        if got is not None:
            cpu, peak = got[0], max(peak, got[1])
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.read().strip()[-400:]}")
    return wall, cpu, peak


def slope(ns: list[int], ys: list[float]) -> float:
    """Log-log slope of a cost against the number of runs (1: linear, 0: flat)."""
    import numpy as np

    ok = [(n, y) for n, y in zip(ns, ys) if y > 0]
    if len(ok) < 2:
        return float("nan")
    x, y = np.log10([n for n, _ in ok]), np.log10([y for _, y in ok])
    return float(np.polyfit(x, y, 1)[0])


def one_size(n: int, root: Path) -> dict[str, Any]:
    """Every cost of a sweep of ``n`` runs: the sweep, its store, loading, reporting and resuming it."""
    from harness import load_results

    store = root / f"n{n}"
    cmd = [sys.executable, "-m", "harness", *SCALE_ARGS, f"sweep.seed=range(0,{n})", f"store.root={store}"]
    wall, cpu, peak = watched(cmd, root)
    out = store / "scale"
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    t0 = time.perf_counter()
    df = load_results(out)
    load = time.perf_counter() - t0
    engine = float(df.drop_duplicates("run_id")["wall_s"].median())
    assert df["run_id"].nunique() == n, (n, df["run_id"].nunique())
    del df
    report = timed([sys.executable, "-m", "harness.report", str(out), "--out", str(root / f"rep{n}")],
                   dict(os.environ), root)
    resume = timed(cmd, dict(os.environ), root)
    return dict(n=n, wall=wall, cpu=cpu, peak=peak, size=size, load=load, engine=engine, report=report,
                resume=resume)


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    """Sweeps of N trivial runs (normalization at 100 rows, fp32: microseconds of arithmetic) for each N
    of ``--scale-runs``: runs per second (Ray start included), the engine's time per run (median wall_s),
    the driver's CPU per run and peak memory, the store's size, and the time to load, report and resume;
    and how each grows with N (log-log slope over the sizes)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(n) for n in opts.scale_runs.split(",")]:
            rows.append(one_size(n, Path(tmp)))
            print(f"  scale {n:,} runs: {rows[-1]}", file=sys.stderr)
    big = rows[-1]
    ns = [r["n"] for r in rows]
    slopes = {k: slope(ns, [r[k] for r in rows]) for k in COSTS}
    rate = big["n"] / big["wall"]
    cpu_ms, engine_ms = big["cpu"] / big["n"] * 1e3, big["engine"] * 1e3
    resume_pct = big["resume"] / big["wall"] * 100
    met = rate >= 50 and engine_ms <= 20 and cpu_ms <= 5 and big["peak"] <= 2**30 and resume_pct <= 5
    growth = ", ".join(f"{k} {v:.2f}" for k, v in slopes.items())
    return [Figure("11", f"{big['n']:,} trivial runs (normalization, 100 rows)", rate, "runs/s",
                   ">= 50 runs/s, engine <= 20 ms/run, driver <= 5 ms/run, <= 1 GiB, resume <= 5%", met,
                   f"wall {big['wall']:.0f}s; engine {engine_ms:.1f} ms/run (median wall_s); driver CPU "
                   f"{cpu_ms:.2f} ms/run, peak {big['peak'] / 2**20:.0f} MiB; store {big['size'] / 2**20:.1f} MiB; "
                   f"load {big['load']:.1f}s, report {big['report']:.1f}s, resume {big['resume']:.1f}s "
                   f"({resume_pct:.1f}%); log-log slope over {', '.join(f'{n:,}' for n in ns)} runs: {growth}")]
