"""What a sweep's embedded Ray starts without, and how it learns sooner that it is up.

``ray.init(address="local")`` starts, besides the GCS and the raylet (with its two agents) that a
sweep needs, three Python processes that a sweep's embedded Ray does not use unless configured to:

- a dashboard head, even without the dashboard: it then loads only Ray's usage-stats module (the
  harness turns usage stats off, RAY_USAGE_STATS_ENABLED=0, unless the user set it), and ray.init
  waits until it has imported and published its address before it starts the raylet;
- the autoscaler's monitor: nothing to scale on one machine;
- a log monitor: it streams the workers' output to the driver, which ``ray.log_to_driver`` (off
  by default) asks for.

Each imports Ray on the cores the rest of the start needs. And ray.init asks the GCS once a second
(``GlobalStateAccessor::GetNode``) whether the raylet has registered, so a registration just after
an ask costs up to a second more. ``lean_start`` (around the ray.init of a sweep's embedded Ray)
starts none of the three that the configuration does not use (``ray.include_dashboard=true`` keeps
the dashboard head and the monitor, usage stats the user turned on the dashboard head,
``ray.log_to_driver=true`` the log monitor) and asks every 20 ms until the raylet is there, then
lets Ray's own call fetch it. Without the monitor, ``ray status`` has no cluster status to show
for a sweep's embedded Ray (``ray.include_dashboard=true`` keeps it; a warm pool has it).
docs/benchmarks.md (figures 4 and 10) has what a cold sweep's start costs with it.

This is Ray's private API (``ray._private.node.Node``, ``ray._private.services.get_node``): where
it has changed, that part is left to Ray and the start is as before (``lean_start`` yields what it
changed; tests/test_raystart.py checks that every part applies to the installed Ray). A warm pool
(harness.pool), meant to be inspected with Ray's own tools, starts as Ray starts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

REGISTRATION_POLL_S = 0.02
REGISTRATION_WAIT_S = 10.0  # then Ray's own call and its once-a-second wait take over
SKIPPED = {  # Node method: the process it starts
    "start_api_server": "dashboard head",
    "start_monitor": "autoscaler monitor",
    "start_log_monitor": "log monitor",
}


def _not_started(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    return start


def _wait_registered(gcs_address: str, node_id: str) -> None:
    """Return once the GCS lists the node ``node_id`` (or after REGISTRATION_WAIT_S, or at once if
    the GCS cannot be asked this way)."""
    from ray._private import services, state

    try:
        gcs = state.GlobalState()
        gcs._initialize_global_state(services._get_gcs_client_options(gcs_address))
    except Exception:
        return
    try:
        deadline = time.monotonic() + REGISTRATION_WAIT_S
        while time.monotonic() < deadline:
            if any(n.get("NodeID") == node_id for n in gcs.node_table()):
                return
            time.sleep(REGISTRATION_POLL_S)
    except Exception:
        return
    finally:
        try:
            gcs.disconnect()
        except Exception:
            pass


def _polled(get_node: Callable[..., Any]) -> Callable[..., Any]:
    def get_node_once_registered(gcs_address: str, node_id: str, *args: Any, **kwargs: Any) -> Any:
        _wait_registered(gcs_address, node_id)
        return get_node(gcs_address, node_id, *args, **kwargs)

    return get_node_once_registered


def _patch(stack: ExitStack, owner: Any, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> bool:
    original = getattr(owner, name, None)
    if not callable(original):
        return False
    setattr(owner, name, wrap(original))
    stack.callback(setattr, owner, name, original)
    return True


@contextmanager
def lean_start(*, dashboard: bool, usage_stats: bool, log_to_driver: bool) -> Iterator[list[str]]:
    """Inside the block, a Ray started by this process (ray.init) starts without the processes the
    configuration does not use and polls for its raylet every REGISTRATION_POLL_S (module doc).
    Yields what it changed, e.g. ["dashboard head", "autoscaler monitor", "log monitor",
    "registration poll"]; Ray is as it was after the block."""
    changed: list[str] = []
    with ExitStack() as stack:
        try:
            from ray._private import node, services
        except ImportError:
            yield changed
            return
        skip = [] if dashboard or usage_stats else ["start_api_server"]
        skip += [] if dashboard else ["start_monitor"]
        skip += [] if log_to_driver else ["start_log_monitor"]
        changed += [SKIPPED[name] for name in skip if _patch(stack, node.Node, name, _not_started)]
        if _patch(stack, services, "get_node", _polled):
            changed.append("registration poll")
        yield changed
