"""loss_bound — "loss < 1.0 after each step" (seed: assertions-fail-with-more-data, example 1).

Linear data y = 2x + N(0, noise_std), x ~ N(0, 1); a Dense(1) model trained with Adam
and gradient clipping by value on mini-batches. After every optimizer step the batch
loss is recomputed with a fresh forward pass (as the seed does) and checked against
``bound``. The model computes in the run's compute dtype (Keras mixed policy); the
loss is computed in float32 on the float32-cast prediction, unless
``loss_in_compute_dtype`` is true (then labels and loss stay in fp16/bf16).

An untrained model starts far above 1.0, so the seed's check as written fails at step 0
whatever the data. ``warmup=N`` (N > 0) adds a second check, ``loss_below_after_warmup``: the
same bound from step N on, which asks what the seed's author may have meant (once trained,
does the loss stay below the bound after every step?). The first check stays as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import checks
from harness.checks import Check


class LossBound:
    autograph = False  # no Python control flow on tensors: skip AutoGraph's conversion (faster tracing)
    reuse_trace = True  # the loop reads the run only through build()'s data and variables

    def __init__(self, bound: float = 1.0, learning_rate: float = 0.01, noise_std: float = 0.1,
                 slope: float = 2.0, loss_in_compute_dtype: bool = False, warmup: int = 0) -> None:
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup={warmup!r} is not a non-negative integer (steps before the second check)")
        self.bound = float(bound)
        self.learning_rate = float(learning_rate)
        self.noise_std = float(noise_std)
        self.slope = float(slope)
        self.loss_in_compute_dtype = bool(loss_in_compute_dtype)
        self.warmup = warmup

    def checks(self) -> Sequence[Check]:
        out = [checks.below("loss_below", "post_loss", self.bound)]
        if self.warmup:
            out.append(checks.below("loss_below_after_warmup", "post_loss", self.bound, after=self.warmup))
        return out

    def build(self, ctx: Any) -> tuple[Any, Any]:
        import keras
        import tensorflow as tf

        n = ctx.data_size
        x = tf.random.stateless_normal([n, 1], seed=ctx.data_seed(0))
        y = self.slope * x + tf.random.stateless_normal([n, 1], seed=ctx.data_seed(1), stddev=self.noise_std)
        self.model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, dtype=ctx.policy)])
        self.ctx = ctx
        self.loss_dtype = ctx.compute_dtype if self.loss_in_compute_dtype else "float32"
        ctx.optimizer(keras.optimizers.Adam, self.model.trainable_variables, learning_rate=self.learning_rate)
        return x, y

    def _loss(self, x: Any, y: Any) -> Any:
        import tensorflow as tf

        pred = tf.cast(self.model(x, training=True), self.loss_dtype)
        return tf.reduce_mean(tf.square(tf.cast(y, self.loss_dtype) - pred))

    def train_step(self, batch: tuple[Any, ...], step: Any) -> Mapping[str, Any]:
        x, y = batch
        out = self.ctx.minimize(lambda: self._loss(x, y), self.model.trainable_variables)
        out["post_loss"] = self._loss(x, y)  # the assertion's own forward pass, after the step
        return out
