#!/usr/bin/env python
"""Does a sweep's outcome depend on TensorFlow's oneDNN rewrite? The same sweep twice, with
TensorFlow's own choice (TF_ENABLE_ONEDNN_OPTS unset: on by default on Linux x86 CPUs with the
newer vector instructions) and with TF_ENABLE_ONEDNN_OPTS=0 (Eigen's kernels), compared run by run.

    python scripts/onednn.py                          # every scenario x fp32/fp16/bf16, 1,000 rows, 150 steps
    python scripts/onednn.py 'sweep.scenario=[circles]' 'sweep.seed=range(0,20)'
    python scripts/onednn.py --docs                   # also rewrites the table in docs/engine.md

Each side is ``python -m harness sweep=smoke ... ray.warm=false`` in its own embedded Ray (the
variable reaches the actors through the environment they inherit); what each side's runs
recorded (the ``onednn`` column) is checked: the comparison is refused if the first side did not
run with oneDNN (TensorFlow does not use it here) or the second did (workers that do not inherit
the driver's environment, e.g. of a cluster joined by ray.address). Per scenario and precision it
prints: runs, and runs whose final loss differs; check rows, rows whose worst value differs and
the largest relative difference (to the larger of the two magnitudes); rows whose verdict
(passed) or failure count differs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from markers import write_block  # noqa: E402

DEFAULT = ["sweep=smoke", "sweep.scenario=[loss_bound,normalization,activation_bounds,train_inference,circles]",
           "sweep.precision=[fp32,fp16,bf16]", "sweep.data_size=[1000]", "sweep.steps=[150]"]
DOCS = ROOT / "docs" / "engine.md"


def run_side(overrides: list[str], root: Path, flag: str | None) -> Any:
    """The sweep with TF_ENABLE_ONEDNN_OPTS=flag (None: unset), stored under root; its results frame."""
    from harness import load_results

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if flag is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = flag
    cmd = [sys.executable, "-m", "harness", *overrides, f"store.root={root}", "ray.warm=false"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, text=True, capture_output=True)
    if done.returncode not in (0, 1):  # 1: some runs errored, which is an outcome to compare too
        sys.exit(f"onednn: the sweep with TF_ENABLE_ONEDNN_OPTS={flag or '(unset)'} failed (exit {done.returncode}):\n"
                 f"{done.stderr[-2000:]}")
    sweeps = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    if len(sweeps) != 1:
        sys.exit(f"onednn: the sweep with TF_ENABLE_ONEDNN_OPTS={flag or '(unset)'} stored no results under {root}")
    return load_results(sweeps[0])


def ran_as_labelled(frame: Any, want: bool) -> str | None:
    """Why a side's runs did not run with oneDNN ``want`` (their recorded ``onednn``), or None."""
    recorded = frame.drop_duplicates("run_id")["onednn"].dropna().astype(bool)
    if recorded.empty:
        return "its runs recorded no oneDNN setting (none completed?)"
    if (recorded != want).any():
        return (f"{int((recorded != want).sum())} of its {len(recorded)} runs ran with oneDNN "
                f"{'off' if want else 'on'}")
    return None


def compare(on: Any, off: Any) -> Any:
    """One row per scenario and precision: how the oneDNN-off side's results differ from the default."""
    import numpy as np
    import pandas as pd

    m = on.merge(off, on=["run_id", "check"], suffixes=("_on", "_off"), validate="one_to_one")
    if len(m) != len(on) or len(m) != len(off):
        raise SystemExit(f"onednn: the two sweeps stored different runs ({len(on)} and {len(off)} check rows)")

    def differs(col: str) -> Any:
        a, b = m[f"{col}_on"], m[f"{col}_off"]
        return ~((a == b) | (a.isna() & b.isna()))

    worst = differs("worst_value")
    scale = np.maximum(m["worst_value_on"].abs(), m["worst_value_off"].abs())
    rel = ((m["worst_value_on"] - m["worst_value_off"]).abs() / scale.where(scale > 0)).where(worst)
    frame = pd.DataFrame({"scenario": m["scenario_on"], "precision": m["precision_on"], "run_id": m["run_id"],
                          "worst": worst, "rel": rel, "verdict": differs("passed"),
                          "failures": differs("n_failed"), "loss": differs("final_loss")})
    g = frame.groupby(["scenario", "precision"], sort=True)
    out = g.agg(rows=("worst", "size"), worst_differs=("worst", "sum"), largest_relative=("rel", "max"),
                verdict_differs=("verdict", "sum"), failures_differ=("failures", "sum"))
    runs = frame.drop_duplicates("run_id").groupby(["scenario", "precision"], sort=True)
    out["runs"] = runs.size()
    out["final_loss_differs"] = runs["loss"].sum()
    out["largest_relative"] = out["largest_relative"].map(lambda x: "" if np.isnan(x) else f"{x:.2g}")
    return out.reset_index()


def markdown(table: Any, overrides: list[str]) -> str:
    """The comparison as a Markdown table, headed by the command and sweep that produced it."""
    cols = ["scenario", "precision", "runs", "final_loss_differs", "rows", "worst_differs", "largest_relative",
            "verdict_differs", "failures_differ"]
    head = ["scenario", "precision", "runs", "final loss differs", "check rows", "worst value differs",
            "largest relative difference", "verdict differs", "failure count differs"]
    given = "" if overrides == DEFAULT else " " + " ".join(f"'{o}'" for o in overrides)
    lines = [f"Produced by `python scripts/onednn.py{given} --docs` on {datetime.date.today().isoformat()} "
             f"(oneDNN on, as TensorFlow chose it here, against TF_ENABLE_ONEDNN_OPTS=0; sweep: `{' '.join(overrides)}`):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help=f"sweep overrides (default: {' '.join(DEFAULT)})")
    ap.add_argument("--docs", action="store_true", help=f"rewrite the table between the onednn markers "
                                                        f"of {DOCS.relative_to(ROOT)}")
    a = ap.parse_args(argv)
    overrides = a.overrides or DEFAULT
    with tempfile.TemporaryDirectory(prefix="onednn-") as tmp:
        sides = {}
        for want, flag in ((True, None), (False, "0")):
            print(f"sweep with TF_ENABLE_ONEDNN_OPTS={flag or '(unset)'} ...", file=sys.stderr, flush=True)
            sides[want] = run_side(overrides, Path(tmp) / f"onednn-{want}", flag)
            why = ran_as_labelled(sides[want], want)
            if why:
                sys.exit(f"onednn: the side meant to run with oneDNN {'on' if want else 'off'} did not: {why}")
    text = markdown(compare(sides[True], sides[False]), overrides)
    print(text)
    if a.docs:
        write_block(DOCS, "onednn", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
