#!/usr/bin/env python
"""Benchmarks: the harness against the naive ways of doing the same work, side by side.

    python scripts/bench.py                 # every figure: the table, and its rows in results/bench/
    python scripts/bench.py --only 1 2      # some of them
    python scripts/bench.py --record        # also append the rows to docs/bench/results.jsonl
    python scripts/bench.py --readme        # --record, and redraw the table in docs/benchmarks.md from it
    python scripts/bench.py --history 9a    # every recorded measurement of figure 9a

Every figure is a ratio measured in this one invocation against its baseline
(medians over repeats, baseline and harness interleaved), never a stored number.
Figures 1, 2 and 3a are measured in --processes fresh processes each (see bench/loops.py).
The figures live in bench/ (one module per figure), the recorded rows in docs/bench/results.jsonl.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # tests/synthetic.py: the synthetic results the analysis benches read
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(__doc__ or ""))
