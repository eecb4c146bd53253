"""Reading part files: one pyarrow.dataset scan over the sweep's unified schema, then newest wins.

The unified schema is the core columns, then every extra column any file has (types promoted
where they differ: an integer in one file, a float in another). The driver writes every part
file with the sweep's schema, so the newest file's footer gives it: the files are scanned
together as one dataset of that schema (Arrow casts and fills the columns a file lacks with
nulls, reads only the columns the projection and the filter use, and checks every page's CRC
when asked), and the footers the scan read confirm it. Otherwise the files are planned from
their footers: those that fit are scanned together, the others read alone: one with a core
column of another type (cast, or left out when it does not convert), one whose extra column
clashes with the type earlier files gave it (that column left out of its rows), and every file
when the joint scan failed (a damaged page: the scan names no file, reading each alone finds
it). Nothing here warns or moves a file: ``Loaded`` says what was left out and why, and the
caller (``damage.settle``) names each file once."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from harness.records import CORE_COLUMNS, CORE_SCHEMA, SCHEMA_VERSION
from harness.store.layout import StoreError, file_time, is_compacted, listing


class _Dataset:
    """pyarrow.dataset, imported at its first use: its import pulls in pandas, which a driver that
    reads no results (a new sweep, a dry run) would otherwise pay at its start."""

    def __getattr__(self, name: str) -> Any:
        import pyarrow.dataset

        return getattr(pyarrow.dataset, name)


ds = _Dataset()

# every version up to this harness's (numbered 1, 2, 3, ...): each one's part files read with the columns they lack null
KNOWN_SCHEMA_VERSIONS: tuple[str, ...] = tuple(str(v) for v in range(1, int(SCHEMA_VERSION) + 1)) \
    if SCHEMA_VERSION.isdigit() else ("1", SCHEMA_VERSION)

HIT = "__hit"  # the projected column holding the filter's verdict for each row
_HELPERS = ("run_id", "schema_version")  # read whatever is selected: newest wins and the version check need them
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
_FS = pafs.LocalFileSystem()


@dataclass
class Loaded:
    """The rows read from ``files`` and what was left out (named by ``damage.settle``)."""

    table: pa.Table
    fidx: np.ndarray  # each row's file, an index into files
    files: list[Path]
    skipped: dict[int, str] = field(default_factory=dict)  # files left out, and why
    future: dict[int, list[str]] = field(default_factory=dict)  # files with schema_versions newer than this harness
    damaged: set[int] = field(default_factory=set)  # of skipped: harness part files that cannot be read whole
    clashed: dict[int, list[str]] = field(default_factory=dict)  # file -> extra columns left out (type clash)

    def skip(self, i: int, why: str) -> None:
        self.skipped.setdefault(i, why)

    def failed(self, i: int, exc: BaseException) -> None:
        """Reading file ``i`` raised ``exc``: read everything again if it is gone (a compaction removed it)."""
        if not self.files[i].exists():
            raise Vanished(str(self.files[i])) from exc
        self.skip(i, f"unreadable: {type(exc).__name__}: {' '.join(str(exc).split())}")
        if corrupt(exc):
            self.damaged.add(i)


class Vanished(Exception):
    """Part files were removed or replaced (a compaction) while being read: list and read again."""


_ATTEMPTS = 8


def retrying(root: Path, read: Callable[[list[Path]], Any],
             list_files: Callable[[Path], list[Path]] = listing, listed: list[Path] | None = None) -> Any:
    """``read(files)`` of the part files under ``root`` (first those ``listed``, when the caller
    has just listed them), listed and read again while a compaction replaces them: when one was
    removed before it was read, or a compacted file appeared while they were read (the files it
    replaces may have been removed before the listing reached them)."""
    for attempt in range(_ATTEMPTS):
        files = listed if attempt == 0 and listed is not None else list_files(root)
        try:
            out = read(files)
        except Vanished:
            continue
        seen = set(files)
        if not any(is_compacted(p) and p not in seen for p in list_files(root)):
            return out
    raise StoreError(f"{root}: part files kept being replaced while they were read (a compaction?); try again")


def corrupt(exc: BaseException) -> bool:
    """Did a read fail on the file's content (a truncated file, garbage bytes, a bad page), not on
    the system (permission denied, an I/O error: errno set; memory), or on what this pyarrow cannot
    decode (a newer writer's encoding), which may well pass next time or elsewhere?"""
    if isinstance(exc, (MemoryError, pa.ArrowMemoryError, pa.ArrowNotImplementedError)):
        return False
    return not (isinstance(exc, OSError) and exc.errno is not None)


_FORMATS: dict[bool, ds.ParquetFileFormat] = {}


def parquet_format(verify: bool) -> ds.ParquetFileFormat:
    """Parquet as the store reads it: with ``verify``, every page checked against the CRC it was
    written with."""
    if verify not in _FORMATS:
        _FORMATS[verify] = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
            page_checksum_verification=verify))
    return _FORMATS[verify]


def footer(fragment: ds.Fragment) -> pa.Schema | Exception:
    """The schema in a part file's footer (read once: the fragment keeps it, and a scan of the
    fragment reuses it), or the exception reading it raised (returned: the caller decides what a
    failure means)."""
    try:
        return fragment.physical_schema
    except Exception as exc:
        return exc


def expression(filter: Any) -> tuple[Any, list[str]]:
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
            is_null = pc.field(column).is_null(nan_is_null=True)
            term = is_null | term if term is not None else is_null
        term = term if term is not None else pc.scalar(False)
        expr = term if expr is None else expr & term
    return expr, list(filter)


def conforming(table: pa.Table) -> tuple[pa.Table | None, str]:
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


def merge_extras(extras: dict[str, pa.Field], schema: pa.Schema) -> tuple[dict[str, pa.Field], list[str]]:
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


_CORE_TYPES = {f.name: f.type for f in CORE_SCHEMA}


def _odd(schema: pa.Schema) -> bool:
    """Has ``schema`` a core column of another type than the core one (to be checked and cast alone)?"""
    return any(f.name in _CORE_TYPES and f.type != _CORE_TYPES[f.name] for f in schema)


@dataclass
class _Plan:
    """How each readable file is read: together (one dataset) or alone (with its table when it was
    read whole to be checked, and the extra columns to leave out of its rows)."""

    target: pa.Schema
    together: list[int]
    alone: dict[int, tuple[pa.Table | None, list[str]]]


def _by_schema(schemas: Iterable[tuple[int, pa.Schema]]) -> list[tuple[pa.Schema, list[int]]]:
    """The files grouped by schema, in the order each schema first appears."""
    groups: list[tuple[pa.Schema, list[int]]] = []  # Schema.equals: hashing one is slow
    for i, schema in schemas:
        for known, members in reversed(groups):
            if known.equals(schema, check_metadata=False):
                members.append(i)
                break
        else:
            groups.append((schema, [i]))
    return groups


def _plan(fragments: dict[int, ds.Fragment], loaded: Loaded) -> _Plan:
    """Group the files by their footers' schemas, in file order: a file whose footer does not read
    or without run_id is left out; one with a core column of another type is read whole, checked
    and cast; the extra columns of the others join the unified schema (a clash leaves that column
    out of the file's rows)."""
    schemas = []
    for i, fragment in fragments.items():
        got = footer(fragment)
        if isinstance(got, Exception):
            loaded.failed(i, got)
        else:
            schemas.append((i, got))
    groups = _by_schema(schemas)
    extras: dict[str, pa.Field] = {}
    together: list[int] = []
    alone: dict[int, tuple[pa.Table | None, list[str]]] = {}
    for schema, members in groups:
        if "run_id" not in schema.names:
            for i in members:
                loaded.skip(i, "it has no run_id column (not a harness part file?)")
            continue
        if _odd(schema):
            for i in members:
                table = _checked(i, fragments[i], loaded)
                if table is not None:
                    extras, clash = merge_extras(extras, table.schema)
                    alone[i] = (table, clash)
            continue
        extras, clash = merge_extras(extras, schema)
        for i in members:
            if clash:
                alone[i] = (None, clash)
            else:
                together.append(i)
    target = pa.schema([*CORE_SCHEMA, *sorted(extras.values(), key=lambda f: f.name)])
    return _Plan(target, sorted(together), alone)


def _whole(fragment: ds.Fragment) -> pa.Table:
    """One part file read alone, every column as it is written."""
    return ds.FileSystemDataset([fragment], fragment.physical_schema, fragment.format, _FS).to_table()


def _checked(i: int, fragment: ds.Fragment, loaded: Loaded) -> pa.Table | None:
    """File ``i`` (a core column of another type) read whole and cast to the core types, or None
    when it cannot be read or does not convert (noted in ``loaded``)."""
    try:
        whole = _whole(fragment)
    except Exception as exc:
        loaded.failed(i, exc)
        return None
    table, why = conforming(whole)
    if table is None:
        loaded.skip(i, why)
        if "run_id" in whole.column_names and not _newer_schema(whole):
            loaded.damaged.add(i)  # a harness part file whose rows cannot be loaded as this harness wrote them
    return table


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema``: cast where a type was promoted, null where missing."""
    names = set(table.column_names)
    return pa.Table.from_arrays(
        [(table.column(f.name) if table.schema.field(f.name).type == f.type else table.column(f.name).cast(f.type))
         if f.name in names else pa.nulls(table.num_rows, f.type) for f in schema], schema=schema)


Piece = tuple[pa.Table, np.ndarray]  # rows, and for each row the index of the file it came from


def _read_alone(i: int, fragment: ds.Fragment, table: pa.Table | None, leave_out: Sequence[str],
                target: pa.Schema, project: dict[str, Any] | None, loaded: Loaded) -> list[Piece]:
    """File ``i`` read by itself, aligned to the unified schema and projected (the filter's
    verdict included); [] when it cannot be read or does not cast (noted in ``loaded``)."""
    if table is None:
        try:
            table = _whole(fragment)
        except Exception as exc:
            loaded.failed(i, exc)
            return []
    if leave_out:
        loaded.clashed[i] = [f"{n} ({table.schema.field(n).type})" for n in leave_out if n in table.column_names]
        table = table.drop_columns([n for n in leave_out if n in table.column_names])
    try:
        aligned = _align(table, target)
    except _CAST_ERRORS as exc:
        loaded.skip(i, f"a column does not cast to the unified schema ({exc})")
        return []
    rows = ds.dataset(aligned).to_table(columns=project)
    return [(rows, np.full(rows.num_rows, i, np.int64))]


def _scan(fragments: Sequence[ds.Fragment], indices: Sequence[int], target: pa.Schema,
          project: dict[str, Any] | None) -> list[Piece]:
    """``fragments`` (the files ``indices``) as one dataset of the unified schema, projected; raises
    what the scan raised. The table keeps the fragments' order, and each file's row count is in
    the footer the scan read: the rows' files are known without handing each batch to Python."""
    table = ds.FileSystemDataset(fragments, target, fragments[0].format, _FS).to_table(columns=project)
    counts = [f.metadata.num_rows for f in fragments]
    if sum(counts) != table.num_rows:
        raise StoreError(f"the scan read {table.num_rows} rows, the footers count {sum(counts)}")
    return [(table, np.repeat(np.asarray(indices, np.int64), counts))] if table.num_rows else []


def _read_together(indices: list[int], fragments: dict[int, ds.Fragment], target: pa.Schema,
                   project: dict[str, Any] | None, loaded: Loaded) -> list[Piece]:
    """The files that fit the unified schema as one dataset scan; when the scan fails (a damaged
    page: Arrow names no file), each file read alone to find the ones that do not read."""
    if not indices:
        return []
    try:
        return _scan([fragments[i] for i in indices], indices, target, project)
    except Exception:
        for i in indices:
            if not loaded.files[i].exists():
                raise Vanished(str(loaded.files[i])) from None
        return [piece for i in indices for piece in _read_alone(i, fragments[i], None, (), target, project, loaded)]


def _assemble(pieces: list[Piece], target: pa.Schema, project: dict[str, Any] | None) -> Piece:
    """The pieces as one table, its rows in file order (no rows: the projection of an empty table)."""
    pieces = [(t, f) for t, f in pieces if t.num_rows]
    if not pieces:
        return ds.dataset(target.empty_table()).to_table(columns=project), np.zeros(0, np.int64)
    if len(pieces) == 1:
        table, fidx = pieces[0]
    else:
        table, fidx = pa.concat_tables([t for t, _ in pieces]), np.concatenate([f for _, f in pieces])
    if len(fidx) > 1 and (np.diff(fidx) < 0).any():  # files read alone: back in file order
        order = np.argsort(fidx, kind="stable")
        table, fidx = table.take(order), fidx[order]
    return table, fidx


def newest(run_ids: Any, fidx: np.ndarray, files: Sequence[Path]) -> np.ndarray | None:
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
    involved = sorted(set(fidx[twice].tolist()), key=lambda i: (file_time(files[i]), files[i].name))
    rank = np.full(len(files), -1, np.int64)
    rank[involved] = np.arange(len(involved))
    r = rank[fidx]
    best = np.full(n, -1, np.int64)
    np.maximum.at(best, key[twice], r[twice])
    return ~twice | (r == best[key])


def _future(versions: Any, fidx: np.ndarray) -> dict[int, list[str]]:
    """Files with rows of a schema_version this harness does not know, and those versions."""
    unknown = sorted(set(pc.unique(versions).drop_null().to_pylist()) - set(KNOWN_SCHEMA_VERSIONS))
    if not unknown:
        return {}
    hit = pc.is_in(versions, value_set=pa.array(unknown)).to_numpy(zero_copy_only=False)
    values = np.asarray(versions.to_pylist(), dtype=object)
    return {i: sorted(set(values[hit & (fidx == i)].tolist())) for i in sorted(set(fidx[hit].tolist()))}


def _projection(target: pa.Schema, columns: Sequence[str] | None, filter_columns: Sequence[str],
                expr: Any) -> tuple[list[str], dict[str, Any] | None]:
    """(the columns wanted, the scan's projection: those, the helpers and the filter's verdict;
    None: every column of ``target``, in its order).
    The filter is bound to the unified schema here, before anything is read: an unknown column
    is a ValueError naming it, an expression that does not give booleans a TypeError."""
    names = target.names  # a new list each time it is asked for
    known = set(names)
    want = list(names) if columns is None else list(columns)
    for name in [*want, *filter_columns]:
        if name not in known:
            raise ValueError(f"no column {name!r} in the results (columns: {', '.join(names)})")
    read = [*want, *(h for h in _HELPERS if h not in want)]
    project: dict[str, Any] | None = None if read == names else {n: ds.field(n) for n in read}
    if expr is None:
        return want, project
    project = project or {n: ds.field(n) for n in read}
    try:
        bound = ds.dataset(target.empty_table()).scanner(columns={HIT: expr}).projected_schema.field(HIT).type
    except pa.ArrowInvalid as exc:
        m = re.search(r"FieldRef\.Name\(([^)]*)\)", str(exc))
        what = f"no column {m.group(1)!r} in the results" if m else str(exc).splitlines()[0]
        raise ValueError(f"filter {expr}: {what} (columns: {', '.join(target.names)})") from None
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise TypeError(f"filter {expr}: {str(exc).splitlines()[0]}") from None
    if not pa.types.is_boolean(bound):
        raise TypeError(f"filter: the expression gives {bound} values, not booleans: {expr}")
    project[HIT] = expr
    return want, project


def _unified(schemas: Iterable[pa.Schema]) -> pa.Schema | None:
    """The unified schema of files of these schemas, or None when one of them is to be read alone
    or left out (no run_id, a core column of another type, an extra column whose type clashes)."""
    extras: dict[str, pa.Field] = {}
    for schema, _ in _by_schema(enumerate(schemas)):
        if "run_id" not in schema.names or _odd(schema):
            return None
        extras, clash = merge_extras(extras, schema)
        if clash:
            return None
    return pa.schema([*CORE_SCHEMA, *sorted(extras.values(), key=lambda f: f.name)])


def _read_as_guessed(fragments: list[ds.Fragment], columns: Sequence[str] | None, filter_columns: Sequence[str],
                     expr: Any) -> tuple[pa.Schema, list[str], dict[str, Any] | None, list[Piece]] | None:
    """The usual case, one scan after reading one footer: the driver writes every part file with
    the sweep's schema (each column declared or met so far), so the newest file's is the unified
    one. The scan reads every file's footer; they confirm the guess (the same unified schema, every
    file read together), or None: the files are planned from their footers and read again."""
    guess = footer(fragments[-1])
    target = None if isinstance(guess, Exception) else _unified([guess])
    if target is None:
        return None
    try:
        want, project = _projection(target, columns, filter_columns, expr)
        pieces = _scan(fragments, range(len(fragments)), target, project)
    except Exception:  # an unknown column, a damaged file, a type that does not cast: said by the planned read
        return None
    schemas = [footer(f) for f in fragments]  # kept by the scan: no file is read again
    if any(isinstance(s, Exception) for s in schemas):
        return None
    if all(s.equals(guess, check_metadata=False) for s in schemas):  # one writer, one schema: the usual case
        return target, want, project, pieces
    confirmed = _unified(schemas)
    return (target, want, project, pieces) if confirmed is not None and confirmed.equals(target) else None


def scan(files: list[Path], columns: Sequence[str] | None = None, filter: Any = None,
         verify: bool = True) -> Loaded:
    """Every usable part file of ``files`` read over the unified schema, newest wins and then
    ``filter`` applied (newest wins is judged by every row: the newest rows of a run may not
    match); ``columns`` selects columns."""
    expr, filter_columns = expression(filter)
    fmt = parquet_format(verify)
    loaded = Loaded(pa.table({}), np.zeros(0, np.int64), list(files))
    fragments = [fmt.make_fragment(os.fspath(p), filesystem=_FS) for p in files]
    read = _read_as_guessed(fragments, columns, filter_columns, expr) if fragments else None
    if read is None:
        plan = _plan(dict(enumerate(fragments)), loaded)
        want, project = _projection(plan.target, columns, filter_columns, expr)
        pieces = _read_together(plan.together, dict(enumerate(fragments)), plan.target, project, loaded)
        for i, (table, leave_out) in plan.alone.items():
            pieces += _read_alone(i, fragments[i], table, leave_out, plan.target, project, loaded)
        read = plan.target, want, project, pieces
    target, want, project, pieces = read
    table, fidx = _assemble(pieces, target, project)
    hit = None
    if project is not None and HIT in project:
        hit = pc.fill_null(table[HIT], False).to_numpy(zero_copy_only=False).astype(bool, copy=False)
    versions = table["schema_version"]
    loaded.future = _future(versions, fidx) if hit is None else _future(versions.filter(pa.array(hit)), fidx[hit])
    keep = newest(table["run_id"], fidx, files)
    if hit is not None:
        keep = hit if keep is None else keep & hit
    if keep is not None:
        table, fidx = table.filter(pa.array(keep)), fidx[keep]
    loaded.table = table if table.column_names == want else table.select(want)
    loaded.fidx = fidx
    return loaded
