#!/usr/bin/env python
"""The table of axes in docs/results.md (between ``<!-- axes:start -->`` and ``<!-- axes:end -->``),
rendered from ``harness.axes.AXES``: one row per axis, its column type and meaning, how a sweep sets
it, and what a scenario that does not train records.

    python scripts/axes_table.py            # prints the block
    python scripts/axes_table.py --write    # rewrites it in docs/results.md
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import axes  # noqa: E402
from markers import write_block  # noqa: E402

PAGE = ROOT / "docs" / "results.md"
BLOCK = "axes"


def render() -> str:
    """The block's body: the axes in display order, then ``schedule``."""
    rows = ["<!-- written by scripts/axes_table.py from harness/axes.py; do not edit by hand -->",
            "| column | type | meaning | set by | without training |", "|---|---|---|---|---|"]
    for name in axes.COLUMNS:
        if name == "schedule":
            rows.append("| `schedule` | string | `steps` or `epochs`: which of the two the sweep set | – | `steps` |")
            continue
        a = axes.BY_NAME[name]
        default = "" if a.default is None else " (default " + ", ".join(axes.show(v) for v in a.default) + ")"
        collapsed = ("0" if name == "steps" else "null") if a.training else "as set"
        rows.append(f"| `{name}` | {a.column_type} | {a.doc} | `sweep.{name}`{default} | {collapsed} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if "--write" in argv:
        write_block(PAGE, BLOCK, render())
    else:
        print(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
