#!/usr/bin/env python
"""The "What the seed sweep shows" table of docs/seed-sweep.md, computed from stored results.

    python scripts/seed_table.py results/seed_article            # print the markdown
    python scripts/seed_table.py results/seed_article --readme   # and rewrite it in docs/seed-sweep.md

Rows: scenario x check x precision (and the scenario parameter axes of the sweep);
columns: data size; cells: run-level failure rate with failed/completed runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import load_results  # noqa: E402
from harness.analysis import failure_rates, with_variant  # noqa: E402
from markers import write_block  # noqa: E402



def table(df: pd.DataFrame) -> str:
    df = with_variant(df)
    rates = failure_rates(df, by=["scenario", "variant", "check", "precision", "data_size"])
    sizes = sorted(rates["data_size"].unique())
    lines = ["| scenario | variant | check | precision | " + " | ".join(f"{s:,}" for s in sizes) + " |",
             "|---|---|---|---|" + "---|" * len(sizes)]
    for (scenario, variant, check, precision), g in rates.groupby(["scenario", "variant", "check", "precision"],
                                                                   sort=True):
        cells = []
        by_size = g.set_index("data_size")
        for s in sizes:
            if s not in by_size.index or by_size.loc[s, "n"] == 0:
                cells.append("–")
            else:
                r = by_size.loc[s]
                cells.append(f"{r['rate']:.0%} ({int(r['failed'])}/{int(r['n'])})")
        lines.append(f"| {scenario} | {variant} | {check} | {precision} | " + " | ".join(cells) + " |")
    runs = df.drop_duplicates("run_id")
    status = runs["status"].value_counts().to_dict()
    wall = runs["wall_s"].sum()
    note = (f"\n{len(runs)} runs ({', '.join(f'{k} {v}' for k, v in sorted(status.items()))}); "
            f"sum of run wall times {wall / 60:.0f} min.")
    return "\n".join(lines) + "\n" + note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--readme", action="store_true")
    a = ap.parse_args()
    md = table(load_results(a.results))
    print(md)
    if a.readme:
        write_block(ROOT / "docs" / "seed-sweep.md", "seed-table",
                    f"Produced by `python scripts/seed_table.py {a.results} --readme` on {time.strftime('%Y-%m-%d')}; "
                    f"cells are run-level failure rates (failed/completed runs).\n\n{md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
