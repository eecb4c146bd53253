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
    """Write one run's rows as ``<run_id>.parquet``, atomically (StoreWriteError on failure)."""
    path = directory / f"{run_id}{PART_SUFFIX}"
    _atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))
    return path


def write_text(path: Path, text: str) -> None:
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


KNOWN_SCHEMA_VERSIONS: tuple[str, ...] = ("1", "2", SCHEMA_VERSION)


def _skip(path: Path, why: str) -> None:
    """A part file left out of the load: never silently, a warning names it and says why."""
    warnings.warn(f"skipping part file {path}: {why}", CorruptPartWarning, stacklevel=4)


def _conforming(path: Path, table: pa.Table) -> pa.Table | None:
    """``table`` with its core columns cast to the core types, or None (with a warning naming
    the file) when a core column cannot be cast or ``run_id`` is missing. A schema_version this
    harness does not know is read as far as it conforms, with a warning."""
    if "run_id" not in table.column_names:
        _skip(path, "it has no run_id column (not a harness part file?)")
        return None
    if "schema_version" in table.column_names:
        versions = {v for v in table.column("schema_version").to_pylist() if v is not None}
        unknown = sorted(versions - set(KNOWN_SCHEMA_VERSIONS))
        if unknown:
            warnings.warn(f"part file {path} has schema_version {', '.join(unknown)}, newer than this harness reads "
                          f"({', '.join(KNOWN_SCHEMA_VERSIONS)}); upgrade harness to read every column",
                          FutureSchemaWarning, stacklevel=4)
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


def _read_parts(paths: Iterable[Path]) -> list[tuple[Path, pa.Table]]:
    tables = []
    for p in paths:
        try:
            table = pq.read_table(p)
        except Exception as exc:  # skipped, never silently: a warning names the file
            _skip(p, f"unreadable: {type(exc).__name__}: {exc}")
            continue
        table = _conforming(p, table)
        if table is not None:
            tables.append((p, table))
    return tables


def _unified_extras(tables: list[tuple[Path, pa.Table]]) -> tuple[list[pa.Field], list[tuple[Path, pa.Table]]]:
    """The extra (non-core) columns of all tables with one type each; a table whose extra
    column cannot join the others' type is skipped with a warning naming it."""
    fields: dict[str, pa.Field] = {}
    kept = []
    for p, t in tables:
        extras = [f for f in t.schema if f.name not in CORE_COLUMNS]
        try:
            merged = pa.unify_schemas([pa.schema(list(fields.values())), pa.schema(extras)],
                                      promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            _skip(p, f"an extra column's type clashes with other part files ({exc})")
            continue
        fields = {f.name: f for f in merged}
        kept.append((p, t))
    return sorted(fields.values(), key=lambda f: f.name), kept


def load_table(path: str | os.PathLike[str]) -> pa.Table:
    """All finished runs under ``path`` (one sweep directory, or a root of several) as
    one Arrow table with a unified schema: core columns first, then every extra column
    any part file has (null where a run lacks it). A part file that cannot be read, lacks
    run_id, or has a core column of a type that does not cast is skipped with a
    CorruptPartWarning naming it; one of a newer schema_version gets a FutureSchemaWarning."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    paths = part_files(root) if part_files(root) else [p for d in sorted(root.iterdir()) if d.is_dir()
                                                       for p in part_files(d)]
    extras, tables = _unified_extras(_read_parts(paths))
    if not tables:
        return CORE_SCHEMA.empty_table()
    schema = pa.schema([*CORE_SCHEMA, *extras])
    aligned = []
    for p, t in tables:
        try:
            cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
                    else pa.nulls(t.num_rows, f.type) for f in schema]
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            _skip(p, f"a column does not cast to the unified schema ({exc})")
            continue
        aligned.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(aligned) if aligned else CORE_SCHEMA.empty_table()


def load_results(path: str | os.PathLike[str]) -> Any:
    """Results as a pandas DataFrame, one row per (run, check). Safe while a sweep is
    still writing: only finished part files are read. Unreadable part files are
    skipped with a CorruptPartWarning naming the file."""
    return load_table(path).to_pandas()
