"""RunContext: what a scenario sees of its run, and the precision-aware training helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.engine.precision import Precision
from harness.grid import RunSpec


class RunContext:
    """The run's axes plus ``optimizer`` and ``minimize`` that honour precision and clipping.

    Attributes: data_size, batch_size, steps, seed, clip_value, precision (fp32/fp16/bf16),
    policy (Keras dtype policy name for layers), compute_dtype, params (scenario params).
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.data_size = spec.data_size
        self.batch_size = spec.batch_size
        self.steps = spec.steps
        self.seed = spec.seed
        self.clip_value = spec.clip_value
        self.precision = spec.precision
        self.params = dict(spec.params)
        self._precision = Precision(spec.precision)
        self.policy = self._precision.policy
        self.compute_dtype = self._precision.compute_dtype
        self._optimizer: Any = None

    def data_seed(self, k: int = 0) -> tuple[int, int]:
        """A stateless-RNG seed for generating data stream ``k`` of this run."""
        return (self.seed, 1_000_003 * (k + 1))

    def optimizer(self, cls: Callable[..., Any], variables: Sequence[Any], **kwargs: Any) -> Any:
        """Build a Keras optimizer for ``variables`` with the run's gradient clipping (by
        value) and, under fp16, wrapped in Keras' LossScaleOptimizer (dynamic loss scaling).
        It is built here, eagerly, so the compiled loop creates no variables."""
        import keras

        if self.clip_value is not None:
            kwargs["clipvalue"] = self.clip_value
        opt = cls(**kwargs)
        if self._precision.loss_scaling:
            opt = keras.optimizers.LossScaleOptimizer(opt)
        opt.build(list(variables))
        self._optimizer = opt
        return opt

    def minimize(self, loss_fn: Callable[[], Any], variables: Sequence[Any]) -> dict[str, Any]:
        """One optimizer step on ``loss_fn()`` (a scalar). In-graph.

        Returns the training numerics the engine accumulates: loss, grad_norm (of the
        unscaled gradients, before clipping), grads_finite, clip_active, loss_scale, skipped.
        """
        import tensorflow as tf

        opt = self._optimizer
        if opt is None:
            raise RuntimeError("call ctx.optimizer(...) in build() before ctx.minimize(...)")
        scaling = self._precision.loss_scaling
        with tf.GradientTape() as tape:
            loss = tf.cast(loss_fn(), tf.float32)
            target = opt.scale_loss(loss) if scaling else loss
        grads = tape.gradient(target, variables)
        unconnected = [v.name for v, g in zip(variables, grads) if g is None]
        if unconnected:
            raise ValueError(f"minimize: the loss does not depend on variable(s) {', '.join(unconnected)}")
        scale = tf.convert_to_tensor(opt.dynamic_scale if scaling else 1.0, tf.float32)
        # The numerics are read off one flat float32 vector of all gradients: a handful of
        # ops per step whatever the number of variables (each small op costs ~1 us on CPU).
        # (of a sparse gradient, e.g. an embedding's, its values: as tf.linalg.global_norm does)
        flat = tf.concat([tf.reshape(tf.cast(g.values if isinstance(g, tf.IndexedSlices) else g, tf.float32), [-1])
                          for g in grads], 0)
        if scaling:
            flat = flat / scale
        finite = tf.math.is_finite(tf.reduce_sum(flat * 0.0))  # inf * 0 and nan * 0 are nan; finite * 0 is 0
        if self.clip_value is not None:
            clip_active = tf.reduce_any(tf.abs(flat) > self.clip_value)
        else:
            clip_active = tf.constant(False)
        opt.apply(grads, variables)
        return {
            "loss": loss,
            "grad_norm": tf.sqrt(tf.reduce_sum(tf.square(flat))),
            "grads_finite": finite,
            "clip_active": clip_active,
            "loss_scale": scale,
            "skipped": tf.logical_and(tf.constant(scaling), tf.logical_not(finite)),
        }
