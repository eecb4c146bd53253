"""Parquet store: atomic part files (batched), resume index, newest wins, compaction, unified schema,
corrupt files named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, make_spec

from harness import store
from harness.records import CORE_COLUMNS, SCHEMA_VERSION, CheckMeaning, CheckResult, RunResult, Status, result_rows
from harness.store import damage, layout, scan
from harness.store import (CorruptPartWarning, FutureSchemaWarning, PartBuffer, StoreError, StoreWriteError,
                           check_writable, compact, load_results, load_table, part_files, run_files, stored_run_ids,
                           write_batch, write_part)



@pytest.fixture(autouse=True)
def _no_settle_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files these tests damage were not written a moment ago by a copy still in progress: a damaged
    file is quarantined at once here (test_a_damaged_file_written_a_moment_ago_is_not_moved tests the window)."""
    monkeypatch.setattr(damage, "SETTLE_S", 0.0)

def ok_result(spec, **extras) -> RunResult:
    c = CheckResult("loss_below", 1.0, 10, 2, 0, 3, 1.5, -0.5, 1.0, "float32")
    return RunResult(run_id=spec.run_id, status=Status.OK, checks=(c,), declared=(CheckMeaning("loss_below", 1.0, "<", "native", "step"),),
                     wall_s=1.0, train_s=0.5, worker="h:1:cpu", steps=spec.steps, compute_dtype="float32",
                     final_loss=0.1, nonfinite_values=0, loss_scale_min=None, skipped_steps=0, extras=extras)


def test_rows_follow_the_contract() -> None:
    spec = make_spec()
    t = result_rows(spec, ok_result(spec, grad_norm_max=2.0), "0.1.0")
    assert t.column_names[: len(CORE_COLUMNS)] == list(CORE_COLUMNS) and "grad_norm_max" in t.column_names
    row = t.to_pylist()[0]
    assert row["passed"] is False and row["n_failed"] == 2 and row["status"] == "ok"
    assert row["clip_value"] is None and row["schedule"] == "steps"


def test_failed_run_keeps_its_rows_with_null_check_values() -> None:
    spec = make_spec()
    r = RunResult(run_id=spec.run_id, status=Status.CRASHED, declared=(CheckMeaning("a", 1.0, "<", "native", "step"),
                                                                     CheckMeaning("b", 2.0, ">=", "exact", "final")), error="died")
    rows = result_rows(spec, r, "0").to_pylist()
    assert [x["check"] for x in rows] == ["a", "b"]
    assert all(x["passed"] is None and x["n_evaluated"] is None and x["status"] == "crashed" for x in rows)
    bare = result_rows(spec, RunResult(run_id=spec.run_id, status=Status.TIMEOUT, error="t"), "0").to_pylist()
    assert len(bare) == 1 and bare[0]["status"] == "timeout"


def test_write_is_atomic_and_readers_see_only_finished_files(tmp_path: Path) -> None:
    spec = make_spec()
    (tmp_path / f".{spec.run_id}.parquet.123.abcd.tmp").write_bytes(b"partial garbage")
    write_part(tmp_path, spec.run_id, result_rows(spec, ok_result(spec), "0"))
    assert [p.name for p in part_files(tmp_path)] == [f"{spec.run_id}.parquet"]
    assert stored_run_ids(tmp_path) == {spec.run_id}
    assert ds.dataset(tmp_path, format="parquet").to_table().num_rows == 1  # pyarrow ignores dot files
    assert len(load_results(tmp_path)) == 1


def test_rewrite_replaces_never_duplicates(tmp_path: Path) -> None:
    spec = make_spec()
    for _ in range(3):
        write_part(tmp_path, spec.run_id, result_rows(spec, ok_result(spec), "0"))
    assert len(load_results(tmp_path)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_extra_columns_unify_across_part_files(tmp_path: Path) -> None:
    a, b = make_spec(seed=1), make_spec(seed=2)
    write_part(tmp_path, a.run_id, result_rows(a, ok_result(a, grad_norm_max=2.0), "0"))
    write_part(tmp_path, b.run_id, result_rows(b, ok_result(b, reduce_dtype="float16"), "0"))
    df = load_results(tmp_path).set_index("seed")
    assert df.loc[1, "grad_norm_max"] == 2.0 and pd.isna(df.loc[2, "grad_norm_max"])
    assert df.loc[2, "reduce_dtype"] == "float16" and pd.isna(df.loc[1, "reduce_dtype"])


def test_corrupt_part_file_is_named_skipped_and_recomputed(tmp_path: Path) -> None:
    good, bad = make_spec(seed=1), make_spec(seed=2)
    write_part(tmp_path, good.run_id, result_rows(good, ok_result(good), "0"))
    path = write_part(tmp_path, bad.run_id, result_rows(bad, ok_result(bad), "0"))
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.warns(CorruptPartWarning, match=bad.run_id):
        df = load_results(tmp_path)
    assert list(df["run_id"]) == [good.run_id]
    assert stored_run_ids(tmp_path) == {good.run_id}  # so a rerun recomputes the bad one


def test_load_results_of_a_root_reads_every_sweep(tmp_path: Path) -> None:
    for name in ("s1", "s2"):
        spec = make_spec(sweep=name)
        write_part(tmp_path / name, spec.run_id, result_rows(spec, ok_result(spec), "0"))
    assert sorted(load_results(tmp_path)["sweep"]) == ["s1", "s2"]
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(StoreError):
        check_writable(ro / "sweep")


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        check_writable(tmp_path / "f" / "sweep")
    check_writable(tmp_path / "new" / "deeper")  # creatable: fine, and nothing created
    assert not (tmp_path / "new").exists()


def test_a_schema_1_part_file_reads_with_its_missing_meaning_marked_null(tmp_path: Path) -> None:
    """Part files written before the op, compare mode, when, bound as compared and variant were
    recorded read back with those columns null (never guessed) and schema_version "1"."""
    spec, old_spec = make_spec(), make_spec(seed=9)  # two runs: one run stored twice would keep its newest rows only
    new = result_rows(spec, ok_result(spec), "0.1.0")
    added = ("variant", "op", "compare", "when", "bound_compared", "value_dtype")
    old = result_rows(old_spec, ok_result(old_spec), "0.1.0").drop_columns(list(added))
    old = old.set_column(old.schema.get_field_index("schema_version"), "schema_version",
                         pa.array(["1"] * old.num_rows, pa.string()))
    write_part(tmp_path, "old", old)
    write_part(tmp_path, spec.run_id, new)
    df = load_results(tmp_path).set_index("schema_version")
    assert df.loc["1", list(added)].isna().all() and df.loc["1", "worst_value"] == 1.5
    assert df.loc[SCHEMA_VERSION, "op"] == "<" and df.loc[SCHEMA_VERSION, "compare"] == "native"
    from harness.analysis.frame import directions

    assert np.isnan(directions(df.reset_index())).sum() == 1  # the old row's direction is unknown


def test_a_schema_4_part_file_reads_with_the_steps_judged_null(tmp_path: Path) -> None:
    """Part files written before checks recorded ``on`` (the steps they judge) read it null; the runs
    keep their ids (a check judging every step hashes as before)."""
    spec, old_spec = make_spec(), make_spec(seed=9)
    old = result_rows(old_spec, ok_result(old_spec), "0.1.0").drop_columns(["on"])
    old = old.set_column(old.schema.get_field_index("schema_version"), "schema_version",
                         pa.array(["4"] * old.num_rows, pa.string()))
    write_part(tmp_path, "old", old)
    write_part(tmp_path, spec.run_id, result_rows(spec, ok_result(spec), "0.1.0"))
    df = load_results(tmp_path).set_index("schema_version")
    assert pd.isna(df.loc["4", "on"]) and df.loc[SCHEMA_VERSION, "on"] == "all" and SCHEMA_VERSION == "6"


def _with_column(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, array)


@pytest.mark.parametrize("damage, warning, words", [
    ("seed_as_text", CorruptPartWarning, "column 'seed' is string"),
    ("no_run_id", CorruptPartWarning, "no run_id column"),
])
def test_a_part_file_that_does_not_conform_is_named_and_skipped(tmp_path: Path, damage: str, warning: type,
                                                                words: str) -> None:
    good, bad = make_spec(seed=1), make_spec(seed=2)
    write_part(tmp_path, good.run_id, result_rows(good, ok_result(good), "0"))
    t = result_rows(bad, ok_result(bad), "0")
    t = _with_column(t, "seed", pa.array(["two"] * t.num_rows)) if damage == "seed_as_text" else \
        t.drop_columns(["run_id"])
    write_part(tmp_path, bad.run_id, t)
    with pytest.warns(warning, match=words) as caught:
        df = load_results(tmp_path)
    assert any(bad.run_id in str(w.message) for w in caught)  # the file is named
    assert list(df["run_id"]) == [good.run_id]


def test_a_part_file_of_a_newer_schema_is_read_with_a_warning(tmp_path: Path) -> None:
    from harness.store import FutureSchemaWarning

    spec = make_spec()
    t = result_rows(spec, ok_result(spec), "0")
    write_part(tmp_path, spec.run_id, _with_column(t, "schema_version", pa.array(["99"] * t.num_rows)))
    with pytest.warns(FutureSchemaWarning, match=f"{spec.run_id}.*schema_version 99"):
        df = load_results(tmp_path)
    assert list(df["run_id"]) == [spec.run_id]


# ---------------------------------------------------------------- batched part files, newest wins, compaction

def rows(seed: int, status: Status = Status.OK, worst: float = 1.5, **extras) -> tuple[str, pa.Table]:
    """One run's rows (seed ``seed``, its check's worst value ``worst``, or a run that ended with ``status``)."""
    spec = make_spec(seed=seed)
    r = ok_result(spec, **extras)
    if status is not Status.OK:
        r = RunResult(run_id=spec.run_id, status=status, declared=r.declared, error="boom")
    else:
        r = replace(r, checks=(replace(r.checks[0], worst_value=worst),))
    return spec.run_id, result_rows(spec, r, "0")


def by_run(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["run_id", "check"]).reset_index(drop=True)


def test_the_buffer_writes_one_part_file_per_flush_runs(tmp_path: Path) -> None:
    runs = [rows(s) for s in range(5)]
    with PartBuffer(tmp_path, flush_runs=3, flush_seconds=60) as buffer:
        for run_id, table in runs[:2]:
            buffer.add(run_id, table)
        assert part_files(tmp_path) == [] and len(buffer) == 2
        buffer.add(*runs[2])
        assert len(part_files(tmp_path)) == 1 and len(buffer) == 0
        buffer.add(*runs[3])
        buffer.add(*runs[4])
        assert len(part_files(tmp_path)) == 1
    files = part_files(tmp_path)
    assert len(files) == 2 and [pq.read_metadata(p).num_rows for p in files] == [3, 2]
    assert all(layout.BATCHED.fullmatch(p.name) for p in files)  # part-<ns>-<hex>.parquet: read by every reader
    assert stored_run_ids(tmp_path) == {r for r, _ in runs} == set(load_results(tmp_path)["run_id"])


def test_the_buffer_writes_flush_seconds_after_its_first_run_without_waiting_for_another(tmp_path: Path) -> None:
    buffer = PartBuffer(tmp_path, flush_runs=1000, flush_seconds=0.2)
    t0 = time.monotonic()
    buffer.add(*rows(1))
    buffer.add(*rows(2))
    assert part_files(tmp_path) == []
    while not part_files(tmp_path) and time.monotonic() - t0 < 120:  # a limit for a broken timer only
        time.sleep(0.02)
    assert 0.15 <= time.monotonic() - t0 < 120  # not before flush_seconds (0.2; timers may round)
    assert len(stored_run_ids(tmp_path)) == 2 and len(buffer) == 0  # len waits for the flush under way
    buffer.add(*rows(3))  # a new first run starts a new timer
    while len(part_files(tmp_path)) < 2 and time.monotonic() - t0 < 240:
        time.sleep(0.02)
    assert len(part_files(tmp_path)) == 2 and len(stored_run_ids(tmp_path)) == 3
    buffer.close()


def test_leaving_the_block_by_an_exception_writes_the_buffered_runs(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with PartBuffer(tmp_path, flush_runs=100, flush_seconds=60) as buffer:
            buffer.add(*rows(1))
            raise KeyboardInterrupt
    assert stored_run_ids(tmp_path) == {make_spec(seed=1).run_id}


def test_a_failed_write_leaves_nothing_visible_and_keeps_the_runs_buffered(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = pq.write_table

    def half_then_full_disk(table, where, **kw):
        where.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", half_then_full_disk)
    buffer = PartBuffer(tmp_path, flush_runs=2, flush_seconds=60)
    buffer.add(*rows(1))
    with pytest.raises(StoreWriteError, match="No space left on device"):
        buffer.add(*rows(2))
    assert list(tmp_path.iterdir()) == [] and len(buffer) == 2  # no part file, no temporary; nothing lost
    monkeypatch.setattr(pq, "write_table", real)
    buffer.close()
    assert len(stored_run_ids(tmp_path)) == 2


BUFFERED_DRIVER = """
import sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from pathlib import Path
from harness import signals
from harness.store import PartBuffer
from test_store import rows
signals.install()
with PartBuffer(Path(sys.argv[1]), flush_runs=2, flush_seconds=600) as buffer:
    for seed in range(3):  # runs 0 and 1 are written at once; run 2 stays buffered
        buffer.add(*rows(seed))
    print("ready", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("sig, stored", [(signal.SIGTERM, 3), (signal.SIGKILL, 2)])
def test_sigterm_writes_the_buffer_and_kill_9_loses_only_the_buffer(tmp_path: Path, sig: int, stored: int) -> None:
    code = BUFFERED_DRIVER.format(root=str(ROOT), tests=str(Path(__file__).parent))
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    ids = stored_run_ids(tmp_path)
    assert ids == {make_spec(seed=s).run_id for s in range(stored)}  # a subset of the finished runs, whole
    assert load_results(tmp_path)["run_id"].nunique() == stored
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_resume_index_reads_per_run_and_batched_files_alike(tmp_path: Path) -> None:
    legacy = [rows(s) for s in range(3)]
    for run_id, table in legacy:
        write_part(tmp_path, run_id, table)  # <run_id>.parquet, as earlier versions wrote
    batched = [rows(s) for s in range(3, 6)] + [rows(6, Status.ERROR)]
    write_batch(tmp_path, [t for _, t in batched])
    several = [rows(s) for s in (7, 8)]
    write_part(tmp_path, "part00000", pa.concat_tables([t for _, t in several]))  # many runs, a name that is no run_id
    every = {r for r, _ in legacy + batched + several}
    assert stored_run_ids(tmp_path) == every
    assert stored_run_ids(tmp_path, complete_only=True) == every - {make_spec(seed=6).run_id}
    assert load_results(tmp_path)["run_id"].nunique() == len(every)


def test_newest_wins_when_a_run_is_stored_twice(tmp_path: Path) -> None:
    run_id, old = rows(1, worst=1.5)
    write_part(tmp_path, run_id, old)  # an earlier version's file ...
    time.sleep(0.01)
    write_batch(tmp_path, [rows(1, Status.ERROR)[1], rows(2)[1]])  # ... a rerun that errored ...
    assert stored_run_ids(tmp_path) == {run_id, make_spec(seed=2).run_id}
    assert stored_run_ids(tmp_path, complete_only=True) == {make_spec(seed=2).run_id}  # its newest rows errored
    time.sleep(0.01)
    write_batch(tmp_path, [rows(1, worst=2.5)[1]])  # ... and another that completed
    df = load_results(tmp_path)
    assert len(df) == 2 and df["run_id"].is_unique  # never double-counted
    assert df.set_index("run_id").loc[run_id, "worst_value"] == 2.5
    assert stored_run_ids(tmp_path, complete_only=True) == {run_id, make_spec(seed=2).run_id}
    assert run_files(tmp_path)[run_id] == part_files(tmp_path)[-1]  # the newest batched name sorts last
    # the filter applies to the newest rows: the stale errored rows never come back
    assert load_results(tmp_path, filter={"status": "error"}).empty
    assert list(load_results(tmp_path, filter={"run_id": run_id})["worst_value"]) == [2.5]


def test_newest_wins_within_a_sweep_directory_not_across_sweeps(tmp_path: Path) -> None:
    run_id, table = rows(1)
    write_batch(tmp_path / "a", [table])
    write_batch(tmp_path / "b", [table])
    assert list(load_results(tmp_path)["run_id"]) == [run_id, run_id]  # the same run in two sweeps: both


def test_columns_and_filter(tmp_path: Path) -> None:
    write_batch(tmp_path, [rows(s)[1] for s in range(4)] + [rows(4, grad_norm_max=2.0)[1]])
    spec = make_spec(seed=5, precision="fp16", clip_value=1.0)
    write_part(tmp_path, spec.run_id, result_rows(spec, ok_result(spec), "0"))
    df = load_results(tmp_path, columns=["seed", "precision", "grad_norm_max"])
    assert list(df.columns) == ["seed", "precision", "grad_norm_max"] and len(df) == 6
    assert df["grad_norm_max"].notna().sum() == 1
    assert sorted(load_results(tmp_path, filter={"seed": [1, 3]})["seed"]) == [1, 3]
    assert list(load_results(tmp_path, filter={"precision": "fp16"})["seed"]) == [5]
    assert len(load_results(tmp_path, filter={"clip_value": None})) == 5  # None matches null
    assert sorted(load_results(tmp_path, filter=pc.field("seed") >= 4, columns=["seed"])["seed"]) == [4, 5]
    assert load_results(tmp_path, filter={"seed": []}).empty
    assert list(load_table(tmp_path, filter={"precision": "fp16", "seed": 5}).column("seed").to_pylist()) == [5]
    with pytest.raises(ValueError, match="no column 'colour'"):
        load_results(tmp_path, columns=["colour"])
    with pytest.raises(ValueError, match="no column 'colour'"):
        load_results(tmp_path, filter={"colour": "red"})
    for expr in (pc.field("colour") == "red", (pc.field("seed") > 1) & pc.field("colour").is_null()):
        unknown = r"^filter .*: no column 'colour' in the results \(columns: sweep, run_id, "
        with pytest.raises(ValueError, match=unknown) as e:
            load_results(tmp_path, filter=expr)
        assert "\n" not in str(e.value)  # one line
    with pytest.raises(TypeError, match="not booleans"):
        load_results(tmp_path, filter=pc.field("seed") + 1)
    with pytest.raises(TypeError, match=r"^filter .*: Function 'greater' has no kernel"):
        load_results(tmp_path, filter=pc.field("precision") > 1)


def test_a_corrupt_batched_file_is_named_skipped_and_its_runs_recomputed(tmp_path: Path) -> None:
    [good] = write_batch(tmp_path, [rows(s)[1] for s in range(2)])
    time.sleep(0.01)
    [bad] = write_batch(tmp_path, [rows(s)[1] for s in range(2, 4)])
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.warns(CorruptPartWarning, match=bad.name):
        df = load_results(tmp_path)
    assert set(df["seed"]) == {0, 1}
    assert stored_run_ids(tmp_path) == {make_spec(seed=s).run_id for s in (0, 1)}
    assert good.exists()


def test_a_corrupt_data_page_is_found_by_the_one_pass_read_and_named(tmp_path: Path) -> None:
    [bad] = write_batch(tmp_path, [rows(s)[1] for s in range(3)])
    write_batch(tmp_path, [rows(9)[1]])
    data = bytearray(bad.read_bytes())
    data[4:400] = b"\xff" * 396  # the column chunks, footer intact
    bad.write_bytes(bytes(data))
    with pytest.warns(CorruptPartWarning, match=bad.name):
        df = load_results(tmp_path)
    assert list(df["seed"]) == [9]


def damage_column(path: Path, column: str, *, flip_one_byte: bool = False) -> None:
    """Overwrite a third of ``column``'s data page in a part file (or flip one byte of it); footer intact."""
    meta = pq.read_metadata(path)
    chunk = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index(column))
    start = chunk.data_page_offset
    end = (chunk.dictionary_page_offset or start) + chunk.total_compressed_size
    data = bytearray(path.read_bytes())
    if flip_one_byte:
        data[end - 2] ^= 0x01
    else:
        third = (end - start) // 3
        data[start + third:start + 2 * third] = bytes(third)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["a third of a page", "one byte"])
def test_a_run_counts_as_stored_only_if_its_rows_load_and_a_damaged_file_is_quarantined(tmp_path: Path,
                                                                                       damage: str) -> None:
    """The resume index reads every column: a damaged page of worst_value (not run_id or status)
    leaves its 10 runs out, and the file is moved aside and named once, the first time it is met."""
    [bad] = write_batch(tmp_path, [rows(s, worst=float(s))[1] for s in range(10)])
    write_batch(tmp_path, [rows(s, worst=float(s))[1] for s in range(10, 36)])
    damage_column(bad, "worst_value", flip_one_byte=damage == "one byte")
    good = {make_spec(seed=s).run_id for s in range(10, 36)}
    with pytest.warns(CorruptPartWarning) as caught:
        assert stored_run_ids(tmp_path) == good  # a library call names it and moves nothing
    assert bad.exists() and any(bad.name in str(w.message) for w in caught)
    with pytest.warns(CorruptPartWarning) as caught:
        assert stored_run_ids(tmp_path, quarantine=True) == good
    [message] = [str(w.message) for w in caught]
    moved = tmp_path / store.QUARANTINE / bad.name
    assert str(bad) in message and str(moved) in message and "not stored" in message and "\n" not in message
    assert not bad.exists() and moved.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # met once: the next reads do not meet it again
        assert set(load_results(tmp_path, quarantine=True)["run_id"]) == good == stored_run_ids(tmp_path)


@pytest.mark.parametrize("seed", ["two", "2.5"])
def test_a_part_file_whose_core_column_does_not_convert_is_quarantined_and_its_runs_not_stored(
        tmp_path: Path, seed: str) -> None:
    write_batch(tmp_path, [rows(1)[1]])
    run_id, t = rows(2)
    [bad] = write_batch(tmp_path, [_with_column(t, "seed", pa.array([seed] * t.num_rows))])
    with pytest.warns(CorruptPartWarning, match="column 'seed' is string"):
        assert stored_run_ids(tmp_path, quarantine=True) == {make_spec(seed=1).run_id}
    assert not bad.exists() and (tmp_path / store.QUARANTINE / bad.name).exists()


def test_a_part_file_of_a_newer_harness_is_never_quarantined_even_when_a_core_column_does_not_convert(
        tmp_path: Path) -> None:
    run_id, t = rows(2)
    t = _with_column(t, "schema_version", pa.array(["99"] * t.num_rows))
    [newer] = write_batch(tmp_path, [_with_column(t, "seed", pa.array(["two"] * t.num_rows))])
    with pytest.warns(CorruptPartWarning):
        assert stored_run_ids(tmp_path, quarantine=True) == set()
    assert newer.exists()


def test_a_quarantine_that_cannot_move_the_file_still_counts_its_runs_as_not_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [bad] = write_batch(tmp_path, [rows(1)[1]])
    bad.write_bytes(b"garbage")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.warns(CorruptPartWarning, match="not stored.*Permission denied"):
        assert stored_run_ids(tmp_path, quarantine=True) == set()
    assert bad.exists() and not list((tmp_path / store.QUARANTINE).iterdir())


def test_compaction_keeps_every_run_and_its_content(tmp_path: Path) -> None:
    for s in range(0, 30, 3):
        write_batch(tmp_path, [rows(x, grad_norm_max=float(x))[1] for x in range(s, s + 3)])
    for s in range(30, 34):  # earlier versions' files, a newer rerun of one of them, a clashing extra column
        write_part(tmp_path, make_spec(seed=s).run_id, rows(s, reduce_dtype="float16")[1])
    time.sleep(0.01)
    write_batch(tmp_path, [rows(31, worst=9.0)[1]])
    before = by_run(load_results(tmp_path))
    assert len(before) == 34 and before["run_id"].is_unique
    c = compact(tmp_path, max_rows=20)
    assert (c.replaced, c.runs, c.rows, c.left) == (15, 34, 34, 0) and c.written == 2
    files = part_files(tmp_path)
    assert len(files) == 2 and all(layout.is_compacted(p) for p in files)
    after = by_run(load_results(tmp_path))
    pd.testing.assert_frame_equal(after, before)
    assert after.set_index("seed").loc[31, "worst_value"] == 9.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert compact(tmp_path).replaced == 2 and len(part_files(tmp_path)) == 1  # compacting again: the same runs
    pd.testing.assert_frame_equal(by_run(load_results(tmp_path)), before)


def test_compaction_quarantines_files_it_cannot_read_and_leaves_newer_ones(tmp_path: Path) -> None:
    write_batch(tmp_path, [rows(1)[1]])
    write_batch(tmp_path, [rows(2)[1]])
    [bad] = write_batch(tmp_path, [rows(3)[1]])
    bad.write_bytes(b"not parquet")
    run_id, t = rows(4)
    newer = write_part(tmp_path, run_id, _with_column(t, "schema_version", pa.array(["99"] * t.num_rows)))
    with pytest.warns(CorruptPartWarning), pytest.warns(FutureSchemaWarning):
        c = compact(tmp_path)
    assert (c.replaced, c.written, c.left, c.quarantined) == (2, 1, 1, 1)
    assert not bad.exists() and (tmp_path / store.QUARANTINE / bad.name).read_bytes() == b"not parquet"
    assert newer.exists() and len(part_files(tmp_path)) == 2  # valid for a newer harness: left as it is


def test_an_interrupted_compaction_leaves_duplicates_that_readers_resolve(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for s in range(4):
        write_batch(tmp_path, [rows(s)[1]])
    before = by_run(load_results(tmp_path))
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        compact(tmp_path)
    monkeypatch.undo()
    assert len(part_files(tmp_path)) == 5  # the compacted file and every old one
    pd.testing.assert_frame_equal(by_run(load_results(tmp_path)), before)
    assert len(stored_run_ids(tmp_path)) == 4


def test_a_reader_that_listed_before_a_compaction_reads_again(tmp_path: Path) -> None:
    for s in range(6):
        write_batch(tmp_path, [rows(s)[1]])
    stale = part_files(tmp_path)
    compact(tmp_path)
    listings = iter([stale])
    loaded = scan.retrying(tmp_path, scan.scan, lambda d: next(listings, None) or part_files(d))
    assert loaded.table.num_rows == 6  # the old files were gone: listed again


def test_readers_never_miss_a_run_while_compactions_run(tmp_path: Path) -> None:
    every = set()
    for s in range(0, 60, 2):
        write_batch(tmp_path, [rows(s)[1], rows(s + 1)[1]])
    every = stored_run_ids(tmp_path)
    stop, seen = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            seen.append(set(load_results(tmp_path, columns=["run_id"])["run_id"]))
            seen.append(stored_run_ids(tmp_path))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(6):  # compact, then split into many files again (as a sweep would write them)
            compact(tmp_path)
            table = load_table(tmp_path)
            for i in range(0, table.num_rows, 3):
                write_batch(tmp_path, [table.slice(i, 3)])
            compact(tmp_path)
    finally:
        stop.set()
        reader.join()
    assert seen and all(s == every for s in seen)


def test_find_part_and_read_rows_find_a_run_in_a_batched_file(tmp_path: Path) -> None:
    from harness.replay import ReplayError, find_part, read_rows

    write_batch(tmp_path, [rows(s)[1] for s in range(3)])
    run_id = make_spec(seed=1).run_id
    part = find_part(tmp_path, run_id[:6])
    assert part.run_id == run_id and part.parent == tmp_path
    assert [r["seed"] for r in read_rows(part)] == [1]
    with pytest.raises(ReplayError, match="no such run"):
        find_part(tmp_path, "ffffffffffffffff")


@pytest.mark.parametrize("key, value, words", [
    ("flush_runs", 0, "store.flush_runs: 0 is not a positive integer"),
    ("flush_seconds", -1, "store.flush_seconds: -1 is not a non-negative number of seconds"),
    ("compact_files", "many", "store.compact_files: 'many' is not a positive integer or null"),
    ("flush", 1, "store.flush: unknown key"),
])
def test_store_settings_are_validated(key: str, value: object, words: str) -> None:
    from harness.cli import compose_config
    from harness.config import ConfigError, sweep_config_from_dict

    cfg = compose_config(["sweep=smoke"])
    assert (cfg["store"]["flush_runs"], cfg["store"]["flush_seconds"], cfg["store"]["compact_files"]) == (256, 2.0, 64)
    assert sweep_config_from_dict({**cfg, "store": {**cfg["store"], "compact_files": None}}).store.compact_files is None
    with pytest.raises(ConfigError) as caught:
        sweep_config_from_dict({**cfg, "store": {**cfg["store"], key: value}})
    assert str(caught.value).startswith(words) and "\n" not in str(caught.value)


def test_compact_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    for name in ("s1", "s2"):
        for s in range(3):
            write_batch(tmp_path / name, [rows(s)[1]])
    assert main(["compact", str(tmp_path / "s1")]) == 0
    assert f"compacted {tmp_path / 's1'}: 3 part files -> 1 (3 runs, 3 rows)" in capsys.readouterr().out
    assert main(["compact", str(tmp_path)]) == 0  # a root: each sweep directory
    out = capsys.readouterr().out
    assert "s1: nothing to compact (1 part file(s))" in out and "s2: 3 part files -> 1" in out
    for args, words in ([[str(tmp_path / "nope")], "not a directory"], [[str(tmp_path), "x=1"], "x=1: unknown option"],
                        [[str(tmp_path), str(tmp_path)], "give one results directory"]):
        assert main(["compact", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    (tmp_path / "empty").mkdir()
    assert main(["compact", str(tmp_path / "empty")]) == 2 and "no part files" in capsys.readouterr().err


def test_a_forked_child_reads_with_threads_of_its_own(tmp_path: Path) -> None:
    """Arrow's thread pool is started by the parent's load; a forked child (whose copy of the pool
    names threads that do not exist there) reads with threads of its own instead of waiting for ever."""
    for seed in range(6):
        write_batch(tmp_path, [rows(seed)[1]])  # six part files: read on several threads
    assert len(part_files(tmp_path)) == 6 and len(store.load_results(tmp_path)) == 6  # the parent's pool exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report how many rows it read, then leave without running the parent's cleanups
        try:
            os.write(write, str(len(store.load_results(tmp_path))).encode())
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
        time.sleep(0.05)
    else:
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked child's load_results did not finish")
    assert os.read(read, 100) == b"6"


def test_every_part_file_carries_the_sweeps_full_schema(tmp_path: Path) -> None:
    """A scenario's declared extra column is in every part file, also one written before any of its runs
    finished, so pandas.read_parquet (which takes the first file's schema) sees it; an undeclared one
    joins the files written after it first appeared."""
    from harness.records import sweep_schema

    schema = sweep_schema({"stats_nonfinite": "int64", "grad_norm_max": "float64"})
    with PartBuffer(tmp_path, flush_runs=2, flush_seconds=60, schema=schema) as buffer:
        buffer.add(*rows(1, grad_norm_max=1.5))  # a training run: no stats_nonfinite
        buffer.add(*rows(2, grad_norm_max=2.5))
        buffer.add(*rows(3, stats_nonfinite=0))  # a normalization run, in the second file
        buffer.add(*rows(4, surprise="x"))  # not declared: from this file on
    first, second = part_files(tmp_path)
    assert {"stats_nonfinite", "grad_norm_max"} <= set(pq.read_schema(first).names)
    assert pq.read_schema(first).field("stats_nonfinite").type == pa.int64()
    assert {"stats_nonfinite", "grad_norm_max", "surprise"} <= set(pq.read_schema(second).names)
    df = pd.read_parquet(tmp_path)
    assert df.set_index("seed")["stats_nonfinite"].loc[3] == 0 and "grad_norm_max" in df.columns


def test_a_damaged_file_written_a_moment_ago_is_not_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file a copy is still writing reads as truncated: named, its runs not counted, but not moved; the
    same file left alone for the settle window is moved."""
    monkeypatch.setattr(damage, "SETTLE_S", 2.0)
    [bad] = write_batch(tmp_path, [rows(1)[1]])
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.warns(CorruptPartWarning, match="not moved: it was modified a moment ago"):
        assert stored_run_ids(tmp_path, quarantine=True) == set()
    assert bad.exists()
    past = time.time() - 10
    os.utime(bad, (past, past))
    with pytest.warns(CorruptPartWarning, match="moved to"):
        assert stored_run_ids(tmp_path, quarantine=True) == set()
    assert not bad.exists() and (tmp_path / store.QUARANTINE / bad.name).exists()


def test_a_column_of_another_type_in_a_later_file_is_left_out_of_its_rows_never_its_runs(tmp_path: Path) -> None:
    """An undeclared extra column whose first runs had no value (None: no type yet) and later ones text
    keeps every run; a column that is a number in one file and text in another is left out of the later
    file's rows with a warning, and its runs still count as stored (no endless recomputation)."""
    from harness.store import ColumnClashWarning

    with PartBuffer(tmp_path, flush_runs=1, flush_seconds=60, schema=store_schema()) as buffer:
        buffer.add(*rows(1, opt=None))
        buffer.add(*rows(2, opt="adam"))
        buffer.add(*rows(3, width=0.5))
        buffer.add(*rows(4, width="0.10"))  # text stays text: never read back as 0.1
    with pytest.warns(ColumnClashWarning, match="width"):
        df = load_results(tmp_path).set_index("seed")
    assert set(df.index) == {1, 2, 3, 4} and df.loc[2, "opt"] == "adam" and df.loc[3, "width"] == 0.5
    assert pd.isna(df.loc[4, "width"])
    with pytest.warns(ColumnClashWarning):
        assert stored_run_ids(tmp_path) == {make_spec(seed=s).run_id for s in (1, 2, 3, 4)}
    assert pq.read_table(part_files(tmp_path)[-1])["width"].to_pylist() == ["0.10"]  # kept in its file


def store_schema():
    from harness.records import sweep_schema

    return sweep_schema({})


def test_a_page_damaged_inside_its_compressed_bytes_is_found_by_the_crc_when_asked(tmp_path: Path) -> None:
    """One flipped byte: the commands and the resume index check every page's CRC and leave the file out;
    a plain load_results does not verify (as pandas.read_parquet), unless asked."""
    [bad] = write_batch(tmp_path, [rows(s)[1] for s in range(3)])
    damage_column(bad, "worst_value", flip_one_byte=True)
    with pytest.warns(CorruptPartWarning, match="CRC"):
        assert load_results(tmp_path, verify=True).empty
    with pytest.warns(CorruptPartWarning, match="CRC"):
        assert stored_run_ids(tmp_path) == set()
