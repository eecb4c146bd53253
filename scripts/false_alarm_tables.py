#!/usr/bin/env python
"""The false-alarm tables of docs/false-alarms.md, of the two ported programs with a known training problem,
each swept with its bug and its fix as a variant axis: every published detector's false alarms (firing on
healthy runs) and detections (firing on unhealthy runs), pooled over the two variants and the seeds within
each precision (``harness.analysis.false_alarms``, ``by="auto"``, as ``python -m harness report RESULTS
--outcome CHECK`` does).

    python scripts/false_alarm_tables.py                 # runs (or resumes) both sweeps, prints the tables
    python scripts/false_alarm_tables.py --readme        # and rewrites them in docs/false-alarms.md
    python scripts/false_alarm_tables.py --only softmax_one_unit

Sweeps (one at a time): sweep=regression_explode (AUTOTRAINER's "gradient explode" regression subject; outcome
val_r2_at_least) and sweep=softmax_one_unit (DeepDiagnosis' motivating example, Stack Overflow 31880720; outcome
val_accuracy_at_least). Only the runs of the sweeps as this checkout defines them are counted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import load_results  # noqa: E402
from harness.analysis import false_alarms  # noqa: E402
from harness.analysis.alarms import pooled_text  # noqa: E402
from harness.analysis.frame import label  # noqa: E402
from harness.report import prepare  # noqa: E402
from markers import write_block  # noqa: E402


@dataclass(frozen=True)
class Example:
    sweep: str
    outcome: str
    healthy: str  # what a healthy run reached, in words
    matches: tuple[str, ...]  # the detectors named for the program's bug
    bug: str  # the bug the source labels, in words


EXAMPLES = (
    Example("regression_explode", "val_r2_at_least", "R^2 >= 0.99 on the test rows",
            ("autotrainer.exploding_gradient", "thedeepchecker.exploding_gradient"), "gradient explode"),
    Example("softmax_one_unit", "val_accuracy_at_least", "accuracy >= 0.9 on the test rows",
            ("deepdiagnosis.vanishing_gradient", "autotrainer.dying_relu"),
            "vanishing gradient, the case's name in DeepDiagnosis' repository; dying ReLU, AUTOTRAINER's report on it"),
)


def current_run_ids(sweep: str, root: Path) -> set[str]:
    """The run ids of the sweep as this checkout defines it (the directory may also hold runs of earlier
    definitions of its scenario, which have other run ids)."""
    from harness.cli import compose_config
    from harness.config import sweep_config_from_dict
    from harness.grid import expand

    cfg = sweep_config_from_dict(compose_config([f"sweep={sweep}", f"store.root={root}"]))
    return {s.run_id for s in expand(cfg)}


def _cells(values: list[str]) -> str:
    """One value per group, or the value once when every group has it."""
    return values[0] if len(set(values)) == 1 and len(values) > 1 else " · ".join(values)


def table(ex: Example, root: Path, run: bool = True) -> str:
    """Run (or resume) the sweep, then its false-alarm table in Markdown."""
    if run:
        done = subprocess.run([sys.executable, "-m", "harness", f"sweep={ex.sweep}", f"store.root={root}"], cwd=ROOT)
        if done.returncode not in (0, 1):
            raise SystemExit(f"sweep={ex.sweep} failed with exit code {done.returncode}")
    df = load_results(root / ex.sweep)
    df = prepare(df[df["run_id"].isin(current_run_ids(ex.sweep, root))])  # names as the report gives them
    fa = false_alarms(df, ex.outcome)  # by="auto": within precision (and data size where the runs allow)
    a = fa.attrs
    keys = list(a["by"])
    groups = sorted({tuple(g) for g in fa[keys].itertuples(index=False)}, key=lambda g: tuple(map(_order, g)))
    names = [" x ".join(label(v) for v in g) or "all runs" for g in groups]
    out = df[df["check"].str.endswith("/" + ex.outcome) | (df["check"] == ex.outcome)]
    per_variant = "; ".join(f"{v}: {len(rows):,} runs, {int(rows['passed'].fillna(False).astype(bool).sum()):,} healthy"
                            for v, rows in out.groupby("variant", sort=True))
    lines = [f"{a['outcome_runs']:,} runs ({per_variant}); healthy = {ex.healthy}: {a['healthy_runs']:,} healthy, "
             f"{a['unhealthy_runs']:,} unhealthy"
             + (f", {a['incomplete_runs']:,} did not complete" if a["incomplete_runs"] else "") + ".",
             f"Grouped by {', '.join(k.replace('_', ' ') for k in keys) or 'nothing'}; pooled over: "
             f"{pooled_text(a['pooled']) or 'nothing'}" + (f" ({a['by_rule']})" if a["by_rule"] else "") + ".",
             "Each cell: " + " · ".join(names) + " (one value when all are equal). False alarms: fires in k of n "
             "healthy runs; detections: in k of n unhealthy runs; p: one-sided Fisher exact test; verdict as the "
             "report gives it (95% Wilson intervals in the report). **Bold**: the detectors of the bug the source "
             f"names ({ex.bug}).", "",
             "| detector | false alarms | detections | p | verdict |", "|---|---|---|---|---|"]
    for check, rows in fa.groupby("check", sort=True):
        by_group = {tuple(r[k] for k in keys): r for r in rows.to_dict("records")}
        cells = [by_group[g] for g in groups if g in by_group]
        fa_ = [f"{r['fired_when_healthy']}/{r['outcome_passed']}" for r in cells]
        det = [f"{r['fired_when_unhealthy']}/{r['outcome_failed']}" for r in cells]
        p = ["–" if not r["p_value"] == r["p_value"] else f"{r['p_value']:.2g}" for r in cells]
        verdict = [str(r["status"]).replace("_", " ") for r in cells]
        name = f"**{check}**" if check in ex.matches else check
        lines.append(f"| {name} | {_cells(fa_)} | {_cells(det)} | {_cells(p)} | {_cells(verdict)} |")
    said = []
    for check in ex.matches:
        rows = fa[fa["check"] == check]
        verdicts = sorted({str(v).replace("_", " ") for v in rows["status"]})
        said.append(f"`{check}` is {' / '.join(verdicts)} in every group" if len(verdicts) == 1 else
                    f"`{check}` is " + ", ".join(f"{' x '.join(label(r[k]) for k in keys)} "
                                                  f"{str(r['status']).replace('_', ' ')}"
                                                  for r in rows.to_dict("records")))
        said[-1] += (f": it fires in {int(rows['fired_when_healthy'].sum())} of {int(rows['outcome_passed'].sum())} "
                     f"healthy and {int(rows['fired_when_unhealthy'].sum())} of {int(rows['outcome_failed'].sum())} "
                     "unhealthy runs")
    lines += ["", f"The bug's detectors: {'; '.join(said)}."]
    return "\n".join(lines)


_PRECISIONS = {"fp32": 0, "fp16": 1, "bf16": 2}


def _order(v: object) -> object:
    return _PRECISIONS.get(v, v) if isinstance(v, str) else v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT / "results"))
    ap.add_argument("--readme", action="store_true", help="rewrite the tables in docs/false-alarms.md")
    ap.add_argument("--only", choices=[e.sweep for e in EXAMPLES], action="append",
                    help="this example only (repeatable)")
    ap.add_argument("--no-run", action="store_true", help="tabulate the stored runs without running the sweeps")
    a = ap.parse_args()
    for ex in EXAMPLES:
        if a.only and ex.sweep not in a.only:
            continue
        md = table(ex, Path(a.root), run=not a.no_run)
        print(f"## {ex.sweep}\n\n{md}\n")
        if a.readme:
            command = f"python scripts/false_alarm_tables.py --readme --only {ex.sweep}"
            write_block(ROOT / "docs" / "false-alarms.md", f"false-alarms-{ex.sweep}",
                        f"Produced by `{command}` on {time.strftime('%Y-%m-%d')} (it runs or resumes "
                        f"`python -m harness sweep={ex.sweep}`; the same table, with intervals, in "
                        f"`python -m harness report results/{ex.sweep} --outcome {ex.outcome}`).\n\n{md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
