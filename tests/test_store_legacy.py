"""Sweeps written by earlier versions (one part file per run, ``<run_id>.parquet``) read like
batched ones: each file opened once, several at once, the same rows as reading every file
alone; and compaction's quarantine of part files that cannot be read."""

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

from harness import store
from harness.records import CORE_COLUMNS, CheckMeaning, RunResult, Status, result_rows
from harness.store import damage, layout, scan
from harness.store import (QUARANTINE, Compaction, CorruptPartWarning, FutureSchemaWarning, compact, load_results,
                           load_table, part_files, run_files, stored_run_ids, write_batch, write_part)



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


def test_a_sweep_of_per_run_files_reads_as_every_file_read_alone(tmp_path: Path) -> None:
    legacy(tmp_path, range(0, 150))
    legacy(tmp_path, range(150, 170), grad_norm_max=2.5)  # an extra column some runs have
    legacy(tmp_path, range(170, 180), clip_active_steps=7)  # int64 here ...
    legacy(tmp_path, range(180, 190), clip_active_steps=7.5)  # ... float64 there: promoted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped, nothing warned
        df = load_results(tmp_path)
    assert len(part_files(tmp_path)) == 190 and len(df) == 190 * 3
    assert list(df.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert list(df.columns[len(CORE_COLUMNS):]) == ["clip_active_steps", "grad_norm_max"]
    assert list(df["run_id"]) == [p.stem for p in part_files(tmp_path) for _ in range(3)]  # file order
    assert df["clip_active_steps"].dtype == "float64" and df["clip_active_steps"].notna().sum() == 20 * 3
    same(df, each_file_alone(tmp_path))
    assert stored_run_ids(tmp_path) == {run_id(s) for s in range(190)}
    assert run_files(tmp_path)[run_id(7)] == tmp_path / f"{run_id(7)}.parquet"


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


def test_a_load_opens_each_part_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No footer pass before the read: each part file's footer is parsed once, by the read itself."""
    legacy(tmp_path, range(40))
    write_batch(tmp_path, [run_rows(s) for s in range(40, 50)])
    opened: list[str] = []

    class Counting(pq.ParquetFile):
        def __init__(self, source, *args, **kwargs) -> None:
            opened.append(getattr(source, "path", None) or str(source))
            super().__init__(source, *args, **kwargs)

    real_osfile = pa.OSFile

    def osfile(path, *args, **kwargs):  # to know which file a ParquetFile parses
        f = real_osfile(path, *args, **kwargs)
        opened.append(os.fspath(path))
        return f

    import pyarrow.parquet.core as core

    monkeypatch.setattr(pq, "ParquetFile", Counting)
    monkeypatch.setattr(core, "ParquetFile", Counting)
    monkeypatch.setattr(pa, "OSFile", osfile)
    for read in (lambda: load_results(tmp_path), lambda: load_results(tmp_path, columns=["seed"]),
                 lambda: stored_run_ids(tmp_path)):
        opened.clear()
        read()
        paths = sorted(p for p in opened if p.endswith(".parquet"))
        assert paths == sorted(str(p) for p in part_files(tmp_path)), "each part file opened once"
        assert len([p for p in opened if not p.endswith(".parquet")]) == len(paths), "one footer parse per open"


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
    real = store._read_part

    def denied(path: Path, pick=None, verify=True):
        if path == locked:
            return PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, pick)

    monkeypatch.setattr(store, "_read_part", denied)
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
