"""Sweeps written by earlier versions (one part file per run, ``<run_id>.parquet``) read like
batched ones, the same rows as reading every file alone: a directory of many is compacted by its
first read (read as it is, with one warning, where it cannot be); and compaction's quarantine of
part files that cannot be read."""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import make_spec
from test_store import ok_result

from harness.records import CORE_COLUMNS, CheckMeaning, RunResult, Status, result_rows
from harness.store import damage, layout, scan
from harness.store import (PER_RUN_FILES, QUARANTINE, Compaction, CorruptPartWarning, FutureSchemaWarning,
                           LegacyLayoutWarning, compact, load_results, load_table, part_files, run_files,
                           stored_run_ids, write_batch, write_part)



@pytest.fixture(autouse=True)
def _no_settle_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files these tests damage were not written a moment ago by a copy still in progress: a damaged
    file is quarantined at once here (test_a_damaged_file_written_a_moment_ago_is_not_moved tests the window)."""
    monkeypatch.setattr(damage, "SETTLE_S", 0.0)

def run_rows(seed: int, checks: int = 3, worst: float = 1.5, status: Status = Status.OK, **extras) -> pa.Table:
    """One run's rows: ``checks`` checks (c0, c1, ...; worst values worst, worst + 1, ...)."""
    spec = make_spec(seed=seed)
    base = ok_result(spec, **extras)
    declared = tuple(CheckMeaning(f"c{k}", 1.0, "<", "native", "step") for k in range(checks))
    if status is not Status.OK:
        return result_rows(spec, RunResult(run_id=spec.run_id, status=status, declared=declared, error="boom"), "0")
    results = tuple(replace(base.checks[0], check=f"c{k}", worst_value=worst + k) for k in range(checks))
    return result_rows(spec, replace(base, checks=results, declared=declared), "0")


def run_id(seed: int) -> str:
    return make_spec(seed=seed).run_id


def legacy(directory: Path, seeds: range, **extras) -> list[Path]:
    """Per-run part files, as earlier versions wrote them."""
    return [write_part(directory, run_id(s), run_rows(s, **extras)) for s in seeds]


def each_file_alone(directory: Path) -> pd.DataFrame:
    """The reference: every part file read by itself (pyarrow.parquet), joined; rows in file order."""
    tables = [pq.read_table(p) for p in part_files(directory)]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    key = ["run_id", "check"]
    got = got.sort_values(key).reset_index(drop=True)
    expected = expected[list(got.columns)].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_a_sweep_of_per_run_files_is_compacted_by_its_first_read_and_reads_as_every_file_read_alone(
        tmp_path: Path) -> None:
    legacy(tmp_path, range(0, 150))
    legacy(tmp_path, range(150, 170), grad_norm_max=2.5)  # an extra column some runs have
    legacy(tmp_path, range(170, 180), clip_active_steps=7)  # int64 here ...
    legacy(tmp_path, range(180, 190), clip_active_steps=7.5)  # ... float64 there: promoted
    expected, order = each_file_alone(tmp_path), [p.stem for p in part_files(tmp_path) for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped, nothing warned: the conversion is silent
        df = load_results(tmp_path)
    [compacted] = part_files(tmp_path)  # converted once: the per-run files are gone
    assert layout.is_compacted(compacted) and len(df) == 190 * 3
    assert list(df.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert list(df.columns[len(CORE_COLUMNS):]) == ["clip_active_steps", "grad_norm_max"]
    assert list(df["run_id"]) == order  # the per-run files' order, kept by the compaction
    assert df["clip_active_steps"].dtype == "float64" and df["clip_active_steps"].notna().sum() == 20 * 3
    same(df, expected)
    same(load_results(tmp_path), expected)  # read again: the compacted file, the same rows
    assert stored_run_ids(tmp_path) == {run_id(s) for s in range(190)}
    assert run_files(tmp_path)[run_id(7)] == compacted


def test_a_few_per_run_files_are_read_as_they_are(tmp_path: Path) -> None:
    files = legacy(tmp_path, range(PER_RUN_FILES))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same(load_results(tmp_path), each_file_alone(tmp_path))
    assert part_files(tmp_path) == sorted(files)


def test_per_run_files_that_cannot_be_converted_are_read_as_they_are_with_one_warning_saying_how(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = legacy(tmp_path, range(PER_RUN_FILES + 1))
    expected = each_file_alone(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.warns(LegacyLayoutWarning) as caught:
        df = load_results(tmp_path)
    assert len(caught) == 1 and "not writable" in str(caught[0].message)
    assert f"python -m harness compact {tmp_path}" in str(caught[0].message)
    same(df, expected)
    assert part_files(tmp_path) == sorted(files)  # nothing written, nothing removed
    monkeypatch.undo()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full_disk)  # writable, but the compacted file cannot be written
    with pytest.warns(LegacyLayoutWarning, match="No space left on device"):
        same(load_results(tmp_path), expected)
    assert part_files(tmp_path) == sorted(files) and not list(tmp_path.glob(".*"))
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same(load_results(tmp_path), expected)  # the disk has room again: converted
    assert len(part_files(tmp_path)) == 1


def test_columns_and_filters_on_per_run_files_select_as_the_whole_load_does(tmp_path: Path) -> None:
    """A column selection reads only the columns needed, yet a filter may use columns not selected
    (a dict's, or an expression's, which does not list them): the same rows as filtering it all."""
    legacy(tmp_path, range(0, 60))
    legacy(tmp_path, range(60, 80), grad_norm_max=3.0)
    write_part(tmp_path, "part00000", pa.concat_tables([run_rows(s, status=Status.ERROR) for s in (80, 81)]))
    full = load_results(tmp_path)
    cases = [
        (["seed"], {"status": "error"}, full["status"] == "error"),
        (["seed", "check"], {"check": ["c0", "c2"], "seed": list(range(10, 70))},
         full["check"].isin(["c0", "c2"]) & full["seed"].between(10, 69)),
        (["run_id"], pc.field("worst_value") > 2.7, full["worst_value"] > 2.7),
        (["seed"], pc.field("grad_norm_max") == 3.0, full["grad_norm_max"] == 3.0),  # an extra column, not selected
        (["check"], (pc.field("seed") >= 75) & ~pc.field("status").isin(["ok"]),
         (full["seed"] >= 75) & (full["status"] != "ok")),
        (None, {"clip_value": None, "seed": [3, 81]}, full["seed"].isin([3, 81])),
    ]
    for columns, filter, rows in cases:
        got = load_results(tmp_path, columns=columns, filter=filter)
        expected = full[rows.fillna(False).astype(bool)]
        assert len(got) == len(expected) > 0, (columns, filter)
        pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                      expected[list(columns or full.columns)].reset_index(drop=True))


def test_newest_wins_over_many_per_run_files(tmp_path: Path) -> None:
    legacy(tmp_path, range(100))
    os.utime(tmp_path / f"{run_id(5)}.parquet", ns=(1, 1))  # written long ago: the batch below is newer
    write_batch(tmp_path, [run_rows(s, worst=9.0) for s in (5, 50, 99)])  # a rerun of three runs
    df = load_results(tmp_path)
    assert len(df) == 300 and not df.duplicated(["run_id", "check"]).any()
    worst = df[df["check"] == "c0"].set_index("seed")["worst_value"]
    assert (worst[[5, 50, 99]] == 9.0).all() and (worst.drop([5, 50, 99]) == 1.5).all()
    # a filter on the stale values finds nothing: newest wins first, the filter after
    assert load_results(tmp_path, filter=pc.field("worst_value") == 1.5, columns=["seed"])["seed"].nunique() == 97
    assert run_files(tmp_path)[run_id(50)] == part_files(tmp_path)[-1]


def test_a_corrupt_per_run_file_among_many_is_named_and_the_rest_read(tmp_path: Path) -> None:
    files = legacy(tmp_path, range(64))
    files[10].write_bytes(files[10].read_bytes()[:100])  # truncated
    data = bytearray(files[40].read_bytes())
    data[4:400] = b"\xff" * 396  # a bad page, footer intact
    files[40].write_bytes(bytes(data))
    with pytest.warns(CorruptPartWarning) as caught:
        df = load_results(tmp_path)
    named = " ".join(str(w.message) for w in caught)
    assert files[10].name in named and files[40].name in named
    assert set(df["seed"]) == set(range(64)) - {10, 40}
    # a run counts as stored only if its rows load: the footer of 40 reads, its pages do not
    assert stored_run_ids(tmp_path) == {run_id(s) for s in range(64)} - {run_id(10), run_id(40)}
    assert stored_run_ids(tmp_path, complete_only=True) == {run_id(s) for s in range(64)} - {run_id(10), run_id(40)}


# ---------------------------------------------------------------- quarantine

def damaged(tmp_path: Path) -> tuple[list[Path], Path, Path]:
    """Good batched and per-run files, one truncated and one garbage part file."""
    good = write_batch(tmp_path, [run_rows(s) for s in range(4)]) + legacy(tmp_path, range(4, 8))
    [truncated] = write_batch(tmp_path, [run_rows(s) for s in (8, 9)])
    truncated.write_bytes(truncated.read_bytes()[:60])
    garbage = write_part(tmp_path, run_id(10), run_rows(10))
    garbage.write_bytes(b"this is no parquet file" * 10)
    return good, truncated, garbage


def test_compact_moves_unreadable_part_files_into_the_quarantine(tmp_path: Path) -> None:
    good, truncated, garbage = damaged(tmp_path)
    with pytest.warns(CorruptPartWarning) as caught:
        before = load_results(tmp_path)
    named = " ".join(str(w.message) for w in caught)
    assert truncated.name in named and garbage.name in named
    assert set(before["seed"]) == set(range(8))
    truncated_bytes, garbage_bytes = truncated.read_bytes(), garbage.read_bytes()

    with pytest.warns(CorruptPartWarning):  # compaction reads them once more, and says so
        c = compact(tmp_path)
    assert (c.replaced, c.written, c.left, c.quarantined) == (5, 1, 0, 2)
    quarantine = tmp_path / QUARANTINE
    assert sorted(p.name for p in quarantine.iterdir()) == sorted([truncated.name, garbage.name])  # names kept
    assert (quarantine / truncated.name).read_bytes() == truncated_bytes  # moved as they were
    assert (quarantine / garbage.name).read_bytes() == garbage_bytes
    assert not truncated.exists() and not garbage.exists()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no reader warns about them again
        after = load_results(tmp_path)
        assert stored_run_ids(tmp_path) == {run_id(s) for s in range(8)}  # so a resume recomputes 8, 9 and 10
        assert len(part_files(tmp_path)) == 1 and part_files(quarantine) == []
        pd.testing.assert_frame_equal(after.sort_values(["run_id", "check"]).reset_index(drop=True),
                                      before.sort_values(["run_id", "check"]).reset_index(drop=True))
        assert compact(tmp_path) == Compaction(tmp_path, 0, 0, 0, 0, 0, 0)  # nothing more to do


def test_a_name_taken_in_the_quarantine_is_never_overwritten(tmp_path: Path) -> None:
    write_batch(tmp_path, [run_rows(0)])
    bad = write_part(tmp_path, run_id(1), run_rows(1))
    (tmp_path / QUARANTINE).mkdir()
    for n, suffix in enumerate(["", ".1"]):  # quarantined earlier: the same name, twice
        (tmp_path / QUARANTINE / f"{bad.stem}{suffix}.parquet").write_bytes(b"earlier %d" % n)
    bad.write_bytes(b"garbage")
    with pytest.warns(CorruptPartWarning):
        c = compact(tmp_path)
    assert c.quarantined == 1 and (c.replaced, c.left) == (0, 0)  # one good file: nothing to rewrite, still moved
    held = {p.name: p.read_bytes() for p in (tmp_path / QUARANTINE).iterdir()}
    assert held == {bad.name: b"earlier 0", f"{bad.stem}.1.parquet": b"earlier 1", f"{bad.stem}.2.parquet": b"garbage"}
    assert [p.name for p in part_files(tmp_path)] == [part_files(tmp_path)[0].name] and not bad.exists()


def test_files_valid_for_a_newer_harness_or_not_conforming_are_not_quarantined(tmp_path: Path) -> None:
    write_batch(tmp_path, [run_rows(s) for s in range(3)])
    write_batch(tmp_path, [run_rows(s) for s in range(3, 6)])
    t = run_rows(6)
    newer = write_part(tmp_path, run_id(6), t.set_column(t.schema.get_field_index("schema_version"), "schema_version",
                                                          pa.array(["99"] * t.num_rows)))
    no_run_id = write_part(tmp_path, run_id(7), run_rows(7).drop_columns(["run_id"]))
    with pytest.warns(FutureSchemaWarning), pytest.warns(CorruptPartWarning, match="no run_id"):
        c = compact(tmp_path)
    assert (c.replaced, c.left, c.quarantined) == (2, 2, 0)
    assert newer.exists() and no_run_id.exists() and not (tmp_path / QUARANTINE).exists()


def test_a_read_that_failed_on_the_system_quarantines_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied, an I/O error: the file may well read next time (and its owner can)."""
    write_batch(tmp_path, [run_rows(s) for s in range(2)])
    write_batch(tmp_path, [run_rows(s) for s in range(2, 4)])
    locked = write_part(tmp_path, run_id(4), run_rows(4))
    real = scan.footer

    def denied(fragment):
        if fragment.path == str(locked):
            return PermissionError(errno.EACCES, "Permission denied", fragment.path)
        return real(fragment)

    monkeypatch.setattr(scan, "footer", denied)
    with pytest.warns(CorruptPartWarning, match="PermissionError"):
        c = compact(tmp_path)
    assert (c.replaced, c.left, c.quarantined) == (2, 1, 0) and locked.exists()


def test_readers_never_look_into_the_quarantine(tmp_path: Path) -> None:
    sweep = tmp_path / "s1"
    write_batch(sweep, [run_rows(0)])
    bad = write_part(sweep, run_id(1), run_rows(1))
    bad.write_bytes(b"garbage")
    with pytest.warns(CorruptPartWarning):
        compact(sweep)
    (sweep / part_files(sweep)[0]).unlink()  # a sweep whose only files are quarantined
    write_batch(tmp_path / "s2", [run_rows(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_results(sweep).empty and stored_run_ids(sweep) == set()
        assert list(load_results(tmp_path)["seed"]) == [2, 2, 2]  # a root: each sweep, not its quarantine
        assert part_files(sweep / QUARANTINE) == [] and load_table(sweep / QUARANTINE).num_rows == 0


def test_the_compact_command_quarantines_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    good, truncated, garbage = damaged(tmp_path)
    assert main(["compact", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert f"compacted {tmp_path}: 5 part files -> 1 (8 runs, 24 rows)" in captured.out
    assert f"2 unreadable part file(s) moved to {tmp_path / QUARANTINE}" in captured.out
    assert truncated.name in captured.err and garbage.name in captured.err  # the warnings, printed
    assert sorted(p.name for p in (tmp_path / QUARANTINE).iterdir()) == sorted([truncated.name, garbage.name])
    assert main(["compact", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "nothing to compact (1 part file(s))" in captured.out and captured.err == ""
