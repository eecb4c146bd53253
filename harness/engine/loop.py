"""The compiled training loop: the whole run is one tf.function call, no host sync per step.

Each step draws a batch of row indices uniformly with replacement from a stateless
RNG keyed by (seed, step): O(batch) per step whatever the data size, and the same
batches for the same run on every machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks import Check, CheckState

SAMPLING_STREAM = 7_919  # keeps batch sampling apart from the scenario's data streams


@dataclass
class LoopOutput:
    states: dict[str, CheckState]
    numerics: dict[str, Any]
    train_s: float


def _numerics_init() -> dict[str, Any]:
    import tensorflow as tf

    return {
        "final_loss": tf.constant(float("nan"), tf.float32),
        "nonfinite_values": tf.constant(0, tf.int64),
        "skipped_steps": tf.constant(0, tf.int64),
        "loss_scale_min": tf.constant(float("inf"), tf.float32),
        "grad_norm_max": tf.constant(0.0, tf.float32),
        "clip_active_steps": tf.constant(0, tf.int64),
    }


def _numerics_update(n: dict[str, Any], obs: Mapping[str, Any]) -> dict[str, Any]:
    """Fold the training numerics of one step (see RunContext.minimize) into the run's."""
    import tensorflow as tf

    loss = tf.cast(obs["loss"], tf.float32)
    skipped = tf.cast(obs.get("skipped", False), tf.bool)
    grads_finite = tf.cast(obs.get("grads_finite", True), tf.bool)
    # a non-finite loss, or non-finite gradients that were applied (not skipped by loss scaling)
    bad = tf.logical_or(tf.logical_not(tf.math.is_finite(loss)),
                        tf.logical_and(tf.logical_not(grads_finite), tf.logical_not(skipped)))
    out = dict(n)
    out["final_loss"] = loss
    out["nonfinite_values"] = n["nonfinite_values"] + tf.cast(bad, tf.int64)
    out["skipped_steps"] = n["skipped_steps"] + tf.cast(skipped, tf.int64)
    if "loss_scale" in obs:
        out["loss_scale_min"] = tf.minimum(n["loss_scale_min"], tf.cast(obs["loss_scale"], tf.float32))
    if "grad_norm" in obs:
        g = tf.cast(obs["grad_norm"], tf.float32)
        out["grad_norm_max"] = tf.where(tf.math.is_finite(g), tf.maximum(n["grad_norm_max"], g), n["grad_norm_max"])
    if "clip_active" in obs:
        out["clip_active_steps"] = n["clip_active_steps"] + tf.cast(obs["clip_active"], tf.int64)
    return out


def compile_loop(scenario: Any, data: Sequence[Any], checks: Sequence[Check], *, batch_size: int, seed: int) -> Any:
    """Trace the training loop: a concrete function of the number of steps returning
    (check states, numerics). Tracing happens here, outside any timing."""
    import tensorflow as tf

    step_checks = [c for c in checks if c.when == "step"]
    data = tuple(tf.convert_to_tensor(t) for t in data)
    n_rows = tf.shape(data[0], out_type=tf.int64)[0]

    def body(step: Any, states: tuple, numerics: dict) -> tuple:
        idx = tf.random.stateless_uniform([batch_size], seed=tf.stack([tf.cast(seed, tf.int64), SAMPLING_STREAM + step]),
                                          minval=0, maxval=n_rows, dtype=tf.int64)
        batch = tuple(tf.gather(t, idx) for t in data)
        obs = scenario.train_step(batch, step)
        if "loss" not in obs:
            raise KeyError(f"{type(scenario).__name__}.train_step must return a 'loss' observation "
                           f"(returned: {', '.join(sorted(obs))})")
        states = tuple(c.update(s, obs, step) for c, s in zip(step_checks, states))
        return step + 1, states, _numerics_update(numerics, obs)

    @tf.function
    def loop(n_steps: Any) -> tuple:
        states = tuple(c.initial_state() for c in step_checks)
        _, states, numerics = tf.while_loop(
            lambda step, *_: step < n_steps, body,
            (tf.constant(0, tf.int64), states, _numerics_init()),
            parallel_iterations=1,
        )
        return states, numerics

    return loop.get_concrete_function(tf.TensorSpec([], tf.int64))


def train(scenario: Any, data: Sequence[Any], checks: Sequence[Check], *, steps: int, batch_size: int,
          seed: int) -> LoopOutput:
    """Run ``steps`` training steps in one compiled call, evaluating the step checks in-graph."""
    import tensorflow as tf

    step_checks = [c for c in checks if c.when == "step"]
    concrete = compile_loop(scenario, data, checks, batch_size=batch_size, seed=seed)
    t0 = time.perf_counter()
    states, numerics = concrete(tf.constant(steps, tf.int64))
    numerics = {k: v.numpy() for k, v in numerics.items()}
    train_s = time.perf_counter() - t0
    return LoopOutput({c.name: s for c, s in zip(step_checks, states)}, numerics, train_s)


def evaluate_final(scenario: Any, checks: Sequence[Check], step: int) -> dict[str, CheckState]:
    """Evaluate the when="final" checks once on ``scenario.evaluate()`` (compiled)."""
    import tensorflow as tf

    final = [c for c in checks if c.when == "final"]
    if not final:
        return {}
    if not callable(getattr(scenario, "evaluate", None)):
        raise TypeError(f"{type(scenario).__name__} declares final checks but has no evaluate()")

    @tf.function
    def run() -> tuple:
        obs = scenario.evaluate()
        return tuple(c.update(c.initial_state(), obs, tf.constant(step, tf.int64)) for c in final)

    return {c.name: s for c, s in zip(final, run())}
