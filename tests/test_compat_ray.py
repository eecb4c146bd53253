"""Every reach into Ray's private API (harness.compat.ray): on the installed Ray each one applies, no
fallback runs; with its private name taken away, the public path runs instead, works, and says so once.

The reaches that need a running Ray are checked on one in the probes of tests/test_raystart.py (the
lean start, the registration poll, the GCS's node table, the preload) and tests/test_dispatch.py (the
monitor killed before ray.shutdown), which assert that compat.taken() is empty there.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import ray._private.node
import ray._private.services
import ray._private.state
import ray._private.utils

from harness import compat
from harness.compat import ray as compat_ray
from harness.config import RayConfig


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No fallback recorded yet in this process."""
    monkeypatch.setattr(compat, "_TAKEN", {})


def said_once(caplog: pytest.LogCaptureFixture, reach: str) -> bool:
    return sum(reach in r.getMessage() for r in caplog.records if r.name == "harness.compat") == 1


def test_on_the_installed_ray_every_reach_that_runs_without_a_ray_applies() -> None:
    with ExitStack() as stack:
        methods = ["start_api_server", "start_monitor", "start_log_monitor"]
        assert compat_ray.skip_node_starts(stack, methods) == methods
        assert compat_ray.poll_registration(stack, lambda gcs, node: None)
    assert compat_ray.preload_supported()
    assert compat_ray.canonical_address("localhost:6379").endswith(":6379")
    assert compat_ray.num_cpus() >= 1
    compat_ray.quiet_token_notice()
    assert logging.getLogger(compat_ray.TOKEN_NOTICE).level == logging.ERROR
    assert compat.taken() == {}


def test_without_node_start_methods_ray_starts_them_and_it_is_said_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from harness.raystart import lean_start

    monkeypatch.delattr(ray._private.node.Node, "start_monitor")
    for _ in range(2):
        with lean_start(dashboard=False, usage_stats=False, log_to_driver=False) as changed:
            assert changed == ["dashboard head", "log monitor", "registration poll"]
    assert compat_ray.NODE_STARTS in compat.taken() and said_once(caplog, compat_ray.NODE_STARTS)
    monkeypatch.setitem(sys.modules, "ray._private.node", None)  # the module itself gone
    with ExitStack() as stack:
        assert compat_ray.skip_node_starts(stack, ["start_monitor"]) == []


def test_without_get_node_ray_waits_for_its_raylet_its_own_way(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from harness.raystart import lean_start

    monkeypatch.delattr(ray._private.services, "get_node")
    for _ in range(2):
        with lean_start(dashboard=True, usage_stats=False, log_to_driver=True) as changed:
            assert changed == []
    assert compat_ray.GET_NODE in compat.taken() and said_once(caplog, compat_ray.GET_NODE)


def test_without_the_gcs_state_class_the_registration_wait_returns_at_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from harness import raystart

    monkeypatch.delattr(ray._private.state, "GlobalState")
    monkeypatch.setattr(raystart, "REGISTRATION_WAIT_S", 0.5)
    for _ in range(2):
        raystart._wait_registered("127.0.0.1:1", "ab" * 28)
    assert compat_ray.GCS_NODE_TABLE in compat.taken() and said_once(caplog, compat_ray.GCS_NODE_TABLE)


class FakeNode:
    def __init__(self) -> None:
        from ray._private import ray_constants

        self.all_processes = {ray_constants.PROCESS_TYPE_MONITOR: [object()]}


def fake_ray(node: Any) -> Any:
    calls: list[str] = []
    return SimpleNamespace(_private=SimpleNamespace(worker=SimpleNamespace(_global_node=node)),
                           shutdown=lambda: calls.append("shutdown"), calls=calls)


def test_the_monitor_kill_reaches_the_node_ray_started(caplog: pytest.LogCaptureFixture) -> None:
    """The reach as the installed Ray has it: a Node has _kill_process_type, called for the monitor only."""
    from harness.raysession import shutdown

    assert callable(getattr(ray._private.node.Node, "_kill_process_type", None))
    node = FakeNode()
    killed: list[tuple[str, dict]] = []
    node._kill_process_type = lambda kind, **kw: killed.append((kind, kw))  # type: ignore[attr-defined]
    r = fake_ray(node)
    shutdown(r)
    assert [k for k, _ in killed] == ["monitor"] and killed[0][1]["allow_graceful"] is False
    assert r.calls == ["shutdown"] and compat.taken() == {}
    shutdown(fake_ray(None))  # a Ray this process neither started nor joined: nothing to kill, no fallback
    assert compat.taken() == {}


def test_without_the_monitor_kill_ray_shutdown_stops_it_and_it_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    from harness.raysession import shutdown

    for _ in range(2):
        r = fake_ray(FakeNode())  # no _kill_process_type
        shutdown(r)
        assert r.calls == ["shutdown"]
    assert compat_ray.MONITOR_KILL in compat.taken() and said_once(caplog, compat_ray.MONITOR_KILL)


def test_without_the_worker_preload_option_tensorflow_is_not_preloaded(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from harness.raysession import preload_tensorflow

    monkeypatch.setattr(ray._private.utils, "get_num_cpus", lambda *a, **k: 2.0)
    assert preload_tensorflow(RayConfig(), 48)  # as the installed Ray has it
    older = tmp_path / "default_worker.py"
    older.write_text("# a default worker that takes no preload option\n")
    spec = importlib.machinery.ModuleSpec("ray._private.workers.default_worker", None, origin=str(older))
    real = compat_ray.importlib.util.find_spec
    monkeypatch.setattr(compat_ray.importlib.util, "find_spec",
                        lambda name, *a: spec if name == spec.name else real(name, *a))
    for _ in range(2):
        assert not preload_tensorflow(RayConfig(), 48)
    assert compat_ray.PRELOAD_MODULES in compat.taken() and said_once(caplog, compat_ray.PRELOAD_MODULES)


def test_without_rays_address_resolution_the_address_is_checked_as_given(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from harness.raysession import DispatchError, _check_reachable

    monkeypatch.delattr(ray._private.services, "canonicalize_bootstrap_address")
    assert compat_ray.canonical_address("auto") == ""
    assert compat_ray.canonical_address("127.0.0.1:1") == "127.0.0.1:1"
    with pytest.raises(DispatchError, match="no Ray cluster answers at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1")  # port 1: nothing listens
    assert compat_ray.CANONICAL_ADDRESS in compat.taken() and said_once(caplog, compat_ray.CANONICAL_ADDRESS)


def test_an_address_ray_cannot_parse_is_left_to_ray_init_without_a_fallback() -> None:
    assert compat_ray.canonical_address("not an address") == "not an address"
    assert compat.taken() == {}


def test_without_rays_cpu_count_the_machines_is_used(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delattr(ray._private.utils, "get_num_cpus")
    assert compat_ray.num_cpus() == float(os.cpu_count() or 1) and compat_ray.num_cpus() >= 1
    assert compat_ray.NUM_CPUS in compat.taken() and said_once(caplog, compat_ray.NUM_CPUS)


def test_without_the_token_notice_module_the_notice_is_left_as_it_is(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, compat_ray.TOKEN_NOTICE, None)
    monkeypatch.setattr(logging.getLogger(compat_ray.TOKEN_NOTICE), "level", logging.NOTSET)
    for _ in range(2):
        compat_ray.quiet_token_notice()
    assert logging.getLogger(compat_ray.TOKEN_NOTICE).level == logging.NOTSET
    assert compat_ray.TOKEN_NOTICE in compat.taken() and said_once(caplog, compat_ray.TOKEN_NOTICE)


def test_every_reach_has_a_test_here() -> None:
    """A reach added to harness.compat.ray without a fallback test fails here."""
    source = Path(__file__).read_text()
    assert [r for r in compat_ray.REACHES if f"compat_ray.{_constant(r)}" not in source] == []


def _constant(reach: str) -> str:
    return next(k for k, v in vars(compat_ray).items() if v == reach and k.isupper() and k != "REACHES")
