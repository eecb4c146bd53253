"""Bring a Keras program: a scenario made from a model factory, a data factory and the
arguments of ``model.compile``.

    import keras
    from harness import checks
    from harness.scenarios.keras_adapter import KerasScenario

    class Circles(KerasScenario):
        compile_args = dict(loss="binary_crossentropy", metrics=["accuracy"],
                            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9))

        def model(self):                      # no dtype= anywhere: the run's precision applies
            return keras.Sequential([keras.Input((2,)), keras.layers.Dense(5, activation="relu"),
                                     keras.layers.Dense(1, activation="sigmoid")])

        def data(self, ctx):                  # ctx.data_size rows, seeded by ctx.seed
            ...
            return x, y

        def checks(self):
            return [checks.above("accuracy", "accuracy", 0.7, when="final")]

How it trains, the way ``model.fit`` does, inside the harness's compiled loop: the model is
built under the run's dtype policy (``keras.config.set_dtype_policy``: every layer the user
builds computes in fp16/bf16, with float32 variables, as a Keras mixed-precision program
would), compiled with the user's loss and metrics and the user's optimizer rebuilt with the
run's clipping (and, for fp16, wrapped in Keras' LossScaleOptimizer); each step computes
the loss with Keras' own ``compute_loss`` (regularization losses included) and the compiled
metrics on the batch, and takes one optimizer step.

Observations of a step (for checks, all from one forward and one backward pass):
``loss``; each compiled metric on the batch by its name (e.g. ``accuracy``); per layer with
trainable weights, in order: ``layer_grad_norm``, ``layer_grad_zero_fraction``,
``layer_grad_mean_abs`` (gradients unscaled, before clipping) and ``layer_update_mean_abs``;
``weights_finite``, ``grads_finite``; with ``activations = True``: ``layer_dead_fraction``
(per ReLU layer, share of its batch outputs <= 0) and ``layer_saturated_fraction`` (per
sigmoid/tanh layer, share of pre-activations with |z| > 5, read off the outputs since both
are monotone), from the same forward pass through a model that shares the user's layers.
Final observations (checks with ``when="final"``): ``loss`` and every metric over all rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.checks import Check

SATURATION_Z = 5.0  # |pre-activation| beyond which a sigmoid/tanh counts as saturated (DeepDiagnosis)


class KerasScenario:
    """Subclass it: set ``compile_args`` (or override ``compile_kwargs``), implement ``model()``,
    ``data(ctx)`` and ``checks()``; set ``activations = True`` for per-layer activation
    observations (``layer_stats = False`` drops the per-layer gradient observations). The constructor takes the scenario's parameters as keyword arguments and
    keeps them as attributes (``self.params``)."""

    compile_args: Mapping[str, Any] = {"loss": "mse", "optimizer": "rmsprop"}
    activations: bool = False  # per-layer activation observations (dead ReLU, saturation)
    layer_stats: bool = True  # per-layer gradient and update observations (a few segment sums a step)

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)
        for k, v in params.items():
            setattr(self, k, v)

    # ---------------------------------------------------------------- the user's part
    def model(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.model() must return a Keras model")

    def data(self, ctx: Any) -> tuple[Any, Any]:
        raise NotImplementedError(f"{type(self).__name__}.data(ctx) must return (x, y) with ctx.data_size rows")

    def checks(self) -> Sequence[Check]:
        raise NotImplementedError(f"{type(self).__name__}.checks() must declare the assertions")

    def compile_kwargs(self) -> dict[str, Any]:
        """The arguments of ``model.compile`` (loss, optimizer, metrics, ...)."""
        return dict(self.compile_args)

    # ---------------------------------------------------------------- the protocol
    def build(self, ctx: Any) -> tuple[Any, Any]:
        import keras
        import tensorflow as tf

        x, y = (tf.convert_to_tensor(t) for t in self.data(ctx))
        x = tf.cast(x, tf.float32) if x.dtype == tf.float64 else x
        y = tf.cast(y, tf.float32) if y.dtype == tf.float64 else y
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(ctx.policy)  # every layer built now computes in the run's dtype
        try:
            model = self.model()
        finally:
            keras.config.set_dtype_policy(previous)
        kwargs = self.compile_kwargs()
        optimizer = _rebuilt(keras.optimizers.get(kwargs.pop("optimizer", "rmsprop")), model, ctx)
        model.compile(optimizer=optimizer, **kwargs)
        self.keras_model, self.ctx, self._x, self._y = model, ctx, x, y
        self.groups = _layer_groups(model)
        self._relu, self._sat, self.probe = _activation_probe(model) if self.activations else ([], [], None)
        _build_metrics(model, x[:2], y[:2])
        return x, y

    def train_step(self, batch: tuple[Any, ...], step: Any) -> Mapping[str, Any]:
        x, y = batch
        model = self.keras_model
        stash: dict[str, Any] = {}

        def loss() -> Any:
            outs = self.probe(x, training=True) if self.probe is not None else [model(x, training=True)]
            stash["outs"] = outs
            return model.compute_loss(x=x, y=y, y_pred=outs[-1], training=True)

        obs = dict(self.ctx.minimize(loss, model.trainable_variables, groups=self.groups if self.layer_stats else None))
        outs = stash["outs"]
        obs.update(_metrics(model, x, y, outs[-1]))
        if self.probe is not None:
            obs.update(_activation_stats(outs, self._relu, self._sat))
        return obs

    def evaluate(self) -> Mapping[str, Any]:
        """Loss and metrics over every row, after training (as ``model.evaluate`` would)."""
        model, x, y = self.keras_model, self._x, self._y
        y_pred = model(x, training=False)
        out = {"loss": model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)}
        out.update(_metrics(model, x, y, y_pred))
        return out


def _rebuilt(optimizer: Any, model: Any, ctx: Any) -> Any:
    """The user's optimizer, same class and settings, rebuilt with the run's clipping (and
    loss scaling under fp16) by ``ctx.optimizer``."""
    import keras

    config = optimizer.get_config()
    for key in ("clipvalue", "clipnorm", "global_clipnorm"):
        config.pop(key, None)
    if isinstance(config.get("learning_rate"), dict):  # a schedule
        config["learning_rate"] = keras.optimizers.schedules.deserialize(config["learning_rate"])
    return ctx.optimizer(type(optimizer), model.trainable_variables, **config)


def _layer_groups(model: Any) -> list[int]:
    """For each trainable variable, the index of its layer among the layers with trainable weights."""
    owner: dict[int, int] = {}
    layers = [layer for layer in _flat_layers(model) if layer.trainable_weights]
    for i, layer in enumerate(layers):
        for v in layer.trainable_weights:
            owner.setdefault(id(v), i)
    missing = [v.name for v in model.trainable_variables if id(v) not in owner]
    if missing:
        raise TypeError(f"cannot tell which layer owns variable(s) {', '.join(missing)}")
    return [owner[id(v)] for v in model.trainable_variables]


def _flat_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        out.extend(_flat_layers(layer) if getattr(layer, "layers", None) else [layer])
    return out


def _activation_name(layer: Any) -> str:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", "") if callable(fn) else ""


def _activation_probe(model: Any) -> tuple[list[int], list[tuple[int, str]], Any]:
    """A model sharing the user's layers whose outputs are the ReLU and sigmoid/tanh layers'
    outputs, then the model's output (so one forward pass gives both)."""
    import keras

    if not hasattr(model, "inputs") or not model.inputs:
        raise TypeError("activations = True needs a Sequential or functional model (a subclassed model has no "
                        "symbolic layer outputs)")
    layers = [layer for layer in _flat_layers(model) if _activation_name(layer) in ("relu", "sigmoid", "tanh")]
    relu = [i for i, layer in enumerate(layers) if _activation_name(layer) == "relu"]
    sat = [(i, _activation_name(layer)) for i, layer in enumerate(layers) if i not in relu]
    probe = keras.Model(model.inputs, [*(layer.output for layer in layers), model.outputs[0]])
    return relu, sat, probe


def _activation_stats(outs: Sequence[Any], relu: list[int], sat: list[tuple[int, str]]) -> dict[str, Any]:
    import tensorflow as tf

    def share(mask: Any) -> Any:
        return tf.reduce_mean(tf.cast(mask, tf.float32))

    empty = tf.zeros([0], tf.float32)  # a model without such layers observes an empty vector (nothing fires)
    out: dict[str, Any] = {"layer_dead_fraction": empty, "layer_saturated_fraction": empty}
    if relu:
        out["layer_dead_fraction"] = tf.stack([share(tf.cast(outs[i], tf.float32) <= 0.0) for i in relu])
    if sat:
        edge = {"sigmoid": 1.0 / (1.0 + math.exp(-SATURATION_Z)), "tanh": math.tanh(SATURATION_Z)}
        low = {"sigmoid": 1.0 - edge["sigmoid"], "tanh": -edge["tanh"]}
        out["layer_saturated_fraction"] = tf.stack([
            share(tf.logical_or(tf.cast(outs[i], tf.float32) > edge[kind], tf.cast(outs[i], tf.float32) < low[kind]))
            for i, kind in sat])
    return out


def _build_metrics(model: Any, x: Any, y: Any) -> None:
    """Create the compiled metrics' variables now, eagerly (not inside the traced loop)."""
    model.compute_metrics(x, y, model(x, training=False), sample_weight=None)
    model.reset_metrics()


def _metrics(model: Any, x: Any, y: Any, y_pred: Any) -> dict[str, Any]:
    """The compiled metrics on this batch alone (state reset first), by name; float32 scalars."""
    import tensorflow as tf

    for m in model.metrics:
        m.reset_state()
    values = model.compute_metrics(x, y, y_pred, sample_weight=None)
    return {k: tf.cast(v, tf.float32) for k, v in values.items() if k != "loss" and getattr(v, "shape", None) == ()}
