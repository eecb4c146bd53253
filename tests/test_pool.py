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
    state = write_state(pool_dir, cwd="/elsewhere")  # its actors take each sweep's directory (test_pool_workdir.py)
    assert pool.usable(RayConfig())[0] == state
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


def test_the_daemon_stops_a_run_past_its_timeout_or_whose_driver_is_gone(tmp_path: Path) -> None:
    """What the daemon reads in the file an actor writes while it runs (its pid, the run's start on the
    monotonic clock, timeout_s, the driver's pid and start): the run is stopped once past its timeout
    (by REFILL_S: a live driver stops it at the timeout itself), or at once when its driver is gone."""
    path = tmp_path / f"worker-0{pool.RUN}"
    me = [os.getpid(), pool.process_start(os.getpid())]

    def record(**kw: object) -> None:
        path.write_text(json.dumps({"pid": 7, "run_id": "r1", "started": 100.0, "timeout_s": 20, "driver": me, **kw}))

    record()
    assert pool._orphaned(path, 7, now=101.0) == ""
    assert pool._orphaned(path, 7, now=100 + 20 + 1) == ""  # its driver stops it
    assert "run r1 is past its timeout_s=20" in pool._orphaned(path, 7, now=100 + 20 + pool.REFILL_S + 1)
    gone = subprocess.Popen(["true"])
    gone.wait()
    record(driver=[gone.pid, me[1]])
    assert pool._orphaned(path, 7, now=101.0) == f"the driver of run r1 (pid {gone.pid}) is gone"
    record(driver=[os.getpid(), "another-boot:1"])  # the driver's pid is now another process's
    assert "is gone" in pool._orphaned(path, 7, now=101.0)
    record(pid=8, driver=[gone.pid, me[1]])  # left by the actor this one replaced
    assert pool._orphaned(path, 7, now=10.0**9) == ""
    for text in ("[1]", "{", '{"pid": 7}'):
        path.write_text(text)
        assert pool._orphaned(path, 7, now=10.0**9) == ""
    path.unlink()
    assert pool._orphaned(path, 7, now=10.0**9) == ""


def test_bad_arguments_are_one_line_and_exit_2(pool_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pool.main(["up", "--actors", "0"]) == pool.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--actors" in err and "below 1" in err
    assert pool.main(["up", "--malloc", "fast"]) == pool.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == "error: --malloc: 'fast' is not auto, system, jemalloc or the path of a malloc library"
    assert pool.main(["down"]) == pool.EXIT_OK and "no warm pool" in capsys.readouterr().out


EDITED = """from harness.scenarios.loss_bound import LossBound

VERSION = {}


class Edited(LossBound):
    \"\"\"A scenario whose module is edited under a long-lived worker.\"\"\"
"""


def _edit(path: Path, version: int) -> None:
    """Rewrite the module as ``version``, keeping its size and modification time (as `touch -r` would)."""
    before = path.stat()
    path.write_text(EDITED.format(version))
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _driver_definition(directory: Path) -> str:
    """The definition a sweep's driver hashes into run ids: a fresh process, as every sweep's driver."""
    code = "from harness.scenarios.base import definition; print(definition('edited_scenario.Edited', {}))"
    r = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=directory,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(directory), os.environ["PYTHONPATH"]])})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_long_lived_worker_runs_the_code_its_run_ids_hash_even_after_a_same_size_same_mtime_edit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm actor compares the definition the driver hashed (RunSpec.definition) with that of the code it
    holds, computed by the same function over the source it compiled; an edit that keeps the file's size
    and mtime (which also makes Python trust the old .pyc) is picked up; a run whose hashed code is
    neither held nor on disk any more is an error, never run with other code."""
    import importlib.util
    import py_compile
    import sys

    from conftest import make_spec

    from harness.worker import Worker
    from harness.records import Status

    module_path = tmp_path / "edited_scenario.py"
    module_path.write_text(EDITED.format(1))
    py_compile.compile(str(module_path))  # a .pyc of version 1 that Python would keep using
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "edited_scenario", raising=False)
    worker = object.__new__(Worker)  # its run-time state without Ray and TensorFlow
    worker.name, worker._status, worker._sources, worker._digests = "test-worker", None, {}, {}

    def spec(definition: str) -> object:
        return make_spec(scenario="edited", target="edited_scenario.Edited", params={}, definition=definition)

    v1 = _driver_definition(tmp_path)
    assert worker._fresh(spec(v1)) == "" and sys.modules["edited_scenario"].VERSION == 1
    _edit(module_path, 2)
    assert Path(importlib.util.cache_from_source(str(module_path))).exists()  # the .pyc of version 1 too
    v2 = _driver_definition(tmp_path)
    assert v2 != v1  # new run ids for the new source
    assert worker._fresh(spec(v2)) == "" and sys.modules["edited_scenario"].VERSION == 2
    _edit(module_path, 3)  # edited again while a sweep that hashed version 2 runs
    assert worker._fresh(spec(v2)) == "" and sys.modules["edited_scenario"].VERSION == 2  # its runs run v2
    stale = worker.run(spec(v1))  # hashed version 1: neither held nor on disk
    assert stale.status is Status.ERROR and stale.error.startswith("ScenarioChanged: the source of edited_scenario")
    assert sys.modules["edited_scenario"].VERSION == 3
    assert worker._fresh(spec(_driver_definition(tmp_path))) == ""


def test_runs_on_a_warm_pool_equal_cold_runs_bit_for_bit(tmp_path: Path) -> None:
    from test_pool_live import code_snapshot

    code = code_snapshot(tmp_path / "code")  # the code the pool and the sweeps run, whatever edits meanwhile
    env = {"HARNESS_POOL_DIR": str(tmp_path / "pool"),
           "PYTHONPATH": os.pathsep.join([str(code), os.environ["PYTHONPATH"]])}
    args = ["sweep=smoke", "sweep.seed=[0]", "sweep.data_size=[1000]"]
    up = subprocess.run([os.sys.executable, "-m", "harness", "up", "--actors", "2", "--idle-minutes", "5"],
                        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
                        cwd=code)  # not where the sweeps run: a pool serves any directory
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
        assert "joining the warm pool ..." in warm.stdout and "starting Ray" not in warm.stdout  # what it waits on
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
    assert len(frames[0]) == 4 * 2 + 2 * 2  # loss_bound: 2 precisions x 2 clips x 2 checks; normalization: 2 x 2
    for f in frames[1:]:
        assert f.equals(frames[0])  # NaN == NaN, floats exact
