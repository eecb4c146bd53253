"""The scheduler: runs on a fixed number of Ray actors, RunSpec in, (RunSpec, RunResult) out as runs finish.

Its state is a few explicit maps, after Ray Tune's trial states (PENDING, RUNNING, TERMINATED, ERROR):

- an actor is STARTING (``starting``: its ready() call -> the actor), IDLE (``idle``) or RUNNING (the
  actor of an entry of ``running``: the run's result ref -> the run in flight); an actor that dies or
  is killed leaves them all, and a new one is STARTING in its place;
- a run is PENDING (in the RunQueue ``pending``, which the caller may extend while runs go on),
  RUNNING (in ``running``), then TERMINATED (its actor returned a result, whatever the run's status)
  or ERROR (the harness gave up on it: its actor died more than ``retries`` times, or it ran past
  ``timeout_s``); ``attempts`` counts the times each run was sent to an actor, ``finished`` holds
  the runs that left for good.

An actor runs one run at a time, so a per-run timeout is exact: a run past its limit has its actor
killed and replaced and is recorded as status=timeout. A run whose actor process dies is retried on
a fresh actor up to ``retries`` times, then recorded as status=crashed. A run that raises is recorded
by the engine as status=error. The scheduler only talks to Ray through the handle it is given (tests
give it a fake: tests/test_scheduler.py).
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.grid import RunSpec
from harness.raysession import DispatchError
from harness.records import RunResult, Status
from harness.timeline import mark

log = logging.getLogger(__name__)
POLL_S = 0.25
MAX_ACTOR_START_FAILURES = 3
WARM_READY_S = 10.0  # a warm actor that does not answer by then is busy with another driver's run: replaced


class TrialError(ValueError):
    """A scenario's trial run failed: the scenario does not work, so the sweep does not start."""

    def __init__(self, scenario: str, error: str) -> None:
        super().__init__(f"{scenario}: a 2-step trial run failed before the sweep started: {error}")


class ActorState(str, enum.Enum):
    STARTING = "starting"  # created (or, a warm one, asked whether it is free): ready() not answered yet
    IDLE = "idle"
    RUNNING = "running"  # one run in flight


class RunState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    TERMINATED = "terminated"  # its actor returned its result
    ERROR = "error"  # given up: its actor died past the retries, or it ran past its time limit


class RunQueue:
    """Pending runs grouped by structure (RunSpec.structure). An actor that becomes idle is
    given another run of the structure it ran last, so that its worker reuses the traced
    loop (harness.engine.reuse); failing that, a run of the first structure no other actor
    is on; failing that, the first pending run."""

    def __init__(self, specs: Sequence[RunSpec] = ()) -> None:
        self._groups: dict[Any, deque[RunSpec]] = {}
        self.extend(specs)

    def extend(self, specs: Sequence[RunSpec]) -> None:
        """Add runs at the back of their structures' groups (also while a pool is running them)."""
        for s in specs:
            self._groups.setdefault(s.structure(), deque()).append(s)

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values())

    def __bool__(self) -> bool:
        return bool(self._groups)

    def __contains__(self, run_id: object) -> bool:
        return any(s.run_id == run_id for g in self._groups.values() for s in g)

    def push_front(self, spec: RunSpec) -> None:
        """Put back a run to retry: it goes first in its structure's group."""
        key = spec.structure()
        if key not in self._groups:
            self._groups = {key: deque(), **self._groups}
        self._groups[key].appendleft(spec)

    def pop(self, last: Any = None, taken: Sequence[Any] = ()) -> RunSpec:
        """The next run for an actor whose last run had structure ``last``, while other
        actors are on the structures ``taken``."""
        if last in self._groups:
            key = last
        else:
            key = next((k for k in self._groups if k not in taken), None)
            key = next(iter(self._groups)) if key is None else key
        group = self._groups[key]
        spec = group.popleft()
        if not group:
            del self._groups[key]
        return spec


@dataclass(eq=False)
class Actor:
    """One of the pool's actors, as the scheduler knows it."""

    handle: Any
    warm: bool = False  # a warm pool's: left alive at the end when idle
    name: str = ""  # its worker's name, once it answered ready()
    last: Any = None  # the structure of its last run: the next one, if there is one, is of it too


@dataclass(frozen=True)
class InFlight:
    """A run sent to an actor."""

    actor: Actor
    spec: RunSpec
    started: float  # the scheduler's clock when it was sent


def failed(spec: RunSpec, status: Status, error: str, worker: str, started: float, now: float) -> RunResult:
    """The result of a run that returned none: ``status`` and why, on ``worker``, since ``started``."""
    return RunResult(run_id=spec.run_id, status=status, error=error, worker=worker, wall_s=now - started)


class ActorPool:
    """Runs specs on ``num_actors`` actors of ``actor_class`` (worker.worker_class), yielding (spec, result)
    as each finishes; ``warm`` actors (a warm pool's) are used first and left alive when idle at the end."""

    def __init__(self, ray: Any, actor_class: Any, num_actors: int, *, threads: int, timeout_s: float,
                 retries: int, warm: Sequence[Any] = (), lost: Callable[[], str] | None = None,
                 where: Any = None, driver: tuple[int, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ray = ray
        self.num_actors = num_actors
        self.timeout_s = timeout_s
        self.retries = retries
        self.warm = list(warm)[:num_actors]
        self.lost = lost  # why the warm pool the actors belong to is gone ("" while it is up)
        self.where = where  # the sweep's directory and module path, sent with each run (actors on this machine)
        self.driver = driver  # (pid, start) of this process: a warm actor's daemon stops the runs it orphans
        self.clock = clock
        self._cls = actor_class
        self._threads = threads
        self._start_failures = 0
        self.pending = RunQueue()
        self.starting: dict[Any, Actor] = {}
        self.idle: list[Actor] = []
        self.running: dict[Any, InFlight] = {}
        self.attempts: Counter[str] = Counter()
        self.finished: dict[str, RunState] = {}
        self._warm_deadline = float("inf")

    # ------------------------------------------------------------------------------------------ the states

    def actor_states(self) -> Counter[ActorState]:
        """How many actors are in each state."""
        return Counter({ActorState.STARTING: len(self.starting), ActorState.IDLE: len(self.idle),
                        ActorState.RUNNING: len(self.running)})

    def run_state(self, run_id: str) -> RunState | None:
        """Where run ``run_id`` is (None: the scheduler has not seen it)."""
        if run_id in self.finished:
            return self.finished[run_id]
        if any(r.spec.run_id == run_id for r in self.running.values()):
            return RunState.RUNNING
        return RunState.PENDING if run_id in self.pending else None

    # ------------------------------------------------------------------------------------------ the loop

    def run(self, specs: Sequence[RunSpec] | RunQueue, on_start: Callable[[RunSpec], None] | None = None,
            trials: Sequence[RunSpec] = (), on_verified: Callable[[], None] | None = None,
            heartbeat: Callable[[], None] | None = None) -> Iterator[tuple[RunSpec, RunResult]]:
        """Yield (spec, result) as runs finish. ``trials`` run first, on the first actor to be
        ready, before any spec is dispatched; ``on_verified`` is called once they passed.
        Given a RunQueue, runs the caller adds to it while iterating are run too. On the way out
        (the end, an error, Ctrl-C, the caller closing the iterator), every actor this pool
        started is killed, and a warm one that is still running a run."""
        self.pending = specs if isinstance(specs, RunQueue) else RunQueue(specs)
        self._start()
        verified = False
        try:
            while self.pending or self.running:
                self._check()
                if heartbeat:
                    heartbeat()
                self._replace_busy_warm()
                if not verified and self.idle:
                    self._verify(trials)
                    verified = True
                    if on_verified:
                        on_verified()
                if verified:
                    self._assign(on_start)
                if not self.starting and not self.running and not self.idle:
                    raise DispatchError("no actor is alive to run the remaining runs")
                ready, _ = self.ray.wait([*self.starting, *self.running], num_returns=1, timeout=POLL_S)
                for ref in ready:
                    done = self._settle(ref)
                    if done is not None:
                        yield done
                yield from self._expire()
        finally:
            self._release()

    # ------------------------------------------------------------------------------------------ transitions

    def _check(self) -> None:
        """DispatchError when the warm pool stopped: its Ray is going or gone, and a call that needs its
        GCS (starting an actor) would wait a minute for it before Ray ends the process."""
        why = self.lost() if self.lost else ""
        if why:
            raise DispatchError(f"the warm pool stopped during the sweep ({why}); finished runs are stored, "
                                f"rerun the same command to resume")

    def _spawn(self) -> None:
        """A new actor, STARTING."""
        self._check()
        handle = self._cls.remote(self._threads)
        self.starting[handle.ready.remote()] = Actor(handle)

    def _start(self) -> None:
        """The warm actors are asked whether they are free, and the rest of ``num_actors`` created."""
        for handle in self.warm:
            self.starting[handle.ready.remote()] = Actor(handle, warm=True)
        self._warm_deadline = self.clock() + WARM_READY_S if self.warm else float("inf")
        for _ in range(self.num_actors - len(self.warm)):
            self._spawn()

    def _replace_busy_warm(self) -> None:
        """Once, WARM_READY_S after the start: a warm actor that has not answered is still busy (with the
        run of a driver killed mid-run): it is killed and one of this sweep's takes its place."""
        if self.clock() <= self._warm_deadline:
            return
        self._warm_deadline = float("inf")
        for ref, actor in list(self.starting.items()):
            if actor.warm:
                del self.starting[ref]
                self.ray.kill(actor.handle, no_restart=True)
                self._spawn()

    def _submit(self, actor: Actor, spec: RunSpec) -> Any:
        return actor.handle.run.remote(spec, self.timeout_s, self.driver, self.where)

    def _verify(self, trials: Sequence[RunSpec]) -> None:
        """Run each trial spec on the first idle actor; the first that does not complete raises TrialError
        (and the actor, which may still be running it, is killed)."""
        actor = self.idle[0]
        try:
            for spec in trials:
                try:
                    result = self.ray.get(self._submit(actor, spec), timeout=self.timeout_s)
                except Exception as exc:
                    last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                    raise TrialError(spec.scenario, f"{type(exc).__name__}: {last}") from exc
                if result.status is not Status.OK:
                    raise TrialError(spec.scenario, result.error or result.status.value)
        except BaseException:
            self.idle.remove(actor)
            self.ray.kill(actor.handle, no_restart=True)
            raise
        if trials:  # that actor has traced the last trial's structure
            actor.last = trials[-1].structure()

    def _assign(self, on_start: Callable[[RunSpec], None] | None) -> None:
        """Each idle actor gets a pending run (RunQueue.pop: the structure it ran last, if any is left)."""
        while self.idle and self.pending:
            actor = self.idle.pop()
            spec = self.pending.pop(actor.last, [r.actor.last for r in self.running.values()])
            actor.last = spec.structure()
            self.attempts[spec.run_id] += 1
            if on_start:
                on_start(spec)
            self.running[self._submit(actor, spec)] = InFlight(actor, spec, self.clock())
            mark("run dispatched")

    def _settle(self, ref: Any) -> tuple[RunSpec, RunResult] | None:
        """What ``ref``'s answer changes: a STARTING actor becomes IDLE (or is replaced), a RUNNING run
        TERMINATED, retried (PENDING again) or given up (ERROR). Returns the finished run, if one did."""
        if ref in self.starting:
            self._started(ref, self.starting.pop(ref))
            return None
        run = self.running.pop(ref)
        mark("run finished")
        exc = self.ray.exceptions
        try:
            result = self.ray.get(ref)
        except (exc.RayActorError, exc.WorkerCrashedError, exc.ObjectLostError) as err:
            self._spawn()
            if self.attempts[run.spec.run_id] <= self.retries:
                log.warning("worker %s died during run %s; retrying", run.actor.name, run.spec.run_id)
                self.pending.push_front(run.spec)
                return None
            result = failed(run.spec, Status.CRASHED, f"{type(err).__name__}: worker process died "
                            f"({self.attempts[run.spec.run_id]} attempt(s))", run.actor.name, run.started, self.clock())
            return self._finish(run.spec, result, RunState.ERROR)
        except exc.RayTaskError as err:
            result = failed(run.spec, Status.ERROR, str(err).strip().splitlines()[-1], run.actor.name, run.started,
                            self.clock())
        self.idle.append(run.actor)
        return self._finish(run.spec, result, RunState.TERMINATED)

    def _started(self, ref: Any, actor: Actor) -> None:
        """A STARTING actor answered ready(): IDLE; or it died, and another takes its place. A warm actor
        that died (killed from outside, or being replaced by its daemon) is no failure to start."""
        try:
            actor.name = self.ray.get(ref)
        except self.ray.exceptions.RayError as err:
            self._start_failures += not actor.warm
            if self._start_failures > MAX_ACTOR_START_FAILURES:
                raise DispatchError(f"actors fail to start: {str(err).splitlines()[-1]}") from err
            self._spawn()
            return
        self.idle.append(actor)

    def _expire(self) -> Iterator[tuple[RunSpec, RunResult]]:
        """Each run past ``timeout_s`` has its actor killed and replaced: ERROR, status=timeout."""
        now = self.clock()
        for ref, run in list(self.running.items()):
            if now - run.started > self.timeout_s:
                del self.running[ref]
                self.ray.kill(run.actor.handle, no_restart=True)
                self._spawn()
                yield self._finish(run.spec, failed(run.spec, Status.TIMEOUT, f"TimeoutError: run exceeded "
                                                    f"sweep.timeout_s={self.timeout_s:g}", run.actor.name,
                                                    run.started, now), RunState.ERROR)

    def _finish(self, spec: RunSpec, result: RunResult, state: RunState) -> tuple[RunSpec, RunResult]:
        self.finished[spec.run_id] = state
        return spec, result

    def _release(self) -> None:
        """Kill this pool's actors and any warm one still running a run; an idle warm actor stays for the
        next sweep. Best effort: the pool is on its way out, maybe for a reason that also stopped Ray."""
        doomed = [a for a in self.idle if not a.warm] + [r.actor for r in self.running.values()] + \
                 [a for a in self.starting.values() if not a.warm]
        for actor in doomed:
            try:
                self.ray.kill(actor.handle, no_restart=True)
            except Exception:
                pass
