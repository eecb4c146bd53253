"""A sweep's runs on Ray: the warm pool's actors if one is up and matches, else a sweep-local pool.

``dispatch`` is what the runner calls: it chooses where the runs go (a warm pool, harness.pool, with
ray.address unset and the pool matching the sweep; else a Ray of the sweep's own: embedded, or the
cluster at ray.address), connects (harness.raysession), sizes the pool of actors and runs the specs on
it (harness.scheduler), yielding (spec, result) as runs finish; the actors are harness.worker's.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness import pool as warm_pool
from harness.config import RayConfig
from harness.grid import RunSpec
from harness.raysession import DispatchError, capped, connect, num_actors, shutdown_later, wait_stopped
from harness.records import RunResult
from harness.scheduler import ActorPool, RunQueue
from harness.worker import Workdir, worker_class

HEARTBEAT_S = 30.0  # how often a sweep at work restarts the warm pool's idle clock


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    embedded: bool
    num_actors: int
    cpus: float
    gpus: float
    warm: bool = False  # the runs go to a warm pool's actors (harness.pool)
    note: str = ""  # for the user: why a warm pool that is up was not used; a ray.num_actors that was capped


def dispatch(specs: Sequence[RunSpec] | RunQueue, cfg: RayConfig, *, timeout_s: float, retries: int,
             on_ready: Callable[[ClusterInfo], None] | None = None,
             on_start: Callable[[RunSpec], None] | None = None,
             trials: Sequence[RunSpec] = ()) -> Iterator[tuple[RunSpec, RunResult]]:
    """Connect to Ray, run ``specs`` on an actor pool, yield (spec, result) as runs finish,
    and disconnect at the end (also on error or Ctrl-C); an embedded Ray stops with it.
    Runs added to a RunQueue ``specs`` while iterating are run too (adaptive seeds). With ray.address
    unset, a warm pool that matches (harness.pool) is joined instead of starting Ray, one sweep at a time.
    Ray is shut down in the background once the runs are over: wait_stopped() waits for it."""
    wait_stopped()
    state, note, lock = _warm_pool(cfg)
    try:
        yield from _dispatch(specs, cfg, state, note, timeout_s=timeout_s, retries=retries, on_ready=on_ready,
                             on_start=on_start, trials=trials)
    finally:
        if lock is not None:
            lock.release()


def _warm_pool(cfg: RayConfig) -> tuple[Any, str, Any]:
    """(the warm pool's state, or None; why it is not used; the lock held while it is used)."""
    if _ray_initialized():  # the caller's Ray is used as it is
        return None, "", None
    state, note = warm_pool.usable(cfg)
    if state is None:
        return None, note, None
    lock = warm_pool.SweepLock()
    if not lock.acquire():
        return None, "the warm pool is busy with another sweep: running cold", None
    return state, "", lock


def _ray_initialized() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def _connect(cfg: RayConfig, state: Any, note: str, runs: int) -> tuple[Any, bool, bool, Any, str]:
    """(ray, embedded, owned, the warm pool's state or None, the note): the warm pool's Ray when it
    answers, else the sweep's own."""
    if state is not None:
        warm_pool.join_settings(state)
        try:
            ray, embedded, owned = connect(replace(cfg, address=state.address), namespace=warm_pool.NAMESPACE)
            return ray, embedded, owned, state, note
        except DispatchError as exc:
            state, note = None, f"the warm pool did not answer ({exc}): running cold"
    ray, embedded, owned = connect(cfg, runs=runs)
    return ray, embedded, owned, state, note


def _warm_actors(ray: Any, state: Any) -> list[Any]:
    """Handles of the warm pool's actors; one being replaced by the daemon is left out (the sweep
    starts its own in its place)."""
    actors = []
    for name in state.names():
        try:
            actors.append(ray.get_actor(name, namespace=warm_pool.NAMESPACE))
        except ValueError:
            pass
    return actors


def _size(ray: Any, cfg: RayConfig, state: Any, runs: int) -> tuple[int, float, float, str]:
    """(actors, the cluster's CPUs and GPUs, a note when ray.num_actors was capped). A warm pool's actors
    hold its CPUs: a sweep on it uses them, never more."""
    if state is None:
        return num_actors(ray, cfg, runs)
    _, cpus, gpus, _ = num_actors(ray, replace(cfg, num_actors=1), 1)
    n = max(1, min(state.actors, cfg.num_actors or state.actors, runs))
    asked = cfg.num_actors or 0
    note = "" if asked <= state.actors else \
        capped(asked, state.actors, f"the warm pool has {state.actors} actor{'s' if state.actors != 1 else ''}")
    return n, cpus, gpus, note


def _dispatch(specs: Sequence[RunSpec] | RunQueue, cfg: RayConfig, state: Any, note: str, *, timeout_s: float,
              retries: int, on_ready: Callable[[ClusterInfo], None] | None,
              on_start: Callable[[RunSpec], None] | None, trials: Sequence[RunSpec]
              ) -> Iterator[tuple[RunSpec, RunResult]]:
    ray, embedded, owned, state, note = _connect(cfg, state, note, len(specs))
    from harness.signals import install

    install()  # ray.init replaced the SIGTERM handler with sys.exit: SIGTERM stops a sweep like Ctrl-C
    try:
        warm: list[Any] = []
        if state is not None:
            warm_pool.touch_used()
            warm = _warm_actors(ray, state)
        n, cpus, gpus, capped_note = _size(ray, cfg, state, len(specs))
        info = ClusterInfo(address=ray.get_runtime_context().gcs_address, embedded=embedded, num_actors=n,
                           cpus=cpus, gpus=gpus, warm=state is not None,
                           note="\n".join(filter(None, [note, capped_note])))
        # actors on this machine run in the sweep's directory, with its module path (a warm pool's
        # started elsewhere); a cluster's actors, on other machines, import as Ray has them import
        where = Workdir.here() if state is not None or embedded else None
        pool = ActorPool(ray, worker_class(ray, cfg.num_cpus_per_actor, cfg.num_gpus_per_actor), n,
                         threads=max(1, int(round(cfg.num_cpus_per_actor))), timeout_s=timeout_s, retries=retries,
                         warm=warm, lost=(lambda: warm_pool.lost(state)) if state is not None else None, where=where,
                         driver=(os.getpid(), warm_pool.process_start(os.getpid())))
        beat = {"last": time.monotonic()}

        def heartbeat() -> None:  # a sweep at work keeps the pool from its idle timeout
            if state is not None and time.monotonic() - beat["last"] > HEARTBEAT_S:
                beat["last"] = time.monotonic()
                warm_pool.touch_used()

        yield from pool.run(specs, on_start=on_start, trials=trials,
                            on_verified=(lambda: on_ready(info)) if on_ready else None, heartbeat=heartbeat)
    finally:
        if owned:
            shutdown_later(ray)
