"""One run, start to finish, inside a worker: RunSpec in, RunResult out. Never raises."""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

from harness.checks import state_to_values
from harness.grid import RunSpec
from harness.records import CheckMeaning, CheckResult, RunResult, Status
from harness.scenarios.base import declared_checks, instantiate

_worker_threads: int | None = None


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


def execute(spec: RunSpec, *, on_series: Callable[[Any, Any], None] | None = None) -> RunResult:
    """Build the scenario, train in one compiled call, evaluate its checks. Exceptions
    become a RunResult with status=error and the exception's type and message.

    ``on_series`` (replay --trace): the loop is compiled to also return every step's check
    values and numerics, and ``on_series(series, checks)`` receives them (a loop.StepSeries,
    with zero steps for a scenario that does not train) and the declared checks. That loop
    is not cached for reuse; its summaries are the default loop's (the replay compares them)."""
    t0 = time.perf_counter()
    tf_version = init_worker(_worker_threads)
    declared: tuple[CheckMeaning, ...] = ()
    try:
        import numpy as np
        import tensorflow as tf

        from harness.engine.context import RunContext
        from harness.engine.loop import NUMERIC_FIELDS, LoopOutput, StepSeries, evaluate_final, train
        from harness.engine.reuse import recording_variables, train_reusing
        from harness.engine.runtime import seed_everything

        scenario = instantiate(spec.target, spec.params)
        checks = declared_checks(scenario)
        declared = tuple(c.meaning() for c in checks)
        tf.keras.backend.clear_session()
        seed_everything(spec.seed)
        ctx = RunContext(spec)
        with recording_variables() as variables:
            data = scenario.build(ctx)
        if not isinstance(data, (tuple, list)) or not data:
            raise TypeError(f"{type(scenario).__name__}.build() must return a non-empty tuple of tensors, "
                            f"got {type(data).__name__}")
        rows = [t.shape[0] if getattr(t, "shape", None) is not None and len(t.shape) else None for t in data]
        if any(r != spec.data_size for r in rows):
            raise TypeError(f"{type(scenario).__name__}.build() must return tensors with data_size="
                            f"{spec.data_size} rows first, got first dimensions {rows}")
        # A scenario with ``trains = False`` (e.g. normalization) is evaluated once: no loop
        # runs, steps is recorded as 0 and the training numerics are null.
        trains = bool(getattr(scenario, "trains", True))
        if not trains and any(c.when == "step" for c in checks):
            raise TypeError(f"{type(scenario).__name__} does not train (trains=False) but declares step checks")
        steps = spec.steps if trains else 0
        if not trains:
            out = LoopOutput({}, {}, 0.0)
            if on_series is not None:
                on_series(StepSeries({}, np.zeros((0, len(NUMERIC_FIELDS)), np.float32)), checks)
        else:
            data = tuple(tf.convert_to_tensor(t) for t in data)  # once, for the trace and the call alike
            if on_series is not None:  # a loop of its own, never cached: it returns more
                out = train(scenario, data, checks, steps=steps, batch_size=spec.batch_size, seed=spec.seed,
                            series=True)
                on_series(out.series, checks)
            elif vars(type(scenario)).get("reuse_trace", False):  # a promise, so not inherited
                key = (*spec.structure(), tuple((t.dtype.name, tuple(t.shape[1:])) for t in data))
                out = train_reusing(key, scenario, variables, data, checks, steps=steps,
                                    batch_size=spec.batch_size, seed=spec.seed)
            else:
                out = train(scenario, data, checks, steps=steps, batch_size=spec.batch_size, seed=spec.seed)
        states = dict(out.states)
        states.update(evaluate_final(scenario, checks, steps))
        results = tuple(CheckResult(check=c.name, bound=c.bound, judge=c.judge, **state_to_values(states[c.name]))
                        for c in checks)
        n = out.numerics
        extras = ({"grad_norm_max": float(n["grad_norm_max"]), "clip_active_steps": int(n["clip_active_steps"])}
                  if trains else {})
        if callable(getattr(scenario, "extras", None)):
            extras.update(scenario.extras())
        return RunResult(
            run_id=spec.run_id,
            status=Status.OK,
            checks=results,
            declared=declared,
            wall_s=time.perf_counter() - t0,
            train_s=out.train_s,
            worker=worker_name(),
            tf_version=tf_version,
            steps=steps,
            compute_dtype=ctx.compute_dtype,
            final_loss=float(n["final_loss"]) if trains else None,
            nonfinite_values=int(n["nonfinite_values"]) if trains else None,
            loss_scale_min=_float(n["loss_scale_min"]) if trains else None,
            skipped_steps=int(n["skipped_steps"]) if trains else None,
            extras=extras,
        )
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
        )
