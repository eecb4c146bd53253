"""Compaction: a sweep's part files rewritten as a few large ones, and the conversion of a
directory of the per-run layout (``<run_id>.parquet``, one run each, as earlier versions wrote
them) by compacting it once, the first time it is read.

The new files are written and renamed into place first, then the old ones removed: a reader at
any moment sees every run (at worst twice, resolved by newest wins; a compacted file carries the
newest time of the files it replaces), and a crash leaves at most duplicates."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.store.damage import settle
from harness.store.layout import StoreWriteError, batched_name, file_time, is_per_run, part_files
from harness.store.scan import Loaded, retrying, scan
from harness.store.write import atomic_write, write_parquet

log = logging.getLogger(__name__)

# a directory with more per-run part files than this is compacted when first read: a dataset scan
# pays per file, so thousands of one-run files read far slower than the few files they compact into
PER_RUN_FILES = 64


class LegacyLayoutWarning(UserWarning):
    """A directory of per-run part files that could not be converted is read as it is (slower)."""


@dataclass(frozen=True)
class Compaction:
    directory: Path
    replaced: int  # part files read and removed
    written: int  # part files written in their place
    runs: int
    rows: int
    left: int  # part files left as they were: not conforming, or of a newer schema_version
    quarantined: int = 0  # unreadable part files moved into <directory>/_quarantine


def compact(directory: str | os.PathLike[str], *, max_rows: int = 1_000_000) -> Compaction:
    """Rewrite the part files of one sweep directory as few large ones (``max_rows`` rows each at
    most, a run never split), one row set per run (newest wins). Damaged part files (a truncated
    file, garbage, a bad page, a core column that does not convert) are moved into
    ``<directory>/_quarantine`` (kept for a look, never read: the next loads do not warn about
    them again and a resume recomputes their runs); a read that failed on the system (permission
    denied, an I/O error) moves nothing, and a move that fails is named in the warning. Part
    files without run_id (not a harness part file) or of a newer schema_version (valid for a
    newer harness) are left as they are (with the warnings load_table gives). StoreWriteError if
    a file cannot be written (those written are removed again) or an old one removed."""
    root = Path(directory)
    loaded = retrying(root, scan, part_files)
    quarantined = len(settle(loaded, quarantine=True))
    replace = _replaceable(loaded)
    left = len(loaded.files) - len(replace) - len(loaded.damaged)
    if len(replace) < 2:
        return Compaction(root, 0, 0, 0, 0, left, quarantined)
    written, runs, rows = _rewrite(root, loaded, replace, max_rows)
    return Compaction(root, len(replace), written, runs, rows, left, quarantined)


def _replaceable(loaded: Loaded) -> list[int]:
    """The files whose rows were read whole. A file whose clashing column was left out of its rows
    is kept: compacting it would drop the column."""
    return [i for i in range(len(loaded.files))
            if i not in loaded.skipped and i not in loaded.future and i not in loaded.clashed]


def _chunks(table: pa.Table, max_rows: int) -> tuple[list[pa.Table], int]:
    """``table`` in slices of ``max_rows`` rows at most, a run never split; and how many runs."""
    if table.num_rows > max_rows:
        table = table.sort_by("run_id")
    ids = table["run_id"].to_numpy(zero_copy_only=False) if table.num_rows else np.array([], object)
    chunks, start = [], 0
    while start < table.num_rows:
        end = min(start + max_rows, table.num_rows)
        while end < table.num_rows and ids[end] == ids[end - 1]:
            end += 1
        chunks.append(table.slice(start, end - start))
        start = end
    return chunks, len(set(ids.tolist()))


def _rewrite(root: Path, loaded: Loaded, replace: list[int], max_rows: int) -> tuple[int, int, int]:
    """Write the rows of files ``replace`` as compacted files, then remove those files; (files
    written, runs, rows)."""
    table, files = loaded.table, loaded.files
    if len(replace) < len(files):
        table = table.filter(np.isin(loaded.fidx, replace))
    chunks, runs = _chunks(table, max_rows)
    at = max(file_time(files[i]) for i in replace)
    written: list[Path] = []
    try:
        for chunk in chunks:
            path = root / batched_name(at, compacted=True)
            atomic_write(path, lambda fh, t=chunk: write_parquet(t, fh, row_group_size=65536))
            written.append(path)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    for i in replace:
        try:
            files[i].unlink(missing_ok=True)
        except OSError as exc:
            raise StoreWriteError(f"cannot remove {files[i]} (its runs are in the compacted files too; readers "
                                  f"keep one copy): {exc.strerror or exc}") from exc
    return len(written), runs, table.num_rows


def convert_per_run(files: list[Path]) -> bool:
    """Compact each sweep directory of ``files`` (a listing) that holds more than PER_RUN_FILES
    per-run part files, once, so that it is read from a few files from then on; whether any was.
    Silent when it works (the files it cannot use are left where they are, for the read that
    follows to name); where the directory cannot be written, one LegacyLayoutWarning says how to
    convert it, and it is read as it is."""
    counts: dict[Path, int] = {}
    for p in files:
        if is_per_run(p):
            counts[p.parent] = counts.get(p.parent, 0) + 1
    converted = False
    for directory, count in sorted(counts.items()):
        if count > PER_RUN_FILES:
            converted |= _convert(directory, count)
    return converted


def _convert(directory: Path, count: int) -> bool:
    """Compact ``directory`` (``count`` per-run part files), or warn that it is read as it is."""
    how = (f"{directory} holds {count} part files of one run each (an earlier version's layout), read one by "
           f"one (slower); `python -m harness compact {directory}` converts it once")
    if not os.access(directory, os.W_OK | os.X_OK):
        warnings.warn(f"{how} (it is not writable here)", LegacyLayoutWarning, stacklevel=5)
        return False
    try:
        loaded = retrying(directory, scan, part_files)
        replace = _replaceable(loaded)
        written, runs, _ = _rewrite(directory, loaded, replace, 1_000_000) if len(replace) > 1 else (0, 0, 0)
    except StoreWriteError as exc:
        warnings.warn(f"{how} ({exc})", LegacyLayoutWarning, stacklevel=5)
        return False
    log.info("converted %s: %d per-run part files compacted into %d (%d runs)", directory, count, written, runs)
    return True
