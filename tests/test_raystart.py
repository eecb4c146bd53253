"""A sweep's embedded Ray starts lean (harness.raystart) and its workers import TensorFlow as they
start (harness.engine.preload): what each changes, on the installed Ray, and that a start with them
still does what a sweep needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT
from harness.config import RayConfig


def test_every_part_of_the_lean_start_applies_to_the_installed_ray_and_is_undone_after() -> None:
    """Ray's private API: a Ray whose Node or services changed would start as before, silently
    slower; this says so instead."""
    from ray._private import node, services

    from harness.raystart import lean_start

    before = {name: getattr(node.Node, name) for name in ("start_api_server", "start_monitor", "start_log_monitor")}
    get_node = services.get_node
    with lean_start(dashboard=False, usage_stats=False, log_to_driver=False) as changed:
        assert changed == ["dashboard head", "autoscaler monitor", "log monitor", "registration poll"]
        assert all(getattr(node.Node, name) is not fn for name, fn in before.items())
    assert {name: getattr(node.Node, name) for name in before} == before and services.get_node is get_node
    with lean_start(dashboard=True, usage_stats=False, log_to_driver=True) as changed:  # what the config uses starts
        assert changed == ["registration poll"]
        assert {name: getattr(node.Node, name) for name in before} == before
    with pytest.raises(KeyError), lean_start(dashboard=False, usage_stats=False, log_to_driver=True) as changed:
        assert changed == ["dashboard head", "autoscaler monitor", "registration poll"]
        raise KeyError
    with lean_start(dashboard=False, usage_stats=True, log_to_driver=False) as changed:  # the head reports them
        assert changed == ["autoscaler monitor", "log monitor", "registration poll"]
    assert {name: getattr(node.Node, name) for name in before} == before and services.get_node is get_node


@pytest.mark.parametrize(("cfg", "runs", "cpus", "expected"), [
    (RayConfig(), 48, 2.0, True),  # one actor per CPU: every prestarted worker holds one
    (RayConfig(), 1, 2.0, False),  # one run, one actor: the second worker would import it for nothing
    (RayConfig(num_cpus_per_actor=2.0), 48, 2.0, False),
    (RayConfig(num_cpus_per_actor=0.5), 48, 2.0, True),  # four actors, the two prestarted workers among them
    (RayConfig(num_actors=1), 48, 2.0, False),
    (RayConfig(num_actors=8), 48, 2.0, True),
    (RayConfig(num_gpus_per_actor=0.5), 48, 2.0, False),  # a worker gets its GPUs with its actor
    (RayConfig(address="auto"), 48, 2.0, False),
])
def test_tensorflow_is_preloaded_only_where_every_prestarted_worker_holds_an_actor(
        monkeypatch: pytest.MonkeyPatch, cfg: RayConfig, runs: int, cpus: float, expected: bool) -> None:
    import ray._private.utils

    from harness.raysession import preload_tensorflow

    monkeypatch.setattr(ray._private.utils, "get_num_cpus", lambda *a, **k: cpus)
    assert preload_tensorflow(cfg, runs) is expected


PROBE = textwrap.dedent("""
    import json, sys, time
    from harness.config import RayConfig
    from harness.raysession import connect, shutdown
    from harness import compat, raystart

    asked = []
    wait_registered = raystart._wait_registered
    raystart._wait_registered = lambda *a: (asked.append(a), wait_registered(*a))[1]
    logs = sys.argv[1] == "logs"  # one run, one actor: no TF preload; else every worker holds an actor
    ray, embedded, owned = connect(RayConfig(log_to_driver=logs), runs=1 if logs else 10**6)
    raystart._wait_registered = wait_registered

    class Tee:  # what this process prints, to wait for the worker's line (Ray prints it from a thread)
        def __init__(self, stream):
            self.stream, self.text = stream, []
        def write(self, s):
            self.text.append(s)
            return self.stream.write(s)
        def __getattr__(self, name):
            return getattr(self.stream, name)
    sys.stdout, sys.stderr = Tee(sys.stdout), Tee(sys.stderr)
    node = ray._private.worker._global_node
    kinds = sorted(node.all_processes)
    procs = [p.process for infos in node.all_processes.values() for p in infos]
    gcs = ray.get_runtime_context().gcs_address

    @ray.remote(num_cpus=1)
    def worker():
        import sys
        print("hello from a worker", flush=True)
        return ["harness.engine.preload" in sys.modules, "tensorflow" in sys.modules]

    preloaded = ray.get(worker.remote())
    t = time.monotonic()
    raystart._wait_registered(gcs, ray.get_runtime_context().get_node_id())
    known_s = time.monotonic() - t
    raystart.REGISTRATION_WAIT_S = 0.3
    t = time.monotonic()
    raystart._wait_registered(gcs, "ab" * 28)  # never registers: gives up, and Ray's own wait takes over
    unknown_s = time.monotonic() - t
    deadline = time.monotonic() + (15 if logs else 0)
    while time.monotonic() < deadline and "hello from a worker" not in "".join(sys.stdout.text + sys.stderr.text):
        time.sleep(0.1)
    shutdown(ray)
    print(json.dumps({"embedded": embedded, "kinds": kinds, "preloaded": preloaded, "known_s": known_s,
                      "unknown_s": unknown_s, "asked": len(asked), "alive": [p.poll() is None for p in procs],
                      "taken": compat.taken()}))
""")


def _probe(mode: str) -> tuple[dict, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}  # a user's =1 would keep the dashboard head
    r = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=240, cwd=ROOT,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stdout + r.stderr


def test_a_lean_embedded_ray_runs_work_preloads_tensorflow_and_stops_every_process() -> None:
    info, _ = _probe("quiet")
    assert info["embedded"]
    assert {"gcs_server", "raylet"} <= set(info["kinds"])
    assert not {"dashboard", "monitor", "log_monitor"} & set(info["kinds"]), info["kinds"]
    assert info["preloaded"] == [True, True]  # the task ran in a worker that had imported TF as it started
    assert info["asked"] >= 1  # ray.init's wait for the raylet went through the 20 ms poll
    assert info["known_s"] < 1.0  # a registered node is found on the first ask (Ray's own asks are 1 s apart)
    assert 0.25 <= info["unknown_s"] < 5.0
    assert not any(info["alive"]), info
    assert info["taken"] == {}, info  # every private reach (harness.compat.ray) applied, no fallback ran


def test_log_to_driver_keeps_its_log_monitor_and_a_workers_output_reaches_the_driver() -> None:
    info, output = _probe("logs")
    assert "log_monitor" in info["kinds"] and "monitor" not in info["kinds"], info["kinds"]
    assert info["preloaded"] == [False, False]  # one run: a worker would hold no actor, so no preload
    assert "hello from a worker" in output
    assert not any(info["alive"]), info


def test_usage_stats_a_user_turned_on_keep_the_dashboard_head_that_reports_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.raysession import _usage_stats_on

    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    assert not _usage_stats_on()
    for value, on in (("0", False), ("1", True), (" 1 ", True)):  # Ray takes 0 or 1
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", value)
        assert _usage_stats_on() is on


def test_rays_files_go_into_a_directory_private_to_the_user_or_the_start_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """harness.raystart.private_root: created 0700, a looser one of the user's tightened, a symlink or a
    file in its place refused in one line (another user could have put it there); RAY_TMPDIR wins."""
    from harness import raystart

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(raystart, "MAX_ROOT", 4096)
    root = raystart.private_root()
    assert root == runtime / f"harness-ray-{os.getuid()}" and (root.stat().st_mode & 0o777) == 0o700
    root.chmod(0o755)
    assert raystart.private_root() == root and (root.stat().st_mode & 0o777) == 0o700
    root.rmdir()
    root.symlink_to(tmp_path)
    with pytest.raises(raystart.NotPrivateError, match="is a symlink"):
        raystart.private_root()
    root.unlink()
    root.write_text("")
    with pytest.raises(raystart.NotPrivateError, match="not a directory"):
        raystart.private_root()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert raystart.private_root() is None


def test_the_token_file_is_private_to_the_user_before_ray_writes_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import raystart

    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(k, raising=False)
    token = tmp_path / ".ray" / "auth_token"
    raystart.private_token()  # none yet: an empty one, 0600, for Ray to write into
    assert token.read_text() == "" and (token.stat().st_mode & 0o777) == 0o600
    token.write_text("a" * 64)
    token.chmod(0o644)  # as Ray writes it under a 022 umask
    raystart.private_token()
    assert (token.stat().st_mode & 0o777) == 0o600 and token.read_text() == "a" * 64
    token.unlink()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token is made: none is created
    raystart.private_token()
    assert not token.exists()


def test_a_ray_that_does_not_take_temp_dir_gets_the_private_directory_through_ray_tmpdir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """_temp_dir is one of ray.init's "hidden" options: were it gone, Ray refuses it before it starts
    anything, and the start goes on with RAY_TMPDIR (said once), restored afterwards."""
    from harness import raystart

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(raystart, "_temp_dir_refused", [])
    calls: list[tuple[dict, str | None]] = []

    class NoTempDir:
        def init(self, **kw: object) -> None:
            calls.append((kw, os.environ.get("RAY_TMPDIR")))
            if "_temp_dir" in kw:
                raise RuntimeError("Unknown keyword argument(s): _temp_dir")

    root = raystart.private_root()
    for _ in range(2):
        raystart.init_local(NoTempDir(), namespace="n")
    assert calls == [({"address": "local", "_temp_dir": str(root / "ray"), "namespace": "n"}, None),
                     ({"address": "local", "namespace": "n"}, str(root)),
                     ({"address": "local", "namespace": "n"}, str(root))]  # asked once
    assert "RAY_TMPDIR" not in os.environ
    assert sum("does not take _temp_dir" in r.message for r in caplog.records) == 1
