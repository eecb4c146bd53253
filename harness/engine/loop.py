"""The compiled training loop: the whole run is one tf.function call, no host sync per step.

Each step draws a batch of row indices uniformly with replacement from a stateless
RNG keyed by (seed, step): O(batch) per step whatever the data size, and the same
batches for the same run on every machine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checks import Check, CheckState
from harness.compat import tensorflow as compat_tf
from harness.engine.held import Held, holding

log = logging.getLogger(__name__)
SAMPLING_STREAM = 7_919  # keeps batch sampling apart from the scenario's data streams


@dataclass
class StepSeries:
    """What a loop compiled with ``series=True`` also returns: every step's float64 value of
    each step check (all steps, scheduled or not) and the [steps, 6] float32 matrix of the
    training numerics (columns NUMERIC_FIELDS)."""

    values: dict[str, Any]
    numerics: Any


@dataclass
class LoopOutput:
    states: dict[str, CheckState]
    numerics: dict[str, Any]
    train_s: float
    series: StepSeries | None = None  # only from a loop compiled with series=True


def _autograph(scenario: Any) -> bool:
    """AutoGraph converts Python control flow on tensors; it also costs tracing time on every
    run. A scenario whose code has no such control flow may set ``autograph = False``."""
    return bool(getattr(scenario, "autograph", True))


NUMERIC_FIELDS = ("loss", "grads_finite", "skipped", "loss_scale", "grad_norm", "clip_active")


def _step_numerics(obs: Mapping[str, Any]) -> list[Any]:
    """The training numerics of one step (see RunContext.minimize), NUMERIC_FIELDS in order, as
    float64 scalars holding float32 values: each is rounded to float32 first (the numerics are
    float32), then widened exactly; a bool becomes 0 or 1."""
    import tensorflow as tf

    loss = tf.convert_to_tensor(obs["loss"])
    if loss.shape.rank != 0 or not loss.dtype.is_floating:
        raise TypeError(f"the 'loss' observation must be a float scalar, got {loss.dtype.name} of shape {loss.shape}")
    defaults = {"grads_finite": True, "skipped": False, "loss_scale": float("nan"), "grad_norm": float("nan"),
                "clip_active": False}

    def exact(x: Any) -> Any:
        x = tf.convert_to_tensor(x)
        return tf.cast(x if x.dtype == tf.bool else tf.cast(x, tf.float32), tf.float64)
    return [exact(obs[k] if k in obs else defaults[k]) for k in NUMERIC_FIELDS]


def _summarize_numerics(rows: Any) -> dict[str, Any]:
    """Run-level numerics from the [steps, 6] matrix of step numerics."""
    import tensorflow as tf

    loss, grads_finite, skipped, scale, gnorm, clip = tf.unstack(tf.reshape(rows, [-1, len(NUMERIC_FIELDS)]), axis=1)
    skipped_b = skipped > 0
    # a non-finite loss, or non-finite gradients that were applied (not skipped by loss scaling)
    bad = tf.logical_or(tf.logical_not(tf.math.is_finite(loss)),
                        tf.logical_and(tf.logical_not(grads_finite > 0), tf.logical_not(skipped_b)))
    inf = tf.constant(float("inf"), tf.float32)
    return {
        "final_loss": tf.concat([[float("nan")], loss], 0)[-1],
        "nonfinite_values": tf.reduce_sum(tf.cast(bad, tf.int64)),
        "skipped_steps": tf.reduce_sum(tf.cast(skipped_b, tf.int64)),
        "loss_scale_min": tf.reduce_min(tf.concat([[inf], tf.where(tf.math.is_nan(scale), inf, scale)], 0)),
        "grad_norm_max": tf.reduce_max(tf.concat([[0.0], tf.where(tf.math.is_finite(gnorm), gnorm, 0.0)], 0)),
        "clip_active_steps": tf.reduce_sum(tf.cast(clip > 0, tf.int64)),
    }


UNROLL = 8  # steps per loop iteration of a hot loop's unrolled variant (see compile_loop)
# A loop is hot once it has run for this many times as long as its tracing took: the unrolled variant
# costs a few times the single-step loop's tracing and saves a fraction of the loop's time (figure 1's
# detail column times both loops), so it pays back only after many times that tracing time of further
# running. Rent or buy, with the structure's past use as the forecast of its future use. At 8 and 16,
# figure 4's sweep (4 runs of 25,000 steps per structure and actor) tiered up and lost wall time by it.
UNROLL_AFTER = 64.0


def xla_clustering() -> bool:
    """Whether XLA may compile clusters of a loop's ops into fused kernels (auto-clustering):
    ``TF_XLA_FLAGS`` with ``--tf_xla_auto_jit`` set to anything but 0 or -1, or with
    ``--tf_xla_cpu_global_jit``, or ``tf.config.optimizer.set_jit`` on. XLA then fuses ops across
    the steps of an unrolled loop body, which changes rounding: with auto-clustering on this CPU,
    the circles scenario in fp32 gave other bits unrolled than in single steps. So a loop does not
    run unrolled then (compile_loop), and its runs replay bit for bit. Either flag alone is taken
    as on, though on a CPU XLA clusters only with both (on a GPU one is enough): a loop of single
    steps is slower, never wrong. Like XLA, a value that does not start with ``-`` names a file of
    flags, and quotes around a flag's value are dropped."""
    flags = os.environ.get("TF_XLA_FLAGS", "").strip()
    if flags and not flags.startswith("-"):
        try:
            flags = Path(flags).read_text()
        except OSError:
            flags = ""
    for flag in flags.split():
        name, _, value = flag.lstrip("-").partition("=")
        value = value.strip().strip("'\"").lower()
        if name == "tf_xla_auto_jit" and value not in ("0", "-1"):
            return True
        if name == "tf_xla_cpu_global_jit" and value not in ("0", "false"):
            return True
    import tensorflow as tf

    try:
        return bool(tf.config.optimizer.get_jit())
    except (AttributeError, RuntimeError):  # no such call in this TF: the flags above are what it reads
        return False


class CompiledLoop:
    """A traced training loop: ``run(data, steps=, seed=)`` runs ``steps`` steps in one call.

    The data tensors and the seed are arguments of the traced function (the data with any
    number of rows), so one trace can serve every run of the same structure. Once the loop
    has run for ``unroll_after`` times as long as tracing it took (a structure reused by many
    runs, see harness.engine.reuse), runs of at least ``unroll`` steps run its unrolled
    variant, ``unroll`` steps per loop iteration, traced then; the results are bit-identical.

    ``trace(k, scenario)`` traces the variant of ``k`` steps per iteration on ``scenario``
    (``rebind`` changes which scenario later variants are traced on); ``empty`` are zero-row
    tensors like the data, with which each new variant is called once for zero steps so that
    TensorFlow instantiates it before any run is timed. Neither holds a run's data."""

    def __init__(self, trace: Any, scenario: Any, empty: Sequence[Any], step_checks: Sequence[Check],
                 series: bool = False, *, unroll: int = 1, unroll_after: float = 0.0) -> None:
        self._trace = trace
        self._scenario = scenario
        self._empty = tuple(empty)
        self.step_checks = list(step_checks)
        self.series = series
        self.unroll = unroll
        self.unroll_after = unroll_after
        t0 = time.perf_counter()
        self.variants: dict[int, Any] = {1: self._instantiated(1)}
        self.trace_s = time.perf_counter() - t0  # tracing and instantiating the single-step loop
        self.ran_s = 0.0  # time spent in run() so far

    def _instantiated(self, k: int) -> Any:
        import tensorflow as tf

        fn = self._trace(k, self._scenario)
        fn(tf.constant(0, tf.int64), tf.constant(0, tf.int64), *self._empty)  # zero steps: no variable is touched
        return fn

    def rebind(self, scenario: Any) -> None:
        """Trace later variants on ``scenario`` (reuse: the structure's template, which holds no
        run's tensors) instead of the one the loop was compiled for."""
        self._scenario = scenario

    @property
    def fn(self) -> Any:
        """The concrete function of one step per loop iteration (traced at construction)."""
        return self.variants[1]

    @property
    def captured_inputs(self) -> list[Any]:
        """The tensors (variable handles) the variants traced so far capture."""
        return [t for fn in self.variants.values() for t in fn.captured_inputs]

    def prepare(self, steps: int) -> Any:
        """The concrete function a run of ``steps`` steps runs; the unrolled variant is traced and
        instantiated here the first time the loop is hot (rent or buy: its tracing, a few times the
        single-step loop's, is paid once the loop has cost unroll_after times that). Should that
        tracing fail, the loop stays one of single steps (logged once)."""
        k = self.unroll
        if steps < k:
            return self.variants[1]
        if k not in self.variants and self.ran_s >= self.unroll_after * self.trace_s:
            try:
                self.variants[k] = self._instantiated(k)
            except Exception as exc:  # the single-step loop traced; its unrolled copy is only an optimisation
                log.warning("%s: tracing the loop unrolled %d steps per iteration failed (%s: %s); keeping the loop "
                            "of single steps", type(self._scenario).__name__, k, type(exc).__name__, exc)
                self.variants[k] = self.variants[1]
        return self.variants.get(k, self.variants[1])

    def run(self, data: Sequence[Any], *, steps: int, seed: int) -> LoopOutput:
        import tensorflow as tf

        fn = self.prepare(steps)
        t0 = time.perf_counter()
        out = fn(tf.constant(steps, tf.int64), tf.constant(seed, tf.int64), *data)
        states, numerics = out[0], out[1]
        numerics = {k: v.numpy() for k, v in numerics.items()}
        train_s = time.perf_counter() - t0
        self.ran_s += train_s
        series = None
        if self.series:
            values, rows = out[2]
            series = StepSeries({c.name: v.numpy() for c, v in zip(self.step_checks, values)}, rows.numpy())
        return LoopOutput({c.name: s for c, s in zip(self.step_checks, states)}, numerics, train_s, series)

    def operations(self) -> list[Any]:
        """Every op of the traced loops (each variant traced so far): their graphs' and those of
        their nested functions (the while loops' bodies and conditions)."""
        return [op for fn in self._traced() for op in compat_tf.operations(fn)]

    def op_types(self) -> list[str]:
        """The type of every op of the traced loops, those of their nested functions included."""
        return [t for fn in self._traced() for t in compat_tf.op_types(fn)]

    def _traced(self) -> list[Any]:
        return list({id(f): f for f in self.variants.values()}.values())


def compile_loop(scenario: Any, data: Sequence[Any], checks: Sequence[Check], *, batch_size: int,
                 series: bool = False, unroll: int | None = None, unroll_after: float | None = None) -> CompiledLoop:
    """Trace the training loop, a function of (number of steps, seed, *data) returning
    (check states, numerics). Tracing happens here, outside any timing.

    Per step, one float64 row goes to a TensorArray: each check's value (its worst element)
    and the training numerics (exact in float64); both are summarised after the loop, in the
    graph. The loop carries as few loop variables as it can: TF lowers a while loop to a
    graph in which every loop variable that is not a resource passes four control ops per
    iteration (lower_while_op.cc), whether it changes or not. So the step counter is also
    the sampling RNG's key ([seed, SAMPLING_STREAM + step]), the number of steps is the
    loop's maximum_iterations and the row count is read off the data in the body; one
    TensorArray holds every row.

    Those control ops and the body's constants run once per iteration whatever the step
    costs, a large share of a tiny step (measured in docs/engine.md). So a hot loop (one that
    has run for ``unroll_after`` times as long as its tracing took: a structure that many runs
    of a worker reuse) runs runs of at least ``unroll`` steps in a variant whose loop body is
    ``unroll`` steps (the step traced that many times, in order), followed by a loop of single
    steps for the remaining steps % unroll: the same ops on the same values in the same order,
    so the same results bit for bit (tests/test_engine.py). ``unroll`` and ``unroll_after``
    default to the scenario's class attribute ``unroll`` (else UNROLL) and UNROLL_AFTER;
    ``unroll=1`` turns it off (a scenario whose train_step must be traced only once), and so does
    XLA's auto-clustering (xla_clustering), whose fusion across steps would change the bits.

    With ``series=True`` the function also returns the stacked series (LoopOutput.series, for
    ``replay --trace``); the default function is unchanged and returns only the summaries."""
    import tensorflow as tf

    if unroll is None:
        unroll = getattr(scenario, "unroll", UNROLL)
        if unroll > 1 and xla_clustering():
            unroll = 1
    unroll_after = UNROLL_AFTER if unroll_after is None else unroll_after
    if unroll < 1:
        raise ValueError(f"unroll must be >= 1, got {unroll}")
    step_checks = [c for c in checks if c.when == "step"]
    data = tuple(tf.convert_to_tensor(t) for t in data)
    dtypes: dict[str, Any] = {}  # measured dtype of each check, learnt while the body is traced
    width = len(step_checks) + len(NUMERIC_FIELDS)

    def step(scenario: Any, key: Any, rows: Any, data: Sequence[Any]) -> tuple:  # key: [seed, SAMPLING_STREAM + step]
        step = key[1] - SAMPLING_STREAM
        n_rows = tf.shape(data[0], out_type=tf.int64)[0]
        idx = tf.random.stateless_uniform([batch_size], seed=key, minval=0, maxval=n_rows, dtype=tf.int64)
        batch = tuple(tf.gather(t, idx) for t in data)
        obs = scenario.train_step(batch, step)
        if not isinstance(obs, Mapping) or "loss" not in obs:
            raise TypeError(f"{type(scenario).__name__}.train_step must return a dict with a 'loss' "
                            f"observation, got {sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__}")
        row = []
        for c in step_checks:
            v, dtypes[c.name] = c.step_value(obs)
            row.append(v)
        row = tf.stack(row + _step_numerics(obs))
        return key + tf.constant([0, 1], tf.int64), rows.write(tf.cast(step, tf.int32), row)

    def steps_loop(scenario: Any, k: int, key: Any, rows: Any, iterations: Any, data: Sequence[Any]) -> tuple:
        def body(key: Any, rows: Any) -> tuple:
            for _ in range(k):
                key, rows = step(scenario, key, rows, data)
            return key, rows
        return tf.while_loop(lambda *_: True, body, (key, rows), maximum_iterations=tf.cast(iterations, tf.int32),
                             parallel_iterations=1)

    specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in data]
    empty = [tf.zeros([0, *t.shape[1:]], t.dtype) for t in data]
    del data  # the loop keeps no run's data: it takes the data as arguments

    def trace(k: int, scenario: Any) -> Any:
        @tf.function(autograph=_autograph(scenario))
        def loop(n_steps: Any, seed: Any, *data: Any) -> tuple:
            rows = tf.TensorArray(tf.float64, size=tf.cast(n_steps, tf.int32), element_shape=[width])
            key = tf.stack([seed, tf.constant(SAMPLING_STREAM, tf.int64)])
            if k > 1:
                key, rows = steps_loop(scenario, k, key, rows, n_steps // k, data)
            _, rows = steps_loop(scenario, 1, key, rows, n_steps % k if k > 1 else n_steps, data)
            table = rows.stack()
            stacked = tuple(table[:, i] for i in range(len(step_checks)))
            numerics = tf.cast(table[:, len(step_checks):], tf.float32)
            steps = tf.range(n_steps, dtype=tf.int64)
            skipped = numerics[:, NUMERIC_FIELDS.index("skipped")] > 0  # steps fp16 loss scaling did not apply
            states = tuple(c.summarize(v, steps, dtypes[c.name], skipped) for c, v in zip(step_checks, stacked))
            if series:  # the same summaries of the same stacked series, which are returned too
                return states, _summarize_numerics(numerics), (stacked, numerics)
            return states, _summarize_numerics(numerics)

        return loop.get_concrete_function(tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64), *specs)

    return CompiledLoop(trace, scenario, empty, step_checks, series, unroll=unroll, unroll_after=unroll_after)


def train(scenario: Any, data: Sequence[Any], checks: Sequence[Check], *, steps: int, batch_size: int,
          seed: int, series: bool = False) -> LoopOutput:
    """Trace the loop and run ``steps`` training steps in one compiled call (with
    ``series=True``, also returning every step's check values and numerics)."""
    return compile_loop(scenario, data, checks, batch_size=batch_size, series=series).run(data, steps=steps,
                                                                                          seed=seed)


class CompiledFinal:
    """A traced final evaluation: ``run(tensors, step=)`` evaluates the when="final" checks once.

    Traced with ``held`` (see compile_final), it takes the tensors a scenario holds as
    arguments, so one trace serves every run whose scenario holds tensors of the same
    signature; ``tensors`` are then that run's ``held_tensors(scenario).tensors``."""

    def __init__(self, fn: Any, checks: Sequence[Check]) -> None:
        self.fn = fn
        self.checks = list(checks)

    def run(self, tensors: Sequence[Any], *, step: int) -> dict[str, CheckState]:
        import tensorflow as tf

        return {c.name: s for c, s in zip(self.checks, self.fn(tf.constant(step, tf.int64), *tensors))}

    @property
    def captured_inputs(self) -> list[Any]:
        return list(self.fn.captured_inputs)

    def operations(self) -> list[Any]:
        return compat_tf.operations(self.fn)

    def op_types(self) -> list[str]:
        return compat_tf.op_types(self.fn)


def final_checks(scenario: Any, checks: Sequence[Check]) -> list[Check]:
    """The when="final" checks, once it is clear the scenario can evaluate them."""
    final = [c for c in checks if c.when == "final"]
    if final and not callable(getattr(scenario, "evaluate", None)):
        raise TypeError(f"{type(scenario).__name__} declares final checks but has no evaluate()")
    return final


def compile_final(scenario: Any, checks: Sequence[Check], held: Held | None = None) -> CompiledFinal | None:
    """Trace the evaluation of the when="final" checks on ``scenario.evaluate()``, a function
    of the step the checks are recorded at (None when there are no final checks).

    Without ``held``, evaluate() captures whatever it reads: the trace serves this run only.
    With ``held`` (the scenario's held_tensors), those tensors are arguments of the function,
    swapped in for the scenario's own while evaluate() is traced (see harness.engine.held)."""
    import tensorflow as tf

    final = final_checks(scenario, checks)
    if not final:
        return None

    @tf.function(autograph=_autograph(scenario))
    def run(step: Any, *tensors: Any) -> tuple:
        if held is None:
            obs = scenario.evaluate()
        else:
            with holding(scenario, held.paths, [tensors[i] for i in held.slots]):
                obs = scenario.evaluate()
        if not isinstance(obs, Mapping):
            raise TypeError(f"{type(scenario).__name__}.evaluate() must return a dict, got {type(obs).__name__}")
        out = []
        for c in final:
            v, dtype = c.step_value(obs)
            out.append(c.summarize(tf.reshape(v, [1]), tf.reshape(step, [1]), dtype))
        return tuple(out)

    fn = run.get_concrete_function(tf.TensorSpec([], tf.int64), *(held.specs() if held is not None else ()))
    return CompiledFinal(fn, final)


def evaluate_final(scenario: Any, checks: Sequence[Check], step: int) -> dict[str, CheckState]:
    """Evaluate the when="final" checks once on ``scenario.evaluate()``, traced for this run."""
    final = compile_final(scenario, checks)
    return {} if final is None else final.run((), step=step)
