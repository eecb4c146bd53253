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
"""

from __future__ import annotations

import functools
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


def write_part(directory: Path, run_id: str, table: pa.Table) -> Path:
    """Write one run's rows as ``<run_id>.parquet``, atomically (StoreWriteError on failure): the
    layout of part files before batching, still read alike (a sweep writes ``PartBuffer`` batches)."""
    path = directory / f"{run_id}{PART_SUFFIX}"
    _atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))
    return path


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda fh: fh.write(text.encode()))


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


def write_batch(directory: Path, tables: Sequence[pa.Table]) -> list[Path]:
    """Write the rows of several runs as one part file ``part-<ns>-<hex>.parquet``, atomically
    (StoreWriteError on failure); runs whose extra columns clash go to one file per schema."""
    paths = []
    for table in _schema_groups(tables) if tables else []:
        path = directory / _batched_name(time.time_ns())
        _atomic_write(path, lambda fh, t=table: pq.write_table(t, fh, compression="zstd"))
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

    def __init__(self, directory: Path, flush_runs: int = 256, flush_seconds: float = 2.0) -> None:
        if flush_runs < 1 or not flush_seconds >= 0:
            raise ValueError(f"flush_runs={flush_runs!r} must be >= 1 and flush_seconds={flush_seconds!r} >= 0")
        self.directory = directory
        self.flush_runs = flush_runs
        self.flush_seconds = flush_seconds
        self.files: list[Path] = []  # part files written
        self.runs_written = 0
        self._tables: dict[str, pa.Table] = {}  # run_id -> rows, in the order they finished
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._error: BaseException | None = None  # a timed flush failed: the next add or close tries again

    def __len__(self) -> int:
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
        self.files += write_batch(self.directory, list(self._tables.values()))
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


def part_files(directory: Path) -> list[Path]:
    """Finished part files, in name order (temporary and metadata files excluded)."""
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


@functools.cache
def _parquet() -> tuple[Any, Any]:
    """pyarrow.dataset's Parquet format and the local filesystem (imported when first read: a
    third of a second that the CLI's start need not pay). Without pre-buffering, which coalesces
    reads for object stores and only costs time on a local disk (5-15% of a load, measured)."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    options = ds.ParquetFragmentScanOptions(pre_buffer=False)
    return ds.ParquetFileFormat(default_fragment_scan_options=options), pafs.LocalFileSystem()


def _fragment(path: Path) -> Any:
    fmt, fs = _parquet()
    return fmt.make_fragment(os.path.abspath(path), filesystem=fs)


def _dataset(fragments: Sequence[Any], schema: pa.Schema) -> Any:
    import pyarrow.dataset as ds

    return ds.FileSystemDataset(list(fragments), schema, *_parquet())


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


def _scan(files: Sequence[Path], fragments: Sequence[Any], which: Sequence[int], schema: pa.Schema,
          columns: list[str], expr: Any, on_error: Any) -> tuple[list[Piece], pa.Schema]:
    """The rows of ``files[i] for i in which`` read as one dataset of ``schema`` (a file's missing
    columns null, types cast): ``columns`` of the rows matching ``expr``, in file order. If the
    pass fails, the files are read one by one and ``on_error(i, exc)`` is called for each that
    fails. Bad ``columns`` or ``expr`` raise before anything is read."""
    def dataset(members: Sequence[int]) -> Any:
        return _dataset([fragments[i] for i in members], schema)

    scanner = dataset(which).scanner(columns=columns, filter=expr, use_threads=True)
    try:
        return [_in_order(scanner, fragments, which, expr)], scanner.projected_schema
    except Exception as exc:
        for i in which:
            _read_error(files[i], exc)
    out: list[Piece] = []
    for i in which:  # one pass failed: find the file(s) it failed on
        try:
            out.append(_in_order(dataset([i]).scanner(columns=columns, filter=expr), fragments, [i], expr))
        except Exception as exc:
            _read_error(files[i], exc)
            on_error(i, exc)
    return out, scanner.projected_schema


def _in_order(scanner: Any, fragments: Sequence[Any], which: Sequence[int], expr: Any) -> Piece:
    """The scanner's rows, in file order, and each row's file index: unfiltered, from the files'
    row counts (in the footers the scan read); filtered, from the file each batch came from."""
    if expr is None:
        table = scanner.to_table()
        counts = [fragments[i].metadata.num_rows for i in which]
        if sum(counts) == table.num_rows:
            return table, np.repeat(np.asarray(which, np.int64), counts)
    where = {fragments[i].path: i for i in which}
    tagged = [(t.record_batch, where[t.fragment.path]) for t in scanner.scan_batches()]
    return (pa.Table.from_batches([b for b, _ in tagged], schema=scanner.projected_schema),
            np.repeat(np.array([i for _, i in tagged], np.int64), [b.num_rows for b, _ in tagged]))


def _assemble(pieces: list[Piece], schema: pa.Schema) -> Piece:
    pieces = [(t, f) for t, f in pieces if t.num_rows]
    if len(pieces) == 1:
        return pieces[0]
    if not pieces:
        return schema.empty_table(), np.zeros(0, np.int64)
    return pa.concat_tables([t for t, _ in pieces]), np.concatenate([f for _, f in pieces])


def _newest(run_ids: Any, fidx: np.ndarray, files: Sequence[Path]) -> np.ndarray | None:
    """Newest wins: the rows to keep so that every run (per directory) keeps the rows of its
    newest file only; None when no run is stored in more than one file (keep every row)."""
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
    if (lo == hi)[key].all():
        return None
    order = sorted(range(len(files)), key=lambda i: (_file_time(files[i]), files[i].name))
    rank = np.empty(len(files), np.int64)
    rank[order] = np.arange(len(files))
    r = rank[fidx]
    best = np.full(n, -1, np.int64)
    np.maximum.at(best, key, r)
    return r == best[key]


_INDEX_SCHEMA = pa.schema([("run_id", pa.string()), ("status", pa.string())])
_RUN_ID_STEM = re.compile(r"[0-9a-f]{16}")  # a per-run part file of an earlier version: <run_id>.parquet


def _unreadable(path: Path, exc: BaseException) -> None:
    log.warning("unreadable part file %s: its runs will be recomputed (%s: %s)", path, type(exc).__name__, exc)


def _index(files: Sequence[Path]) -> tuple[pa.Table, np.ndarray]:
    """run_id and status of every row of ``files`` (one pass over those two columns) and each
    row's file index; a file that cannot be read is left out with a logged warning."""
    pieces, schema = _scan(files, [_fragment(p) for p in files], range(len(files)), _INDEX_SCHEMA,
                           _INDEX_SCHEMA.names, None, lambda i, exc: _unreadable(files[i], exc))
    return _assemble(pieces, schema)


def stored_run_ids(directory: Path, *, complete_only: bool = False) -> set[str]:
    """run_ids already stored (the resume index). A per-run part file of an earlier version
    (``<run_id>.parquet``) counts by its name once its footer reads; the other part files are
    read in one pass over their run_id and status columns. A part file that cannot be read does
    not count (a logged warning names it; its runs are recomputed). With complete_only, a run
    counts only if its rows in its newest file all have status ok (runs stored as error,
    crashed or timeout are recomputed)."""
    return _retrying(Path(directory), lambda files: _stored_run_ids(files, complete_only), part_files)


def _stored_run_ids(files: list[Path], complete_only: bool) -> set[str]:
    ids: set[str] = set()
    per_run = set() if complete_only else {p for p in files if _RUN_ID_STEM.fullmatch(p.stem)}
    for p in sorted(per_run):
        try:
            pq.read_metadata(p)
        except Exception as exc:
            _read_error(p, exc)
            _unreadable(p, exc)
            continue
        ids.add(p.stem)
    rest = [p for p in files if p not in per_run]
    if not rest:
        return ids
    table, fidx = _index(rest)
    if complete_only:
        keep = _newest(table["run_id"], fidx, rest)
        if keep is not None:
            table = table.filter(keep)
        ok = pc.fill_null(pc.equal(table["status"], "ok"), False)
        incomplete = set(pc.unique(table.filter(pc.invert(ok))["run_id"]).to_pylist())
        return ids | (set(pc.unique(table["run_id"]).drop_null().to_pylist()) - incomplete)
    return ids | set(pc.unique(table["run_id"]).drop_null().to_pylist())


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
    warnings.warn(f"skipping part file {path}: {why}", CorruptPartWarning, stacklevel=2)


def _conforming(path: Path, table: pa.Table) -> pa.Table | None:
    """``table`` with its core columns cast to the core types, or None (with a warning naming
    the file) when a core column cannot be cast or ``run_id`` is missing."""
    if "run_id" not in table.column_names:
        _skip(path, "it has no run_id column (not a harness part file?)")
        return None
    for f in CORE_SCHEMA:
        if f.name in table.column_names and table.schema.field(f.name).type != f.type:
            try:
                column = table.column(f.name).cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                _skip(path, f"column {f.name!r} is {table.schema.field(f.name).type}, not {f.type} "
                            f"({type(exc).__name__})")
                return None
            table = table.set_column(table.schema.get_field_index(f.name), f.name, column)
    return table


def _physical_schemas(files: Sequence[Path], fragments: Sequence[Any]) -> list[pa.Schema | Exception]:
    """Each file's schema, from its footer (kept by the fragment for the read that follows)."""
    def one(i: int) -> pa.Schema | Exception:
        try:
            return fragments[i].physical_schema.remove_metadata()
        except Exception as exc:
            _read_error(files[i], exc)
            return exc

    return [one(i) for i in range(len(files))]  # threads do not help: the footer parse holds the GIL


def _merge_extras(extras: dict[str, pa.Field], schema: pa.Schema) -> dict[str, pa.Field]:
    """``extras`` with the extra (non-core) columns of ``schema`` joined (ArrowInvalid/TypeError on a clash)."""
    own = [f for f in schema if f.name not in CORE_COLUMNS]
    if not own:
        return extras
    merged = pa.unify_schemas([pa.schema(list(extras.values())), pa.schema(own)], promote_options="permissive")
    return {f.name: f for f in merged}


@dataclass
class _Loaded:
    table: pa.Table
    fidx: np.ndarray  # each row's file, an index into files
    files: list[Path]
    skipped: set[int]  # files left out, with a CorruptPartWarning
    future: set[int]  # files with a schema_version newer than this harness


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


def _quick(files: list[Path], fragments: list[Any], columns: Sequence[str] | None, expr: Any,
           filter_columns: list[str]) -> tuple[Piece, dict[str, pa.Field], list[int]] | None:
    """The usual case in one pass, no footer read twice: every file scanned with the first file's
    schema; then each file's schema (from the footer the scan read) checked against it. Returns
    the rows of the files it covers (all their columns present in it, with its types), its
    extra columns and the files it does not cover; None where it does not apply (the first file
    unreadable or odd, a column asked for that it lacks, any read error): read carefully."""
    if not files:
        return None
    try:
        first = fragments[0].physical_schema
    except Exception as exc:
        _read_error(files[0], exc)
        return None
    if "run_id" not in first.names or _odd(first):
        return None
    extras = {f.name: f for f in first if f.name not in CORE_COLUMNS}
    target = _target(extras)
    types = {f.name: f.type for f in target}
    if any(c not in types for c in [*(columns or ()), *filter_columns]):
        return None
    read = _with_helpers(_projection(target, columns, filter_columns))
    scanner = _dataset(fragments, target).scanner(columns=None if read == target.names else read, filter=expr,
                                                  use_threads=True)
    try:
        table, fidx = _in_order(scanner, fragments, range(len(fragments)), expr)
    except Exception as exc:
        for p in files:
            _read_error(p, exc)
        return None
    seen: list[tuple[pa.Schema, bool]] = []  # distinct schemas (Schema.equals: hashing one is slow)
    covered, rest = set(), []
    for i, fragment in enumerate(fragments):
        try:
            schema = fragment.physical_schema  # kept from the scan's read of the footer
        except Exception:
            rest.append(i)
            continue
        fits = next((ok for known, ok in reversed(seen) if known.equals(schema)), None)
        if fits is None:
            fits = "run_id" in schema.names and all(types.get(f.name) == f.type for f in schema)
            seen.append((schema, fits))
        if fits:
            covered.add(i)
        else:
            rest.append(i)
    if rest:
        keep = np.isin(fidx, sorted(covered))
        table, fidx = table.filter(keep), fidx[keep]
    return (table, fidx), extras, rest


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema``: cast where a type was promoted, null where missing."""
    names = table.column_names
    return pa.Table.from_arrays(
        [table.column(f.name).cast(f.type) if f.name in names else pa.nulls(table.num_rows, f.type) for f in schema],
        schema=schema)


def _load(files: list[Path], columns: Sequence[str] | None = None, filter: Any = None) -> _Loaded:
    """Every usable part file of ``files`` read in one pass, newest wins applied (see load_table)."""
    expr, filter_columns = _expression(filter)
    fragments = [_fragment(p) for p in files]
    skipped: set[int] = set()

    def skip(i: int, why: str) -> None:
        _skip(files[i], why)
        skipped.add(i)

    quick = _quick(files, fragments, columns, expr, filter_columns)
    done, extras, rest = quick if quick is not None else (None, {}, list(range(len(files))))
    # the files the quick pass did not cover, carefully: footers first, grouped by schema
    groups: list[tuple[pa.Schema, list[int]]] = []  # files by schema (Schema.equals: hashing one is slow)
    for i, schema in zip(rest, _physical_schemas([files[i] for i in rest], [fragments[i] for i in rest])):
        if isinstance(schema, Exception):
            skip(i, f"unreadable: {type(schema).__name__}: {schema}")
            continue
        for known, members in reversed(groups):
            if known.equals(schema):
                members.append(i)
                break
        else:
            groups.append((schema, [i]))
    fast: list[int] = []  # read in one pass: their core columns have the core types
    odd: list[tuple[int, pa.Table]] = []  # a core column of another type: read, checked and cast alone
    for schema, members in groups:
        if "run_id" not in schema.names:
            for i in members:
                skip(i, "it has no run_id column (not a harness part file?)")
            continue
        if _odd(schema):
            for i in members:
                try:
                    table = pq.read_table(files[i])
                except Exception as exc:
                    _read_error(files[i], exc)
                    skip(i, f"unreadable: {type(exc).__name__}: {exc}")
                    continue
                table = _conforming(files[i], table)
                if table is None:
                    skipped.add(i)
                    continue
                try:
                    extras = _merge_extras(extras, table.schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    skip(i, f"an extra column's type clashes with other part files ({exc})")
                    continue
                odd.append((i, table))
            continue
        try:
            extras = _merge_extras(extras, schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            for i in members:
                skip(i, f"an extra column's type clashes with other part files ({exc})")
            continue
        fast += members
    target = _target(extras)
    want = _projection(target, columns, filter_columns)
    read = _with_helpers(want)
    pieces: list[Piece] = []
    schema = pa.schema([target.field(c) for c in read])
    if fast:
        pieces, schema = _scan(files, fragments, sorted(fast), target, read, expr,
                               lambda i, exc: skip(i, f"unreadable: {type(exc).__name__}: {exc}"))
    if done is not None:
        table, fidx = done
        pieces.append((table if table.schema.equals(schema) else _align(table, schema), fidx))  # fewer extras?
    for i, table in odd:
        try:
            cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
                    else pa.nulls(table.num_rows, f.type) for f in target]
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            skip(i, f"a column does not cast to the unified schema ({exc})")
            continue
        table = pa.Table.from_arrays(cols, schema=target)
        table = (table.filter(expr) if expr is not None else table).select(read)
        pieces.append((table, np.full(table.num_rows, i, np.int64)))
    table, fidx = _assemble(pieces, schema)
    if len(fidx) > 1 and (np.diff(fidx) < 0).any():  # back in file order
        order = np.argsort(fidx, kind="stable")
        table, fidx = table.take(order), fidx[order]
    future = _future(table["schema_version"], fidx, files)
    used = sorted(set(range(len(files))) - skipped)
    if expr is None:
        keep = _newest(table["run_id"], fidx, files)
    else:  # the newest rows of a run may not match the filter: which files are newest comes from all rows
        keep = _stale_rows_dropped(table["run_id"], fidx, files, used)
    if keep is not None:
        table, fidx = table.filter(keep), fidx[keep]
    return _Loaded(table if table.column_names == want else table.select(want), fidx, files, skipped, future)


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


def _stale_rows_dropped(run_ids: Any, fidx: np.ndarray, files: list[Path], used: list[int]) -> np.ndarray | None:
    """For a filtered read: the rows to keep, judged by every row of the files read (an index pass)."""
    table, local = _index([files[i] for i in used])
    everywhere = np.asarray(used, np.int64)[local]
    keep = _newest(table["run_id"], everywhere, files)
    if keep is None:
        return None
    mask = np.ones(len(fidx), bool)
    stale = table.filter(pa.array(~keep))
    stale_files = everywhere[~keep]
    for i in sorted(set(stale_files.tolist())):
        ids = pc.unique(stale["run_id"].filter(pa.array(stale_files == i)))
        mask &= ~((fidx == i) & pc.fill_null(pc.is_in(run_ids, value_set=ids), False).to_numpy(zero_copy_only=False))
    return mask


def load_table(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, filter: Any = None) -> pa.Table:
    """All finished runs under ``path`` (one sweep directory, or a root of several) as one Arrow
    table with a unified schema: core columns first, then every extra column any part file has
    (null where a run lacks it), read in one pass (footers first, then one dataset scan). A run
    stored in several files keeps the rows of its newest file only (per directory; see the
    module docstring). ``columns`` selects columns; ``filter`` keeps the rows it matches: a
    pyarrow.compute expression (``pc.field("precision") == "fp16"``) or a dict of column ->
    value or list of values (``{"precision": ["fp16", "bf16"], "clip_value": None}``), applied
    after newest wins. A part file that cannot be read, lacks run_id, or has a core column of a
    type that does not cast is skipped with a CorruptPartWarning naming it; one of a newer
    schema_version gets a FutureSchemaWarning."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    return _retrying(root, lambda files: _load(files, columns, filter)).table


def load_results(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, filter: Any = None) -> Any:
    """Results as a pandas DataFrame, one row per (run, check); ``columns`` and ``filter`` as in
    load_table. Safe while a sweep is still writing, or being compacted: only finished part
    files are read, and a run stored twice counts once (its newest rows). Unreadable part
    files are skipped with a CorruptPartWarning naming the file."""
    table = load_table(path, columns=columns, filter=filter)
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
    left: int  # part files left as they were: unreadable, not conforming, or of a newer schema_version


def compact(directory: str | os.PathLike[str], *, max_rows: int = 1_000_000) -> Compaction:
    """Rewrite the part files of one sweep directory as few large ones (``max_rows`` rows each at
    most, a run never split), one row set per run (newest wins). The new files are written and
    renamed into place first, then the old ones removed: a reader at any moment sees every run
    (at worst twice, resolved by newest wins), and a crash leaves at most duplicates. Part files
    that cannot be read, do not conform or are of a newer schema_version are left as they are
    (with the warnings load_table gives). StoreWriteError if a file cannot be written (those
    written are removed again) or an old one removed."""
    root = Path(directory)
    loaded = _retrying(root, _load, part_files)
    files = loaded.files
    replace = [i for i in range(len(files)) if i not in loaded.skipped and i not in loaded.future]
    left = len(files) - len(replace)
    table, fidx = loaded.table, loaded.fidx
    if len(replace) < 2:
        return Compaction(root, 0, 0, 0, 0, left)
    if left:
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
            _atomic_write(path, lambda fh, t=chunk: pq.write_table(t, fh, compression="zstd", row_group_size=65536))
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
    return Compaction(root, len(replace), len(written), len(set(ids.tolist())), table.num_rows, left)
