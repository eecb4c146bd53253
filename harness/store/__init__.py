"""Parquet results: writing (``write``: atomic writes, the driver's buffer, batched part files;
``compaction``; ``damage``: the quarantine) apart from reading (``scan``: one pyarrow.dataset scan
over the sweep's unified schema; ``load``: load_results, the resume index). ``layout`` names the
files. docs/results.md says what a user sees; docs/architecture.md ("Results contract") what
every reader and writer keeps.

Layout. ``results/<sweep>/`` is a Parquet dataset of part files; a part file holds the rows of
one or more finished runs, written by the driver as ``part-<ns>-<hex>.parquet``. Part files of
earlier versions (``<run_id>.parquet``, one run each) are read alike; a directory of many is
compacted when first read.

Newest wins. A run can be stored twice (sweep.rerun=incomplete or all, two sweeps computing the
same run, a compaction interrupted between writing and removing). Readers keep, per directory and
run_id, the rows of the newest file only: files are ordered by the time in a batched name (when
it was written; a compacted file carries the newest time of the files it replaces) or, for a
per-run file, its modification time; then by name.
"""

from harness.store.compaction import PER_RUN_FILES, Compaction, LegacyLayoutWarning, compact
from harness.store.damage import ColumnClashWarning, CorruptPartWarning, FutureSchemaWarning
from harness.store.layout import PART_SUFFIX, PLAN, QUARANTINE, StoreError, StoreWriteError, part_files
from harness.store.load import RunPath, load_results, load_table, run_files, stored_run_ids
from harness.store.scan import KNOWN_SCHEMA_VERSIONS
from harness.store.write import (PartBuffer, check_writable, make_sweep_dir, pid_alive, read_plan, read_sweep_doc,
                                 remove_if_empty, remove_stale_temporaries, sweep_dir, write_batch, write_part, write_plan, write_text)

__all__ = [
    "KNOWN_SCHEMA_VERSIONS", "PART_SUFFIX", "PER_RUN_FILES", "PLAN", "QUARANTINE", "ColumnClashWarning", "Compaction",
    "CorruptPartWarning", "FutureSchemaWarning", "LegacyLayoutWarning", "PartBuffer", "RunPath", "StoreError",
    "StoreWriteError", "check_writable", "compact", "load_results", "load_table", "make_sweep_dir", "part_files",
    "pid_alive", "read_plan", "read_sweep_doc", "remove_if_empty", "remove_stale_temporaries", "run_files", "stored_run_ids",
    "sweep_dir", "write_batch", "write_part", "write_plan", "write_text",
]
