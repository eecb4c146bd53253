"""Writing results: atomic writes, the driver's buffer of finished runs (``PartBuffer``), batched
part files, the plan file. Every file is written under a hidden temporary name
(``.<name>.pid<pid>.<rand>.tmp``) in the same directory, flushed and fsync'd, then renamed into
place with os.replace, so readers never see a partial file: dataset discovery ignores names
starting with "." or "_". A driver killed with SIGKILL loses the runs still in its buffer
(finished within the last flush_seconds, at most flush_runs of them): the resume index does not
list them, so the rerun computes them again."""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.store.layout import PART_SUFFIX, PLAN, StoreError, StoreWriteError, batched_name

log = logging.getLogger(__name__)

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


def atomic_write(path: Path, write: Any) -> None:
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


def write_parquet(table: pa.Table, fh: Any, **kw: Any) -> None:
    """A part file's bytes: zstd pages, each with its CRC (Parquet's page checksum), which the resume index
    and the commands verify, so a damaged page is found whatever column it is in, not decoded into other values."""
    pq.write_table(table, fh, compression="zstd", write_page_checksum=True, **kw)


def write_part(directory: Path, run_id: str, table: pa.Table) -> Path:
    """Write one run's rows as ``<run_id>.parquet``, atomically (StoreWriteError on failure): the
    layout of part files before batching, still read alike (a sweep writes ``PartBuffer`` batches)."""
    path = directory / f"{run_id}{PART_SUFFIX}"
    atomic_write(path, lambda fh: write_parquet(table, fh))
    return path


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))




def write_plan(directory: Path, run_ids: Iterable[str]) -> None:
    """Record the run ids the sweep's current definition plans (its grid, its scenarios' checks and
    code; with adaptive seeds, the rounds planned so far), atomically: readers tell the runs of the
    current definition from runs an earlier definition left in the directory."""
    import json

    write_text(directory / PLAN, json.dumps({"run_ids": sorted(set(run_ids))}, separators=(",", ":")))


def read_sweep_doc(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The sweep directory's ``_sweep.yaml`` (its config, command, planned runs, versions, ...) as a
    dict; {} where there is none or it cannot be read (a root of several sweeps, an older version)."""
    import yaml

    try:
        doc = yaml.safe_load((Path(directory) / "_sweep.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


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
        path = directory / batched_name(time.time_ns())
        atomic_write(path, lambda fh, t=table: write_parquet(t, fh))
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
