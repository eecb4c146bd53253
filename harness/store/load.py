"""The store's readers: load_table and load_results (a sweep's rows), stored_run_ids (the resume
index) and run_files (which file holds a run). Each lists the part files and scans them
(``scan.py``), listing and scanning again while a compaction replaces them, then names every
file it left out (``damage.settle``). A directory of the per-run layout is converted first,
once (``compaction.convert_per_run``)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from harness.store.compaction import convert_per_run
from harness.store.damage import settle
from harness.store.layout import listing, part_files
from harness.store.scan import retrying, scan

log = logging.getLogger(__name__)


def load_table(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, filter: Any = None,
               quarantine: bool = False, verify: bool | None = None) -> pa.Table:
    """All finished runs under ``path`` (one sweep directory, or a root of several) as one Arrow
    table with the unified schema: core columns first, then every extra column any part file has
    (null where a run lacks it). A run stored in several files keeps the rows of its newest file
    only (per directory). ``columns`` selects columns; ``filter`` keeps the rows it matches: a
    pyarrow.compute expression (``pc.field("precision") == "fp16"``; a column the results lack is a
    ValueError naming it) or a dict of column -> value or list of values (``{"precision": ["fp16",
    "bf16"], "clip_value": None}``), applied after newest wins. A part file that cannot be read,
    lacks run_id, or has a core column of a type that does not cast is skipped with a
    CorruptPartWarning naming it; one of a newer schema_version gets a FutureSchemaWarning. With
    ``quarantine`` (what the harness's commands do), a damaged part file (unreadable content, a
    core column that does not convert) is moved into ``<sweep>/_quarantine/``, named in the
    warning, the first time it is met. ``verify`` (default: as ``quarantine``) checks every page
    against the CRC it was written with (pandas.read_parquet does not): the commands do, and so
    does the resume index, always. A directory of more than ``compaction.PER_RUN_FILES`` per-run
    part files is compacted first, once (LegacyLayoutWarning where it cannot be written)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    files = listing(root)
    check = quarantine if verify is None else verify
    loaded = retrying(root, lambda files: scan(files, columns, filter, check),
                      listed=None if convert_per_run(files) else files)
    settle(loaded, quarantine)
    return loaded.table


def load_results(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, filter: Any = None,
                 quarantine: bool = False, verify: bool | None = None) -> Any:
    """Results as a pandas DataFrame, one row per (run, check); ``columns``, ``filter``,
    ``quarantine`` and ``verify`` as in load_table. Safe while a sweep is still writing, or being
    compacted: only finished part files are read, and a run stored twice counts once (its newest
    rows). Unreadable part files are skipped with a CorruptPartWarning naming the file."""
    table = load_table(path, columns=columns, filter=filter, quarantine=quarantine, verify=verify)
    # one chunk per column, one block per column: pandas takes the numeric columns without copying
    # them again into 2-D blocks of a dtype each (it joins blocks later only where an operation needs it)
    return table.combine_chunks().to_pandas(split_blocks=True)


def stored_run_ids(directory: Path, *, complete_only: bool = False, quarantine: bool = False) -> set[str]:
    """run_ids already stored (the resume index): a run counts as stored only if its rows load, so
    the index reads part files as load_table does, every column of every page (each page's CRC
    checked): a damaged page in any column, or a core column of a type that does not convert,
    leaves the file's runs out (a CorruptPartWarning names it) and a resume recomputes them. With
    ``quarantine`` (the commands), such a file is also moved into ``_quarantine/`` (see
    load_table). With complete_only, a run counts only if its rows in its newest file all have
    status ok (runs stored as error, crashed or timeout are recomputed)."""
    directory = Path(directory)
    files = part_files(directory)
    loaded = retrying(directory, scan, part_files, listed=None if convert_per_run(files) else files)
    settle(loaded, quarantine)
    table = loaded.table
    ids = set(pc.unique(table["run_id"]).drop_null().to_pylist())
    if complete_only:
        ok = pc.fill_null(pc.equal(table["status"], "ok"), False)
        ids -= set(pc.unique(table.filter(pc.invert(ok))["run_id"]).to_pylist())
    return ids


class RunPath(type(Path())):  # type: ignore[misc]
    """The path of a part file and the run it was looked up for (``run_id``): a part file may
    hold the rows of many runs."""

    def __init__(self, *args: Any, run_id: str | None = None) -> None:
        if sys.version_info >= (3, 12):  # 3.12 made Path subclassable: it sets the parts in __init__
            super().__init__(*args)
        self.run_id = run_id

    def __new__(cls, *args: Any, run_id: str | None = None) -> RunPath:
        return super().__new__(cls, *args)


def run_files(directory: Path) -> dict[str, Path]:
    """For every run_id stored in the sweep directory ``directory``, the part file that holds its
    rows (its newest, when stored twice)."""
    directory = Path(directory)
    files = part_files(directory)

    def read(files: list[Path]) -> dict[str, Path]:
        loaded = scan(files, columns=["run_id"], verify=False)
        for i, why in sorted(loaded.skipped.items()):
            log.warning("part file %s left out (%s): its runs are not found", files[i], why)
        ids = loaded.table["run_id"].to_pylist()
        return {rid: files[i] for rid, i in zip(ids, loaded.fidx.tolist()) if rid is not None}

    return retrying(directory, read, part_files, listed=None if convert_per_run(files) else files)
