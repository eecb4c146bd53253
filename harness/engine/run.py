"""One run, start to finish, inside a worker: RunSpec in, RunResult out. Never raises."""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness.checks import Check, CheckState, state_to_values
from harness.grid import RunSpec
from harness.records import CheckMeaning, CheckResult, RunResult, Status
from harness.scenarios.base import declared_checks, instantiate

if TYPE_CHECKING:
    from harness.engine.loop import LoopOutput

_worker_threads: int | None = None
# the phases of a run execute(timings=...) times: module imports and the scenario's checks; the
# session reset and seeding; build() and its validation; tracing; copying variables to and from a
# reused trace; the training loop; the final evaluation; check states to Python values; extras();
# the RunResult
PHASES = ("setup", "session", "build", "trace", "copy", "run", "final", "convert", "extras", "result")


def init_worker(num_threads: int | None = None) -> str:
    """Once per worker process: TF import, threads, determinism. Returns the TF version."""
    from harness.engine.runtime import init_tensorflow

    global _worker_threads
    _worker_threads = num_threads
    init_tensorflow(num_threads)
    import tensorflow as tf

    return tf.__version__


def worker_name() -> str:
    from harness.engine.runtime import device_name

    return f"{socket.gethostname()}:{os.getpid()}:{device_name()}"


def _onednn() -> bool | None:
    from harness.engine.runtime import onednn_enabled

    return onednn_enabled()


def _float(x: Any) -> float | None:
    x = float(x)
    return None if math.isinf(x) and x > 0 else x


def _message(exc: BaseException) -> str:
    """The exception's message on one line. Errors raised while TF traces a function read
    "in user code: <traceback> ... Error: <message>": keep the message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("in user code"):
        last = lines[-1]
        return last.split(": ", 1)[1] if last.startswith(f"{type(exc).__name__}: ") else last
    return " ".join(lines)


class _Phases:
    """Wall time per phase of one run (PHASES), added into ``record`` when one is given (see
    scripts/run_cost.py); without one a mark costs a comparison."""

    def __init__(self, record: dict[str, float] | None) -> None:
        self.record = record
        self.t = time.perf_counter()

    def mark(self, phase: str) -> None:
        """Charge the time since the previous mark to ``phase``."""
        if self.record is not None:
            now = time.perf_counter()
            self.record[phase] = self.record.get(phase, 0.0) + now - self.t
            self.t = now


def _validated(spec: RunSpec, scenario: Any, checks: Sequence[Check], data: Any) -> tuple[Any, ...]:
    """build()'s data as tensors, once the scenario's outputs and checks are known to fit the run."""
    import tensorflow as tf

    if not isinstance(data, (tuple, list)) or not data:
        raise TypeError(f"{type(scenario).__name__}.build() must return a non-empty tuple of tensors, "
                        f"got {type(data).__name__}")
    rows = [t.shape[0] if getattr(t, "shape", None) is not None and len(t.shape) else None for t in data]
    if any(r != spec.data_size for r in rows):
        raise TypeError(f"{type(scenario).__name__}.build() must return tensors with data_size="
                        f"{spec.data_size} rows first, got first dimensions {rows}")
    if not _trains(scenario) and any(c.when == "step" for c in checks):
        raise TypeError(f"{type(scenario).__name__} does not train (trains=False) but declares step checks")
    return tuple(tf.convert_to_tensor(t) for t in data)  # once, for the trace and the call alike


def _trains(scenario: Any) -> bool:
    """A scenario with ``trains = False`` (e.g. normalization) is evaluated once: no loop runs,
    steps is recorded as 0 and the training numerics are null."""
    return bool(getattr(scenario, "trains", True))


def _run_traced(spec: RunSpec, scenario: Any, data: tuple[Any, ...], checks: Sequence[Check], steps: int,
                held: bool, clock: _Phases,
                on_series: Callable[[Any, Any], None] | None) -> tuple[LoopOutput, dict[str, CheckState]]:
    """Train and evaluate with code traced for this run alone (a scenario without the
    reuse_trace promise, or a replay's series). ``held``: the final evaluation takes the
    tensors the scenario holds as arguments, as for a reused trace (the same graph)."""
    import numpy as np

    from harness.engine.held import held_tensors
    from harness.engine.loop import NUMERIC_FIELDS, LoopOutput, StepSeries, compile_final, compile_loop

    tensors = held_tensors(scenario) if held else None  # before the loop is traced, as run_reusing does
    if not _trains(scenario):
        out = LoopOutput({}, {}, 0.0)
        if on_series is not None:
            on_series(StepSeries({}, np.zeros((0, len(NUMERIC_FIELDS)), np.float32)), checks)
    else:
        loop = compile_loop(scenario, data, checks, batch_size=int(spec.batch_size or 0),
                            series=on_series is not None)
        clock.mark("trace")
        out = loop.run(data, steps=steps, seed=spec.seed)
        clock.mark("run")
        if on_series is not None:  # a loop of its own, never cached: it returns more
            on_series(out.series, checks)
    final = compile_final(scenario, checks, tensors)
    clock.mark("trace")
    states = final.run(tensors.tensors if tensors is not None else (), step=steps) if final is not None else {}
    clock.mark("final")
    return out, states


def _result(spec: RunSpec, scenario: Any, checks: Sequence[Check], declared: tuple[CheckMeaning, ...],
            out: LoopOutput, states: dict[str, CheckState], steps: int, t0: float, tf_version: str,
            clock: _Phases) -> RunResult:
    """The RunResult of a run that completed: its check values, numerics and extras."""
    from harness.engine.precision import Precision

    trains = _trains(scenario)
    states = {**out.states, **states}
    results = tuple(CheckResult(check=c.name, bound=c.bound, judge=c.judge, **state_to_values(states[c.name]))
                    for c in checks)
    n = out.numerics
    extras = ({"grad_norm_max": float(n["grad_norm_max"]), "clip_active_steps": int(n["clip_active_steps"])}
              if trains else {})
    clock.mark("convert")
    if callable(getattr(scenario, "extras", None)):
        extras.update(scenario.extras())
    clock.mark("extras")
    result = RunResult(
        run_id=spec.run_id,
        status=Status.OK,
        checks=results,
        declared=declared,
        wall_s=time.perf_counter() - t0,
        train_s=out.train_s,
        worker=worker_name(),
        tf_version=tf_version,
        onednn=_onednn(),
        steps=steps,
        compute_dtype=Precision(spec.precision).compute_dtype,
        final_loss=float(n["final_loss"]) if trains else None,
        nonfinite_values=int(n["nonfinite_values"]) if trains else None,
        loss_scale_min=_float(n["loss_scale_min"]) if trains else None,
        skipped_steps=int(n["skipped_steps"]) if trains else None,
        extras=extras,
    )
    clock.mark("result")
    return result


def execute(spec: RunSpec, *, on_series: Callable[[Any, Any], None] | None = None,
            timings: dict[str, float] | None = None) -> RunResult:
    """Build the scenario, train in one compiled call, evaluate its checks. Exceptions
    become a RunResult with status=error and the exception's type and message.

    A scenario with ``reuse_trace = True`` runs its structure's cached traces in a kept
    session (harness.engine.reuse, runtime.begin_run); any other starts a fresh session and
    traces its code for itself.

    ``on_series`` (replay --trace): the loop is compiled to also return every step's check
    values and numerics, and ``on_series(series, checks)`` receives them (a loop.StepSeries,
    with zero steps for a scenario that does not train) and the declared checks. That loop
    is not cached for reuse; its summaries are the default loop's (the replay compares them).

    ``timings``: each phase's wall time (PHASES, seconds) is added into it (scripts/run_cost.py)."""
    t0 = time.perf_counter()
    clock = _Phases(timings)
    tf_version = init_worker(_worker_threads)
    declared: tuple[CheckMeaning, ...] = ()
    try:
        from harness.engine import reuse
        from harness.engine.context import RunContext
        from harness.engine.runtime import begin_run

        scenario = instantiate(spec.target, spec.params)
        checks = declared_checks(scenario)
        declared = tuple(c.meaning() for c in checks)
        promised = reuse.promised(scenario)
        reusing = promised and on_series is None
        first = reusing and not reuse.known(spec.structure())  # its build() is watched, in a fresh session
        clock.mark("setup")
        begin_run(spec.seed, keep_session=reusing and not first and reuse.can_keep_sessions())
        clock.mark("session")
        ctx = RunContext(spec)
        with reuse.recording_variables() as variables, reuse.watching_random_ops(first) as random_ops:
            data = scenario.build(ctx)
        reuse.check_build(scenario, random_ops)
        data = _validated(spec, scenario, checks, data)
        steps = spec.steps if _trains(scenario) else 0
        clock.mark("build")
        if reusing:
            key = (*spec.structure(), tuple((t.dtype.name, tuple(t.shape[1:])) for t in data))
            out, states = reuse.run_reusing(key, scenario, variables, data, checks, trains=_trains(scenario),
                                            steps=steps, batch_size=spec.batch_size, seed=spec.seed,
                                            mark=clock.mark)
        else:
            out, states = _run_traced(spec, scenario, data, checks, steps, promised, clock, on_series)
        return _result(spec, scenario, checks, declared, out, states, steps, t0, tf_version, clock)
    except Exception as exc:  # one bad run never stops the sweep: it becomes a record
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {os.path.basename(last[0].filename)}:{last[0].lineno})" if last else ""
        return RunResult(
            run_id=spec.run_id,
            status=Status.ERROR,
            declared=declared,
            error=f"{type(exc).__name__}: {_message(exc)}{where}",
            wall_s=time.perf_counter() - t0,
            worker=worker_name(),
            tf_version=tf_version,
            onednn=_onednn(),
        )
