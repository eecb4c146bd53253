"""The engine in-process, real TensorFlow: determinism, precision, NaN and errors as records."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from conftest import make_spec

from harness.engine import execute
from harness.records import Status


def test_same_run_is_bit_identical(tf_worker: None) -> None:
    spec = make_spec(steps=60, precision="fp16", clip_value=1.0)
    a, b = execute(spec), execute(spec)
    assert a.status is Status.OK, a.error
    assert a.checks == b.checks and a.final_loss == b.final_loss  # exact, not approx


def test_different_seed_gives_different_values(tf_worker: None) -> None:
    a, b = execute(make_spec(seed=0)), execute(make_spec(seed=1))
    assert a.checks[0].worst_value != b.checks[0].worst_value


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", "float32"), ("fp16", "float16"), ("bf16", "bfloat16")])
def test_precision_sets_compute_dtype_and_loss_scaling(tf_worker: None, precision: str, dtype: str) -> None:
    r = execute(make_spec(precision=precision, steps=30))
    assert r.status is Status.OK, r.error
    assert r.compute_dtype == dtype
    if precision == "fp16":  # dynamic loss scaling starts at 2**15 and halves on overflow
        assert r.loss_scale_min is not None and r.loss_scale_min <= 32768
    else:
        assert r.loss_scale_min == 1.0 and r.skipped_steps == 0


def test_check_counts_every_step_and_records_numerics(tf_worker: None) -> None:
    r = execute(make_spec(steps=400, clip_value=0.5))
    c = r.checks[0]
    assert c.check == "loss_below" and c.n_evaluated == 400
    assert 0 < c.n_failed < 400 and c.first_failure_step == 0  # an untrained model starts above the bound
    assert r.extras["clip_active_steps"] > 0 and r.extras["grad_norm_max"] > 0.5
    assert math.isfinite(r.final_loss) and r.nonfinite_values == 0


def test_nan_data_fails_every_evaluation(tf_worker: None) -> None:
    r = execute(make_spec(scenario="faulty", target="plugins.faulty.Faulty", params={"mode": "nan", "on_seeds": [0]}))
    c = r.checks[0]
    assert r.status is Status.OK
    assert c.n_failed == c.n_evaluated == c.n_nonfinite == 50 and not c.passed
    assert c.worst_margin == -math.inf and r.nonfinite_values > 0


def test_a_run_that_raises_is_an_error_record(tf_worker: None) -> None:
    r = execute(make_spec(scenario="faulty", target="plugins.faulty.Faulty", params={"mode": "raise", "on_seeds": [0]}))
    assert r.status is Status.ERROR and "ValueError: injected failure for seed 0" in r.error
    assert [(m.check, m.bound, m.op) for m in r.declared] == [("loss_below", 1.0, "<")] and r.checks == ()


def test_a_step_touches_batch_size_rows_not_data_size(tf_worker: None) -> None:
    # Structural, not timed: the compiled loop has no shuffle of the data and every gather
    # yields batch_size rows, so a step costs the same at 1e3 and 1e7 rows.
    import tensorflow as tf

    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.scenarios.loss_bound import LossBound

    spec = make_spec(data_size=50_000, batch_size=8)
    scenario = LossBound()
    data = scenario.build(RunContext(spec))
    ops = compile_loop(scenario, data, scenario.checks(), batch_size=8).operations()
    # the data are arguments of the traced loop, of any number of rows
    from_data = [op for op in ops if op.type == "GatherV2" and op.inputs[0].shape.rank == 2
                 and op.inputs[0].shape[0] is None]
    assert not [op for op in ops if "Shuffle" in op.type]
    assert len(from_data) >= 2, "no gather from the data found: the loop changed shape"
    assert all(op.outputs[0].shape[0] == 8 for op in from_data)
    assert tf.executing_eagerly()


@pytest.mark.parametrize(("what", "message"), [
    ("loss", "'loss' observation must be a float scalar"),
    ("rows", "rows first, got first dimensions [1000, 999]"),
    ("data", "must return a non-empty tuple of tensors"),
    ("dict", "must return a dict with a 'loss' observation"),
])
def test_wrong_return_forms_are_clear_errors(tf_worker: None, what: str, message: str) -> None:
    r = execute(make_spec(scenario="bad", target="plugins.faulty.BadShapes", params={"what": what}))
    assert r.status is Status.ERROR and message in r.error, r.error


REUSE_CASES = [
    dict(precision="fp16", clip_value=1.0, steps=80),
    dict(precision="bf16", steps=40),
    dict(scenario="train_inference", target="harness.scenarios.train_inference.TrainInference", params={},
         steps=30, precision="fp16"),
]


@pytest.mark.parametrize("case", REUSE_CASES, ids=["loss_bound-fp16-clip", "loss_bound-bf16", "train_inference"])
def test_a_reused_trace_gives_the_results_of_a_fresh_trace(tf_worker: None, case: dict) -> None:
    from harness.engine import reuse

    reuse.clear()
    traced = reuse.traces()
    first = execute(make_spec(seed=0, **case))
    later = [make_spec(seed=1, **case), make_spec(seed=2, data_size=777, **case)]
    reused = [execute(s) for s in later]
    assert reuse.traces() - traced == 1 and reuse.cached_structures() == 1  # one trace served all three runs
    for spec, r in zip(later, reused):
        reuse.clear()
        fresh = execute(spec)  # traced for this run alone, as replay does
        assert r.status is fresh.status is Status.OK, (r.error, fresh.error)
        timing = {"wall_s": 0.0, "train_s": 0.0}
        assert replace(r, **timing) == replace(fresh, **timing)  # every check value and numeric, exactly
        assert r.checks != first.checks  # the reused loop ran on this run's data and seed


def test_the_trace_cache_evicts_the_least_recently_used_structure(tf_worker: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.engine import reuse

    monkeypatch.setattr(reuse, "CACHE_SIZE", 2)
    reuse.clear()
    a, b, c = (dict(clip_value=v, steps=5) for v in (None, 1.0, 2.0))  # three structures
    traced = reuse.traces()
    for case in (a, b, a, c):  # c evicts b, the least recently used; a was used after b
        assert execute(make_spec(**case)).status is Status.OK
    assert reuse.traces() - traced == 3 and reuse.cached_structures() == 2
    execute(make_spec(seed=1, **a))
    assert reuse.traces() - traced == 3  # a was kept
    execute(make_spec(seed=1, **b))
    assert reuse.traces() - traced == 4  # b was evicted, so traced again


def test_reuse_is_not_inherited_and_a_broken_promise_is_an_error(tf_worker: None) -> None:
    from harness.engine import reuse

    reuse.clear()
    r = execute(make_spec(scenario="faulty", target="plugins.faulty.Faulty", params={"on_seeds": [9]}))
    assert r.status is Status.OK and reuse.cached_structures() == 0  # Faulty subclasses LossBound
    r = execute(make_spec(scenario="captures", target="plugins.faulty.CapturesTensor"))
    assert r.status is Status.ERROR and "sets reuse_trace = True, but its compiled loop captures 1 tensor" in r.error
    r = execute(make_spec(scenario="noise", target="plugins.faulty.StatefulNoise"))
    assert r.status is Status.ERROR and "uses stateful random ops (RandomStandardNormal)" in r.error, r.error


def _minimize_beside_tape(ctx: Any, loss_fn: Any, variables: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The gradients of ``loss_fn`` from a plain tape, and ctx.minimize's numerics (compiled)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn()
    return tape.gradient(loss, variables), tf.function(lambda: ctx.minimize(loss_fn, variables))()


@pytest.mark.parametrize(("precision", "poison"), [("fp32", None), ("fp32", math.inf), ("fp32", math.nan),
                                                   ("fp16", None), ("fp16", math.inf)])
def test_minimize_numerics_match_a_per_tensor_reference(tf_worker: None, precision: str, poison: float | None) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from harness.engine.context import RunContext

    ctx = RunContext(make_spec(precision=precision, clip_value=0.41))  # exceeded by one gradient element only
    layer = keras.layers.Dense(2, dtype=ctx.policy)
    layer.build((None, 2))
    layer.set_weights([np.array([[1.0, -2.0], [3.0, 0.5]], "float32"), np.array([0.1, -0.2], "float32")])
    ctx.optimizer(keras.optimizers.SGD, layer.trainable_variables, learning_rate=0.0)
    x = tf.constant([[0.01, 0.02 if poison is None else poison]])  # small: no fp16 overflow at scale 2**15

    def loss_fn() -> tf.Tensor:
        return tf.reduce_sum(tf.square(tf.cast(layer(x), tf.float32)))

    tape_grads, out = _minimize_beside_tape(ctx, loss_fn, layer.trainable_variables)
    grads = [g.numpy().astype("float64") for g in tape_grads]
    finite = all(np.isfinite(g).all() for g in grads)
    assert bool(out["grads_finite"]) == finite and bool(out["skipped"]) == (precision == "fp16" and not finite)
    assert bool(out["clip_active"]) == any((np.abs(g) > 0.41).any() for g in grads)
    if finite:
        norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
        assert float(out["grad_norm"]) == pytest.approx(norm, rel=1e-2 if precision == "fp16" else 1e-6)


def test_minimize_names_a_variable_the_loss_does_not_reach(tf_worker: None) -> None:
    import keras
    import tensorflow as tf

    from harness.engine.context import RunContext

    ctx = RunContext(make_spec())
    used, unused = keras.Variable(1.0, name="used"), keras.Variable(2.0, name="unused")
    ctx.optimizer(keras.optimizers.SGD, [used, unused])
    with pytest.raises(ValueError, match="does not depend on variable.*unused"):
        tf.function(lambda: ctx.minimize(lambda: used * 3.0, [used, unused]))()


def test_minimize_reads_a_sparse_gradient_by_its_values(tf_worker: None) -> None:
    import keras
    import tensorflow as tf

    from harness.engine.context import RunContext

    ctx = RunContext(make_spec(clip_value=0.5))
    emb = keras.layers.Embedding(1000, 4)
    emb.build((None,))
    ctx.optimizer(keras.optimizers.SGD, emb.trainable_variables, learning_rate=0.0)
    idx = tf.constant([1, 1, 7])

    def loss_fn() -> tf.Tensor:
        return tf.reduce_sum(tf.square(emb(idx)))

    (grad,), out = _minimize_beside_tape(ctx, loss_fn, emb.trainable_variables)
    assert isinstance(grad, tf.IndexedSlices)  # else this test tests nothing
    assert float(out["grad_norm"]) == pytest.approx(float(tf.linalg.global_norm([grad])), rel=1e-6)
    assert bool(out["clip_active"]) == bool(tf.reduce_any(tf.abs(grad.values) > 0.5)) and bool(out["grads_finite"])
