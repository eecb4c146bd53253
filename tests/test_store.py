"""Parquet store: atomic part files, resume index, unified schema, corrupt files named."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from conftest import make_spec

from harness.records import CORE_COLUMNS, SCHEMA_VERSION, CheckMeaning, CheckResult, RunResult, Status, result_rows
from harness.store import (CorruptPartWarning, StoreError, check_writable, load_results, part_files,
                           stored_run_ids, write_part)


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
    spec = make_spec()
    new = result_rows(spec, ok_result(spec), "0.1.0")
    added = ("variant", "op", "compare", "when", "bound_compared", "value_dtype")
    old = new.drop_columns(list(added))
    old = old.set_column(old.schema.get_field_index("schema_version"), "schema_version",
                         pa.array(["1"] * old.num_rows, pa.string()))
    write_part(tmp_path, "old", old)
    write_part(tmp_path, spec.run_id, new)
    df = load_results(tmp_path).set_index("schema_version")
    assert df.loc["1", list(added)].isna().all() and df.loc["1", "worst_value"] == 1.5
    assert df.loc[SCHEMA_VERSION, "op"] == "<" and df.loc[SCHEMA_VERSION, "compare"] == "native"
    from harness.analysis.frame import directions

    assert np.isnan(directions(df.reset_index())).sum() == 1  # the old row's direction is unknown


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
