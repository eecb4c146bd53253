"""Two sweeps writing to the same results root at the same time: both complete, no file is
clobbered. The hard case: the same sweep name with overlapping grids, so both drivers write
into one directory and compute some of the same runs (same run_id, stored twice: readers keep one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from conftest import ROOT

from harness import load_results
from harness.store import part_files, stored_run_ids

GRID = ["sweep=smoke", "sweep.scenario=[loss_bound]", "sweep.name=shared", "sweep.data_size=[1000]", "sweep.precision=[fp32]",
        "sweep.clip_value=[null]", "sweep.steps=[200]", "scenarios.loss_bound.warmup=0", "ray.num_actors=1"]


def test_two_sweeps_into_one_results_directory_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seeds = {"a": "sweep.seed=[0,1,2,3]", "b": "sweep.seed=[2,3,4,5]"}  # seeds 2 and 3 are run by both
    procs = {k: subprocess.Popen([sys.executable, "-m", "harness", *GRID, s, f"store.root={tmp_path}"], cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k, s in seeds.items()}
    out = {k: p.communicate(timeout=300) for k, p in procs.items()}
    for k, p in procs.items():
        assert p.returncode == 0, out[k][1]
        assert "sweep shared: 4 runs" in out[k][0]

    directory = tmp_path / "shared"
    parts = part_files(directory)
    ids = [rid for p in parts for rid in pq.read_table(p).column("run_id").to_pylist()]  # every file whole
    assert len(set(ids)) == 6 and 6 <= len(ids) <= 8  # the union of both grids; runs both computed maybe twice
    assert stored_run_ids(directory) == set(ids)
    df = load_results(directory)  # one row set per run (the newest)
    assert len(df) == 6 and df["run_id"].is_unique and (df["status"] == "ok").all()
    assert sorted(df["seed"]) == [0, 1, 2, 3, 4, 5]
    assert not list(directory.glob(".*"))  # no temporary file left by either writer
    assert yaml.safe_load((directory / "_sweep.yaml").read_text())["sweep"] == "shared"  # whole, one of the two

    # a third invocation finds every run of its grid stored
    again = subprocess.run([sys.executable, "-m", "harness", *GRID, seeds["a"], f"store.root={tmp_path}"],
                           cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "4 already stored, 0 to run" in again.stdout, again.stderr
