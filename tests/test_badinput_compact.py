"""Issue 26, item 13: ``python -m harness compact`` stopped by SIGTERM exits 143 with one line and
removes the temporary file it was writing (it exited 143 silently and left ``.part-*.tmp``); one
killed with SIGKILL leaves it, and the next compact removes it (its writer is dead)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_spec

from harness.cli import COMPACT_USAGE, EXIT_OK, EXIT_TERMINATED, main
from harness.records import CheckMeaning, CheckResult, RunResult, Status, result_rows
from harness.store import part_files, stored_run_ids, write_batch

# compact in a child whose Parquet writes block once their bytes are out (the temporary file exists,
# not yet renamed), after touching a marker: the test signals it exactly there
BLOCKING_COMPACT = """
import os, sys, time
import pyarrow.parquet as pq

write = pq.write_table


def blocking(*args, **kwargs):
    write(*args, **kwargs)
    open(os.environ["MARKER"], "w").close()
    time.sleep(120)


pq.write_table = blocking
from harness.cli import main

sys.exit(main(["compact", sys.argv[1]]))
"""


def _sweep_dir(root: Path, files: int = 3) -> set[str]:
    """A sweep directory of ``files`` part files, two runs each; their run ids."""
    directory = root / "smoke"
    directory.mkdir(parents=True)
    meaning = (CheckMeaning("loss_below", 1.0, "<", "native", "step"),)
    for f in range(files):
        tables = []
        for seed in (2 * f, 2 * f + 1):
            spec = make_spec(seed=seed)
            check = CheckResult("loss_below", 1.0, 10, 2, 0, 3, 1.5, -0.5, 1.0, "float32")
            result = RunResult(run_id=spec.run_id, status=Status.OK, checks=(check,), declared=meaning, wall_s=1.0,
                               train_s=0.5, worker="h:1:cpu", steps=spec.steps, compute_dtype="float32",
                               final_loss=0.1, nonfinite_values=0, loss_scale_min=None, skipped_steps=0)
            tables.append(result_rows(spec, result, "0"))
        write_batch(directory, tables)
    return stored_run_ids(directory)


def _temporaries(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp"))


def _blocked_compact(directory: Path, tmp_path: Path) -> subprocess.Popen[str]:
    """A compact of ``directory`` stopped inside its first write, its temporary file on disk."""
    marker = tmp_path / "writing"
    proc = subprocess.Popen([sys.executable, "-c", BLOCKING_COMPACT, str(directory)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MARKER": str(marker)})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    assert len(_temporaries(directory)) == 1  # the file being written, under its hidden temporary name
    return proc


def test_sigterm_during_compact_is_one_line_exit_143_and_leaves_no_temporary(tmp_path: Path) -> None:
    directory = tmp_path / "res" / "smoke"
    runs = _sweep_dir(tmp_path / "res")
    before = sorted(part_files(directory))
    proc = _blocked_compact(directory, tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_TERMINATED, err
    assert err == "terminated (SIGTERM): every run is still stored; compact again to finish\n"
    assert _temporaries(directory) == []
    assert sorted(part_files(directory)) == before and stored_run_ids(directory) == runs


def test_a_temporary_left_by_a_killed_compact_is_removed_by_the_next(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "res" / "smoke"
    runs = _sweep_dir(tmp_path / "res")
    proc = _blocked_compact(directory, tmp_path)
    proc.kill()  # SIGKILL: nothing of the process runs, its temporary stays
    proc.communicate(timeout=60)
    left = _temporaries(directory)
    assert len(left) == 1
    assert main(["compact", str(directory)]) == EXIT_OK, capsys.readouterr().err
    assert _temporaries(directory) == [] and len(part_files(directory)) == 1 and stored_run_ids(directory) == runs


def test_a_temporary_of_a_live_writer_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another process writing there now (a sweep) keeps its temporary: only dead writers' go."""
    directory = tmp_path / "res" / "smoke"
    _sweep_dir(tmp_path / "res")
    mine = directory / f".part-1-abc.parquet.pid{os.getpid()}.0000.x.tmp"
    mine.write_bytes(b"in progress")
    assert main(["compact", str(directory)]) == EXIT_OK
    assert mine.exists()


def test_compact_usage_lists_its_exit_codes() -> None:
    codes = COMPACT_USAGE.split("exit codes:", 1)[1]
    assert all(f"{c} " in codes for c in ("0", "2", "4", "130", "143"))
