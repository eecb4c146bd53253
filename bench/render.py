"""The table of docs/benchmarks.md, drawn from the recorded rows: the newest row of each figure, and
the command, date and CPU count that measured each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.record import history, newest

if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
from markers import write_block  # noqa: E402  (scripts/markers.py: the one writer of generated blocks)

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = ["| # | figure | measured | target | met | detail |", "|---|---|---|---|---|---|"]


def key_order(key: str) -> tuple[int, str]:
    """1, 2, 3a, 3b, ..., 9c, 10, 11: by number, then by letter."""
    digits = "".join(ch for ch in key if ch.isdigit())
    return int(digits or 0), key


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of ``rows``, in their order."""
    lines = list(HEADER)
    for r in rows:
        lines.append(f"| {r['figure']} | {r['name']} | {r['value']:.3g} {r['unit']} | {r['target']} | "
                     f"{'yes' if r['met'] else 'no'} | {r['detail']} |")
    return "\n".join(lines)


def measured_by(row: dict[str, Any]) -> str:
    """How a row was measured, as the table's list says it: the command, the day, the CPU count."""
    cores = (row.get("machine") or {}).get("cores")
    return f"`{row['command']}` on {row['date'][:10]}" + (f" ({cores} CPUs)" if cores else "")


def block(all_rows: list[dict[str, Any]]) -> str:
    """The generated block's body: which command measured which figures, then the table of the newest
    row of every figure."""
    latest = newest(all_rows)
    keys = sorted(latest, key=key_order)
    by_how: dict[str, list[str]] = {}
    for k in keys:
        by_how.setdefault(measured_by(latest[k]), []).append(k)
    provenance = "\n".join(f"- figure{'s' if len(ks) > 1 else ''} {', '.join(ks)}: {how}"
                           for how, ks in by_how.items())
    return f"Each row was measured by the command listed for it:\n\n{provenance}\n\n{table([latest[k] for k in keys])}"


def update_doc(all_rows: list[dict[str, Any]], path: Path = DOC) -> None:
    """Rewrite the table between the bench markers of ``path``."""
    write_block(path, "bench", block(all_rows))


def history_table(all_rows: list[dict[str, Any]], figure: str) -> str:
    """One line per recorded measurement of ``figure``, oldest first."""
    lines = []
    for r in history(all_rows, figure):
        commit = (r["commit"] or "?")[:10] + ("+dirty" if r.get("dirty") else "")
        verdict = "met" if r["met"] else "missed"
        cores = (r.get("machine") or {}).get("cores") or "?"
        lines.append(f"{r['date'][:19]:19}  {commit:16}  {r['value']:>8.3g} {r['unit']:<14} {verdict:6}  "
                     f"{cores} CPUs  {r['command']}")
    return "\n".join(lines)
