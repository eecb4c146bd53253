"""A test-only scenario with a planted fp16 overflow step: a small MLP whose loss at step ``at`` is
multiplied by ``factor``. The loss stays a small finite float32 number, but under fp16 the scaled
gradients (loss scale 32768 at the start) overflow float16, so dynamic loss scaling skips that step:
no update, by design."""

from __future__ import annotations

from typing import Any

from harness import checks, detectors


class PlantedOverflow:
    def __init__(self, at: int = 3, factor: float = 1000.0) -> None:
        self.at, self.factor = at, factor

    def checks(self) -> list[Any]:
        # every detector, and a control that judges every step: it must see the planted overflow
        return [*detectors.all_detectors(activations=False, metric=None),
                checks.Check("control.grads_finite_every_step", "grads_finite", 1.0, ">=")]

    def build(self, ctx: Any) -> tuple[Any, Any]:
        import keras
        import tensorflow as tf

        x = tf.random.stateless_uniform([ctx.data_size, 4], seed=ctx.data_seed(0), minval=-1.0, maxval=1.0)
        y = tf.reduce_sum(x, axis=1, keepdims=True)
        self.model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh", dtype=ctx.policy),
                                       keras.layers.Dense(1, dtype=ctx.policy)])
        self.ctx = ctx
        ctx.optimizer(keras.optimizers.Adam, self.model.trainable_variables, learning_rate=1e-3)
        self.groups = [0, 0, 1, 1]  # kernel and bias of each layer
        return x, y

    def train_step(self, batch: Any, step: Any) -> Any:
        import tensorflow as tf

        x, y = batch
        factor = tf.where(step == self.at, tf.constant(self.factor, tf.float32), tf.constant(1.0, tf.float32))

        def loss() -> Any:
            return factor * tf.reduce_mean(tf.square(y - tf.cast(self.model(x, training=True), tf.float32)))

        return self.ctx.minimize(loss, self.model.trainable_variables, groups=self.groups)
