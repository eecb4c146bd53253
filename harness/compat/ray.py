"""Every reach into Ray's private API, each with its public fallback (docs/engine.md, "Private reaches").

Each function here either does what the harness wants through a name Ray keeps private, or, where this
Ray does not have that name, does what plain public Ray does and says so once (harness.compat.fallback
under the reach's name below). Nothing here changes a result: each reach buys start or stop time, or a
quieter or earlier error. tests/test_compat_ray.py fails when a fallback is what runs on the installed Ray.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from harness.compat import fallback

log = logging.getLogger(__name__)

# the reaches, by the private name each depends on (the names harness.compat.taken() reports)
NODE_STARTS = "ray._private.node.Node.start_*"
GET_NODE = "ray._private.services.get_node"
GCS_NODE_TABLE = "ray._private.state.GlobalState"
MONITOR_KILL = "ray._private.node.Node._kill_process_type"
PRELOAD_MODULES = "RAY_preload_python_modules"
CANONICAL_ADDRESS = "ray._private.services.canonicalize_bootstrap_address"
NUM_CPUS = "ray._private.utils.get_num_cpus"
TOKEN_NOTICE = "ray._private.authentication.authentication_token_setup"
REACHES = (NODE_STARTS, GET_NODE, GCS_NODE_TABLE, MONITOR_KILL, PRELOAD_MODULES, CANONICAL_ADDRESS, NUM_CPUS,
           TOKEN_NOTICE)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _patch(stack: ExitStack, owner: Any, name: str, replacement: Callable[..., Any]) -> bool:
    """``owner.name`` replaced until ``stack`` closes, if it is a callable there."""
    original = getattr(owner, name, None)
    if not callable(original):
        return False
    setattr(owner, name, replacement)
    stack.callback(setattr, owner, name, original)
    return True


def skip_node_starts(stack: ExitStack, methods: Sequence[str]) -> list[str]:
    """Make each of ``methods`` of ray._private.node.Node (``start_api_server``, ...) start nothing until
    ``stack`` closes; returns those replaced. Fallback: Ray starts those processes as it does."""
    try:
        from ray._private.node import Node
    except ImportError as exc:
        fallback(NODE_STARTS, _why(exc))
        return []
    done = [m for m in methods if _patch(stack, Node, m, lambda self, *args, **kwargs: None)]
    if len(done) < len(methods):
        fallback(NODE_STARTS, f"Node has no {', '.join(m for m in methods if m not in done)}")
    return done


def poll_registration(stack: ExitStack, wait: Callable[[str, str], None]) -> bool:
    """Until ``stack`` closes, ray._private.services.get_node (ray.init's once-a-second wait for its
    raylet) first calls ``wait(gcs_address, node_id)``. Fallback: Ray's own wait alone."""
    try:
        from ray._private import services
    except ImportError as exc:
        fallback(GET_NODE, _why(exc))
        return False
    get_node = getattr(services, "get_node", None)

    def get_node_once_registered(gcs_address: str, node_id: str, *args: Any, **kwargs: Any) -> Any:
        wait(gcs_address, node_id)
        return get_node(gcs_address, node_id, *args, **kwargs)  # type: ignore[misc]

    if not _patch(stack, services, "get_node", get_node_once_registered):
        fallback(GET_NODE, "ray._private.services has no get_node")
        return False
    return True


class NodeTable:
    """The GCS's table of nodes, asked directly (before ray.init has returned, no public API can ask it)."""

    def __init__(self, gcs_address: str) -> None:
        from ray._private import services, state

        self._gcs = state.GlobalState()
        self._gcs._initialize_global_state(services._get_gcs_client_options(gcs_address))

    def has(self, node_id: str) -> bool:
        return any(n.get("NodeID") == node_id for n in self._gcs.node_table())

    def close(self) -> None:
        try:
            self._gcs.disconnect()
        except Exception:
            pass


def node_table(gcs_address: str) -> NodeTable | None:
    """The GCS's node table at ``gcs_address``, or None. Fallback (None): the caller leaves the wait to Ray."""
    try:
        return NodeTable(gcs_address)
    except (ImportError, AttributeError, TypeError) as exc:
        fallback(GCS_NODE_TABLE, _why(exc))
    except Exception as exc:  # the GCS did not answer: not a change of Ray's, Ray's own wait takes over
        log.debug("could not ask the GCS at %s for its nodes: %s", gcs_address, _why(exc))
    return None


def end_monitor(ray: Any) -> None:
    """Kill the autoscaler monitor of the Ray this process started, outright (no SIGTERM and its grace
    second). Nothing for a Ray this process joined. Fallback: ray.shutdown stops it as Ray does."""
    try:
        from ray._private import ray_constants

        node = ray._private.worker._global_node  # None unless this process started or joined Ray
        kind = ray_constants.PROCESS_TYPE_MONITOR
        if node is None or kind not in node.all_processes:  # only a monitor this process started
            return
        kill = node._kill_process_type
    except (ImportError, AttributeError) as exc:
        fallback(MONITOR_KILL, _why(exc))
        return
    try:
        kill(kind, allow_graceful=False, check_alive=False, wait=True)
    except Exception as exc:
        fallback(MONITOR_KILL, _why(exc))


def preload_supported() -> bool:
    """Whether this Ray's workers import the modules RAY_preload_python_modules names as they start (the
    raylet passes them to its workers' ``--worker-preload-modules``). Fallback (False): no preload."""
    try:
        spec = importlib.util.find_spec("ray._private.workers.default_worker")
        with open(spec.origin if spec and spec.origin else "", encoding="utf-8") as f:
            supported = "worker_preload_modules" in f.read()
    except (ImportError, OSError) as exc:
        fallback(PRELOAD_MODULES, _why(exc))
        return False
    if not supported:
        fallback(PRELOAD_MODULES, "Ray's default worker takes no --worker-preload-modules")
    return supported


def canonical_address(address: str) -> str:
    """``address`` as ray.init resolves it (host:port; 127.0.0.1 and localhost as this machine's address
    unless Ray runs on one machine; ``auto`` as the cluster recorded), "" when it names none. An
    address Ray cannot parse is returned as given (ray.init says what is wrong with it). Fallback: the
    address as given ("" for ``auto``)."""
    as_given = "" if address == "auto" else address
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError as exc:
        fallback(CANONICAL_ADDRESS, _why(exc))
        return as_given
    try:
        return canonicalize_bootstrap_address(address) or ""
    except Exception:
        return as_given


def num_cpus() -> float:
    """The CPUs ray.init counts on this machine (cgroup quotas included). Fallback: os.cpu_count()."""
    try:
        from ray._private.utils import get_num_cpus
    except ImportError as exc:
        fallback(NUM_CPUS, _why(exc))
        return float(os.cpu_count() or 1)
    return float(get_num_cpus())


def quiet_token_notice() -> None:
    """Silence the notice Ray logs on every start that creates or finds an authentication token (token
    authentication stays on). Fallback: the notice is shown."""
    try:
        found = importlib.util.find_spec(TOKEN_NOTICE) is not None
    except ImportError:
        found = False
    if not found:
        fallback(TOKEN_NOTICE, "no such module: its logger is not the notice's")
        return
    logging.getLogger(TOKEN_NOTICE).setLevel(logging.ERROR)
