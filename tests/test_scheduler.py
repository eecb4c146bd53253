"""The scheduler (harness.scheduler.ActorPool) against a fake Ray: its actor and run states, timeouts,
retries, actor replacement, trial runs, warm actors, a queue extended while it runs, and what is left
alive on the way out. The fake answers at once and keeps its own clock (it moves on only when the
scheduler waits with nothing ready), so nothing here depends on the machine's speed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import make_spec

from harness.raysession import DispatchError
from harness.records import RunResult, Status
from harness.scheduler import (MAX_ACTOR_START_FAILURES, POLL_S, WARM_READY_S, ActorPool, ActorState, RunQueue,
                               RunState, TrialError)

HANG = object()  # a run (or a ready()) that never answers


class RayError(Exception):
    pass


class RayActorError(RayError):
    pass


class WorkerCrashedError(RayError):
    pass


class ObjectLostError(RayError):
    pass


class RayTaskError(RayError):
    pass


class GetTimeoutError(RayError):
    pass


class Exceptions:
    RayError, RayActorError, WorkerCrashedError = RayError, RayActorError, WorkerCrashedError
    ObjectLostError, RayTaskError = ObjectLostError, RayTaskError


class Ref:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    @property
    def done(self) -> bool:
        return self.outcome is not HANG


class FakeActor:
    def __init__(self, ray: FakeRay, name: str, ready: Any) -> None:
        self.ray, self.name, self._ready = ray, name, ready
        self.killed = False
        self.runs: list[str] = []
        outer = self

        class Method:
            def __init__(self, call: Callable[..., Any]) -> None:
                self.remote = call

        self.ready = Method(lambda: Ref(outer._ready))
        self.run = Method(outer._run)

    def _run(self, spec: Any, timeout_s: float, driver: Any, where: Any) -> Ref:
        assert not self.killed, f"{self.name} was sent a run after it was killed"
        self.runs.append(spec.run_id)
        return Ref(self.ray.outcome(self, spec, self.runs.count(spec.run_id)))


class FakeRay:
    """What the scheduler calls of Ray. ``outcome(actor, spec, nth)`` says how the nth time ``spec`` runs
    on ``actor`` ends: a RunResult, an exception instance (raised by get), or HANG. ``readiness`` gives,
    for each actor created, what its ready() answers (default: its name)."""

    exceptions = Exceptions

    def __init__(self, outcome: Callable[[FakeActor, Any, int], Any] | None = None,
                 readiness: Callable[[int], Any] | None = None) -> None:
        self.outcome = outcome or (lambda actor, spec, n: ok(spec, actor))
        self.readiness = readiness or (lambda i: None)
        self.now = 0.0
        self.created: list[FakeActor] = []
        self.waits = 0

    def clock(self) -> float:
        return self.now

    def actor_class(self) -> Any:
        ray = self

        class Cls:
            @staticmethod
            def remote(threads: int) -> FakeActor:
                i = len(ray.created)
                ready = ray.readiness(i)
                actor = FakeActor(ray, f"w{i}", f"w{i}" if ready is None else ready)
                ray.created.append(actor)
                return actor

        return Cls

    def wait(self, refs: list[Ref], num_returns: int, timeout: float) -> tuple[list[Ref], list[Ref]]:
        self.waits += 1
        done = [r for r in refs if r.done][:num_returns]
        if not done:
            self.now += timeout
        return done, [r for r in refs if r not in done]

    def get(self, ref: Ref, timeout: float | None = None) -> Any:
        if not ref.done:
            self.now += timeout or 0.0
            raise GetTimeoutError("Get timed out")
        if isinstance(ref.outcome, BaseException):
            raise ref.outcome
        return ref.outcome

    def kill(self, actor: FakeActor, no_restart: bool = True) -> None:
        actor.killed = True


def ok(spec: Any, actor: FakeActor) -> RunResult:
    return RunResult(run_id=spec.run_id, status=Status.OK, worker=actor.name)


def specs(n: int, **kw: Any) -> list[Any]:
    return [make_spec(seed=s, **kw) for s in range(n)]


def pool(ray: FakeRay, n: int = 2, **kw: Any) -> ActorPool:
    kw = {"timeout_s": 60.0, "retries": 1, **kw}
    return ActorPool(ray, ray.actor_class(), n, threads=1, clock=ray.clock, **kw)


def test_every_run_terminates_once_and_the_pools_actors_are_killed_at_the_end() -> None:
    ray = FakeRay()
    p = pool(ray, 2)
    runs = specs(5)
    seen = []
    for spec, result in p.run(runs):
        seen.append(spec.run_id)
        assert result.status is Status.OK and p.run_state(spec.run_id) is RunState.TERMINATED
    assert sorted(seen) == sorted(s.run_id for s in runs)
    assert len(ray.created) == 2 and all(a.killed for a in ray.created)
    assert all(p.attempts[s.run_id] == 1 for s in runs)
    assert p.actor_states() == {ActorState.STARTING: 0, ActorState.IDLE: 2, ActorState.RUNNING: 0}


def test_a_run_whose_actor_dies_is_retried_on_a_fresh_actor_then_recorded_as_crashed() -> None:
    bad = make_spec(seed=99)
    ray = FakeRay(lambda actor, spec, n: RayActorError("actor died") if spec is bad else ok(spec, actor))
    p = pool(ray, 1, retries=2)
    results = dict((spec.run_id, result) for spec, result in p.run([bad, *specs(2)]))
    crashed = results[bad.run_id]
    assert crashed.status is Status.CRASHED and "3 attempt(s)" in crashed.error
    assert p.attempts[bad.run_id] == 3 and p.run_state(bad.run_id) is RunState.ERROR
    assert len(ray.created) == 1 + 3  # each death: a new actor in its place
    assert all(r.status is Status.OK for k, r in results.items() if k != bad.run_id)


def test_a_retried_run_is_pending_again_and_goes_first() -> None:
    first = make_spec(seed=0)
    states: list[Any] = []
    ray = FakeRay(lambda actor, spec, n: WorkerCrashedError("gone") if spec is first and len(actor.runs) == 1
                  and actor is ray.created[0] else ok(spec, actor))
    p = pool(ray, 1, retries=1)
    order = []
    for spec, result in p.run([first, *specs(3)[1:]], on_start=lambda s: order.append(s.run_id)):
        states.append((spec.run_id, result.status))
    assert order[:2] == [first.run_id, first.run_id]  # the retry before the runs behind it
    assert dict(states)[first.run_id] is Status.OK and p.attempts[first.run_id] == 2


def test_a_run_past_its_time_limit_has_its_actor_killed_and_replaced_and_is_a_timeout() -> None:
    slow = make_spec(seed=7)
    ray = FakeRay(lambda actor, spec, n: HANG if spec is slow else ok(spec, actor))
    p = pool(ray, 2, timeout_s=5.0)
    results = {spec.run_id: result for spec, result in p.run([slow, *specs(3)])}
    timed_out = results[slow.run_id]
    assert timed_out.status is Status.TIMEOUT and "sweep.timeout_s=5" in timed_out.error
    assert 5.0 < timed_out.wall_s <= 5.0 + POLL_S + 1e-9  # killed on the first look past the limit
    assert p.run_state(slow.run_id) is RunState.ERROR and p.attempts[slow.run_id] == 1  # never retried
    hung = next(a for a in ray.created if slow.run_id in a.runs)
    assert hung.killed and len(ray.created) == 3


def test_a_run_that_raises_in_its_actor_is_an_error_and_the_actor_stays() -> None:
    bad = make_spec(seed=3)
    ray = FakeRay(lambda actor, spec, n: RayTaskError("Traceback\nValueError: boom") if spec is bad
                  else ok(spec, actor))
    p = pool(ray, 1)
    results = {spec.run_id: result for spec, result in p.run([bad, *specs(2)])}
    assert results[bad.run_id].status is Status.ERROR and results[bad.run_id].error == "ValueError: boom"
    assert len(ray.created) == 1 and p.run_state(bad.run_id) is RunState.TERMINATED


def test_trials_run_first_on_one_actor_and_a_failing_trial_stops_the_sweep_before_any_run() -> None:
    trial = make_spec(seed=0, steps=2)
    events: list[str] = []
    ray = FakeRay()
    p = pool(ray, 2)
    out = list(p.run(specs(3), trials=[trial], on_verified=lambda: events.append("verified"),
                     on_start=lambda s: events.append("start")))
    assert len(out) == 3 and events == ["verified", "start", "start", "start"]
    assert sum(trial.run_id in a.runs for a in ray.created) == 1

    ray = FakeRay(lambda actor, spec, n: RunResult(run_id=spec.run_id, status=Status.ERROR, error="ValueError: no")
                  if spec is trial else ok(spec, actor))
    p = pool(ray, 2)
    started: list[Any] = []
    with pytest.raises(TrialError, match="ValueError: no"):
        list(p.run(specs(3), trials=[trial], on_start=started.append))
    assert started == [] and all(a.killed for a in ray.created)


def test_a_trial_that_does_not_answer_in_time_is_a_trial_error() -> None:
    trial = make_spec(seed=0, steps=2)
    ray = FakeRay(lambda actor, spec, n: HANG if spec is trial else ok(spec, actor))
    with pytest.raises(TrialError, match="GetTimeoutError"):
        list(pool(ray, 1, timeout_s=3.0).run(specs(1), trials=[trial]))
    assert ray.created[0].killed


def test_actors_that_keep_failing_to_start_stop_the_sweep() -> None:
    ray = FakeRay(readiness=lambda i: RayActorError("cannot start"))
    with pytest.raises(DispatchError, match="actors fail to start: cannot start"):
        list(pool(ray, 1).run(specs(2)))
    assert len(ray.created) == 1 + MAX_ACTOR_START_FAILURES  # the first and each replacement, then it gives up


def test_warm_actors_are_used_first_left_alive_when_idle_and_a_busy_one_is_replaced() -> None:
    def takes_4_s(actor: FakeActor, spec: Any, n: int) -> RunResult:
        ray.now += 4.0
        return ok(spec, actor)

    ray = FakeRay(takes_4_s)
    cls = ray.actor_class()
    free, busy = cls.remote(1), cls.remote(1)
    busy._ready = HANG  # still running a killed driver's run
    p = pool(ray, 2, warm=[free, busy])
    out = list(p.run(specs(8)))
    assert len(out) == 8 and free.runs and not busy.runs
    assert busy.killed and not free.killed  # an idle warm actor stays for the next sweep
    assert len(ray.created) == 3 and ray.created[2].killed  # the one this sweep started in the busy one's place
    assert ray.now > WARM_READY_S  # replaced only once it had been given that long


def test_a_warm_actor_that_died_is_replaced_without_counting_as_a_failure_to_start() -> None:
    ray = FakeRay()
    cls = ray.actor_class()
    dead = [cls.remote(1) for _ in range(MAX_ACTOR_START_FAILURES + 1)]
    for actor in dead:
        actor._ready = RayActorError("killed from outside")
    p = pool(ray, len(dead), warm=dead)
    assert len(list(p.run(specs(2)))) == 2
    assert len(ray.created) == 2 * len(dead)


def test_runs_added_to_the_queue_while_it_runs_are_run_too() -> None:
    ray = FakeRay()
    queue = RunQueue(specs(2))
    extra = specs(6)[2:]
    seen = []
    for spec, _ in pool(ray, 2).run(queue):
        seen.append(spec.run_id)
        if len(seen) == 1:
            queue.extend(extra)
    assert len(seen) == 6 and set(seen) >= {s.run_id for s in extra}


def test_an_actor_stays_on_the_structure_it_ran_last() -> None:
    ray = FakeRay()
    runs = [make_spec(seed=s, precision=p) for s in range(3) for p in ("fp32", "fp16")]  # interleaved
    list(pool(ray, 2).run(runs))
    by_actor = [[next(s.precision for s in runs if s.run_id == r) for r in a.runs] for a in ray.created]
    assert sorted(sorted(set(p)) for p in by_actor) == [["fp16"], ["fp32"]]


def test_a_warm_pool_that_stopped_stops_the_sweep_with_what_to_do() -> None:
    ray = FakeRay(lambda actor, spec, n: HANG)
    why = {"now": ""}
    p = pool(ray, 1, lost=lambda: why["now"])
    runs = p.run(specs(2))
    ray.outcome = lambda actor, spec, n: (why.update(now="its daemon, pid 1, ended"), ok(spec, actor))[1]
    with pytest.raises(DispatchError, match=r"warm pool stopped during the sweep \(its daemon, pid 1, ended\).*rerun"):
        list(runs)


def test_interrupted_it_kills_what_it_started_and_what_runs_and_keeps_idle_warm_actors() -> None:
    ray = FakeRay(lambda actor, spec, n: ok(spec, actor) if actor is warm_idle else HANG)
    cls = ray.actor_class()
    warm_idle = cls.remote(1)
    p = pool(ray, 3, warm=[warm_idle], timeout_s=1e9)
    real_wait = ray.wait

    def wait(refs: list[Ref], num_returns: int, timeout: float) -> Any:
        if not p.pending and len(p.running) == 2 and p.idle:  # Ctrl-C with two runs in flight, one actor idle
            raise KeyboardInterrupt
        return real_wait(refs, num_returns, timeout)

    ray.wait = wait  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        list(p.run(specs(3)))
    running = [a for a in ray.created if a.runs and a is not warm_idle]
    assert len(running) == 2 and all(a.killed for a in running)
    assert warm_idle.runs and not warm_idle.killed  # idle: it stays for the next sweep


def test_a_caller_that_stops_reading_leaves_no_actor_of_the_pool_alive() -> None:
    ray = FakeRay()
    runs = pool(ray, 2).run(specs(6))
    next(runs)
    runs.close()
    assert all(a.killed for a in ray.created)


def test_no_actor_alive_is_an_error_not_a_hang() -> None:
    ray = FakeRay()
    p = pool(ray, 0)
    with pytest.raises(DispatchError, match="no actor is alive"):
        list(p.run(specs(1)))
