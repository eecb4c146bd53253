"""The engine in-process, real TensorFlow: determinism, precision, NaN and errors as records."""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import replace
from typing import Any

import pytest
import yaml
from conftest import ROOT, make_spec

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


# ---------------------------------------------------------------- reuse of every built-in scenario
# Each case: (parameters, precision, clip, data sizes n and m, batch size, steps). The runs B (seed 1,
# n rows), C (seed 2, m rows) and A (seed 3, n rows) share one worker's cache, in that order: C traces
# a final evaluation for its shapes on the cached structure, A reuses B's. Normalization at 20 rows
# holds 100 elements: a trace that captured them would bake them in as a constant.
BUILTIN_REUSE = {
    "loss_bound": (dict(), "fp16", 1.0, (200, 150), 32, 20),
    "normalization": (dict(), "fp16", None, (300, 20), None, 0),
    "activation_bounds": (dict(units=8, layers=2, input_scale=4.0), "bf16", None, (200, 50), None, 0),
    "train_inference": (dict(inference_size=200, reference_size=250), "fp32", None, (300, 200), 32, 20),
    "circles": (dict(), "fp32", None, (256, 128), 32, 20),
}


def _builtin_spec(name: str, seed: int, size: int) -> Any:
    params, precision, clip, _, batch_size, steps = BUILTIN_REUSE[name]
    target = yaml.safe_load((ROOT / "conf" / "scenario" / f"{name}.yaml").read_text())["_target_"]
    return make_spec(scenario=name, target=target, params=params, data_size=size, batch_size=batch_size,
                     steps=steps, seed=seed, precision=precision, clip_value=clip)


def _bits(result: Any) -> Any:
    """The result without its timings, every float as its IEEE-754 bytes (NaN equals NaN, -0.0 is not 0.0)."""
    import struct
    from dataclasses import asdict

    def exact(x: Any) -> Any:
        if isinstance(x, float):
            return struct.pack("<d", x)
        if isinstance(x, dict):
            return {k: exact(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [exact(v) for v in x]
        return x

    return exact(asdict(replace(result, wall_s=0.0, train_s=0.0)))


def assert_reuse_holds(specs: list[Any]) -> None:
    """Runs of one structure: one trace serves them all, and the last of them, run on that trace (after
    others of another seed and size), gives the results of the same run traced alone, bit for bit."""
    from harness.engine import reuse

    reuse.clear()
    traced = reuse.traces()
    together = [execute(s) for s in specs]
    assert reuse.traces() - traced == 1
    reuse.clear()
    alone = execute(specs[-1])
    assert together[-1].status is alone.status is Status.OK, (together[-1].error, alone.error)
    assert _bits(together[-1]) == _bits(alone)


def test_the_built_in_reuse_cases_cover_every_built_in_scenario() -> None:
    assert set(BUILTIN_REUSE) == {p.stem for p in (ROOT / "conf" / "scenario").glob("*.yaml")}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "circles" else n
                                  for n in sorted(BUILTIN_REUSE)])  # circles: the longest; slow
def test_a_reused_run_of_a_built_in_scenario_is_bit_identical_to_the_run_alone(tf_worker: None, name: str) -> None:
    from harness.engine import reuse

    n, m = BUILTIN_REUSE[name][3]
    specs = [_builtin_spec(name, 1, n), _builtin_spec(name, 2, m), _builtin_spec(name, 3, n)]
    reuse.clear()
    traced, finals = reuse.traces(), reuse.final_traces()
    together = [execute(s) for s in specs]
    has_final = any(c.when == "final" for c in together[0].declared)
    assert reuse.traces() - traced == 1 and reuse.final_traces() - finals == (2 if has_final else 0)
    for spec, r in zip(specs, together):
        reuse.clear()
        alone = execute(spec)  # a fresh cache: traced for this run, in a fresh session
        assert r.status is alone.status is Status.OK, (r.error, alone.error)
        assert _bits(r) == _bits(alone), spec.seed  # every check value, numeric and extra, bit for bit
    assert together[0].checks != together[2].checks  # the reused code ran on each run's own data and seed


def test_normalization_reuses_its_final_evaluation_in_a_kept_session(tf_worker: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    from harness.engine import reuse, runtime

    fresh: list[int] = []
    clear_session = keras.backend.clear_session
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: (fresh.append(1), clear_session(*a, **k)))
    monkeypatch.setattr(runtime, "FRESH_EVERY", 3)
    reuse.clear()
    finals = reuse.final_traces()
    specs = [_builtin_spec("normalization", seed, 300) for seed in range(6)]
    together = [execute(s) for s in specs]
    # run 0 traces in a fresh session; runs 1-3 keep it; run 4 starts a fresh one (FRESH_EVERY); run 5 keeps it
    assert len(fresh) == 2 and reuse.final_traces() - finals == 1
    reuse.clear()
    assert [_bits(r) for r in together] == [_bits(execute(s)) for s in specs]


def test_held_tensors_are_found_in_containers_and_swapped_back(tf_worker: None) -> None:
    import tensorflow as tf

    from harness.engine.held import held_tensors, holding

    class Holder:
        pass

    h = Holder()
    x, y = tf.constant([1.0]), tf.constant([[2]])
    h.a, h.pair, h.named, h.none, h.var = x, (y, 3), {"k": [x, "s"]}, None, tf.Variable(1.0)
    held = held_tensors(h)
    assert held.paths == (("a",), ("named", "k", 0), ("pair", 0)) and held.slots == (0, 0, 1)
    assert held.tensors[0] is x and held.tensors[1] is y
    with holding(h, held.paths, ["X", "X", "Y"]):
        assert (h.a, h.named, h.pair) == ("X", {"k": ["X", "s"]}, ("Y", 3))
    assert h.a is x and h.pair[0] is y and h.named["k"][0] is x


class RandomBuild:
    """Keeps the reuse_trace promise in its traced code, but builds its data with a stateful random op."""

    trains = False
    reuse_trace = True

    def checks(self) -> list:
        from harness import checks

        return [checks.below("small", "max", 10.0, when="final")]

    def build(self, ctx: Any) -> tuple[Any, ...]:
        import tensorflow as tf

        self.x = tf.random.normal([ctx.data_size, 2])
        return (self.x,)

    def evaluate(self) -> dict:
        import tensorflow as tf

        return {"max": tf.reduce_max(self.x)}


class HiddenTensor(RandomBuild):
    """Keeps its data where the engine does not look (inside an object), so its evaluation captures it."""

    reuse_trace = True

    def build(self, ctx: Any) -> tuple[Any, ...]:
        import types

        import tensorflow as tf

        x = tf.random.stateless_normal([ctx.data_size, 2], seed=ctx.data_seed(0))
        self.box = types.SimpleNamespace(x=x)
        return (x,)

    def evaluate(self) -> dict:
        import tensorflow as tf

        return {"max": tf.reduce_max(self.box.x)}


def test_a_broken_promise_in_build_or_in_the_final_evaluation_is_an_error(tf_worker: None) -> None:
    from harness.engine import reuse

    reuse.clear()
    r = execute(make_spec(scenario="random_build", target="test_engine.RandomBuild", params={}, batch_size=None,
                          steps=0))
    assert r.status is Status.ERROR and "its build() runs stateful random ops (RandomStandardNormal)" in r.error, r.error
    r = execute(make_spec(scenario="hidden", target="test_engine.HiddenTensor", params={}, batch_size=None, steps=0))
    assert r.status is Status.ERROR and "its compiled final evaluation captures 1 tensor(s)" in r.error, r.error


def test_a_worker_starts_without_the_modules_keras_would_pull_in_and_they_stay_importable() -> None:
    """init_worker hides IPython while TF and Keras import (Keras uses it only in a running IPython
    shell, which a process without IPython cannot have); a scenario that imports it still gets it. The cyclic GC
    stays off during the import (its collections there cost a third of it) and is on again afterwards
    with what the import left frozen, before any collection walked it: no full collection at all."""
    import subprocess
    import sys

    from harness.compat.keras import UNNEEDED_BY_KERAS

    probe = ("import gc, sys, importlib.util\n"
             "collections = []\n"
             "gc.callbacks.append(lambda phase, info: phase == 'start' and collections.append(info['generation']))\n"
             "from harness.engine import init_worker\n"
             "collections.clear()\n"
             "init_worker(1)\n"
             "seen = list(collections)\n"
             f"names = {UNNEEDED_BY_KERAS!r}\n"
             "print([n for n in names if n in sys.modules])\n"
             "print([n for n in names if importlib.util.find_spec(n) is not None])\n"
             "print(seen, gc.isenabled(), gc.get_freeze_count() > 100_000)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded, findable, gc_seen = out.stdout.strip().splitlines()[-3:]
    assert loaded == "[]"
    import importlib.util
    assert findable == repr([n for n in UNNEEDED_BY_KERAS if importlib.util.find_spec(n) is not None])
    import ast

    seen, enabled, frozen = gc_seen.rsplit(" ", 2)
    seen = ast.literal_eval(seen)  # generations collected during init_worker
    assert 2 not in seen and len(seen) <= 3, seen  # (with the GC on: dozens, several full)
    assert (enabled, frozen) == ("True", "True")


# ---------------------------------------------------------------- the unrolled loop of hot structures
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("name", ["loss_bound", "train_inference", "circles"])
def test_the_unrolled_loop_gives_the_single_step_loops_results_bit_for_bit(tf_worker: None, name: str, precision: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A hot loop's unrolled variant (here: 3 steps per iteration, 20 steps so that 2 run in the
    remainder loop) gives the results of the loop of single steps, bit for bit: the run that traces
    the structure runs single steps, and the structure is then hot, so the next run, reusing it,
    runs the unrolled variant (traced on the structure's template) and so does the one after."""
    from harness.engine import loop, reuse

    spec = replace(_builtin_spec(name, 1, BUILTIN_REUSE[name][3][0]), precision=precision)
    spec = replace(spec, run_id=f"{spec.run_id}-{precision}")
    results = {}
    for unroll in (1, 3):
        monkeypatch.setattr(loop, "UNROLL", unroll)
        monkeypatch.setattr(loop, "UNROLL_AFTER", 1e-9)  # hot as soon as it has run at all
        reuse.clear()
        results[unroll] = [execute(spec)]  # traces the structure, runs single steps
        if unroll > 1:
            (entry,) = reuse._cache.values()
            assert sorted(entry.loop.variants) == [1]
        results[unroll] += [execute(replace(spec, seed=2)), execute(spec)]  # reused, hot: unrolled
        if unroll > 1:
            assert sorted(entry.loop.variants) == [1, 3] and entry.loop.variants[3] is not entry.loop.fn
    for plain, unrolled in zip(results[1], results[3]):
        assert plain.status is unrolled.status is Status.OK, (plain.error, unrolled.error)
        assert _bits(plain) == _bits(unrolled)


@pytest.mark.parametrize("unroll", [4, 8, 25])
def test_unrolled_loops_with_an_empty_or_long_remainder_or_none_at_all_give_the_same_bits(
        tf_worker: None, unroll: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 steps: 5 iterations of 4 and an empty remainder loop; 2 of 8 and 4 single steps; 25 steps per
    iteration is more than the run has, so it runs single steps."""
    from harness.engine import loop, reuse

    spec = _builtin_spec("loss_bound", 1, 200)
    monkeypatch.setattr(loop, "UNROLL_AFTER", 0.0)
    results = []
    for k in (1, unroll):
        monkeypatch.setattr(loop, "UNROLL", k)
        reuse.clear()
        results.append(execute(spec))
        (entry,) = reuse._cache.values()
        assert sorted(entry.loop.variants) == sorted({1, k} if k <= spec.steps else {1})
    assert results[0].status is results[1].status is Status.OK and _bits(results[0]) == _bits(results[1])


def test_a_loop_whose_unrolled_tracing_fails_stays_a_loop_of_single_steps(tf_worker: None,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    import tensorflow as tf

    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.scenarios.base import declared_checks, instantiate

    spec = _builtin_spec("loss_bound", 1, 200)
    scenario = instantiate(spec.target, spec.params)
    seed_everything(spec.seed)
    data = tuple(tf.convert_to_tensor(t) for t in scenario.build(RunContext(spec)))
    loop = compile_loop(scenario, data, declared_checks(scenario), batch_size=32, unroll=4, unroll_after=0.0)
    trace = loop._trace

    def failing(k: int, sc: Any) -> Any:
        if k > 1:
            raise RuntimeError("no room")
        return trace(k, sc)
    loop._trace = failing
    with caplog.at_level("WARNING"):
        assert loop.prepare(20) is loop.fn and loop.prepare(20) is loop.fn
    assert [r.getMessage() for r in caplog.records if "unrolled" in r.getMessage()] == [
        "LossBound: tracing the loop unrolled 4 steps per iteration failed (RuntimeError: no room); keeping the "
        "loop of single steps"]  # once


def test_a_loop_is_unrolled_once_it_has_run_long_enough_and_only_for_runs_that_fill_an_iteration(
        tf_worker: None) -> None:
    import tensorflow as tf

    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.scenarios.base import declared_checks, instantiate

    spec = _builtin_spec("loss_bound", 1, 200)
    scenario = instantiate(spec.target, spec.params)
    seed_everything(spec.seed)
    data = tuple(tf.convert_to_tensor(t) for t in scenario.build(RunContext(spec)))
    loop = compile_loop(scenario, data, declared_checks(scenario), batch_size=32, unroll=4, unroll_after=1e9)
    assert loop.trace_s > 0 and loop.ran_s == 0
    loop.run(data, steps=50, seed=0)
    assert sorted(loop.variants) == [1] and loop.ran_s > 0  # not hot yet
    loop.unroll_after = 0.5 * loop.ran_s / loop.trace_s  # hot from now on (ran / trace exactly can round above ran)
    assert loop.prepare(3) is loop.fn and sorted(loop.variants) == [1]  # 3 steps do not fill an iteration
    assert loop.prepare(4) is loop.variants[4] is not loop.fn
    with pytest.raises(ValueError, match="unroll must be >= 1, got 0"):
        compile_loop(scenario, data, [], batch_size=32, unroll=0)


def test_a_scenario_with_unroll_1_keeps_a_loop_of_single_steps(tf_worker: None) -> None:
    import tensorflow as tf

    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.scenarios.base import declared_checks, instantiate

    spec = _builtin_spec("loss_bound", 1, 200)
    scenario = instantiate(spec.target, spec.params)
    seed_everything(spec.seed)
    data = tuple(tf.convert_to_tensor(t) for t in scenario.build(RunContext(spec)))
    scenario.unroll = 1  # as a class attribute would
    loop = compile_loop(scenario, data, declared_checks(scenario), batch_size=32, unroll_after=0.0)
    assert loop.unroll == 1 and loop.prepare(100) is loop.fn and sorted(loop.variants) == [1]


@pytest.mark.parametrize("flags, on", [("", False), ("--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit", True),
                                       ("--tf_xla_auto_jit=1", True), ("--tf_xla_auto_jit=0", False),
                                       ("--tf_xla_auto_jit=-1 --tf_xla_min_cluster_size=4", False),
                                       ("--tf_xla_cpu_global_jit", True), ("--tf_xla_cpu_global_jit=false", False),
                                       ('--tf_xla_auto_jit="0"', False), ("--tf_xla_auto_jit='2'", True),
                                       ("@file: --tf_xla_auto_jit=2", True), ("@file: --tf_xla_auto_jit=0", False),
                                       ("@missing", False)])
def test_xla_auto_clustering_is_recognised_from_the_flags_and_the_config(
        tf_worker: None, flags: str, on: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """TF_XLA_FLAGS as XLA reads it: flags, quoted values, or (not starting with -) a file of flags."""
    import tensorflow as tf

    from harness.engine.loop import xla_clustering

    if flags.startswith("@file: "):
        (tmp_path / "flags").write_text(flags.removeprefix("@file: ") + "\n")
        flags = str(tmp_path / "flags")
    elif flags == "@missing":
        flags = str(tmp_path / "no-such-file")
    monkeypatch.setenv("TF_XLA_FLAGS", flags)
    assert xla_clustering() is on
    if not on:  # tf.config.optimizer.set_jit turns it on too
        tf.config.optimizer.set_jit(True)
        try:
            assert xla_clustering()
        finally:
            tf.config.optimizer.set_jit(False)


XLA_PROBE = textwrap.dedent("""
    import json, sys
    from dataclasses import replace
    sys.path.insert(0, {tests!r})
    from conftest import make_spec
    from test_engine import _bits
    from harness.engine import execute, init_worker, loop, reuse

    init_worker(1)
    loop.UNROLL_AFTER = 1e-9  # hot as soon as it has run at all
    spec = make_spec(scenario="circles", target="harness.examples.autotrainer_circles.Circles", params={{}},
                     data_size=256, batch_size=32, steps=20, seed=1, precision="fp32", clip_value=None)
    runs = [execute(spec), execute(replace(spec, seed=2)), execute(spec)]
    (entry,) = reuse._cache.values()
    print(json.dumps({{"variants": sorted(entry.loop.variants), "ok": [r.status.value for r in runs],
                      "same": _bits(runs[0]) == _bits(runs[2])}}))
""")


@pytest.mark.slow  # a long real sweep or pool; `pytest -m slow` runs it (the default run stays near 10 minutes)
def test_with_xla_auto_clustering_a_hot_loop_stays_single_steps_and_replays_bit_for_bit() -> None:
    """With TF_XLA_FLAGS turning auto-clustering on, XLA would fuse across the steps of an unrolled
    body and give other bits (measured on circles in fp32); so the structure stays a loop of single
    steps when hot, and the same run reused gives the bits of its first, freshly traced run."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit", "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run([sys.executable, "-c", XLA_PROBE.format(tests=str(ROOT / "tests"))], capture_output=True,
                       text=True, timeout=600, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"variants": [1], "ok": ["ok"] * 3, "same": True}


NOTICES_PROBE = textwrap.dedent("""
    import os, sys
    from harness.engine.runtime import startup_notices_dropped

    with startup_notices_dropped():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
                    b"I0000 00:00:1796282564.885649    3283 port.cc:153] oneDNN custom operations are on.\\n"
                    b"I0000 00:00:1796282564.886878    3283 cudart_stub.cc:31] Could not find cuda drivers.\\n"
                    b"kept: something else\\n"
                    b"E0000 00:00:1796280881.735837    4037 cuda_platform.cc:52] failed call to cuInit\\n")
        print("kept: from Python", file=sys.stderr)
    print("after", file=sys.stderr)
    os.write(2, b"I0000 00:00:1796282564.885649    3283 port.cc:153] after the block\\n")
""")


def test_tensorflows_start_up_notices_are_dropped_and_everything_else_passes() -> None:
    """startup_notices_dropped (replay's TF import) drops TF's native start-up notices, which no
    variable silences, passes every other line on (errors included), in order, and restores stderr."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", NOTICES_PROBE], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "kept: something else", "E0000 00:00:1796280881.735837    4037 cuda_platform.cc:52] failed call to cuInit",
        "kept: from Python", "after", "I0000 00:00:1796282564.885649    3283 port.cc:153] after the block"]
