"""Ray's lifecycle in a driver: connect (an embedded Ray, or join one), the environment an embedded Ray
starts in, how many actors fit, and shutdown.

Every place that starts or stops a Ray of the harness goes through here (a sweep's, through
harness.dispatch; the warm pool's daemon, harness.pool). What an embedded Ray starts without is
harness.raystart; every reach into Ray's private API is harness.compat.ray.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.compat import ray as compat_ray
from harness.config import RayConfig, malloc_library
from harness.raystart import init_local, lean_start
from harness.timeline import mark

log = logging.getLogger(__name__)


class DispatchError(RuntimeError):
    """The cluster cannot run the sweep (cannot connect, actors cannot start)."""


def connect(cfg: RayConfig, namespace: str | None = None, *, runs: int = 0) -> tuple[Any, bool, bool]:
    """ray.init: an embedded local instance when address is None, else join ``address``. An
    embedded one starts lean (harness.raystart), its workers importing TensorFlow as they start
    where a sweep of ``runs`` runs will have an actor in each of them (preload_tensorflow).

    Returns (ray, embedded, owned): owned is False when Ray was already initialised
    by the caller (then the caller also shuts it down)."""
    wait_stopped()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if cfg.address is None or namespace is not None:  # embedded, or this machine's warm pool
        # Single-machine mode: Ray then uses 127.0.0.1 as the node address and binds every
        # server (GCS, raylet, workers, agents) to loopback. Read when ray is first imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    kwargs: dict[str, Any] = {
        "include_dashboard": cfg.include_dashboard,
        "log_to_driver": cfg.log_to_driver,
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    if namespace is not None:
        kwargs["namespace"] = namespace
    if ray.is_initialized():
        return ray, False, False
    compat_ray.quiet_token_notice()  # token authentication stays on; its notice on every start is noise here
    if cfg.address is not None:
        _check_reachable(cfg.address)
    mark("ray.init start")
    try:
        if cfg.address is None:
            _start_embedded(ray, cfg, runs, kwargs)
        else:
            _join(ray, cfg, namespace, kwargs)
    except Exception as exc:
        raise _cannot_connect(cfg, exc) from exc
    mark("ray.init done")
    return ray, cfg.address is None, True


def _start_embedded(ray: Any, cfg: RayConfig, runs: int, kwargs: dict[str, Any]) -> None:
    """ray.init of a new local instance, lean (harness.raystart), in embedded_env. "local" always starts a
    new instance; a bare ray.init() would join any cluster that `ray start` left running on this machine
    (or RAY_ADDRESS)."""
    threads = max(math.floor(cfg.num_cpus_per_actor), 1) if preload_tensorflow(cfg, runs) else None
    # lean_start patches Ray process-wide while ray.init runs: connect's wait_stopped() made sure
    # no other Ray of this process is starting or stopping meanwhile
    with embedded_env(malloc_library(cfg.malloc), dashboard=cfg.include_dashboard, preload_threads=threads), \
            lean_start(dashboard=cfg.include_dashboard, usage_stats=_usage_stats_on(),
                       log_to_driver=cfg.log_to_driver) as changed:
        init_local(ray, **kwargs)  # its temp directory and token private to the user
    log.debug("embedded Ray started without or with: %s", ", ".join(changed) or "nothing changed")


def _join(ray: Any, cfg: RayConfig, namespace: str | None, kwargs: dict[str, Any]) -> None:
    """ray.init joining the Ray at ray.address (the warm pool's, with its ``namespace``)."""
    kwargs = {k: v for k, v in kwargs.items() if k != "include_dashboard"}
    # The warm pool's Ray has no dashboard: its drivers record no task events either (see
    # NO_TASK_EVENTS: a driver's ray.shutdown waits on their flush), nor metrics (NO_METRICS)
    with _environ(_unset({**NO_TASK_EVENTS, **NO_METRICS}) if namespace else {}):
        ray.init(address=cfg.address, **kwargs)


def _cannot_connect(cfg: RayConfig, exc: Exception) -> DispatchError:
    hint = ""
    if cfg.address not in (None, "auto") and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        # Ray enables token auth by itself only for auto; a cluster started with `ray start`
        # (Ray 2.5x+) needs it whenever a token exists, and the failure names no cause
        hint = (" (if the cluster uses token authentication, set RAY_AUTH_MODE=token; the token "
                "is read from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")
    return DispatchError(f"ray.address={cfg.address or 'local'}: cannot start or join Ray: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{hint}")


def _usage_stats_on() -> bool:
    """Whether the user turned Ray's usage stats on (the harness turns them off by default): the
    dashboard head is what reports them, so an embedded Ray then keeps it (harness.raystart)."""
    return os.environ.get("RAY_USAGE_STATS_ENABLED", "0").strip() == "1"  # Ray's rule: 0 or 1


def preload_value(library: str) -> str:
    """LD_PRELOAD with ``library`` in front of what this process's environment already preloads."""
    before = os.environ.get("LD_PRELOAD")
    return f"{library} {before}" if before else library


# The raylet's plasma client connects to the object store's socket, which a thread of the same raylet
# opens at about the same moment: when the socket is not there yet, the client waits
# raylet_client_connect_timeout_milliseconds (Ray's default: 1000) before trying again, and the
# node registers, and ray.init returns, a whole second later (docs/engine.md).
# Workers connecting to the raylet, and asking it for Ray's config, use the same two
# settings. An embedded Ray retries every 50 ms instead, 200 times: the same 10 s of waiting
# before giving up (each missed try is one "Retrying to connect" line in raylet.out).
CONNECT_RETRY = {"RAY_raylet_client_connect_timeout_milliseconds": "50",
                 "RAY_raylet_client_num_connect_attempts": "200"}
# Task events (each task's state changes, sent to the GCS every second) feed only the dashboard's
# task views, `ray list tasks` and ray.timeline(), which an embedded Ray without its dashboard does
# not serve (and the harness does not call), and the driver's ray.shutdown waits on their last
# flush (docs/engine.md: the warm sweep's end in figure 10). 0 turns them off (ray_config_def.h).
NO_TASK_EVENTS = {"RAY_task_events_report_interval_ms": "0"}
# A driver exports its metrics to the node's metrics agent, and ray.shutdown flushes them, waiting up to
# 10 s for an agent that is gone: a sweep that lost the warm pool (down --force, its daemon killed)
# would wait that long before it exits. Nothing reads a warm-pool driver's metrics (no dashboard).
NO_METRICS = {"RAY_enable_metrics_collection": "0"}
# A raylet starts one worker per CPU (services.start_raylet passes --num_prestart_python_workers)
# soon after it has registered, before ray.init returns in the starts logged here, and a sweep's
# actors are created in them; each actor then imports TensorFlow, the longest part of its start.
# preload_python_modules (Ray system config, ray_config_def.h, read from
# RAY_<name> by the raylet) has every worker import harness.engine.preload (TensorFlow) as it
# starts, before it takes work: the import starts before the sweep has created its actors. Ray
# sets a worker's OMP_NUM_THREADS (numpy's BLAS reads it as it loads) only when an actor is
# created in it, unless set: with the preload it is set beforehand to what Ray would set.
PRELOAD = {"RAY_preload_python_modules": "harness.engine.preload"}
THREADS = "OMP_NUM_THREADS"


@contextmanager
def embedded_env(library: str | None, *, dashboard: bool = False, preload_threads: int | None = None) -> Iterator[None]:
    """The environment an embedded Ray (a sweep's, or the warm pool's) starts in, set in this process
    while the block starts it: every process Ray starts inherits it (the raylet starts the workers,
    and so the actors, with its environment). ``library`` (an allocator, or None) is preloaded with
    LD_PRELOAD; CONNECT_RETRY is set unless this environment sets either of its variables (then
    both are left as they are), NO_TASK_EVENTS unless it is set or the Ray has its ``dashboard``;
    with ``preload_threads`` (an actor's CPUs, see preload_tensorflow), PRELOAD (after the modules
    the user's list names) and OMP_NUM_THREADS unless set. This process's environment is as it was
    afterwards."""
    changes = dict(CONNECT_RETRY) if not any(k in os.environ for k in CONNECT_RETRY) else {}
    if not dashboard:
        changes.update(_unset(NO_TASK_EVENTS))
    if preload_threads is not None:
        for k, v in PRELOAD.items():
            changes[k] = ",".join(m for m in (os.environ.get(k, "").strip(","), v) if m)
        if THREADS not in os.environ:
            changes[THREADS] = str(preload_threads)
    if library is not None:
        changes["LD_PRELOAD"] = preload_value(library)
    with _environ(changes):
        yield


def _unset(defaults: dict[str, str]) -> dict[str, str]:
    """The entries of ``defaults`` whose variable this process's environment does not set."""
    return {k: v for k, v in defaults.items() if k not in os.environ}


@contextmanager
def _environ(changes: dict[str, str]) -> Iterator[None]:
    """``changes`` in this process's environment inside the block, as it was afterwards."""
    before = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_stopping: list[threading.Thread] = []


def shutdown(ray: Any) -> None:
    """ray.shutdown of a Ray this process started or joined: every place that stops a Ray goes through
    here. The autoscaler monitor of a Ray this process started is killed outright first
    (harness.compat.ray.end_monitor): Ray stops its processes one after another, each with SIGTERM and
    up to a second's wait before SIGKILL, and the monitor (nothing to autoscale on one machine),
    stopped after the GCS it reports to, does not exit on SIGTERM then: it would cost that whole
    second for the SIGKILL it gets anyway."""
    compat_ray.end_monitor(ray)
    ray.shutdown()


def shutdown_later(ray: Any) -> None:
    """ray.shutdown in the background. An embedded Ray's processes take over a second to exit (Ray
    stops them one after another and waits for each), time the sweep's summary can use instead of
    waiting; wait_stopped() joins it, and connecting again waits for it first."""
    def stop() -> None:
        mark("ray.shutdown start")
        try:
            shutdown(ray)
        except Exception as exc:  # Ray's processes are tied to this one: they end with it regardless
            log.warning("ray.shutdown failed: %s: %s", type(exc).__name__, exc)
        mark("ray.shutdown done")

    thread = threading.Thread(target=stop, name="harness-ray-shutdown")
    _stopping.append(thread)
    thread.start()


def wait_stopped() -> None:
    """Return once a Ray this process started has been shut down (see shutdown_later)."""
    while _stopping:
        _stopping.pop().join()


def _check_reachable(address: str) -> None:
    """Fail at once, in one line, when nothing listens at the address Ray would use:
    ray.init retries an unreachable address for minutes. Ray replaces 127.0.0.1 and
    localhost by this machine's primary address (unless it runs in single-machine mode),
    so the address checked is Ray's own resolution of ``address`` (also of ``auto``)."""
    if "://" in address:  # ray:// (Ray Client): resolved and checked by Ray itself
        return
    target = compat_ray.canonical_address(address)
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # auto with no running cluster recorded: ray.init says so at once
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        via = f" (Ray resolves {address} to {target})" if target != address else ""
        raise DispatchError(f"ray.address={address}: no Ray cluster answers at {target}{via}: "
                            f"{exc.strerror or type(exc).__name__}") from exc


def _fitting(cfg: RayConfig, cpus: float, gpus: float) -> int:
    """How many actors of the configured CPU and GPU share fit in ``cpus`` and ``gpus``."""
    n = int(cpus // cfg.num_cpus_per_actor)
    return min(n, int(gpus // cfg.num_gpus_per_actor)) if cfg.num_gpus_per_actor > 0 else n


def num_actors(ray: Any, cfg: RayConfig, n_runs: int) -> tuple[int, float, float, str]:
    """(actors for a sweep of ``n_runs`` runs, the cluster's CPUs and GPUs, a note when the configured
    ray.num_actors was more than fit): one actor per share of the cluster unless ray.num_actors asks
    for fewer; more than fit would wait for resources that never come."""
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    fits = _fitting(cfg, cpus, gpus)
    if fits < 1:
        raise DispatchError(f"the cluster ({cpus:g} CPU, {gpus:g} GPU) cannot fit one actor of "
                            f"ray.num_cpus_per_actor={cfg.num_cpus_per_actor:g}, "
                            f"ray.num_gpus_per_actor={cfg.num_gpus_per_actor:g}")
    n, note = fits, ""
    if cfg.num_actors is not None:
        n = min(cfg.num_actors, fits)
        if cfg.num_actors > fits:
            note = capped(cfg.num_actors, fits, f"the cluster's {cpus:g} CPU, {gpus:g} GPU fit {fits} actors of "
                           f"ray.num_cpus_per_actor={cfg.num_cpus_per_actor:g}, "
                           f"ray.num_gpus_per_actor={cfg.num_gpus_per_actor:g}")
    return max(1, min(n, n_runs)), cpus, gpus, note


def capped(asked: int, used: int, why: str) -> str:
    """The note for a configured ray.num_actors of ``asked`` that runs ``used`` actors, and ``why``."""
    return f"ray.num_actors={asked} capped to {used}: {why}"


def preload_tensorflow(cfg: RayConfig, n_runs: int) -> bool:
    """Whether the workers of a sweep's embedded Ray should import TensorFlow as they start (PRELOAD):
    when each worker the raylet prestarts (one per CPU, as Ray counts them: cgroup quotas included)
    will hold one of the sweep's actors, as num_actors counts them once Ray is up. Else a worker
    no actor uses would import it on cores the actors need. Not for actors that take GPUs, out of
    caution: Ray gives a worker its GPUs (CUDA_VISIBLE_DEVICES) only when an actor is created in it,
    and the preload has not been tried on a GPU. Imports Ray: call it after connect() has set the
    environment Ray reads as it is imported."""
    if cfg.address is not None or cfg.num_gpus_per_actor > 0 or not compat_ray.preload_supported():
        return False
    cpus = compat_ray.num_cpus()  # what ray.init counts
    fits = _fitting(cfg, cpus, 0.0)
    actors = min(fits if cfg.num_actors is None else min(cfg.num_actors, fits), n_runs)
    return actors >= int(cpus) >= 1

