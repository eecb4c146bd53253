"""A real multi-node Ray cluster on loopback, batch jobs, and an unreachable address.

The cluster (scripts/cluster.py: a head on 127.0.0.2 and a worker node on 127.0.0.3, one
CPU each, token authentication, dashboard for the job API) is started once for the module
and stopped by process group at the end, whatever happens.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, run_cli

from harness import load_results

CHECK_VALUES = ["n_evaluated", "n_failed", "n_nonfinite", "first_failure_step", "worst_value", "worst_margin"]
CLUSTER = ROOT / "scripts" / "cluster.py"


def _free_port() -> int:
    """Free on every address: the GCS of a multi-node head binds all interfaces."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def test_unreachable_ray_address_is_one_line_exit_3_nothing_written(tmp_path: Path) -> None:
    r = run_cli(["sweep=smoke", "ray.address=127.0.0.1:1", f"store.root={tmp_path / 'res'}"], cwd=tmp_path,
                timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: ray.address=127.0.0.1:1: no Ray cluster answers at "), r.stderr
    assert not (tmp_path / "res").exists()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("cluster")
    port, dashboard_port = _free_port(), _free_port()
    pids: list[int] = []
    try:
        start = subprocess.run([sys.executable, str(CLUSTER), "start", "--state-dir", str(state_dir),
                                f"--port={port}", "--head-cpus=1", "--worker-cpus", "1", "--dashboard",
                                f"--dashboard-port={dashboard_port}"], capture_output=True, text=True, timeout=300)
        assert start.returncode == 0, start.stdout + start.stderr
        state = json.loads((state_dir / "cluster.json").read_text())
        pids = [n["pid"] for n in state["nodes"]]
        yield state
    finally:  # stop whatever started, even after a failed start
        stop = subprocess.run([sys.executable, str(CLUSTER), "stop", "--state-dir", str(state_dir)],
                              capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def _token_env() -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "PYTHONPATH": str(ROOT)}


def _rows(directory: Path) -> Any:
    return load_results(directory).sort_values(["run_id", "check"]).reset_index(drop=True)


def _identical(x: Any, y: Any) -> bool:
    """Same nulls, and the other values equal bit for bit (as float64 bit patterns)."""
    bits = [v.fillna(0).to_numpy(dtype=np.float64).view(np.int64) for v in (x, y)]
    return bool(x.isna().equals(y.isna()) and np.array_equal(*bits))


@pytest.mark.slow
def test_sweep_on_two_node_cluster_lands_on_both_nodes_and_equals_single_node(cluster: dict[str, Any],
                                                                              tmp_path: Path) -> None:
    assert [n["ip"] for n in cluster["nodes"]] == ["127.0.0.2", "127.0.0.3"]  # every node on loopback
    # runs of a few seconds: the second node's actor (TF import) may be ready well after the first one's
    sweep = ["sweep=smoke", "sweep.scenario=[loss_bound]", "sweep.steps=[5000]"]
    multi = run_cli([*sweep, f"ray.address={cluster['address']}", f"store.root={tmp_path / 'multi'}"],
                    cwd=tmp_path, env=_token_env())
    assert multi.returncode == 0, multi.stderr
    assert f"Ray at {cluster['address']}: 2 CPU, 0 GPU, 2 actors" in multi.stdout
    single = run_cli([*sweep, f"store.root={tmp_path / 'single'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    assert "embedded local Ray" in single.stdout

    a, b = _rows(tmp_path / "multi" / "smoke"), _rows(tmp_path / "single" / "smoke")
    nodes = a["worker"].str.extract(r":node=([0-9a-f]{8})$")[0]
    assert nodes.notna().all() and nodes.nunique() == 2, a["worker"].value_counts()  # runs on both nodes
    assert len(a) == len(b) == 16 and (a["status"] == "ok").all() and (b["status"] == "ok").all()
    assert a["run_id"].tolist() == b["run_id"].tolist() and a["check"].tolist() == b["check"].tolist()
    for col in CHECK_VALUES:  # bit for bit, fp32 and fp16 alike
        assert _identical(a[col], b[col]), col
    assert set(a["precision"]) == {"fp32", "fp16"}


@pytest.mark.slow
def test_ray_job_submit_of_a_sweep(cluster: dict[str, Any], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # scripts/submit.py sets it
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "submit.py"), "--address", cluster["dashboard"],
                        "sweep=smoke", "sweep.seed=[0]", "store.root=results"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "succeeded" in r.stdout + r.stderr
    assert f"Ray at {cluster['address']}" in r.stdout  # the job's driver joined the cluster it runs on
    df = load_results(tmp_path / "results" / "smoke")  # relative store.root: made absolute at submission
    assert len(df) == 8 and df["run_id"].is_unique and (df["status"] == "ok").all()
    assert df["worker"].str.contains(":node=").all()
