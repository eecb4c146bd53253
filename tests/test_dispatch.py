"""Dispatch on a real embedded Ray: loopback only, actors, results as runs finish."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT

PROBE = textwrap.dedent("""
    import ipaddress, json, os
    from harness.config import RayConfig
    from harness.raysession import connect

    def listeners():
        out = set()
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = open(name).read().splitlines()[1:]
            except FileNotFoundError:
                continue
            for ln in lines:
                local, state = ln.split()[1], ln.split()[3]
                if state != "0A":  # LISTEN
                    continue
                host_hex, port_hex = local.split(":")
                raw = bytes.fromhex(host_hex)
                if len(raw) == 4:
                    addr = ipaddress.IPv4Address(raw[::-1])
                else:
                    addr = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                    addr = addr.ipv4_mapped or addr  # ::ffff:127.0.0.1 is loopback too
                out.add((str(addr), int(port_hex, 16), addr.is_loopback))
        return out

    before = listeners()
    ray, embedded, owned = connect(RayConfig(), runs=48)  # as a sweep connects: its preload decision imports Ray
    gcs = ray.get_runtime_context().gcs_address
    new = listeners() - before
    session = ray._private.worker._global_node.get_session_dir_path()
    token = os.path.expanduser("~/.ray/auth_token")
    parent = os.path.dirname(session)
    modes = {"token": os.stat(token).st_mode & 0o777, "session_parent": os.stat(parent).st_mode & 0o777,
             "root": os.stat(os.path.dirname(parent)).st_mode & 0o777, "token_size": os.path.getsize(token)}
    ray.shutdown()
    from harness import compat, raystart  # the private ray.init argument was taken, not its RAY_TMPDIR fallback
    print(json.dumps({"gcs": gcs, "embedded": embedded, "new": sorted(new), "session": session,
                      "fallback": raystart._temp_dir_refused, "taken": compat.taken(), **modes}))
""")


def test_embedded_ray_listens_on_loopback_only_and_keeps_its_files_private(tmp_path: Path) -> None:
    """Only loopback listens; the token that gates it is 0600 and its session directories are in
    directories only this user can enter (harness.raystart.init_local). HOME is a fresh one: Ray writes
    a new token into the file the harness created 0600 (an existing 0644 one is tightened)."""
    import json

    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("0" * 64)
    (home / ".ray" / "auth_token").chmod(0o644)  # as Ray 2.60 writes it under a 022 umask
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_TMPDIR", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                                                             "RAY_AUTH_MODE")}
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180, cwd=ROOT,
                       env={**env, "HOME": str(home)})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["embedded"] and info["gcs"].startswith("127.0.0.1:")
    assert info["new"], "Ray opened no listening socket?"
    exposed = [x for x in info["new"] if not x[2]]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert info["token"] == 0o600 and info["token_size"] == 64
    assert info["session_parent"] == 0o700 and info["root"] == 0o700, info
    assert info["fallback"] == [], info  # fails when Ray stopped taking _temp_dir and the fallback ran
    assert info["taken"] == {}, info  # every private reach of a sweep's start (harness.compat.ray) applied
    assert Path(info["session"]).parent.parent.name == f"harness-ray-{os.getuid()}"
    (home / ".ray" / "auth_token").unlink()  # none yet: created 0600 before Ray writes its token into it
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180, cwd=ROOT,
                       env={**env, "HOME": str(home)})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["token"] == 0o600 and info["token_size"] == 64


STOP_PROBE = textwrap.dedent("""
    import json
    import ray
    from harness import compat
    from harness.compat.ray import end_monitor
    from harness.raysession import shutdown_later, wait_stopped

    ray.init(address="local", include_dashboard=False)  # as Ray starts it (a warm pool's): with its monitor
    embedded = True
    node = ray._private.worker._global_node
    procs = {kind: [p.process for p in infos] for kind, infos in node.all_processes.items()}
    end_monitor(ray)
    after_monitor = {kind: [p.poll() is None for p in ps] for kind, ps in procs.items()}
    shutdown_later(ray)
    wait_stopped()
    after_stop = {kind: [p.poll() is None for p in ps] for kind, ps in procs.items()}
    print(json.dumps({"embedded": embedded, "after_monitor": after_monitor, "after_stop": after_stop,
                      "taken": compat.taken()}))
""")


def test_stopping_embedded_ray_ends_its_monitor_first_and_then_every_process() -> None:
    """The autoscaler monitor is killed outright before ray.shutdown (which would give it a second
    to exit on SIGTERM that it does not use); the rest stop as ray.shutdown stops them. (A sweep's
    embedded Ray starts without a monitor unless it has its dashboard: harness.raystart.)"""
    import json

    r = subprocess.run([sys.executable, "-c", STOP_PROBE], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["embedded"] and info["after_monitor"]["monitor"] == [False]
    assert info["after_monitor"]["gcs_server"] == [True] and info["after_monitor"]["raylet"] == [True]
    assert not any(alive for flags in info["after_stop"].values() for alive in flags), info["after_stop"]
    assert info["taken"] == {}, info  # the monitor was killed through Ray's private API, not left to ray.shutdown


def test_run_queue_keeps_an_actor_on_the_structure_it_traced() -> None:
    from conftest import make_spec

    from harness.scheduler import RunQueue

    # structures interleave in the sweep's order
    specs = [make_spec(seed=s, precision=p) for p in ("fp32", "fp16", "bf16") for s in range(3)]
    specs = specs[::3] + specs[1::3] + specs[2::3]
    q = RunQueue(specs)
    a = q.pop()
    b = q.pop(None, [a.structure()])  # a second actor starts on another structure
    assert a.precision == "fp32" and b.precision == "fp16"
    assert [q.pop(a.structure(), [b.structure()]).precision for _ in range(2)] == ["fp32", "fp32"]
    q.push_front(b)  # a retried run goes first in its group
    assert q.pop(b.structure()) is b
    # fp32 is exhausted: the actor moves to the structure nobody is on, then takes any
    assert q.pop(a.structure(), [b.structure()]).precision == "bf16"
    assert len(q) == 4 and {s.precision for s in [q.pop() for _ in range(4)]} == {"fp16", "bf16"} and not q


MALLOC_PROBE = textwrap.dedent("""
    import json, os
    from harness.config import RayConfig
    from harness.raysession import CONNECT_RETRY, NO_TASK_EVENTS, connect, shutdown

    ours = ("LD_PRELOAD", *CONNECT_RETRY, *NO_TASK_EVENTS)
    before = {k: os.environ.get(k) for k in ours}
    ray, embedded, owned = connect(RayConfig(malloc="jemalloc"))

    def applied():  # what Ray's config in this process holds (Ray's private view of it, where it has one)
        import ray._raylet as r
        names = ("raylet_client_connect_timeout_milliseconds", "raylet_client_num_connect_attempts")
        return [str(getattr(r.Config, n)()) if hasattr(r.Config, n) else None for n in names]

    @ray.remote(num_cpus=1)
    def mapped():
        import os
        return (any("jemalloc" in line for line in open(f"/proc/{os.getpid()}/maps")),
                {k: os.environ.get(k) for k in (*CONNECT_RETRY, *NO_TASK_EVENTS)}, applied())

    jemalloc, retry, worker_config = ray.get(mapped.remote())
    expected = [v if worker_config[i] is not None else None for i, v in enumerate(CONNECT_RETRY.values())]
    print(json.dumps({"worker": jemalloc, "retry": retry == {**CONNECT_RETRY, **NO_TASK_EVENTS},
                      "applied": worker_config == expected and applied() == expected,
                      "driver": {k: os.environ.get(k) for k in ours} == before}))
    shutdown(ray)
""")


def _jemalloc() -> str | None:
    from harness.config import ConfigError, malloc_library

    try:
        return malloc_library("jemalloc")
    except ConfigError:
        return None


JEMALLOC_PROBE = """
import ctypes, os
libc_malloc = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
spans = [line.split()[0].split("-") for line in open(f"/proc/{os.getpid()}/maps") if "jemalloc" in line]
print(any(int(lo, 16) <= libc_malloc < int(hi, 16) for lo, hi in spans))
"""


def test_embedded_env_sets_and_restores_and_keeps_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedded Ray starts with the allocator preloaded in front of what LD_PRELOAD had, Ray's
    connect retry every 50 ms (CONNECT_RETRY) and, without its dashboard, no task events; a user who
    set either retry variable keeps both as set, one who set the task events' interval keeps it; the
    environment is as it was after the block, also when the block raises. TensorFlow's preload is
    set only when asked for, and a preload list the user set is kept."""
    from harness.raysession import CONNECT_RETRY, NO_TASK_EVENTS, PRELOAD, embedded_env

    for k in (*CONNECT_RETRY, *NO_TASK_EVENTS, *PRELOAD, "LD_PRELOAD"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LD_PRELOAD", "/x/libother.so")
    before = dict(os.environ)
    with pytest.raises(KeyError), embedded_env("/x/libjemalloc.so"):
        assert os.environ["LD_PRELOAD"] == "/x/libjemalloc.so /x/libother.so"
        assert {k: os.environ[k] for k in (*CONNECT_RETRY, *NO_TASK_EVENTS)} == {**CONNECT_RETRY, **NO_TASK_EVENTS}
        assert not any(k in os.environ for k in PRELOAD)
        raise KeyError
    assert dict(os.environ) == before
    monkeypatch.setenv("RAY_raylet_client_num_connect_attempts", "7")
    with embedded_env(None, dashboard=True):  # the dashboard's task views need the task events
        assert os.environ["RAY_raylet_client_num_connect_attempts"] == "7"
        assert not any(k in os.environ for k in ("RAY_raylet_client_connect_timeout_milliseconds", *NO_TASK_EVENTS))
        assert os.environ["LD_PRELOAD"] == "/x/libother.so"
    assert os.environ["RAY_raylet_client_num_connect_attempts"] == "7"
    monkeypatch.setenv("RAY_task_events_report_interval_ms", "500")
    with embedded_env(None):
        assert os.environ["RAY_task_events_report_interval_ms"] == "500"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with embedded_env(None, preload_threads=2):  # numpy's BLAS reads it as TF's import loads it
        assert {k: os.environ[k] for k in PRELOAD} == PRELOAD and os.environ["OMP_NUM_THREADS"] == "2"
    assert not any(k in os.environ for k in (*PRELOAD, "OMP_NUM_THREADS"))
    monkeypatch.setenv("RAY_preload_python_modules", "mine")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    with embedded_env(None, preload_threads=1):
        assert os.environ["RAY_preload_python_modules"] == "mine,harness.engine.preload"
        assert os.environ["OMP_NUM_THREADS"] == "4"
    assert os.environ["RAY_preload_python_modules"] == "mine"


def test_ray_malloc_jemalloc_is_the_copy_rays_wheel_ships() -> None:
    """Nothing to install beyond the project: ray.malloc=jemalloc, and the default (auto) on Linux, is the
    libjemalloc in Ray's wheel, and a process started with it preloaded gets its malloc from it (not glibc's)."""
    from harness.config import RayConfig, _ray_jemalloc, malloc_library

    path = _jemalloc()
    assert path is not None and path == _ray_jemalloc() and Path(path).parent.name == "core"
    assert RayConfig().malloc == "auto" and malloc_library("auto") == (path if sys.platform == "linux" else None)
    r = subprocess.run([sys.executable, "-c", JEMALLOC_PROBE], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "LD_PRELOAD": path})
    assert r.returncode == 0 and r.stdout.split() == ["True"], r.stdout + r.stderr


@pytest.mark.skipif(_jemalloc() is None, reason="no libjemalloc in Ray's wheel or on this machine")
@pytest.mark.slow  # a long real sweep or pool; `pytest -m slow` runs it (the default run stays near 10 minutes)
def test_ray_malloc_jemalloc_reaches_the_workers_and_gives_the_same_results(tmp_path: Path) -> None:
    """ray.malloc=jemalloc preloads it into an embedded Ray's processes (a worker maps it) and leaves the
    driver's environment as it was; a sweep's results are the same as with the system's allocator."""
    import json

    from conftest import run_cli

    from harness import load_results

    r = subprocess.run([sys.executable, "-c", MALLOC_PROBE], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"worker": True, "retry": True, "applied": True,
                                                              "driver": True}
    frames = []
    for malloc in ("system", "jemalloc"):
        args = ["sweep=smoke", "sweep.scenario=[loss_bound,normalization]", "sweep.data_size=[1000]",
                "sweep.steps=[50]", f"sweep.name={malloc}", f"ray.malloc={malloc}", "ray.warm=false",
                f"store.root={tmp_path}"]
        done = run_cli(args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        frames.append(load_results(tmp_path / malloc).drop(columns=["sweep", "wall_s", "train_s", "worker"])
                      .sort_values(["run_id", "check"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_a_driver_joining_the_warm_pool_records_no_task_events_and_one_joining_a_cluster_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm pool's Ray has no dashboard, so its drivers send no task events (a driver's ray.shutdown
    waited on their flush); a driver joining a user's cluster records them as the cluster does. The
    variable is set only while ray.init reads it."""
    import ray

    from harness import raysession
    from harness.config import RayConfig
    from harness.raysession import NO_TASK_EVENTS

    for k in NO_TASK_EVENTS:
        monkeypatch.delenv(k, raising=False)
    for k, v in (("RAY_USAGE_STATS_ENABLED", "0"), ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")):  # connect sets them
        monkeypatch.setenv(k, os.environ.get(k, v))
    seen: list[dict[str, str | None]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append({k: os.environ.get(k) for k in NO_TASK_EVENTS}))
    monkeypatch.setattr(raysession, "_check_reachable", lambda address: None)
    raysession.connect(RayConfig(address="127.0.0.1:6379"), namespace="harness-pool")
    raysession.connect(RayConfig(address="127.0.0.1:6379"))
    assert seen == [dict(NO_TASK_EVENTS), {k: None for k in NO_TASK_EVENTS}]
    assert not any(k in os.environ for k in NO_TASK_EVENTS)


class FakeRay:
    """Only what num_actors reads: the cluster's resources."""

    def __init__(self, **resources: float) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_a_ray_num_actors_above_what_fits_is_capped_with_a_note_saying_why() -> None:
    from harness.config import RayConfig
    from harness.raysession import num_actors

    n, cpus, gpus, note = num_actors(FakeRay(CPU=2), RayConfig(num_actors=1000), 100)
    assert (n, cpus, gpus) == (2, 2.0, 0.0)
    assert note.startswith("ray.num_actors=1000 capped to 2: ") and "2 CPU" in note and "ray.num_cpus_per_actor" in note
    assert num_actors(FakeRay(CPU=8), RayConfig(num_actors=3), 100) == (3, 8.0, 0.0, "")  # fewer: as asked
    assert num_actors(FakeRay(CPU=8), RayConfig(), 5)[::3] == (5, "")  # one per CPU, no more than runs
