"""Faults a real sweep meets: SIGTERM, a full disk, a rerun over incomplete stored runs.
Real embedded Ray, real TensorFlow, the real CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TESTS, gated_sweep, run_cli

from harness import load_results
from harness.store import read_plan, stored_run_ids


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 KiB tmpfs: room for _sweep.yaml and a few part files, then ENOSPC."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_stops_the_sweep_with_one_line_and_exit_4_keeping_what_was_stored(tiny_disk: Path) -> None:
    # one run a part file, so the disk fills up run by run
    r = run_cli(["sweep=smoke", f"store.root={tiny_disk}", "store.flush_runs=1"], cwd=tiny_disk.parent)
    assert r.returncode == 4, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(tiny_disk / "smoke") in errors[0]
    assert "Traceback" not in r.stderr
    stored = stored_run_ids(tiny_disk / "smoke")
    assert 1 <= len(stored) < 16
    assert load_results(tiny_disk / "smoke")["run_id"].nunique() == len(stored)  # every stored run is intact
    assert not list((tiny_disk / "smoke").glob(".*"))  # no temporary left behind


def test_a_disk_full_from_the_start_leaves_no_empty_sweep_directory(tiny_disk: Path) -> None:
    fd = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill it up
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    r = run_cli(["sweep=smoke", f"store.root={tiny_disk}"], cwd=tiny_disk.parent)
    assert r.returncode == 4, r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")][0].count("No space left") == 1
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


def test_sigterm_stops_like_ctrl_c_with_one_line_and_exit_143_and_stores_the_buffered_runs(tmp_path: Path) -> None:
    """The finished runs are held in the driver's buffer (nothing is due to be written for 10
    minutes): SIGTERM writes them before the driver exits. Only seed 0's two runs can finish
    (the others wait at a gate the test never opens), whatever the machine's speed."""
    out = tmp_path / "smoke"
    args = [sys.executable, "-m", "harness", *gated_sweep(tmp_path, free=1), "store.flush_runs=1000",
            "store.flush_seconds=600"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(TESTS)})
    assert proc.stdout is not None
    for line in proc.stdout:  # "runs N/16 ..." once a run has finished (and is in the buffer)
        if line.startswith("runs 2/"):
            break
    assert proc.poll() is None, "the sweep ended before it could be terminated"
    assert stored_run_ids(out) == set()  # nothing written yet
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == ["terminated (SIGTERM): finished runs are stored; rerun the same command to resume"], err
    assert len(stored_run_ids(out)) == 2 and load_results(out)["run_id"].nunique() == 2


def test_a_rerun_exits_1_while_stored_runs_are_still_incomplete(tmp_path: Path) -> None:
    """The exit code reflects the sweep as stored, not only this invocation: a rerun that runs
    nothing new still exits 1 while an errored run is stored (scripts chain on it)."""
    args = ["--config-dir", str(TESTS / "conf"), "sweep=faults", "sweep.scenario=[f_raise]", f"store.root={tmp_path}"]
    first = run_cli(args, cwd=tmp_path, env={"PYTHONPATH": str(TESTS)})
    assert first.returncode == 1, first.stderr
    again = run_cli(args, cwd=tmp_path, env={"PYTHONPATH": str(TESTS)})
    assert "0 to run" in again.stdout and "did not complete" in again.stdout
    assert again.returncode == 1, again.stdout


@pytest.mark.slow  # a long real sweep or pool; `pytest -m slow` runs it (the default run stays near 10 minutes)
def test_runs_of_a_damaged_part_file_are_recomputed_and_the_file_quarantined(tmp_path: Path) -> None:
    """A damaged page of a column the resume index does not need (worst_value), then a seed column
    rewritten as text: each time the rerun counts those runs as not stored, moves the file into
    _quarantine/ with one line naming it, recomputes them, and ends with every planned run stored."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_store import damage_column

    args = ["sweep=smoke", "sweep.scenario=[normalization]", "sweep.data_size=[1000]", "sweep.precision=[fp32,fp16]",
            "sweep.seed=range(0,6)", "store.flush_runs=4", "store.flush_seconds=600", f"store.root={tmp_path}"]
    out = tmp_path / "smoke"
    first = run_cli(args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    files = sorted(out.glob("part-*.parquet"))
    assert len(files) == 3 and len(stored_run_ids(out)) == 12  # 4 runs a file
    damage_column(files[0], "worst_value")
    past = time.time() - 60  # damaged a while ago: a file modified a moment ago may be a copy in progress (not moved)
    os.utime(files[0], (past, past))
    again = run_cli([*args, "sweep.rerun=incomplete"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "8 already stored, 4 to run" in again.stdout
    [line] = [ln for ln in again.stderr.splitlines() if ln.startswith("warning:")]
    assert files[0].name in line and "_quarantine" in line, again.stderr
    assert (out / "_quarantine" / files[0].name).exists() and len(stored_run_ids(out)) == 12
    t = pq.read_table(files[1])
    pq.write_table(t.set_column(t.schema.get_field_index("seed"), "seed", pa.array(["s"] * t.num_rows)), files[1])
    os.utime(files[1], (past, past))
    third = run_cli(args, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert "8 already stored, 4 to run" in third.stdout and "column 'seed' is string" in third.stderr
    assert (out / "_quarantine" / files[1].name).exists()
    assert len(stored_run_ids(out)) == 12 and load_results(out)["run_id"].nunique() == 12
    # a smaller grid under the same name: its summary covers its own 10 runs and says what it left out
    fewer = run_cli([a if not a.startswith("sweep.seed=") else "sweep.seed=range(0,5)" for a in args], cwd=tmp_path)
    assert fewer.returncode == 0 and "10 already stored, 0 to run" in fewer.stdout, fewer.stderr
    assert "left out 2 stored run(s) of other definitions" in " ".join(fewer.stdout.split())
    assert len(read_plan(out)) == 10
