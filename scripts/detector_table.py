#!/usr/bin/env python
"""The detector table of docs/false-alarms.md: each published training-health detector's false alarms and
detections on AUTOTRAINER's circle program, measured by running it.

    python scripts/detector_table.py            # runs (or resumes) sweep=circles, prints the table
    python scripts/detector_table.py --readme   # and rewrites it in docs/false-alarms.md

Outcome: the run's validation accuracy reaches 0.7 (check val_accuracy_at_least). A detector
firing on a run that reached it is a false alarm; firing on one that did not, a detection.
Pooled over precision and data size here; the report splits them:
python -m harness.report results/circles --outcome val_accuracy_at_least
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import load_results  # noqa: E402
from harness.analysis import false_alarms  # noqa: E402
from harness.analysis.frame import pct  # noqa: E402
from markers import write_block  # noqa: E402

OUTCOME = "val_accuracy_at_least"


def current_run_ids(root: Path) -> set[str]:
    """The run ids of sweep=circles as this checkout defines it (the directory may also hold runs of
    earlier definitions of its checks, which have other run ids)."""
    from harness.cli import compose_config
    from harness.config import sweep_config_from_dict
    from harness.grid import expand

    cfg = sweep_config_from_dict(compose_config(["sweep=circles", f"store.root={root}"]))
    return {s.run_id for s in expand(cfg)}


def table(root: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "harness", "sweep=circles", f"store.root={root}"], cwd=ROOT)
    if done.returncode not in (0, 1):
        raise SystemExit(f"sweep failed with exit code {done.returncode}")
    df = load_results(root / "circles")
    df = df[df["run_id"].isin(current_run_ids(root))]  # runs of older check definitions stay out
    fa = false_alarms(df, OUTCOME, by=[])
    runs = df[df["check"] == OUTCOME]
    healthy = int(runs["passed"].astype(bool).sum())
    lines = [f"{len(runs)} runs (precision fp32/fp16/bf16 x 800 and 8,000 rows x 10 seeds): {healthy} reached "
             f"validation accuracy 0.7, {len(runs) - healthy} did not.", "",
             "| detector | false alarms (fires on healthy runs) | detections (fires on unhealthy runs) | verdict |",
             "|---|---|---|---|"]
    for r in fa.sort_values("check").itertuples():
        def rate(k: float, n: float, lo: float, hi: float) -> str:
            return "–" if not n else f"{int(k)}/{int(n)} ({pct(k / n)}, 95% CI {pct(lo)}–{pct(hi)})"
        healthy_rate = rate(r.fired_when_healthy, r.outcome_passed, r.false_alarm_ci_low, r.false_alarm_ci_high)
        unhealthy_rate = rate(r.fired_when_unhealthy, r.outcome_failed, r.detection_ci_low, r.detection_ci_high)
        lines.append(f"| {r.check} | {healthy_rate} | {unhealthy_rate} | {r.status} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT / "results"))
    ap.add_argument("--readme", action="store_true", help="rewrite the table in docs/false-alarms.md")
    a = ap.parse_args()
    md = table(Path(a.root))
    print(md)
    if a.readme:
        write_block(ROOT / "docs" / "false-alarms.md", "detector-table",
                    f"Produced by `python scripts/detector_table.py --readme` on {time.strftime('%Y-%m-%d')}.\n\n{md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
