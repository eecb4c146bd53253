"""Seed the results data with the history the bench table kept in git before the data existed.

    PYTHONPATH=. python -m bench.seed_history docs/bench/results.jsonl

Every version of the bench block (README.md, then docs/benchmarks.md) in ``git log``, oldest first: a
row whose measured value or provenance (command, day) changed is a new measurement, recorded with the
commit that wrote it; a row whose wording changed alone updates the latest record of its figure.
Run once; its output is committed. Imported rows know only the CPU count of their machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.record import MACHINE, line

SOURCES = ("README.md", "docs/benchmarks.md")
MEASURED = re.compile(r"^(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?) (.+)$")
HOW = re.compile(r"`(?P<command>[^`]+)` on (?P<date>\d{4}-\d\d-\d\d)(?: \((?P<cores>\d+) CPUs\))?")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def versions() -> list[tuple[str, str, str]]:
    """(commit, ISO date, path) of every commit that changed a source, oldest first."""
    found = []
    for path in SOURCES:
        for ln in git("log", "--format=%H %aI", "--", path).splitlines():
            commit, date = ln.split()
            found.append((date, commit, path))
    return [(c, d, p) for d, c, p in sorted(found)]


def block(commit: str, path: str) -> str | None:
    try:
        text = git("show", f"{commit}:{path}")
    except subprocess.CalledProcessError:
        return None
    start, end = text.find("<!-- bench:start -->"), text.find("<!-- bench:end -->")
    return text[start:end] if 0 <= start < end else None


def parse(body: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The block's rows (figure -> cells) and each figure's provenance line."""
    rows: dict[str, list[str]] = {}
    how: dict[str, str] = {}
    for ln in body.splitlines():
        if ln.startswith("| ") and not ln.startswith("| # ") and ln.count("|") >= 7:
            cells = [c.strip() for c in ln.strip().strip("|").split(" | ")]
            rows[cells[0]] = [*cells[:5], " | ".join(cells[5:])]
        elif ln.startswith("- figure"):  # "- figures 1, 2: `cmd` on DATE (N CPUs)"
            keys, _, text = ln[2:].partition(": ")
            how.update({k: text for k in keys.split(" ", 1)[1].split(", ")})
        elif ln.startswith("Produced by `"):  # the single-command form of the first tables
            how.update({k: ln for k in rows} | {"*": ln})
    if "*" in how:
        how.update({k: how["*"] for k in rows if k not in how})
        del how["*"]
    return rows, how


def to_row(cells: list[str], how: str, commit: str, committed: str, path: str) -> dict[str, Any]:
    key, name, measured, target, met, detail = cells
    m = MEASURED.match(measured)
    if m is None:
        raise SystemExit(f"{path} at {commit[:10]}: figure {key}: measured {measured!r} is not 'NUMBER UNIT'")
    h = HOW.search(how)
    command = h["command"].strip() if h else None
    cores = int(h["cores"]) if h and h["cores"] else None
    return {"figure": key, "name": name, "value": float(m[1]), "unit": m[2], "target": target, "met": met == "yes",
            "detail": detail, "command": command, "commit": commit, "dirty": None,
            "machine": {k: (cores if k == "cores" else None) for k in MACHINE},
            "date": h["date"] if h else committed[:10], "source": f"imported from {path} at {commit[:10]}"}


def imported() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    last: dict[str, dict[str, Any]] = {}  # the newest record of each figure
    seen: dict[str, tuple[str, str]] = {}  # each figure's row and provenance as last written
    for commit, committed, path in versions():
        body = block(commit, path)
        if body is None:
            continue
        rows, how = parse(body)
        for key, cells in rows.items():
            now = (" | ".join(cells), how.get(key, ""))
            if seen.get(key) == now:
                continue
            seen[key] = now
            row = to_row(cells, how.get(key, ""), commit, committed, path)
            prev = last.get(key)
            if prev is not None and (prev["value"], prev["unit"], prev["command"], prev["date"]) == \
                    (row["value"], row["unit"], row["command"], row["date"]):
                prev.update(name=row["name"], target=row["target"], met=row["met"], detail=row["detail"])
                continue
            out.append(row)
            last[key] = row
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.seed_history OUT.jsonl", file=sys.stderr)
        return 2
    rows = imported()
    Path(argv[0]).parent.mkdir(parents=True, exist_ok=True)
    Path(argv[0]).write_text("".join(line(r) + "\n" for r in rows))
    print(f"{len(rows)} rows of {len({r['figure'] for r in rows})} figures", file=sys.stderr)
    return 0



if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
