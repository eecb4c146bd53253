"""Figure 1: the harness's step against the seed document's loop, per step, at 1e5 rows."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from bench.common import Figure, actor_env, allocator_name
from bench.loops import compiled, measure_pairs

ONLY = ("1",)


def seed_loop(data_size: int, steps: int) -> Callable[[], float]:
    """Seconds per step of the seed document's loop as written: eager, a full shuffle of
    the index every step, a host sync (.numpy()) per step for the assertion."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    x_train = tf.random.normal(shape=(data_size, 1))
    y_train = x_train * 2 + tf.random.normal(shape=(data_size, 1), stddev=0.1)

    def custom_loss(y_true: Any, y_pred: Any) -> Any:
        return tf.reduce_mean(tf.square(y_true - y_pred))

    def training_step(x: Any, y: Any, clip_value: float) -> None:
        with tf.GradientTape() as tape:
            loss = custom_loss(y, model(x))
        gradients = tape.gradient(loss, model.trainable_variables)
        clipped = [tf.clip_by_value(g, -clip_value, clip_value) for g in gradients]
        optimizer.apply_gradients(zip(clipped, model.trainable_variables))

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            indices = tf.random.shuffle(tf.range(x_train.shape[0]))[:32]
            x_batch, y_batch = tf.gather(x_train, indices), tf.gather(y_train, indices)
            training_step(x_batch, y_batch, 10.0)
            current_loss = custom_loss(y_batch, model(x_batch)).numpy()
            _ = current_loss < 1.0
        return (time.perf_counter() - t0) / steps
    run()  # warm
    return run


PAIRS: dict[str, Callable[[int], list[Callable[[], float]]]] = {
    "seed": lambda steps: [seed_loop(100_000, 100), compiled(100_000, steps), compiled(100_000, steps, unroll=1)],
}


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    """The default configuration: both sides in processes started as an embedded Ray's actors are (the
    allocator ray.malloc=auto preloads, see actor_env), the harness's loop hot (a structure many runs
    reuse; the loop of single steps it starts as is timed beside it in the same processes). Besides, in
    processes interleaved with those: both sides with the system's allocator (ray.malloc=system, and
    the seed's loop as a plain `python` runs it); and with TensorFlow's oneDNN rewrite off
    (TF_ENABLE_ONEDNN_OPTS=0), which runs the step's three tiny matmuls on Eigen's kernels instead
    (other numbers in bf16, see docs/engine.md)."""
    base = actor_env()
    variants: dict[str, dict[str, str | None]] = {"default": dict(base)}
    if base:
        variants["ray.malloc=system"] = {"LD_PRELOAD": os.environ.get("LD_PRELOAD")}  # as this process has it
    variants["TF_ENABLE_ONEDNN_OPTS=0"] = {**base, "TF_ENABLE_ONEDNN_OPTS": "0"}
    measured = measure_pairs("seed", opts.processes, opts.repeats, opts.sample_steps, list(variants.values()))
    pairs = dict(zip(variants, measured))
    p = pairs.pop("default")
    name = allocator_name(base)
    allocator = f"preloaded {name}" if name else "the system's allocator (no jemalloc found)"
    detail = (f"seed loop {p.a * 1e3:.2f} ms/step, harness {p.b * 1e6:.0f} us/step (a hot loop, unrolled; "
              f"the loop of single steps in the same processes {p.more[0] * 1e6:.0f} us/step, "
              f"{p.a / p.more[0]:.0f}x), both with {allocator} as an actor; {p.spread()}")
    for variant, q in pairs.items():
        detail += (f"; with {variant} (both sides, processes interleaved with the above): {q.ratio:.0f}x, seed loop "
                   f"{q.a * 1e3:.2f} ms/step, harness {q.b * 1e6:.0f} us/step; {q.spread()}")
    return [Figure("1", "per-step speed vs the seed's loop (1e5 rows)", p.ratio, "x faster", ">= 200x",
                   p.ratio >= 200, detail)]
