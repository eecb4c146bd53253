"""The command line of scripts/bench.py (its docstring is the usage)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import record, render
from bench.common import ROOT, compile_package, median_interleaved
from bench.registry import MODULES, ONLY, PAIRS

# Options that say where results go, not what is measured: left out of a row's command.
WHERE = {"--readme": 0, "--record": 0, "--results": 1, "--out": 1}


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=[], help=f"figure numbers to run ({' '.join(ONLY)})")
    ap.add_argument("--processes", type=int, default=3,
                    help="fresh processes in which figures 1, 2, 3a are each measured (median of their ratios)")
    ap.add_argument("--repeats", type=int, default=9,
                    help="interleaved samples of each side per process for figures 1, 2, 3a")
    ap.add_argument("--steps", type=int, default=25000, help="steps per run of the 48-run sweep")
    ap.add_argument("--sample-steps", type=int, default=5000, help="steps per timed sample of figures 1, 2, 3a")
    ap.add_argument("--sweep-repeats", type=int, default=3,
                    help="cold 48-run sweeps of figure 4, one after another, an odd number (the median ratio is the figure)")
    ap.add_argument("--per-process-runs", type=int, default=24,
                    help="how many of the 48 runs to time as processes (a fixed random sample; 48 for all)")
    ap.add_argument("--report-rows", type=int, default=1_000_000)
    ap.add_argument("--load-repeats", type=int, default=3, help="interleaved samples of each side for figure 9")
    ap.add_argument("--load-runs", type=int, default=100_000, help="runs of figure 9's large sweep")
    ap.add_argument("--warm-repeats", type=int, default=3, help="cold and warm smoke sweeps of figure 10, each")
    ap.add_argument("--scale-runs", default="1000,10000,100000",
                    help="figure 11's sweep sizes (comma-separated; the growth is fitted over them)")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"),
                    help="directory of this invocation's rows (bench-<stamp>.jsonl), recorded or not")
    ap.add_argument("--record", action="store_true",
                    help="append the rows to the results data (--results), the history the table is drawn from")
    ap.add_argument("--results", default=str(record.DATA),
                    help="the results data that --record appends to and --readme, --render, --history read")
    ap.add_argument("--readme", action="store_true",
                    help="--record, then redraw the table between the bench markers of docs/benchmarks.md from the "
                         "data")
    ap.add_argument("--render", action="store_true",
                    help="measure nothing: rewrite docs/benchmarks.md's table from the data as it is")
    ap.add_argument("--history", metavar="FIGURE", help="measure nothing: print every recorded row of FIGURE (e.g. 9a)")
    ap.add_argument("--pair", choices=sorted(PAIRS), help=argparse.SUPPRESS)  # a child of loops.measure_pairs
    return ap


def measuring_command(argv: list[str]) -> str:
    """The command that measured a row: this one without the options that only say where results go."""
    kept, skip = [], 0
    for arg in argv:
        name = arg.split("=", 1)[0]
        if skip:
            skip -= 1
        elif name in WHERE:
            skip = 0 if "=" in arg else WHERE[name]
        else:
            kept.append(arg)
    return " ".join(["python scripts/bench.py", *kept])


def child(a: argparse.Namespace) -> int:
    """One fresh process of a pair: its sides' medians as a JSON line."""
    from harness.engine import init_worker

    init_worker(1)  # as in an actor with one CPU
    print(json.dumps(median_interleaved(PAIRS[a.pair](a.sample_steps), a.repeats)))
    return 0


def ml_dtypes_note() -> str | None:
    """One line when the installed ml_dtypes is one whose import is slow (constraints/bench.txt)."""
    from importlib import metadata

    try:
        version = metadata.version("ml_dtypes")
    except metadata.PackageNotFoundError:
        return None
    major, minor = (int(p) if p.isdigit() else 0 for p in (version.split(".") + ["0"])[:2])
    if (major, minor) < (0, 7):
        return None
    return (f"note: ml_dtypes {version} is installed, whose import is slow; cold-start figures include it "
            f"(pip install -c constraints/bench.txt ..., docs/engine.md)")


def main(doc: str = __doc__ or "", argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = parser(doc)
    a = ap.parse_args(argv)
    if a.sweep_repeats < 1 or a.sweep_repeats % 2 == 0:
        ap.error(f"--sweep-repeats: an odd number of sweeps (the median is one of them), got {a.sweep_repeats}")
    unknown = [n for n in a.only if n not in ONLY]
    if unknown:
        ap.error(f"--only: no figure {unknown[0]} (one of {' '.join(ONLY)})")
    if a.pair:
        return child(a)
    note = ml_dtypes_note()
    if note:
        print(note, file=sys.stderr)
    data = Path(a.results)
    if a.history:
        rows = record.history(record.load(data), a.history)
        if not rows:
            ap.error(f"--history: no recorded rows of figure {a.history} in {data}")
        print(render.history_table(rows, a.history))
        return 0
    if a.render:
        render.update_doc(record.load(data))
        return 0
    want = set(a.only) or set(ONLY)
    compile_package()
    t0 = time.perf_counter()
    figs = []
    for module in MODULES:
        if want & set(module.ONLY):
            figs += [f for f in module.measure(a, want) if f.key.rstrip("abc") in want]
    rows = record.measured_now(figs, measuring_command(argv))
    print(render.table(rows))
    print(f"\nbench took {time.perf_counter() - t0:.0f}s")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.jsonl").write_text("".join(record.line(r) + "\n" for r in rows))
    if a.record or a.readme:
        record.append(data, rows)
    if a.readme:
        render.update_doc(record.load(data))
    return 0
