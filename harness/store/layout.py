"""The vocabulary of a results directory: part file names, what readers list, how files are
ordered for newest wins, and the store's errors. Writing and reading both use it; it reads
no file's content."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

PART_SUFFIX = ".parquet"
QUARANTINE = "_quarantine"  # where damaged part files are moved; no reader looks inside
PLAN = "_plan.json"  # the run ids the sweep's current definition plans (ignored by dataset discovery)

# part-<write time, ns since the epoch, 19 digits>-<8 hex; a "c" first for a compacted file>.parquet
BATCHED = re.compile(r"part-(\d{19})-(c?)[0-9a-f]{8}\.parquet")


class StoreError(OSError):
    """The results directory cannot be used."""


class StoreWriteError(StoreError):
    """Writing a result file failed (disk full, read-only, quota): the sweep stops; every run
    stored before it is intact (atomic writes)."""


def batched_name(ns: int, compacted: bool = False) -> str:
    return f"part-{ns:019d}-{'c' if compacted else ''}{secrets.token_hex(4)}{PART_SUFFIX}"


def is_compacted(path: Path) -> bool:
    m = BATCHED.fullmatch(path.name)
    return bool(m and m.group(2))


def is_per_run(path: Path) -> bool:
    """Is ``path`` a part file of the layout before batching (``<run_id>.parquet``, one run each)?"""
    return BATCHED.fullmatch(path.name) is None


def part_files(directory: Path) -> list[Path]:
    """Finished part files, in name order (temporary and metadata files excluded). A quarantine
    directory (``<sweep>/_quarantine``) holds none: the files moved there are never read."""
    if os.path.basename(os.path.abspath(directory)) == QUARANTINE:
        return []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [directory / n for n in sorted(n for n in names if n.endswith(PART_SUFFIX) and not n.startswith((".", "_")))]


def listing(root: Path) -> list[Path]:
    """The part files of a sweep directory, or of every sweep directory under a root of several."""
    files = part_files(root)
    if files or not root.is_dir():
        return files
    return [p for d in sorted(root.iterdir()) if d.is_dir() for p in part_files(d)]


def file_time(path: Path) -> int:
    """When a part file was written, for newest wins: the time in a batched name, else its mtime."""
    m = BATCHED.fullmatch(path.name)
    if m:
        return int(m.group(1))
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
