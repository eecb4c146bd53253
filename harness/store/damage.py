"""Damaged part files: each named in one warning line, and moved into the sweep's ``_quarantine/``
by the commands (``quarantine=True``), where no reader looks: loads stop meeting them and a resume
recomputes their runs. A file a copy may still be writing is named but not moved."""

from __future__ import annotations

import itertools
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from harness.store.layout import QUARANTINE, StoreWriteError
from harness.store.scan import KNOWN_SCHEMA_VERSIONS, Loaded


class CorruptPartWarning(UserWarning):
    """A part file could not be read (or does not conform to the schema) and was skipped."""


class FutureSchemaWarning(UserWarning):
    """A part file was written by a newer harness (an unknown schema_version)."""


class ColumnClashWarning(UserWarning):
    """A run-level column has another type in a part file than in the files before it: left out of its rows."""


def _skip(path: Path, why: str) -> None:
    """A part file left out of the load: never silently, a warning names it and says why."""
    warnings.warn(f"skipping part file {path}: {why}", CorruptPartWarning, stacklevel=4)


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


def settle(loaded: Loaded, quarantine: bool) -> list[Path]:
    """Name every part file the load left out in one CorruptPartWarning line; with ``quarantine``,
    move the damaged ones (content that cannot be read, a core column that does not convert) into
    their sweep's ``_quarantine/`` first, so that the next loads do not meet them again. Returns the
    files moved. A move that fails (a read-only results directory) leaves the file where it is, said
    in the same line: its runs count as not stored either way."""
    moved: list[Path] = []
    for i, theirs in sorted(loaded.future.items()):
        warnings.warn(f"part file {loaded.files[i]} has schema_version {', '.join(theirs)}, newer than this harness "
                      f"reads ({', '.join(KNOWN_SCHEMA_VERSIONS)}); upgrade harness to read every column",
                      FutureSchemaWarning, stacklevel=3)
    for i, names in sorted(loaded.clashed.items()):
        warnings.warn(f"part file {loaded.files[i]}: column(s) {', '.join(names)} of another type than in the part "
                      "files before it: left out of its rows (its runs are read; the scenario returns one column "
                      "with values of different types: declare it in extra_columns())", ColumnClashWarning,
                      stacklevel=3)
    for i, why in sorted(loaded.skipped.items()):
        path = loaded.files[i]
        if quarantine and i in loaded.damaged and _settled(path):
            try:
                [(_, dest)] = move_to_quarantine(path.parent, [path]) or [(path, None)]
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


def move_to_quarantine(directory: Path, paths: Sequence[Path]) -> list[tuple[Path, Path]]:
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
