"""Figure 7: `python -m harness.report` on a results frame of a million rows."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure

ONLY = ("7",)


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    """A seed_article-shaped frame (2 checks per run, NaN runs, errored runs) of ``--report-rows`` rows."""
    import numpy as np

    from synthetic import synthetic_results, write_results

    def rate(d: Any) -> Any:
        return np.where(d.precision == "fp16", 3e-5, np.where(d.precision == "bf16", 1e-5, 2e-6)) * \
            np.where(d.check == "out_min", 0.5, 1)

    per_seed = 2 * 23 * 3 * 3  # checks x (data, batch) pairs x precisions x clip values
    df = synthetic_results(checks={"loss_below": ("below", 1.0), "out_min": ("above", 0.0)},
                           data_sizes=(100, 1000, 10000, 100000, 1000000), batch_sizes=(16, 32, 64, 128, 256),
                           precisions=("fp32", "fp16", "bf16"), clip_values=(None, 1.0, 10.0),
                           seeds=range(-(-opts.report_rows // per_seed)), steps=None, epochs=1, eval_rate=rate,
                           nonfinite_rate=0.0005, error_rate=0.001, sweep="bench_report")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big"
        write_results(df, str(path), parts=40)
        rows = len(df)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.report", str(path), "--out", str(Path(tmp) / "rep")],
                       check=True, capture_output=True)
        took = time.perf_counter() - t0
    return [Figure("7", f"report on a {rows:,}-row results frame", took, "s", "<= 30 s", took <= 30,
                   "python -m harness.report, process start included")]
