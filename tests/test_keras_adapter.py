"""The Keras adapter: per-layer observations from one forward and one backward pass, checked
against a direct computation with a GradientTape."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import make_spec

from harness import checks
from harness.engine import execute
from harness.records import Status
from harness.scenarios.keras_adapter import KerasScenario


class Probe(KerasScenario):
    activations = True
    compile_args = {"loss": "binary_crossentropy", "metrics": ["accuracy"], "optimizer": "sgd"}

    def model(self) -> Any:
        import keras

        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="relu"),
                                 keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1, activation="sigmoid")])

    def data(self, ctx: Any) -> tuple[Any, Any]:
        rng = np.random.default_rng(ctx.seed)
        x = rng.normal(size=(ctx.data_size, 3)).astype("float32") * 4
        return x, (x[:, :1] > 0).astype("float32")

    def checks(self) -> list:
        return [checks.finite("loss_finite", "loss")]


def _spec(**kw: Any) -> Any:
    base = dict(scenario="probe", target="test_keras_adapter.Probe", params={}, data_size=64, batch_size=16,
                steps=5, precision="fp32", clip_value=None)
    base.update(kw)
    return make_spec(**base)


def test_layer_observations_match_a_direct_computation(tf_worker: None) -> None:
    import tensorflow as tf

    from harness.engine.context import RunContext

    scenario = Probe()
    x, y = scenario.build(RunContext(_spec()))
    model = scenario.keras_model
    xb, yb = x[:16], y[:16]
    before = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=xb, y=yb, y_pred=model(xb, training=True), training=True)
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    hidden = [model.layers[0](xb).numpy(), model.layers[1](model.layers[0](xb)).numpy()]
    obs = scenario.train_step((xb, yb), tf.constant(0))  # eager: the same code the compiled loop traces
    layer_grads = [np.concatenate([grads[0].ravel(), grads[1].ravel()]), np.concatenate([grads[2].ravel(),
                   grads[3].ravel()]), np.concatenate([grads[4].ravel(), grads[5].ravel()])]
    np.testing.assert_allclose(obs["layer_grad_norm"].numpy(), [np.linalg.norm(g) for g in layer_grads], rtol=1e-5)
    np.testing.assert_allclose(obs["layer_grad_zero_fraction"].numpy(), [np.mean(g == 0) for g in layer_grads])
    np.testing.assert_allclose(obs["layer_grad_mean_abs"].numpy(), [np.mean(np.abs(g)) for g in layer_grads],
                               rtol=1e-5)
    after = [v.numpy() for v in model.trainable_variables]
    updates = [np.concatenate([np.abs(a - b).ravel() for a, b in zip(after[i:i + 2], before[i:i + 2])]).mean()
               for i in (0, 2, 4)]
    np.testing.assert_allclose(obs["layer_update_mean_abs"].numpy(), updates, rtol=1e-5)
    assert obs["layer_dead_fraction"].numpy().tolist() == pytest.approx([np.mean(hidden[0] <= 0)])
    # the tanh layer and the output sigmoid: saturated means |pre-activation| > 5
    assert obs["layer_saturated_fraction"].shape == (2,)
    assert obs["layer_saturated_fraction"].numpy()[0] == pytest.approx(np.mean(np.abs(hidden[1]) > np.tanh(5.0)))
    assert bool(obs["weights_finite"]) and "accuracy" in obs and float(obs["loss"]) == pytest.approx(float(loss))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_the_adapter_runs_in_the_compiled_loop_under_every_precision(tf_worker: None, precision: str) -> None:
    r = execute(_spec(precision=precision, steps=20, clip_value=1.0))
    assert r.status is Status.OK, r.error
    assert r.checks[0].n_evaluated == 20 and r.checks[0].passed


def test_clipping_and_the_optimizer_settings_are_applied(tf_worker: None) -> None:
    import keras

    from harness.engine.context import RunContext

    class Sgd(Probe):
        compile_args = {"loss": "mse", "optimizer": keras.optimizers.SGD(learning_rate=0.05, momentum=0.5)}

    s = Sgd()
    s.build(RunContext(_spec(clip_value=0.25, precision="fp16")))
    opt = s.keras_model.optimizer
    inner = getattr(opt, "inner_optimizer", opt)
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer) and isinstance(inner, keras.optimizers.SGD)
    assert inner.clipvalue == 0.25 and float(inner.momentum) == 0.5
    assert float(inner.learning_rate) == pytest.approx(0.05)


class SharedMetric(Probe):
    """Promises reuse_trace, but a metric object made once at class level holds variables every run would share."""

    reuse_trace = True
    compile_args: dict[str, Any] = {"loss": "binary_crossentropy", "optimizer": "sgd"}


def test_a_shared_object_a_reused_trace_captures_is_named_with_its_fix(tf_worker: None) -> None:
    import keras

    SharedMetric.compile_args = {**SharedMetric.compile_args, "metrics": [keras.metrics.BinaryAccuracy()]}
    r = execute(_spec(scenario="shared", target="test_keras_adapter.SharedMetric"))
    assert r.status is Status.ERROR
    assert "captures the variable 'total' of SharedMetric.compile_args['metrics'][0] (BinaryAccuracy)" in r.error
    assert "make it in compile_kwargs()" in r.error and "a new BinaryAccuracy(...)" in r.error


def test_a_learning_rate_axis_replaces_the_compiled_optimizers_rate_and_schedule(tf_worker: None) -> None:
    """``sweep.learning_rate`` (harness.axes) reaches a Keras scenario's compile optimizer through ctx.optimizer,
    a schedule included; unset, the scenario's own rate stays."""
    import keras

    from harness.engine.context import RunContext

    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.5)

    class Sgd(Probe):
        compile_args = {"loss": "mse", "optimizer": keras.optimizers.SGD(learning_rate=schedule, momentum=0.5)}

    for more, rate in (({"learning_rate": 0.002}, 0.002), ({}, 0.05)):
        s = Sgd()
        s.build(RunContext(_spec(more=more)))
        opt = s.keras_model.optimizer
        assert float(opt.learning_rate) == pytest.approx(rate) and float(opt.momentum) == 0.5


def test_an_optimizer_axis_replaces_the_class_and_keeps_the_arguments_it_takes(tf_worker: None) -> None:
    """``sweep.optimizer=[adam]``: the compile optimizer's class changes, its learning rate stays (or the
    learning_rate axis sets it), SGD's momentum, which Adam does not take, is dropped; clipping still applies."""
    import keras

    from harness.engine.context import RunContext

    class Sgd(Probe):
        compile_args = {"loss": "mse", "optimizer": keras.optimizers.SGD(learning_rate=0.05, momentum=0.5)}

    for more, rate in (({"optimizer": "adam"}, 0.05), ({"optimizer": "adam", "learning_rate": 0.002}, 0.002)):
        s = Sgd()
        s.build(RunContext(_spec(clip_value=0.25, more=more)))
        opt = s.keras_model.optimizer
        assert isinstance(opt, keras.optimizers.Adam) and float(opt.learning_rate) == pytest.approx(rate)
        assert opt.clipvalue == 0.25
