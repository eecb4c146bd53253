"""The warm pool (python -m harness up/down): which sweeps use it, and that runs on it give the
same results as cold runs, bit for bit. Real Ray and TensorFlow in the end-to-end test."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from conftest import run_cli

from harness import load_results, pool, timeline
from harness.config import RayConfig, malloc_library


def write_state(directory: Path, **kw: object) -> pool.PoolState:
    state = pool.PoolState(address="127.0.0.1:1", pid=os.getpid(), actors=2, num_cpus_per_actor=1.0,
                           num_gpus_per_actor=0.0, code=pool.code_digest(), started=0.0, idle_minutes=60.0,
                           cwd=os.getcwd(), env=pool._env(), pid_start=pool.process_start(os.getpid()),
                           malloc=malloc_library("auto"))
    state = replace(state, **kw)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / pool.STATE).write_text(json.dumps(asdict(state)))
    return state


@pytest.fixture()
def pool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_POOL_DIR", str(tmp_path / "pool"))
    return tmp_path / "pool"


def test_a_matching_pool_is_used_and_why_another_is_not(pool_dir: Path) -> None:
    assert pool.usable(RayConfig()) == (None, "")  # no pool: the embedded default, silently
    state = write_state(pool_dir)
    assert pool.usable(RayConfig())[0] == state
    assert pool.usable(RayConfig(address="auto")) == (None, "")  # a cluster address never uses the pool
    assert pool.usable(RayConfig(warm=False)) == (None, "")
    got, why = pool.usable(RayConfig(num_cpus_per_actor=2.0))
    assert got is None and "ray.num_cpus_per_actor=2" in why and "running cold" in why
    write_state(pool_dir, code="0" * 16)
    got, why = pool.usable(RayConfig())
    assert got is None and "other harness code" in why and "harness down" in why
    write_state(pool_dir, cwd="/elsewhere")
    got, why = pool.usable(RayConfig())
    assert got is None and "started in /elsewhere" in why
    write_state(pool_dir, env={"XLA_FLAGS": "--xla_cpu_fast_math"})
    got, why = pool.usable(RayConfig())
    assert got is None and "XLA_FLAGS" in why
    write_state(pool_dir, env={"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"})  # XLA clusters
    got, why = pool.usable(RayConfig())
    assert got is None and "TF_XLA_FLAGS" in why
    state = write_state(pool_dir, malloc=None)  # a pool started with --malloc system
    assert pool.usable(RayConfig(malloc="system"))[0] == state
    if malloc_library("auto") is not None:
        got, why = pool.usable(RayConfig())
        assert got is None and "the system's allocator" in why and "ray.malloc=auto" in why and "--malloc auto" in why
        link = pool_dir / "libjemalloc-link.so"
        link.symlink_to(malloc_library("auto"))
        state = write_state(pool_dir, malloc=str(link))  # another path to the same library
        assert pool.usable(RayConfig())[0] == state
    raw = json.loads((pool_dir / pool.STATE).read_text())
    del raw["malloc"]  # a state file an older harness wrote (before the pool recorded its allocator) ...
    raw["from_a_newer_harness"] = 1  # ... or a newer one, with a field this one does not know
    (pool_dir / pool.STATE).write_text(json.dumps(raw))
    assert pool.read_state() is not None and pool.read_state().malloc is None


def test_a_shell_whose_ray_authentication_differs_from_the_pools_runs_cold(pool_dir: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    state = write_state(pool_dir, auth={"RAY_AUTH_MODE": "token"})
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert pool.usable(RayConfig())[0] == state  # unset here: the driver joins with the pool's setting
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert pool.usable(RayConfig())[0] == state
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    got, why = pool.usable(RayConfig())
    assert got is None and "RAY_AUTH_MODE=disabled" in why and "RAY_AUTH_MODE=token" in why and "cold" in why


def test_a_pool_that_is_still_starting_is_seen_by_up_status_and_down(pool_dir: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    daemon = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands in for a daemon importing TF
    threading.Thread(target=daemon.wait, daemon=True).start()  # reaped as soon as it ends
    pool_dir.mkdir(parents=True)
    (pool_dir / pool.STARTING).write_text(json.dumps([daemon.pid, pool.process_start(daemon.pid)]))
    assert pool.starting_pid() == daemon.pid
    assert pool.main(["up"]) == pool.EXIT_OK  # does not start a second daemon beside it
    assert f"starting (pid {daemon.pid})" in capsys.readouterr().out and not (pool_dir / pool.LOG).exists()
    assert pool.main(["up", "--status"]) == pool.EXIT_OK and "starting" in capsys.readouterr().out
    assert pool.main(["down"]) == pool.EXIT_OK
    assert "while it was starting" in capsys.readouterr().out
    daemon.wait(timeout=10)
    assert pool.starting_pid() is None and not (pool_dir / pool.STARTING).exists()
    (pool_dir / pool.STARTING).write_text(json.dumps([daemon.pid, "another-boot:1"]))  # a dead or reused pid
    assert pool.starting_pid() is None and not (pool_dir / pool.STARTING).exists()


def test_one_sweep_at_a_time_holds_the_pool(pool_dir: Path) -> None:
    first, second = pool.SweepLock(), pool.SweepLock()
    assert first.acquire() and not second.acquire(wait_s=0.1)  # a second sweep runs cold
    first.release()
    assert second.acquire(wait_s=0.1)
    second.release()


def test_a_dead_daemons_state_is_forgotten(pool_dir: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    write_state(pool_dir, pid=proc.pid)
    assert pool.read_state() is None and not (pool_dir / pool.STATE).exists()
    write_state(pool_dir, pid_start="another-boot:123")  # a live pid that is not the daemon (pid reuse)
    assert pool.read_state() is None and not (pool_dir / pool.STATE).exists()


def test_bad_arguments_are_one_line_and_exit_2(pool_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pool.main(["up", "--actors", "0"]) == pool.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--actors" in err and "below 1" in err
    assert pool.main(["up", "--malloc", "fast"]) == pool.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == "error: --malloc: 'fast' is not auto, system, jemalloc or the path of a malloc library"
    assert pool.main(["down"]) == pool.EXIT_OK and "no warm pool" in capsys.readouterr().out


def test_an_edited_scenario_module_is_reimported_by_a_warm_actor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    import importlib
    import sys

    from harness.dispatch import _Worker

    (tmp_path / "edited_scenario.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("edited_scenario")
    worker = object.__new__(_Worker)  # _fresh needs no Ray
    worker._stamps = {}
    worker._fresh("edited_scenario.Cls")
    (tmp_path / "edited_scenario.py").write_text("VALUE = 22\n")  # another size: a new stamp even at equal mtime
    worker._fresh("edited_scenario.Cls")
    assert sys.modules["edited_scenario"].VALUE == 22 and module.VALUE == 22
    # a module the actor has not imported yet is stamped as the run imports it: a later edit is seen
    (tmp_path / "later_scenario.py").write_text("VALUE = 1\n")
    worker._fresh("later_scenario.Cls")
    later = importlib.import_module("later_scenario")  # what execute() does next
    (tmp_path / "later_scenario.py").write_text("VALUE = 333\n")
    worker._fresh("later_scenario.Cls")
    assert later.VALUE == 333
    sys.modules.pop("later_scenario", None)


def test_runs_on_a_warm_pool_equal_cold_runs_bit_for_bit(tmp_path: Path) -> None:
    env = {"HARNESS_POOL_DIR": str(tmp_path / "pool")}
    args = ["sweep=smoke", "sweep.seed=[0]", "sweep.data_size=[1000]"]
    up = subprocess.run([os.sys.executable, "-m", "harness", "up", "--actors", "2", "--idle-minutes", "5"],
                        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
                        cwd=tmp_path)  # where the sweeps run: a pool started elsewhere is not used
    try:
        assert up.returncode == 0, up.stderr
        assert "warm pool up" in up.stdout
        assert not (tmp_path / "pool" / pool.STARTING).exists()  # up once the daemon says it is up
        status = subprocess.run([os.sys.executable, "-m", "harness", "up", "--status"], capture_output=True, text=True,
                                timeout=60, env={**os.environ, **env})
        assert pool._allocator(malloc_library("auto")) in status.stdout  # as a cold sweep's embedded Ray
        warm = run_cli([*args, f"store.root={tmp_path / 'warm'}"], cwd=tmp_path,
                       env={**env, timeline.ENV: str(tmp_path / "warm.timeline")})
        assert warm.returncode == 0, warm.stderr
        assert "warm pool: " in warm.stdout
        names = {e.name for e in timeline.read(tmp_path / "warm.timeline")}  # the pool's actors started before
        assert {"driver start", "ray.init done", "run finished", "driver exit"} <= names
        assert "actor tf import start" not in names
        again = run_cli([*args, f"store.root={tmp_path / 'again'}"], cwd=tmp_path, env=env)  # actors reused
        assert again.returncode == 0 and "warm pool: " in again.stdout
    finally:
        down = subprocess.run([os.sys.executable, "-m", "harness", "down"], capture_output=True, text=True,
                              timeout=120, env={**os.environ, **env})
    assert down.returncode == 0 and "warm pool down" in down.stdout
    assert not (tmp_path / "pool" / pool.STATE).exists()
    cold = run_cli([*args, f"store.root={tmp_path / 'cold'}"], cwd=tmp_path,
                   env={**env, timeline.ENV: str(tmp_path / "cold.timeline")})
    assert cold.returncode == 0 and "embedded local Ray" in cold.stdout
    events = timeline.read(tmp_path / "cold.timeline")
    assert set(timeline.phases(events)) == {"driver before Ray", "Ray start", "actor start", "TF import in actors",
                                            "runs", "end", "Ray shutdown"}
    assert len({e.pid for e in events if e.name == "actor tf import done"}) == 2  # both actors, their own pids
    assert sum(e.name == "run finished" for e in events) == 6
    measured = ["run_id", "check", "n_evaluated", "n_failed", "n_nonfinite", "first_failure_step", "worst_value",
                "worst_margin", "final_loss", "passed"]
    frames = [load_results(tmp_path / d / "smoke").sort_values(["run_id", "check"])[measured].reset_index(drop=True)
              for d in ("warm", "again", "cold")]
    assert len(frames[0]) == 4 + 2 * 2  # loss_bound: 2 precisions x 2 clips; normalization: 2 precisions x 2 checks
    for f in frames[1:]:
        assert f.equals(frames[0])  # NaN == NaN, floats exact
