"""RunContext: what a scenario sees of its run, and the precision-aware training helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.engine.precision import Precision
from harness.grid import RunSpec


class RunContext:
    """The run's axes plus ``optimizer`` and ``minimize`` that honour precision and clipping.

    Attributes: data_size, batch_size, steps, seed, clip_value, precision (fp32/fp16/bf16),
    policy (Keras dtype policy name for layers), compute_dtype, params (scenario params);
    ``axis(NAME)`` reads any axis of harness.axes (e.g. learning_rate).
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

    def axis(self, name: str) -> Any:
        """The run's value of the axis ``name`` (harness.axes; null: unset or unused by this scenario)."""
        return self.spec.axis(name)

    def data_seed(self, k: int = 0) -> tuple[int, int]:
        """A stateless-RNG seed for generating data stream ``k`` of this run."""
        return (self.seed, 1_000_003 * (k + 1))

    def optimizer(self, cls: Callable[..., Any], variables: Sequence[Any], **kwargs: Any) -> Any:
        """Build a Keras optimizer for ``variables`` with the run's gradient clipping (by
        value) and, under fp16, wrapped in Keras' LossScaleOptimizer (dynamic loss scaling).
        The run's optimizer axes (harness.axes: ``optimizer``, ``learning_rate``) replace the
        scenario's own class and learning rate (a schedule included) when the sweep sets them.
        It is built here, eagerly, so the compiled loop creates no variables."""
        import keras

        from harness import axes

        cls, kwargs = axes.optimizer(axes.axis_values(self.spec), cls, kwargs)
        if self.clip_value is not None:
            kwargs["clipvalue"] = self.clip_value
        opt = cls(**kwargs)
        if self._precision.loss_scaling:
            opt = keras.optimizers.LossScaleOptimizer(opt)
        opt.build(list(variables))
        self._optimizer = opt
        return opt

    def minimize(self, loss_fn: Callable[[], Any], variables: Sequence[Any],
                 groups: Sequence[int] | None = None) -> dict[str, Any]:
        """One optimizer step on ``loss_fn()`` (a scalar). In-graph.

        Returns the training numerics the engine accumulates: loss, grad_norm (of the
        unscaled gradients, before clipping), grads_finite, clip_active, loss_scale, skipped.

        ``groups`` (one integer per variable, 0..G-1, e.g. the layer each variable belongs to)
        adds per-group observations from the same gradients, for training-health checks:
        layer_grad_norm, layer_grad_zero_fraction, layer_grad_mean_abs (unscaled, before
        clipping), layer_update_mean_abs (mean |W_after - W_before| of the step), layer_grad_size
        (gradient elements per group), each a float32 vector [G], and weights_finite. They cost a few segment reductions, whatever the number
        of variables: no second forward or backward pass.
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
        finite = tf.reduce_all(tf.math.is_finite(flat))
        if self.clip_value is not None:
            clip_active = tf.reduce_any(tf.abs(flat) > self.clip_value)
        else:
            clip_active = tf.constant(False)
        if groups is not None:
            before = _flat(variables)
        opt.apply(grads, variables)
        out = {
            "loss": loss,
            "grad_norm": tf.sqrt(tf.reduce_sum(tf.square(flat))),
            "grads_finite": finite,
            "clip_active": clip_active,
            "loss_scale": scale,
            "skipped": tf.logical_not(finite) if scaling else tf.constant(False),  # (a constant: no ops per step)
        }
        if groups is not None:
            out.update(_group_stats(flat, before, _flat(variables), grads, variables, groups))
        return out


def _flat(variables: Sequence[Any]) -> Any:
    import tensorflow as tf

    return tf.concat([tf.reshape(tf.cast(v, tf.float32), [-1]) for v in variables], 0)


def _group_stats(flat_grads: Any, before: Any, after: Any, grads: Sequence[Any], variables: Sequence[Any],
                 groups: Sequence[int]) -> dict:
    """Per-group gradient and update statistics from the flat vectors (segment reductions).
    A sparse gradient counts its values (as the flat gradient vector does); updates count
    every element of the variable."""
    import numpy as np
    import tensorflow as tf

    if len(groups) != len(variables) or min(groups, default=0) < 0:
        raise ValueError(f"minimize: groups must give one non-negative group per variable, "
                         f"got {len(groups)} for {len(variables)} variables")
    n_groups = max(groups) + 1
    gsizes = [int(np.prod((g.values if isinstance(g, tf.IndexedSlices) else g).shape)) for g in grads]
    vsizes = [int(np.prod(v.shape)) for v in variables]

    def per(x: Any, sizes: list[int]) -> Any:
        ids = tf.constant(np.repeat(np.asarray(groups, dtype=np.int32), sizes))
        total = tf.math.unsorted_segment_sum(x, ids, n_groups)
        return total, tf.math.unsorted_segment_sum(tf.ones_like(x), ids, n_groups)

    sq, count = per(tf.square(flat_grads), gsizes)
    zeros, _ = per(tf.cast(tf.equal(flat_grads, 0.0), tf.float32), gsizes)
    mean_abs, _ = per(tf.abs(flat_grads), gsizes)
    update, vcount = per(tf.abs(after - before), vsizes)
    return {
        "layer_grad_norm": tf.sqrt(sq),
        "layer_grad_zero_fraction": zeros / count,
        "layer_grad_mean_abs": mean_abs / count,
        "layer_update_mean_abs": update / vcount,
        "layer_grad_size": count,
        "weights_finite": tf.reduce_all(tf.math.is_finite(after)),
    }
