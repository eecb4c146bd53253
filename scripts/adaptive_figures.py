#!/usr/bin/env python
"""The adaptive-seed figures of docs/adaptive.md (savings) and docs/analysis.md (guarantee), produced by
running real sweeps.

    python scripts/adaptive_figures.py savings [--readme]     # runs saved against a fixed grid
    python scripts/adaptive_figures.py guarantee [--readme]   # a recommended bound, checked on fresh seeds

savings: an adaptive sweep (rule width) over seed workloads; per cell, the seeds it took
until every check's 95% interval was at most the width wide. A fixed grid gives every cell
the same seeds, so to reach that width in every cell it needs as many seeds per cell as the
slowest cell took: the saving is cells x max(seeds) - sum(seeds).

guarantee: loss_bound (bound 0.05, 300 steps, batch 32, clip 10, fp32, 1,000 rows) with
adaptive=bound until the 1%-at-95% guarantee is reached, then 300 runs on seeds it never saw
(100000-100299); the recommended bound's false-alarm rate on them, with its interval.
Results go under --root (default results/adaptive_figures); reruns resume.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import load_results  # noqa: E402
from markers import write_block  # noqa: E402

SAVINGS_ARGS = ["sweep=smoke", "sweep.name=adaptive_savings", "sweep.scenario=[normalization,loss_bound]",
                "scenarios.loss_bound.bound=6.3", "sweep.precision=[fp32,fp16,bf16]", "sweep.data_size=[1000,10000]",
                "sweep.clip_value=[null]", "sweep.seed=[0,1,2,3,4]", "adaptive=width", "adaptive.width=0.2",
                "adaptive.round=10", "adaptive.max_seeds=400"]
FRESH_SEEDS = list(range(100_000, 100_300))


def harness(args: list[str], root: Path) -> None:
    cmd = [sys.executable, "-m", "harness", *args, f"store.root={root}"]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, cwd=ROOT)
    if done.returncode not in (0, 1):
        raise SystemExit(f"sweep failed with exit code {done.returncode}")


def savings(root: Path) -> str:
    harness(SAVINGS_ARGS, root)
    cells = pd.DataFrame(json.loads((root / "adaptive_savings" / "_cells.json").read_text())["cells"])
    cells["variant"] = cells["variant"].fillna("")
    lines = ["| scenario | precision | data size | seeds run | stop |", "|---|---|---|---|---|"]
    for r in cells.sort_values(["scenario", "precision", "data_size"]).itertuples():
        lines.append(f"| {r.scenario} | {r.precision} | {r.data_size:,} | {r.seeds} | {r.stop} |")
    fixed = len(cells) * int(cells["seeds"].max())
    used = int(cells["seeds"].sum())
    lines.append("")
    lines.append(f"Adaptive: **{used:,} runs** over {len(cells)} cells. A fixed grid reaching the same interval "
                 f"width (0.2) in every cell needs {int(cells['seeds'].max())} seeds per cell: {fixed:,} runs. "
                 f"Saved: **{fixed - used:,} runs ({(fixed - used) / fixed:.0%})**.")
    return "\n".join(lines)


def guarantee(root: Path) -> str:
    from harness.analysis import calibrate_tolerance

    harness(["sweep=calibrate_loss", "adaptive=bound"], root)
    harness(["sweep=calibrate_loss", "sweep.name=calibrate_loss_fresh",
             f"sweep.seed=[{','.join(map(str, FRESH_SEEDS))}]"], root)
    calib, fresh = load_results(root / "calibrate_loss"), load_results(root / "calibrate_loss_fresh")
    tol = calibrate_tolerance(calib, by=["check"], target=0.01, confidence=0.95, fresh=fresh)
    r = tol.iloc[0]
    return "\n".join([
        "| check | calibration runs | recommended bound | guarantee | fresh seeds | fresh false alarms | limits (each one-sided 95%) |"
        " validation |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['check']} | {int(r['n'])} | {r['recommended_text']} | {r['guarantee']} | "
        f"{int(r['validation_runs'])} | {int(r['validation_failed'])} ({r['validation_rate']:.2%}) | "
        f"{r['validation_ci_low']:.2%}–{r['validation_ci_high']:.2%} | {r['validation_status']} |",
        "",
        f"Observed false-alarm rate on the fresh seeds: {r['validation_rate']:.2%}, "
        f"{'at most' if r['validation_rate'] <= 0.01 else 'above'} the 1% target. Validation: {r['validation']}.",
    ])


# where each figure's block is (--readme rewrites it there)
PAGES = {"savings": ROOT / "docs" / "adaptive.md", "guarantee": ROOT / "docs" / "analysis.md"}


def write_readme(figure: str, command: str, md: str) -> None:
    write_block(PAGES[figure], f"adaptive-{figure}",
                f"Produced by `{command}` on {time.strftime('%Y-%m-%d')}.\n\n{md}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("figure", choices=["savings", "guarantee"])
    ap.add_argument("--root", default=str(ROOT / "results" / "adaptive_figures"))
    ap.add_argument("--readme", action="store_true",
                    help="rewrite the figure's block in its page (docs/adaptive.md, docs/analysis.md)")
    a = ap.parse_args()
    md = (savings if a.figure == "savings" else guarantee)(Path(a.root))
    print(md)
    if a.readme:
        write_readme(a.figure, f"python scripts/adaptive_figures.py {a.figure} --readme", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
