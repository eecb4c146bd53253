"""Parquet results: batched part files, atomic writes, newest wins, resume index, compaction,
load_results.

Layout. ``results/<sweep>/`` is a Parquet dataset of part files; a part file holds the rows
of one or more finished runs. The driver buffers finished runs (``PartBuffer``) and writes
them as one ``part-<ns>-<hex>.parquet`` when ``store.flush_runs`` runs are buffered,
``store.flush_seconds`` after the first of them finished, and when the sweep ends or is
interrupted (Ctrl-C, SIGTERM). Part files of earlier versions (``<run_id>.parquet``, one run
each) are read alike.

Atomic writes. Every file is written under a hidden temporary name
(``.<name>.pid<pid>.<rand>.tmp``) in the same directory, flushed and fsync'd, then renamed
into place with os.replace, so readers (pyarrow.dataset, pandas, load_results) never see a
partial file: dataset discovery ignores names starting with "." or "_". ``_sweep.yaml``
holds the resolved sweep config and versions. A driver killed with SIGKILL loses the runs
still in its buffer (finished within the last flush_seconds, at most flush_runs of them):
the resume index does not list them, so the rerun computes them again.

Newest wins. A run can be stored twice (sweep.rerun=incomplete or all, two sweeps computing
the same run, a compaction interrupted between writing and removing). Readers keep, per
directory and run_id, the rows of the newest file only. Files are ordered by the time in a
batched name (when it was written; a compacted file carries the newest time of the files it
replaces) or, for a per-run file, its modification time; then by name.

Compaction (``compact``, ``python -m harness compact``, and the sweep itself when it ends
with more than ``store.compact_files`` part files) rewrites a sweep's part files as a few
large ones: the new files are renamed into place first, then the old ones are removed. A
reader that meets a removed file, or sees a compacted file appear while it reads, reads
again; so it never misses a run, and duplicates left by a crash are resolved by newest wins.

Damage. A run counts as stored only if its rows load: the resume index reads part files as
load_table does, every column, and every page is written with a CRC that the index and the commands check.
Damaged part files (truncated, garbage, a bad page, a core column that does not convert) are
moved into ``<sweep>/_quarantine/`` (dataset discovery and every reader here ignore it) the
first time a command meets them (``quarantine=True``): each is named in one warning line, loads
stop meeting it, and a resume recomputes its runs.

Reading. load_table, the resume index and compaction open each part file once, reading its
footer and the columns needed together, and read several files at once (a thread per core,
Arrow releasing the GIL). Sweeps of earlier versions hold thousands of one-run files: there a
pyarrow.dataset scan spends more on its per-file machinery than on the rows (a scan, as
pandas.read_parquet does, costs about a third more CPU than reading the files directly).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import secrets
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.records import CORE_COLUMNS, CORE_SCHEMA, SCHEMA_VERSION

log = logging.getLogger(__name__)
PART_SUFFIX = ".parquet"


class StoreError(OSError):
    """The results directory cannot be used."""


class StoreWriteError(StoreError):
    """Writing a result file failed (disk full, read-only, quota): the sweep stops; every run
    stored before it is intact (atomic writes)."""


_CREATED: set[Path] = set()  # directories this process created (so it removes only those, when empty)


def make_sweep_dir(directory: Path) -> None:
    """Create the sweep's directory (before Ray starts), or raise StoreError naming it and why."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _CREATED.update(p.resolve() for p in missing)
    except OSError as exc:
        raise StoreError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreError(f"{directory} is not writable")


def remove_if_empty(directory: Path) -> bool:
    """Remove ``directory`` when it holds nothing, and the parents this process created for it
    when they are empty too (a sweep that wrote nothing leaves nothing)."""
    removed = False
    for p in (directory.resolve(), *directory.resolve().parents):
        if p != directory.resolve() and p not in _CREATED:
            break
        try:
            p.rmdir()  # only succeeds when empty
            removed = True
        except OSError:
            break
    return removed


class CorruptPartWarning(UserWarning):
    """A part file could not be read (or does not conform to the schema) and was skipped."""


class FutureSchemaWarning(UserWarning):
    """A part file was written by a newer harness (an unknown schema_version)."""


def sweep_dir(root: str | os.PathLike[str], sweep: str) -> Path:
    return Path(root) / sweep


def check_writable(directory: Path) -> None:
    """Fail early (before anything runs) if ``directory`` cannot be created or written.

    Creates nothing: it probes the nearest existing ancestor."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise StoreError(f"{probe} exists and is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StoreError(f"{probe} is not writable")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _atomic_write(path: Path, write: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_then_rename(path, write)
    except OSError as exc:
        raise StoreWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write_then_rename(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.{secrets.token_hex(4)}.", suffix=".tmp",
                               dir=path.parent)
    try:
        os.fchmod(fd, _MODE)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _write_parquet(table: pa.Table, fh: Any, **kw: Any) -> None:
    """A part file's bytes: zstd pages, each with its CRC (Parquet's page checksum), which the resume index
    and the commands verify, so a damaged page is found whatever column it is in, not decoded into other values."""
    pq.write_table(table, fh, compression="zstd", write_page_checksum=True, **kw)


def write_part(directory: Path, run_id: str, table: pa.Table) -> Path:
    """Write one run's rows as ``<run_id>.parquet``, atomically (StoreWriteError on failure): the
    layout of part files before batching, still read alike (a sweep writes ``PartBuffer`` batches)."""
    path = directory / f"{run_id}{PART_SUFFIX}"
    _atomic_write(path, lambda fh: _write_parquet(table, fh))
    return path


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda fh: fh.write(text.encode()))


PLAN = "_plan.json"  # the run ids the sweep's current definition plans (ignored by dataset discovery)


def write_plan(directory: Path, run_ids: Iterable[str]) -> None:
    """Record the run ids the sweep's current definition plans (its grid, its scenarios' checks and
    code; with adaptive seeds, the rounds planned so far), atomically: readers tell the runs of the
    current definition from runs an earlier definition left in the directory."""
    import json

    write_text(directory / PLAN, json.dumps({"run_ids": sorted(set(run_ids))}, separators=(",", ":")))


def read_plan(directory: str | os.PathLike[str]) -> set[str] | None:
    """The run ids ``write_plan`` recorded for the sweep directory, or None (none recorded: a sweep of
    an earlier version, or a root of several sweeps)."""
    import json

    try:
        doc = json.loads((Path(directory) / PLAN).read_text())
        ids = doc["run_ids"] if isinstance(doc, dict) else None
    except (OSError, ValueError, KeyError):
        return None
    return {str(i) for i in ids} if isinstance(ids, list) else None


# part-<write time, ns since the epoch, 19 digits>-<8 hex; a "c" first for a compacted file>.parquet
_BATCHED = re.compile(r"part-(\d{19})-(c?)[0-9a-f]{8}\.parquet")


def _batched_name(ns: int, compacted: bool = False) -> str:
    return f"part-{ns:019d}-{'c' if compacted else ''}{secrets.token_hex(4)}{PART_SUFFIX}"


def _is_compacted(path: Path) -> bool:
    m = _BATCHED.fullmatch(path.name)
    return bool(m and m.group(2))


def _schema_groups(tables: Sequence[pa.Table]) -> list[pa.Table]:
    """``tables`` as one table, or as one per schema when their extra columns cannot share one."""
    try:
        return [pa.concat_tables(tables, promote_options="permissive")]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        groups: dict[pa.Schema, list[pa.Table]] = {}
        for t in tables:
            groups.setdefault(t.schema, []).append(t)
        return [pa.concat_tables(g) for g in groups.values()]


def _widened(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with every column of ``schema`` (null where it has none, cast to the declared type),
    in the schema's order, then the columns only it has. A column whose values do not cast to the
    type declared for it keeps its own type (the scenario declared it wrongly; it is not lost)."""
    names = set(table.column_names)
    arrays, fields = [], []
    for f in schema:
        if f.name not in names:
            arrays.append(pa.nulls(table.num_rows, f.type))
            fields.append(f)
            continue
        column = table.column(f.name)
        if column.type != f.type and _widens(column.type, f.type):
            column = column.cast(f.type)
        elif column.type != f.type:  # never text to numbers or the like: the values are written as they are
            log.warning("column %r is %s, not the %s of the sweep's schema: written as it is", f.name, column.type,
                        f.type)
        arrays.append(column)
        fields.append(pa.field(f.name, column.type))
    for name in table.column_names:
        if name not in schema.names:
            arrays.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _widens(src: pa.DataType, dst: pa.DataType) -> bool:
    """Is casting ``src`` to ``dst`` a widening that changes no value: no values yet (null), an
    integer to a float or to a wider integer? (Text is never cast to a number: "0.10" stays "0.10".)"""
    if pa.types.is_null(src):
        return True
    if pa.types.is_integer(src) and pa.types.is_floating(dst):
        return True
    return pa.types.is_integer(src) and pa.types.is_integer(dst) and src.bit_width <= dst.bit_width


def write_batch(directory: Path, tables: Sequence[pa.Table], schema: pa.Schema | None = None) -> list[Path]:
    """Write the rows of several runs as one part file ``part-<ns>-<hex>.parquet``, atomically
    (StoreWriteError on failure); runs whose extra columns clash go to one file per schema. With
    ``schema`` (the sweep's: core and declared extra columns), every file has all its columns."""
    paths = []
    for table in _schema_groups(tables) if tables else []:
        if schema is not None:
            table = _widened(table, schema)
        path = directory / _batched_name(time.time_ns())
        _atomic_write(path, lambda fh, t=table: _write_parquet(t, fh))
        paths.append(path)
    return paths


class PartBuffer:
    """The driver's buffer of finished runs: ``add`` each run's rows as it finishes; they are
    written together as one part file (``write_batch``) once ``flush_runs`` runs are buffered or
    ``flush_seconds`` after the first of them was added (a timer thread, so a slow next run does
    not hold them back), and by ``close`` (the end of a ``with`` block, also on Ctrl-C and
    SIGTERM). Runs still buffered when the process is killed with SIGKILL are lost; the resume
    index does not list them, so they are computed again. A failed write raises StoreWriteError
    and keeps the runs buffered; a timed flush that failed is tried again by the next ``add`` or
    by ``close``, which raise if it fails again."""

    def __init__(self, directory: Path, flush_runs: int = 256, flush_seconds: float = 2.0,
                 schema: pa.Schema | None = None) -> None:
        if flush_runs < 1 or not flush_seconds >= 0:
            raise ValueError(f"flush_runs={flush_runs!r} must be >= 1 and flush_seconds={flush_seconds!r} >= 0")
        self.directory = directory
        # the sweep's schema: every file it writes has every column of it, and every column a run had
        # that the schema did not declare, from the file where it first appeared on
        self.schema = schema
        self.flush_runs = flush_runs
        self.flush_seconds = flush_seconds
        self.files: list[Path] = []  # part files written
        self.runs_written = 0
        self._tables: dict[str, pa.Table] = {}  # run_id -> rows, in the order they finished
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._error: BaseException | None = None  # a timed flush failed: the next add or close tries again

    def __len__(self) -> int:
        with self._lock:  # a flush under way (the file renamed into place, the runs not yet dropped) is waited for
            return len(self._tables)

    def __enter__(self) -> PartBuffer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def add(self, run_id: str, table: pa.Table) -> None:
        with self._lock:
            self._tables.pop(run_id, None)  # a run added twice: its last rows
            self._tables[run_id] = table
            if len(self._tables) >= self.flush_runs or self.flush_seconds == 0 or self._error is not None:
                self._error = None  # a timed flush failed: try again here, where a failure stops the sweep
                self._flush()
            elif self._timer is None:
                self._timer = threading.Timer(self.flush_seconds, self._timed_flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the buffered runs now (StoreWriteError on failure; the runs stay buffered)."""
        with self._lock:
            self._error = None  # flushing again retries whatever a timed flush could not write
            self._flush()

    def close(self) -> None:
        self.flush()

    def _flush(self) -> None:  # the lock is held
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._tables:
            return
        tables = list(self._tables.values())
        if self.schema is not None:
            for f in (t.schema.field(n) for t in tables for n in t.column_names):
                i = self.schema.get_field_index(f.name)
                if i < 0:  # an undeclared column joins the schema for the files that follow
                    self.schema = self.schema.append(f)
                elif pa.types.is_null(self.schema.field(i).type) and not pa.types.is_null(f.type):
                    self.schema = self.schema.set(i, f)  # its first values give it its type
        self.files += write_batch(self.directory, tables, self.schema)
        self.runs_written += len(self._tables)
        self._tables.clear()

    def _timed_flush(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # flushed (and maybe restarted) meanwhile
            self._timer = None
            try:
                self._flush()
            except BaseException as exc:  # tried again (and raised) by the next add or close
                self._error = exc


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete temporary files left by writers that died (a driver killed mid-write).
    Files of live processes (another sweep writing here now) are left alone."""
    removed = []
    if not directory.is_dir():
        return removed
    for p in directory.glob(".*.tmp"):
        m = re.search(r"\.pid(\d+)\.", p.name)  # .<file name>.pid<pid>.<token>.<random>.tmp
        pid = int(m.group(1)) if m else None
        if pid is None or not pid_alive(pid):
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


QUARANTINE = "_quarantine"  # where compact moves part files that cannot be read; no reader looks inside


def part_files(directory: Path) -> list[Path]:
    """Finished part files, in name order (temporary and metadata files excluded). A quarantine
    directory (``<sweep>/_quarantine``) holds none: the files compact moved there are never read."""
    if os.path.basename(os.path.abspath(directory)) == QUARANTINE:
        return []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [directory / n for n in sorted(n for n in names if n.endswith(PART_SUFFIX) and not n.startswith((".", "_")))]


def _listing(root: Path) -> list[Path]:
    """The part files of a sweep directory, or of every sweep directory under a root of several."""
    files = part_files(root)
    if files or not root.is_dir():
        return files
    return [p for d in sorted(root.iterdir()) if d.is_dir() for p in part_files(d)]


def _file_time(path: Path) -> int:
    """When a part file was written, for newest wins: the time in a batched name, else its mtime."""
    m = _BATCHED.fullmatch(path.name)
    if m:
        return int(m.group(1))
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


class _Vanished(Exception):
    """Part files were removed or replaced (a compaction) while being read: list and read again."""


_ATTEMPTS = 8


def _read_error(path: Path, exc: BaseException) -> None:
    """A read of ``path`` failed: if the file is gone (a compaction removed it), read everything again."""
    if not path.exists():
        raise _Vanished(str(path)) from exc


def _retrying(root: Path, read: Any, listing: Any = _listing) -> Any:
    """``read(files)`` of the part files under ``root``, listed and read again while a compaction
    replaces them: when one was removed before it was read, or a compacted file appeared while
    they were read (the files it replaces may have been removed before the listing reached them)."""
    for _ in range(_ATTEMPTS):
        files = listing(root)
        try:
            out = read(files)
        except _Vanished:
            continue
        seen = set(files)
        if not any(_is_compacted(p) and p not in seen for p in listing(root)):
            return out
    raise StoreError(f"{root}: part files kept being replaced while they were read (a compaction?); try again")


Piece = tuple[pa.Table, np.ndarray]  # rows, and for each row the index of the file it came from
Part = tuple[pa.Schema, pa.Table]  # a part file's schema (every column, from its footer) and the columns read
Pick = Callable[[pa.Schema], list[str]]  # the columns to read of a file of this schema

_THREADED_ROWS = 65_536  # a part file this large is also read with Arrow's threads (a column each): one compacted file
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _read_part(path: Path, pick: Pick | None = None, verify: bool = True) -> Part | Exception:
    """One part file opened once: its footer, then the columns ``pick`` chooses from its schema
    (every column without one), with Arrow's threads only for a large file (one thread reads a
    small one faster); or the exception reading it raised (returned, not raised: reads run in
    worker threads, and the caller decides what a failure means)."""
    try:
        with pa.OSFile(os.fspath(path)) as source:
            # pre-buffering only pays on object stores; with ``verify``, pages written with a CRC are checked against it
            reader = pq.ParquetFile(source, pre_buffer=False, page_checksum_verification=verify)
            threads = reader.metadata.num_rows >= _THREADED_ROWS
            if pick is None:
                table = reader.read(use_threads=threads)
                return table.schema.remove_metadata(), table
            schema = reader.schema_arrow.remove_metadata()
            return schema, reader.read(columns=pick(schema), use_threads=threads)
    except Exception as exc:
        return exc


_pool: tuple[int, ThreadPoolExecutor] | None = None  # (the pid that made it, the store's reader threads)
_pool_lock = threading.Lock()


def _readers() -> ThreadPoolExecutor:
    """The store's reader threads, a thread per core, kept between loads: starting and joining
    two threads costs about 2 ms, as much as reading a 2,000-run sweep's few part files. Made
    anew in a forked child, where the parent's threads do not exist."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(pa.cpu_count(), thread_name_prefix="harness-store"))
        return _pool[1]


def _in_threads(read: Callable[[Path], Any], files: Sequence[Path]) -> list[Any]:
    """``read(path)`` of every file, in order, on a thread per core. Each file is read by one thread
    (a footer and a few small column chunks: Arrow's threads would only add hand-offs), which for
    thousands of small part files costs a third less CPU than a pyarrow.dataset scan of them (its
    per-file scan machinery, measured) and keeps every core busy: Arrow releases the GIL while it
    reads."""
    workers = min(pa.cpu_count(), len(files))
    if workers <= 1:
        return [read(p) for p in files]
    size = -(-len(files) // (8 * workers))  # a few tasks per thread: balanced, little per-task overhead
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    readers = _readers()
    futures = [readers.submit(lambda chunk=chunk: [read(p) for p in chunk]) for chunk in chunks]
    try:
        return [out for future in futures for out in future.result()]
    except BaseException:  # Ctrl-C: the reads under way end (a chunk each), no more start
        for future in futures:
            future.cancel()
        wait(futures)
        raise


def _read_parts(files: Sequence[Path], pick: Pick | None = None, verify: bool = True) -> list[Part | Exception]:
    """``_read_part`` of every file, several at once (``_in_threads``)."""
    return _in_threads(lambda p: _read_part(p, pick, verify), files)


def _cast(column: Any, type: pa.DataType) -> Any:
    return column if column.type == type else column.cast(type)


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema``: cast where a type was promoted, null where missing."""
    names = set(table.column_names)
    return pa.Table.from_arrays(
        [_cast(table.column(f.name), f.type) if f.name in names else pa.nulls(table.num_rows, f.type) for f in schema],
        schema=schema)


def _aligned(items: Sequence[tuple[int, pa.Table]], schema: pa.Schema, on_error: Callable[[int, Exception], None]) \
        -> list[Piece]:
    """``items`` (file index, its rows) as pieces of ``schema``: the tables of one schema joined
    and aligned at once (one cast per column, not per file and column); a table whose columns do
    not cast is left out with ``on_error(i, exc)``."""
    groups: list[tuple[pa.Schema, list[int], list[pa.Table]]] = []  # Schema.equals: hashing one is slow
    for i, table in items:
        for known, members, tables in reversed(groups):
            if known.equals(table.schema):
                members.append(i)
                tables.append(table)
                break
        else:
            groups.append((table.schema, [i], [table]))
    pieces: list[Piece] = []
    for _, members, tables in groups:
        try:
            pieces.append((_align(pa.concat_tables(tables), schema),
                           np.repeat(np.asarray(members, np.int64), [t.num_rows for t in tables])))
            continue
        except _CAST_ERRORS:
            pass
        for i, table in zip(members, tables):  # find the table(s) that do not cast
            try:
                pieces.append((_align(table, schema), np.full(table.num_rows, i, np.int64)))
            except _CAST_ERRORS as exc:
                on_error(i, exc)
    return pieces


def _assemble(pieces: list[Piece], schema: pa.Schema) -> Piece:
    """The pieces as one table, its rows in file order."""
    pieces = [(t, f) for t, f in pieces if t.num_rows]
    if not pieces:
        return schema.empty_table(), np.zeros(0, np.int64)
    if len(pieces) == 1:
        table, fidx = pieces[0]
    else:
        table, fidx = pa.concat_tables([t for t, _ in pieces]), np.concatenate([f for _, f in pieces])
    if len(fidx) > 1 and (np.diff(fidx) < 0).any():  # several schemas: back in file order
        order = np.argsort(fidx, kind="stable")
        table, fidx = table.take(order), fidx[order]
    return table, fidx


def _newest(run_ids: Any, fidx: np.ndarray, files: Sequence[Path]) -> np.ndarray | None:
    """Newest wins: the rows to keep so that every run (per directory) keeps the rows of its
    newest file only; None when no run is stored in more than one file (keep every row). Only
    the files holding a run stored twice are ordered (a per-run file's time is a stat call)."""
    if not len(fidx) or fidx.min() == fidx.max():  # no rows, or all from one file
        return None
    ids = (run_ids.combine_chunks() if isinstance(run_ids, pa.ChunkedArray) else run_ids).fill_null("")
    same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, ~same | (fidx[1:] != fidx[:-1])])  # blocks of one run in one file
    if len(pc.unique(ids.take(starts))) == len(starts):  # the usual case, checked cheaply:
        return None  # every run in one block, so in one file
    codes = ids.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    dirs: dict[Path, int] = {}
    dir_of = np.array([dirs.setdefault(p.parent, len(dirs)) for p in files], np.int64)
    key = codes * len(dirs) + dir_of[fidx]
    n = int(key.max()) + 1
    lo, hi = np.full(n, len(files), np.int64), np.full(n, -1, np.int64)
    np.minimum.at(lo, key, fidx)
    np.maximum.at(hi, key, fidx)
    twice = (lo != hi)[key]  # the rows of runs stored in more than one file
    if not twice.any():
        return None
    involved = sorted(set(fidx[twice].tolist()), key=lambda i: (_file_time(files[i]), files[i].name))
    rank = np.full(len(files), -1, np.int64)
    rank[involved] = np.arange(len(involved))
    r = rank[fidx]
    best = np.full(n, -1, np.int64)
    np.maximum.at(best, key[twice], r[twice])
    return ~twice | (r == best[key])


_INDEX_SCHEMA = pa.schema([("run_id", pa.string()), ("status", pa.string())])


def _unreadable(path: Path, exc: BaseException) -> None:
    log.warning("unreadable part file %s: its runs will be recomputed (%s: %s)", path, type(exc).__name__, exc)


def _index(files: Sequence[Path]) -> tuple[pa.Table, np.ndarray]:
    """run_id and status of every row of ``files`` (those two columns of each file, several files
    at once) and each row's file index; a file that cannot be read is left out with a logged warning."""
    items = []
    for i, part in enumerate(_read_parts(files, lambda schema: [c for c in _INDEX_SCHEMA.names if c in schema.names])):
        if isinstance(part, Exception):
            _read_error(files[i], part)
            _unreadable(files[i], part)
        else:
            items.append((i, part[1]))
    return _assemble(_aligned(items, _INDEX_SCHEMA, lambda i, exc: _unreadable(files[i], exc)), _INDEX_SCHEMA)


def stored_run_ids(directory: Path, *, complete_only: bool = False, quarantine: bool = False) -> set[str]:
    """run_ids already stored (the resume index): a run counts as stored only if its rows load, so
    the index reads part files as load_table does, every column of every page (each page's CRC
    checked): a damaged page in any column, or a core column of a type that does not convert,
    leaves the file's runs out (a CorruptPartWarning names it) and a resume recomputes them. With
    ``quarantine`` (the commands), such a file is also moved into ``_quarantine/`` (see
    load_table). With complete_only, a run counts only if its rows in its newest file all have
    status ok (runs stored as error, crashed or timeout are recomputed)."""
    loaded = _retrying(Path(directory), _load, part_files)
    _settle(loaded, quarantine)
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
    def read(files: list[Path]) -> dict[str, Path]:
        table, fidx = _index(files)
        keep = _newest(table["run_id"], fidx, files)
        if keep is not None:
            table, fidx = table.filter(keep), fidx[keep]
        ids = table["run_id"].to_pylist()
        return {rid: files[i] for rid, i in zip(ids, fidx.tolist()) if rid is not None}

    return _retrying(Path(directory), read, part_files)


# every version up to this harness's (numbered 1, 2, 3, ...): each one's part files read with the columns they lack null
KNOWN_SCHEMA_VERSIONS: tuple[str, ...] = tuple(str(v) for v in range(1, int(SCHEMA_VERSION) + 1)) \
    if SCHEMA_VERSION.isdigit() else ("1", SCHEMA_VERSION)


def _skip(path: Path, why: str) -> None:
    """A part file left out of the load: never silently, a warning names it and says why."""
    warnings.warn(f"skipping part file {path}: {why}", CorruptPartWarning, stacklevel=3)


def _corrupt(exc: BaseException) -> bool:
    """Did a read fail on the file's content (a truncated file, garbage bytes, a bad page), not on
    the system (permission denied, an I/O error: errno set; memory), or on what this pyarrow cannot
    decode (a newer writer's encoding), which may well pass next time or elsewhere?"""
    if isinstance(exc, (MemoryError, pa.ArrowMemoryError, pa.ArrowNotImplementedError)):
        return False
    return not (isinstance(exc, OSError) and exc.errno is not None)


def _conforming(table: pa.Table) -> tuple[pa.Table | None, str]:
    """(``table`` with its core columns cast to the core types, ""), or (None, why) when a core
    column cannot be cast or ``run_id`` is missing."""
    if "run_id" not in table.column_names:
        return None, "it has no run_id column (not a harness part file?)"
    for f in CORE_SCHEMA:
        if f.name in table.column_names and table.schema.field(f.name).type != f.type:
            try:
                column = table.column(f.name).cast(f.type)
            except _CAST_ERRORS as exc:
                return None, (f"column {f.name!r} is {table.schema.field(f.name).type}, not {f.type} "
                              f"({type(exc).__name__})")
            table = table.set_column(table.schema.get_field_index(f.name), f.name, column)
    return table, ""


def _newer_schema(table: pa.Table) -> bool:
    """Does ``table`` hold rows of a schema_version this harness does not know (a newer harness wrote it)?"""
    if "schema_version" not in table.column_names:
        return False
    versions = set(pc.unique(table.column("schema_version").cast(pa.string())).drop_null().to_pylist())
    return bool(versions - set(KNOWN_SCHEMA_VERSIONS))


def _merge_extras(extras: dict[str, pa.Field], schema: pa.Schema) -> tuple[dict[str, pa.Field], list[str]]:
    """(``extras`` with the extra (non-core) columns of ``schema`` joined, the names of those whose type
    clashes with the type the earlier files gave them: text here, numbers there). A clashing column is
    left out of this file's rows, never the file: its runs still load (ColumnClashWarning names it)."""
    own = [f for f in schema if f.name not in CORE_COLUMNS]
    if not own:
        return extras, []
    try:
        merged = pa.unify_schemas([pa.schema(list(extras.values())), pa.schema(own)], promote_options="permissive")
        return {f.name: f for f in merged}, []
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    out, clash = dict(extras), []
    for f in own:
        try:
            one = pa.unify_schemas([pa.schema([out[f.name]] if f.name in out else []), pa.schema([f])],
                                   promote_options="permissive")
            out[f.name] = one.field(f.name)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            clash.append(f.name)
    return out, clash


class ColumnClashWarning(UserWarning):
    """A run-level column has another type in a part file than in the files before it: left out of its rows."""


@dataclass
class _Loaded:
    table: pa.Table
    fidx: np.ndarray  # each row's file, an index into files
    files: list[Path]
    skipped: dict[int, str]  # files left out, and why (named in a CorruptPartWarning by _settle)
    future: set[int]  # files with a schema_version newer than this harness
    damaged: set[int]  # of skipped: harness part files that cannot be read whole (the commands quarantine them)
    clashed: dict[int, list[str]] = field(default_factory=dict)  # file -> extra columns left out (type clash)


def _expression(filter: Any) -> tuple[Any, list[str]]:
    """A pyarrow.compute expression, or a dict of column -> value or values (None matches null,
    and NaN), as (expression, the dict's columns)."""
    if filter is None or isinstance(filter, pc.Expression):
        return filter, []
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter: {type(filter).__name__} is neither a pyarrow.compute expression nor a dict of "
                        "column -> value(s)")
    expr = None
    for column, want in filter.items():
        values = list(want) if isinstance(want, Iterable) and not isinstance(want, (str, bytes)) else [want]
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        null = [v is None or (isinstance(v, float) and math.isnan(v)) for v in values]
        rest = [v for v, n in zip(values, null) if not n]
        term = pc.field(column).isin(rest) if rest else None
        if any(null):
            term = pc.field(column).is_null(nan_is_null=True) | term if term is not None else \
                pc.field(column).is_null(nan_is_null=True)
        term = term if term is not None else pc.scalar(False)
        expr = term if expr is None else expr & term
    return expr, list(filter)


def _target(extras: Mapping[str, pa.Field]) -> pa.Schema:
    """The unified schema: the core columns, then the extra columns by name."""
    return pa.schema([*CORE_SCHEMA, *sorted(extras.values(), key=lambda f: f.name)])


def _odd(schema: pa.Schema) -> bool:
    """Has ``schema`` a core column of another type than the core one (to be checked and cast alone)?"""
    return any(schema.field(f.name).type != f.type for f in CORE_SCHEMA if f.name in schema.names)


def _projection(target: pa.Schema, columns: Sequence[str] | None, filter_columns: Sequence[str]) -> list[str]:
    names = target.names
    want = list(names) if columns is None else list(columns)
    known = set(names)
    for name in [*want, *filter_columns]:
        if name not in known:
            raise ValueError(f"no column {name!r} in the results (columns: {', '.join(names)})")
    return want


def _with_helpers(want: list[str]) -> list[str]:
    """The columns to read: those wanted, and those newest wins and the schema check need."""
    return want + [c for c in ("run_id", "schema_version") if c not in want]


class _Mentions:
    """Does an expression filter use a column? It does not say which columns it reads, but it
    names each (``str(expr)``): a column whose name occurs in it is read (at worst one too many).
    Each name is looked up once per load (the text of a long ``isin`` is long)."""

    def __init__(self, expr: Any) -> None:
        self.text = str(expr) if expr is not None else ""
        self.seen: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        hit = self.seen.get(name)
        if hit is None:
            hit = self.seen[name] = bool(self.text) and name in self.text
        return hit


def _matches(table: pa.Table, expr: Any, columns: Sequence[str]) -> np.ndarray:
    """Which rows of ``table`` the expression keeps (null counts as no), as pyarrow.dataset's filter
    would: evaluated on the ``columns`` it uses (joined into one chunk each: evaluating it per tiny
    chunk, a file each, is slow), or on every column if it uses another too. An expression on a
    column the table lacks raises ArrowInvalid; one that is not boolean, TypeError."""
    import pyarrow.dataset as ds

    try:
        hit = ds.dataset(table.select(list(columns)).combine_chunks()).to_table(columns={"hit": expr}).column("hit")
    except pa.ArrowInvalid:  # a column it uses that its text does not name as such: all of them
        hit = ds.dataset(table).to_table(columns={"hit": expr}).column("hit")
    if not pa.types.is_boolean(hit.type):
        raise TypeError(f"filter: the expression gives {hit.type} values, not booleans: {expr}")
    return pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _load(files: list[Path], columns: Sequence[str] | None = None, filter: Any = None, verify: bool = True) -> _Loaded:
    """Every usable part file of ``files`` read, newest wins and then ``filter`` applied (see
    load_table). Each file is opened once, its footer and the columns needed read together
    (several files at once, ``_read_parts``); then the files are checked by their schemas (the
    footers'), one schema at a time: a file lacking run_id is skipped, one with a core column of
    another type is checked and cast alone, and the others are joined per schema and cast to the
    unified schema in one go."""
    expr, filter_columns = _expression(filter)
    mentioned = _Mentions(expr if not filter_columns else None)  # a dict's columns are known
    wanted = None if columns is None else {*columns, "run_id", "schema_version", *filter_columns}
    pick = None if wanted is None else (lambda s: [n for n in s.names if n in wanted or mentioned(n)])
    parts = _read_parts(files, pick, verify)
    skipped: dict[int, str] = {}
    damaged: set[int] = set()
    clashed: dict[int, list[str]] = {}  # files whose clashing extra columns were left out of their rows

    def skip(i: int, why: str) -> None:
        skipped.setdefault(i, why)

    def failed(i: int, exc: Exception) -> None:
        _read_error(files[i], exc)
        skip(i, f"unreadable: {type(exc).__name__}: {' '.join(str(exc).split())}")
        if _corrupt(exc):
            damaged.add(i)

    groups: list[tuple[pa.Schema, list[int]]] = []  # files by schema (Schema.equals: hashing one is slow)
    for i, part in enumerate(parts):
        if isinstance(part, Exception):
            failed(i, part)
            continue
        for known, members in reversed(groups):
            if known.equals(part[0]):
                members.append(i)
                break
        else:
            groups.append((part[0], [i]))
    extras: dict[str, pa.Field] = {}
    tables: list[tuple[int, pa.Table]] = []
    for schema, members in groups:
        if "run_id" not in schema.names:
            for i in members:
                skip(i, "it has no run_id column (not a harness part file?)")
            continue
        if _odd(schema):  # a core column of another type: every core column checked and cast, file by file
            for i in members:
                whole = parts[i] if pick is None else _read_part(files[i], verify=verify)
                if isinstance(whole, Exception):
                    failed(i, whole)
                    continue
                table, why = _conforming(whole[1])
                if table is None:
                    skip(i, why)
                    if "run_id" in whole[1].column_names and not _newer_schema(whole[1]):
                        damaged.add(i)  # a harness part file whose rows cannot be loaded as this harness wrote them
                    continue
                extras, clash = _merge_extras(extras, table.schema)
                if clash:
                    clashed[i] = [f"{n} ({table.schema.field(n).type})" for n in clash]
                    table = table.drop_columns([n for n in clash if n in table.column_names])
                tables.append((i, table))
            continue
        extras, clash = _merge_extras(extras, schema)
        for i in members:
            table = parts[i][1]
            if clash:
                clashed[i] = [f"{n} ({schema.field(n).type})" for n in clash]
                table = table.drop_columns([n for n in clash if n in table.column_names])
            tables.append((i, table))
    target = _target(extras)
    want = _projection(target, columns, filter_columns)
    needed = {*_with_helpers(want), *filter_columns}
    layout = target if wanted is None else pa.schema([f for f in target if f.name in needed or mentioned(f.name)])
    table, fidx = _assemble(_aligned(sorted(tables, key=lambda t: t[0]), layout,
                                     lambda i, exc: skip(i, f"a column does not cast to the unified schema ({exc})")),
                            layout)
    uses = filter_columns or [n for n in layout.names if mentioned(n)] or ["run_id"]  # a constant: any column
    hit = _matches(table, expr, uses) if expr is not None and table.num_rows else None
    if hit is None:
        future = _future(table["schema_version"], fidx, files)
    else:  # as if the files had been read filtered
        future = _future(table["schema_version"].filter(pa.array(hit)), fidx[hit], files)
    keep = _newest(table["run_id"], fidx, files)  # judged by every row: the newest rows of a run may not match
    if hit is not None:
        keep = hit if keep is None else keep & hit
    if keep is not None:
        table, fidx = table.filter(pa.array(keep)), fidx[keep]
    return _Loaded(table if table.column_names == want else table.select(want), fidx, files, skipped, future,
                   damaged, clashed)


def _future(versions: Any, fidx: np.ndarray, files: Sequence[Path]) -> set[int]:
    """Files with rows of a schema_version this harness does not know, each named in a FutureSchemaWarning."""
    unknown = sorted(set(pc.unique(versions).drop_null().to_pylist()) - set(KNOWN_SCHEMA_VERSIONS))
    if not unknown:
        return set()
    hit = pc.is_in(versions, value_set=pa.array(unknown)).to_numpy(zero_copy_only=False)
    values = np.asarray(versions.to_pylist(), dtype=object)
    future = sorted(set(fidx[hit].tolist()))
    for i in future:
        theirs = sorted(set(values[hit & (fidx == i)].tolist()))
        warnings.warn(f"part file {files[i]} has schema_version {', '.join(theirs)}, newer than this harness reads "
                      f"({', '.join(KNOWN_SCHEMA_VERSIONS)}); upgrade harness to read every column",
                      FutureSchemaWarning, stacklevel=2)
    return set(future)


SETTLE_S = 2.0  # a part file modified this recently may still be being written in place (a copy): not moved


def _settled(path: Path) -> bool:
    """Is ``path`` left alone: not modified in the last SETTLE_S, and neither its size nor its
    modification time changing over a moment? A file a copy is still writing (cp -r, rsync
    --inplace) reads as truncated: it is named, its runs count as not stored, and it is not moved."""
    try:
        before = path.stat()
        if time.time() - before.st_mtime < SETTLE_S:
            return False
        time.sleep(0.2)  # only for a damaged file: rare
        after = path.stat()
    except OSError:
        return False
    return (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)


def _settle(loaded: _Loaded, quarantine: bool) -> list[Path]:
    """Name every part file the load left out in one CorruptPartWarning line; with ``quarantine``,
    move the damaged ones (content that cannot be read, a core column that does not convert) into
    their sweep's ``_quarantine/`` first, so that the next loads do not meet them again. Returns the
    files moved. A move that fails (a read-only results directory) leaves the file where it is, said
    in the same line: its runs count as not stored either way."""
    moved: list[Path] = []
    for i, names in sorted(loaded.clashed.items()):
        warnings.warn(f"part file {loaded.files[i]}: column(s) {', '.join(names)} of another type than in the part "
                      "files before it: left out of its rows (its runs are read; the scenario returns one column "
                      "with values of different types: declare it in extra_columns())", ColumnClashWarning,
                      stacklevel=3)
    for i, why in sorted(loaded.skipped.items()):
        path = loaded.files[i]
        if quarantine and i in loaded.damaged and _settled(path):
            try:
                [(_, dest)] = _quarantine(path.parent, [path]) or [(path, None)]
            except StoreWriteError as exc:
                _skip(path, f"{why}; its runs count as not stored ({exc})")
                continue
            if dest is not None:
                moved.append(path)
                _skip(path, f"{why}; moved to {dest}: its runs count as not stored, and a rerun of the sweep "
                            "recomputes them")
            continue
        unsettled = quarantine and i in loaded.damaged
        _skip(path, f"{why}" + ("; its runs count as not stored (a rerun of the sweep recomputes them)"
                                if i in loaded.damaged else "")
              + ("; not moved: it was modified a moment ago (still being written?)" if unsettled else ""))
    return moved


def load_table(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, filter: Any = None,
               quarantine: bool = False, verify: bool | None = None) -> pa.Table:
    """All finished runs under ``path`` (one sweep directory, or a root of several) as one Arrow
    table with a unified schema: core columns first, then every extra column any part file has
    (null where a run lacks it), each part file opened once (its footer and columns read
    together, several files at once). A run stored in several files keeps the rows of its
    newest file only (per directory; see the module docstring). ``columns`` selects columns;
    ``filter`` keeps the rows it matches: a pyarrow.compute expression (``pc.field("precision")
    == "fp16"``) or a dict of column -> value or list of values (``{"precision": ["fp16",
    "bf16"], "clip_value": None}``), applied after newest wins. A part file that cannot be read,
    lacks run_id, or has a core column of a type that does not cast is skipped with a
    CorruptPartWarning naming it; one of a newer schema_version gets a FutureSchemaWarning. With
    ``quarantine`` (what the harness's commands do), a damaged part file (unreadable content, a
    core column that does not convert) is moved into ``<sweep>/_quarantine/``, named in the
    warning, the first time it is met. ``verify`` (default: as ``quarantine``) checks every page
    against the CRC it was written with (a few percent of a load's time; pandas.read_parquet does
    not): the commands do, and so does the resume index, always."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    check = quarantine if verify is None else verify
    loaded = _retrying(root, lambda files: _load(files, columns, filter, check))
    _settle(loaded, quarantine)
    return loaded.table


def load_results(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, filter: Any = None,
                 quarantine: bool = False, verify: bool | None = None) -> Any:
    """Results as a pandas DataFrame, one row per (run, check); ``columns``, ``filter`` and
    ``quarantine`` as in load_table. Safe while a sweep is still writing, or being compacted: only
    finished part files are read, and a run stored twice counts once (its newest rows). Unreadable
    part files are skipped with a CorruptPartWarning naming the file."""
    table = load_table(path, columns=columns, filter=filter, quarantine=quarantine, verify=verify)
    if table.num_columns and table.num_rows < 64 * table.column(0).num_chunks:  # tiny chunks convert slowly
        table = table.combine_chunks()
    return table.to_pandas()


@dataclass(frozen=True)
class Compaction:
    directory: Path
    replaced: int  # part files read and removed
    written: int  # part files written in their place
    runs: int
    rows: int
    left: int  # part files left as they were: not conforming, or of a newer schema_version
    quarantined: int = 0  # unreadable part files moved into <directory>/_quarantine


def _quarantine(directory: Path, paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Move ``paths`` (damaged part files) into ``directory/_quarantine`` (created when first
    needed), where no reader looks: their runs are recomputed by a resume, and loads stop warning
    about them. A name taken there gets a suffix (``part-….1.parquet``): nothing there is ever
    overwritten (the name is claimed with O_EXCL, then the file renamed onto the claim). Returns
    (file, where it went) of each file moved (one already gone, moved by another command, is not)."""
    if not paths:
        return []
    into = directory / QUARANTINE
    moved = []
    for path in paths:
        try:
            into.mkdir(exist_ok=True)
            for n in itertools.count():
                claim = into / (path.name if n == 0 else f"{path.stem}.{n}{path.suffix}")
                try:
                    os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                    break
                except FileExistsError:
                    continue
            try:
                os.replace(path, claim)
            except BaseException:
                claim.unlink(missing_ok=True)
                raise
            moved.append((path, claim))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreWriteError(f"cannot move damaged part file {path} into {into}: {exc.strerror or exc}") \
                from exc
    return moved


def compact(directory: str | os.PathLike[str], *, max_rows: int = 1_000_000) -> Compaction:
    """Rewrite the part files of one sweep directory as few large ones (``max_rows`` rows each at
    most, a run never split), one row set per run (newest wins). The new files are written and
    renamed into place first, then the old ones removed: a reader at any moment sees every run
    (at worst twice, resolved by newest wins), and a crash leaves at most duplicates. Damaged part
    files (a truncated file, garbage, a bad page, a core column that does not convert) are moved
    into ``<directory>/_quarantine`` (kept for a look, never read: the next loads do not warn
    about them again and a resume recomputes their runs); a read that failed on the system
    (permission denied, an I/O error) moves nothing, and a move that fails is named in the
    warning. Part files without run_id (not a harness part file) or of a newer schema_version
    (valid for a newer harness) are left as they are (with the warnings load_table gives).
    StoreWriteError if a file cannot be written (those written are removed again) or an old one
    removed."""
    root = Path(directory)
    loaded = _retrying(root, _load, part_files)
    files = loaded.files
    quarantined = len(_settle(loaded, quarantine=True))
    # a file whose clashing column was left out of the rows read is kept whole: compacting it would drop the column
    replace = [i for i in range(len(files)) if i not in loaded.skipped and i not in loaded.future
               and i not in loaded.clashed]
    left = len(files) - len(replace) - len(loaded.damaged)
    table, fidx = loaded.table, loaded.fidx
    if len(replace) < 2:
        return Compaction(root, 0, 0, 0, 0, left, quarantined)
    if len(replace) < len(files):
        mask = np.isin(fidx, replace)
        table = table.filter(mask)
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
    at = max(_file_time(files[i]) for i in replace)
    written: list[Path] = []
    try:
        for chunk in chunks:
            path = root / _batched_name(at, compacted=True)
            _atomic_write(path, lambda fh, t=chunk: _write_parquet(t, fh, row_group_size=65536))
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
    return Compaction(root, len(replace), len(written), len(set(ids.tolist())), table.num_rows, left, quarantined)
