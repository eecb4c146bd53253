"""Bench results as data: one JSON line per figure measured, with what measured it (the command, the
commit, the machine, the date), appended to docs/bench/results.jsonl (asv's model: the history is
queried, not read from diffs of a table)."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure

DATA = ROOT / "docs" / "bench" / "results.jsonl"

# A row's fields, in the order each line lists them.
FIELDS = ("figure", "name", "value", "unit", "target", "met", "detail", "command", "commit", "dirty", "machine",
          "date", "source")
MACHINE = ("hostname", "cpu", "cores", "memory_bytes", "os", "python", "tensorflow", "keras", "ray")


def cpu_model() -> str | None:
    """The CPU's model name (Linux's /proc/cpuinfo; else what platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def version(dist: str) -> str | None:
    """The installed version of ``dist``, without importing it (TensorFlow takes seconds)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine this process measures on."""
    return {"hostname": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "memory_bytes": memory_bytes(), "os": platform.platform(), "python": platform.python_version(),
            "tensorflow": version("tensorflow"), "keras": version("keras"), "ray": version("ray")}


def git_state(root: Path = ROOT, data: Path = DATA) -> tuple[str | None, bool | None]:
    """(HEAD's commit, whether tracked files differ from it) of the checkout at ``root``; the data file
    itself is left out, since rows recorded and not yet committed do not change what is measured.
    (None, None) outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        exclude = [f":(exclude){data.resolve().relative_to(root.resolve())}"] if data.resolve().is_relative_to(
            root.resolve()) else []
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", *exclude).strip())
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, dirty


def rows(figs: Iterable[Figure], command: str, *, commit: str | None, dirty: bool | None,
         host: dict[str, Any], date: str) -> list[dict[str, Any]]:
    """One row per figure (numpy scalars made plain), all measured by ``command`` at ``commit`` on
    ``host`` at ``date``."""
    return [{"figure": f.key, "name": f.name, "value": float(f.measured), "unit": f.unit, "target": f.target,
             "met": bool(f.met), "detail": f.detail, "command": command, "commit": commit, "dirty": dirty,
             "machine": host, "date": date, "source": "measured"} for f in figs]


def measured_now(figs: Iterable[Figure], command: str) -> list[dict[str, Any]]:
    """rows() of figures this process measured: this checkout's commit, this machine, now (UTC)."""
    commit, dirty = git_state()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return rows(figs, command, commit=commit, dirty=dirty, host=machine(), date=now)


def line(row: dict[str, Any]) -> str:
    return json.dumps({k: row.get(k) for k in FIELDS}, ensure_ascii=False)


def append(path: Path, new: list[dict[str, Any]]) -> None:
    """Add ``new`` at the end of the data file (created with its directory if missing); the file only grows,
    so its order is the order of measurement."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.writelines(line(r) + "\n" for r in new)


def load(path: Path) -> list[dict[str, Any]]:
    """Every row of the data file, oldest first ([] if there is none)."""
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def newest(all_rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row recorded for each figure."""
    return {r["figure"]: r for r in all_rows}


def history(all_rows: list[dict[str, Any]], figure: str) -> list[dict[str, Any]]:
    return [r for r in all_rows if r["figure"] == figure]
