"""Parquet results: one part file per finished run, atomic writes, resume index, load_results.

``results/<sweep>/<run_id>.parquet`` is written under a hidden temporary name
(``.<run_id>.parquet.pid<pid>.<rand>.tmp``) in the same directory, flushed and fsync'd, then
renamed into place with os.replace, so readers (pyarrow.dataset, pandas,
load_results) never see a partial file: dataset discovery ignores names starting
with "." or "_". ``_sweep.yaml`` holds the resolved sweep config and versions.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.records import CORE_COLUMNS, CORE_SCHEMA

log = logging.getLogger(__name__)
PART_SUFFIX = ".parquet"


class StoreError(OSError):
    """The results directory cannot be used."""


class CorruptPartWarning(UserWarning):
    """A part file could not be read and was skipped."""


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
    """Write one run's rows as ``<run_id>.parquet``, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run_id}{PART_SUFFIX}"
    _atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))
    return path


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda fh: fh.write(text.encode()))


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete temporary files left by writers that died (a driver killed mid-write).
    Files of live processes (another sweep writing here now) are left alone."""
    removed = []
    if not directory.is_dir():
        return removed
    for p in directory.glob(".*.tmp"):
        m = re.search(r"\.pid(\d+)\.", p.name)  # .<file name>.pid<pid>.<token>.<random>.tmp
        pid = int(m.group(1)) if m else None
        if pid is None or not _alive(pid):
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def part_files(directory: Path) -> list[Path]:
    """Finished part files, in name order (temporary and metadata files excluded)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.name.endswith(PART_SUFFIX) and not p.name.startswith((".", "_")))


def _readable(path: Path) -> bool:
    try:
        pq.read_metadata(path)
        return True
    except Exception:
        return False


def stored_run_ids(directory: Path, *, complete_only: bool = False) -> set[str]:
    """run_ids already stored. A part file whose footer is unreadable does not count
    (its run is recomputed and the file replaced). With complete_only, runs stored
    with a status other than ok (error, crashed, timeout) do not count either."""
    ids = set()
    for p in part_files(directory):
        if not _readable(p):
            log.warning("unreadable part file %s: its run will be recomputed", p)
            continue
        if complete_only:
            try:
                status = pq.read_table(p, columns=["status"]).column("status").to_pylist()
            except Exception:
                continue
            if any(s != "ok" for s in status):
                continue
        ids.add(p.name[: -len(PART_SUFFIX)])
    return ids


def _read_parts(paths: Iterable[Path]) -> list[pa.Table]:
    tables = []
    for p in paths:
        try:
            tables.append(pq.read_table(p))
        except Exception as exc:  # skipped, never silently: a warning names the file
            warnings.warn(f"skipping unreadable part file {p}: {type(exc).__name__}: {exc}",
                          CorruptPartWarning, stacklevel=3)
    return tables


def load_table(path: str | os.PathLike[str]) -> pa.Table:
    """All finished runs under ``path`` (one sweep directory, or a root of several) as
    one Arrow table with a unified schema: core columns first, then every extra column
    any part file has (null where a run lacks it)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    paths = part_files(root) if part_files(root) else [p for d in sorted(root.iterdir()) if d.is_dir()
                                                       for p in part_files(d)]
    tables = _read_parts(paths)
    if not tables:
        return CORE_SCHEMA.empty_table()
    schema = pa.unify_schemas([CORE_SCHEMA, *(t.schema for t in tables)], promote_options="permissive")
    extras = [f for f in schema if f.name not in CORE_COLUMNS]
    schema = pa.schema([*CORE_SCHEMA, *sorted(extras, key=lambda f: f.name)])
    aligned = []
    for t in tables:
        cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
                else pa.nulls(t.num_rows, f.type) for f in schema]
        aligned.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(aligned)


def load_results(path: str | os.PathLike[str]) -> Any:
    """Results as a pandas DataFrame, one row per (run, check). Safe while a sweep is
    still writing: only finished part files are read. Unreadable part files are
    skipped with a CorruptPartWarning naming the file."""
    return load_table(path).to_pandas()
