"""Published training-health detectors (AUTOTRAINER, DeepDiagnosis, TheDeepChecker) as checks: healthy passes, the
fault fires, the published threshold behaves as the tool compares it, NaN fires, the threshold parameter moves the
decision. A detector FIRES when its check fails (for judge="last": when the last evaluation fails)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy
import pytest

from harness import detectors as d
from harness.checks import Check, state_to_values

NAN = math.nan


def healthy(**kw: Any) -> dict[str, Any]:
    """A healthy step observation (python values); keyword overrides."""
    base: dict[str, Any] = dict(loss=0.5, layer_grad_norm=[1.0, 0.5, 0.1], layer_grad_zero_fraction=[0.1, 0.2, 0.0],
                                layer_grad_mean_abs=[1e-2, 5e-3, 1e-3], layer_update_mean_abs=[1e-3, 1e-3, 1e-4],
                                weights_finite=True, grads_finite=True, layer_dead_fraction=[0.3, 0.4],
                                layer_saturated_fraction=[0.1], accuracy=0.9)
    base.update(kw)
    return base


def tensors(obs: dict[str, Any], dtype: str) -> dict[str, Any]:
    import tensorflow as tf

    return {k: tf.constant(v) if isinstance(v, bool) else tf.constant(v, dtype) for k, v in obs.items()}


def judged(check: Check, steps: list[dict[str, Any]], dtype: str = "float32") -> dict[str, Any]:
    r = state_to_values(check.evaluate([tensors(o, dtype) for o in steps]))
    r["fired"] = r["last_failed"] if check.judge == "last" else r["n_failed"] > 0
    return r


def fires(check: Check, steps: list[dict[str, Any]], dtype: str = "float32") -> bool:
    return judged(check, steps, dtype)["fired"]


def one(factory: Any, **kw: Any) -> Check:
    c = factory(**kw)
    return c if isinstance(c, Check) else c[0]


# (factory, key, healthy value, faulty value, value at the threshold, fires at the threshold, threshold kwargs
#  that flip the healthy value into a firing one)
SINGLE = [
    (d.autotrainer_dying_relu, "layer_grad_zero_fraction", [0.5, 0.6], [0.9, 0.8], [0.7, 0.7], True,
     dict(zero_fraction=0.5)),
    (d.deepdiagnosis_dead_relu, "layer_dead_fraction", [0.3, 0.69], [0.3, 0.95], [0.1, 0.7], True,
     dict(fraction=0.6)),
    (d.deepdiagnosis_saturated_activation, "layer_saturated_fraction", [0.2, 0.4], [0.2, 0.9], [0.5], False,
     dict(fraction=0.3)),
    (d.deepdiagnosis_vanishing_gradient, "layer_grad_mean_abs", [1e-3, 2e-7], [1e-3, 1e-9], [1e-3, 1e-7], False,
     dict(mean_abs=1e-6)),
    (d.thedeepchecker_exploding_gradient, "layer_grad_mean_abs", [1e3, 1.0], [2e6, 1.0], [1e6, 1.0], False,
     dict(mean_abs=100.0)),
    (d.thedeepchecker_vanishing_gradient, "layer_grad_mean_abs", [1e-3, 2e-6], [1e-3, 1e-8], [1e-3, 1e-6], False,
     dict(mean_abs=1e-5)),
    (d.autotrainer_nan, "loss", 0.5, 3e5, 1e5, True, dict(loss_max=0.25)),
]


@pytest.mark.parametrize("factory, key, good, bad, at, at_fires, moved", SINGLE,
                         ids=lambda v: getattr(v, "__name__", None))
def test_single_quantity_detectors(tf_worker: None, factory: Any, key: str, good: Any, bad: Any, at: Any,
                                   at_fires: bool, moved: dict) -> None:
    c = one(factory)
    assert not fires(c, [healthy(**{key: good})] * 3)
    r = judged(c, [healthy(), healthy(**{key: bad}), healthy()])
    assert r["n_failed"] == 1 and r["first_failure_step"] == 1
    assert fires(c, [healthy(**{key: bad})])
    assert fires(c, [healthy(**{key: at})]) is at_fires  # float32 value vs the bound rounded to float32
    nan = [NAN, *good[1:]] if isinstance(good, list) else NAN
    assert fires(c, [healthy(**{key: nan})])
    assert fires(c, [healthy(**{key: [math.inf, *good[1:]] if isinstance(good, list) else math.inf})])
    assert fires(one(factory, **moved), [healthy(**{key: good})])


def test_dead_relu_is_judged_on_the_last_evaluation_by_default(tf_worker: None) -> None:
    c = d.deepdiagnosis_dead_relu()
    early_dead = [healthy(layer_dead_fraction=[0.9]), healthy()]
    assert c.judge == "last" and not fires(c, early_dead) and judged(c, early_dead)["n_failed"] == 1
    assert fires(d.deepdiagnosis_dead_relu(judge="any"), early_dead)
    assert fires(c, [healthy(), healthy(layer_dead_fraction=[0.9])])


def test_no_relu_or_sigmoid_layer_flags_nothing(tf_worker: None) -> None:
    empty = healthy(layer_dead_fraction=[], layer_saturated_fraction=[])
    assert not fires(d.deepdiagnosis_dead_relu(), [empty])
    assert not fires(d.deepdiagnosis_saturated_activation(), [empty])


def test_autotrainer_exploding_gradient(tf_worker: None) -> None:
    c = d.autotrainer_exploding_gradient()
    assert not fires(c, [healthy(layer_grad_norm=[5.0, 1.0, 0.5])])  # ratio 10
    assert fires(c, [healthy(layer_grad_norm=[100.0, 1.0, 1.0])])
    assert not fires(c, [healthy(layer_grad_norm=[140.0, 9.0, 2.0])])  # exactly 70: the tool fires on > 70 only
    assert fires(c, [healthy(layer_grad_norm=[141.0, 9.0, 2.0])])
    assert judged(c, [healthy(layer_grad_norm=[140.0, 1.0, 2.0])])["worst_value"] == 70.0
    assert fires(c, [healthy(layer_grad_norm=[1.0, NAN, 1.0])])  # any non-finite layer norm
    assert fires(c, [healthy(layer_grad_norm=[math.inf, 1.0, 1.0])])
    assert fires(c, [healthy(layer_grad_norm=[1.0, 1.0, 0.0])])  # numpy: 1/0 = inf > 70
    r = judged(c, [healthy(layer_grad_norm=[0.0, 1.0, 0.0])])  # numpy: 0/0 = nan, not > 70
    assert not r["fired"] and r["n_nonfinite"] == 0
    assert fires(d.autotrainer_exploding_gradient(ratio=5.0), [healthy(layer_grad_norm=[5.0, 1.0, 0.5])])


def test_autotrainer_vanishing_gradient_needs_both_conditions(tf_worker: None) -> None:
    c = d.autotrainer_vanishing_gradient()
    assert not fires(c, [healthy()])
    assert fires(c, [healthy(layer_grad_norm=[1e-6, 1e-2, 1.0])])  # ratio 1e-6, first 1e-6
    assert not fires(c, [healthy(layer_grad_norm=[1e-3, 1e-2, 10.0])])  # ratio 1e-4 but first >= 1e-4
    assert not fires(c, [healthy(layer_grad_norm=[5e-5, 1e-2, 1e-2])])  # first < 1e-4 but ratio 5e-3
    # exactly at each threshold (float64 observations, so the values are exact): both comparisons are strict
    last = 2.0 ** -7
    assert not fires(c, [healthy(layer_grad_norm=[1e-3 * last, 1.0, last])], "float64")  # ratio == 1e-3
    assert fires(c, [healthy(layer_grad_norm=[0.999e-3 * last, 1.0, last])], "float64")
    assert not fires(c, [healthy(layer_grad_norm=[1e-4, 1.0, 1.0])], "float64")  # first == 1e-4, ratio 1e-4
    assert fires(c, [healthy(layer_grad_norm=[0.999e-4, 1.0, 1.0])], "float64")
    # float32 norms are compared with the thresholds rounded to float32, as the tool's numpy does: 1e-4 is not below
    assert fires(c, [healthy(layer_grad_norm=[9.9e-5, 1.0, 1.0])])
    assert not fires(c, [healthy(layer_grad_norm=[1e-4, 1.0, 1.0])])
    assert not fires(c, [healthy(layer_grad_norm=[1e-6, 1.0, 0.0])])  # last norm 0: never vanishing in the tool
    assert not fires(c, [healthy(layer_grad_norm=[0.0, 0.0, 0.0])])
    assert fires(c, [healthy(layer_grad_norm=[1e-6, NAN, 1.0])])
    assert fires(c, [healthy(layer_grad_norm=[NAN, 1.0, 1.0])])
    # each threshold moves the decision
    assert fires(d.autotrainer_vanishing_gradient(first_norm=1e-2), [healthy(layer_grad_norm=[1e-3, 1.0, 10.0])])
    assert not fires(d.autotrainer_vanishing_gradient(ratio=1e-7), [healthy(layer_grad_norm=[1e-6, 1.0, 1.0])])


def test_autotrainer_dying_relu_pools_by_sizes_when_given(tf_worker: None) -> None:
    obs = healthy(layer_grad_zero_fraction=[1.0, 0.0], layer_grad_size=[300.0, 100.0])
    assert not fires(d.autotrainer_dying_relu(sizes=None), [obs])  # unweighted mean 0.5
    assert fires(d.autotrainer_dying_relu(), [obs])  # pooled by the adapter's layer_grad_size: 0.75 >= 0.7
    without = healthy(layer_grad_zero_fraction=[1.0, 0.0])
    assert not fires(d.autotrainer_dying_relu(), [without])  # no sizes observed: the unweighted mean


def test_autotrainer_not_converged_is_a_final_check(tf_worker: None) -> None:
    c = d.autotrainer_not_converged()
    assert c.when == "final" and c.observe == "accuracy"
    assert not fires(c, [dict(loss=0.3, accuracy=0.9)])
    assert fires(c, [dict(loss=0.3, accuracy=0.5)])
    assert not fires(c, [dict(loss=0.3, accuracy=0.7)])  # the tool fires on < 0.7 only
    assert fires(c, [dict(loss=0.3, accuracy=0.69)])
    assert fires(c, [dict(loss=0.3, accuracy=NAN)])
    assert not fires(d.autotrainer_not_converged(accuracy=0.6), [dict(loss=0.3, accuracy=0.65)])
    assert fires(d.autotrainer_not_converged(metric="auc"), [dict(loss=0.3, accuracy=0.9, auc=0.5)])


@pytest.mark.parametrize("factory", [d.autotrainer_nan, d.deepdiagnosis_numerical_error,
                                     d.thedeepchecker_numerical_instability])
def test_numerical_detectors(tf_worker: None, factory: Any) -> None:
    loss, weights, grads = factory()
    for c in (loss, weights, grads):
        assert not fires(c, [healthy(), healthy(loss=80.0)])
    for bad in (NAN, math.inf, -math.inf):
        assert fires(loss, [healthy(loss=bad)])
    assert fires(weights, [healthy(), healthy(weights_finite=False)])
    assert fires(grads, [healthy(grads_finite=False)])
    assert not fires(weights, [healthy(grads_finite=False)]) and not fires(grads, [healthy(weights_finite=False)])


NEEDS = {"autotrainer.exploding_gradient": "layer_grad_norm", "autotrainer.vanishing_gradient": "layer_grad_norm",
         "autotrainer.dying_relu": "layer_grad_zero_fraction", "autotrainer.nan_loss": "loss",
         "autotrainer.nan_weight": "weights_finite", "autotrainer.nan_gradient": "grads_finite",
         "autotrainer.not_converged": "accuracy", "deepdiagnosis.dead_relu": "layer_dead_fraction",
         "deepdiagnosis.saturated_activation": "layer_saturated_fraction",
         "deepdiagnosis.vanishing_gradient": "layer_grad_mean_abs", "deepdiagnosis.invalid_loss": "loss",
         "deepdiagnosis.numerical_error_weights": "weights_finite",
         "deepdiagnosis.numerical_error_gradients": "grads_finite",
         "thedeepchecker.exploding_gradient": "layer_grad_mean_abs",
         "thedeepchecker.vanishing_gradient": "layer_grad_mean_abs", "thedeepchecker.numerical_loss": "loss",
         "thedeepchecker.numerical_weights": "weights_finite", "thedeepchecker.numerical_gradients": "grads_finite",
         "deepdiagnosis.loss_unchanged": "loss", "thedeepchecker.loss_stagnating": "loss"}


def losses(values: list[float]) -> list[dict[str, Any]]:
    return [dict(loss=v) for v in values]


def test_thedeepchecker_loss_stagnating_as_the_tool_computes_it(tf_worker: None) -> None:
    c = d.thedeepchecker_loss_stagnating()
    falling = [10.0 * 0.9 ** i for i in range(12)]  # 10% a step: never stagnates
    assert not fires(c, losses(falling)) and judged(c, losses(falling))["n_evaluated"] == 12 - 4
    flat = [10.0, 9.0, 8.0, 7.0, 6.0, 5.9, 5.8, 5.7, 5.6, 5.5]
    r = judged(c, losses(flat))
    # the tool's rule, in numpy: fires at the i-th loss when the last 4 relative decreases are all < 5%
    tool = [i for i in range(4, len(flat))
            if all((flat[j - 1] - flat[j]) / flat[j - 1] < 0.05 for j in range(i - 3, i + 1))]
    assert r["fired"] and r["first_failure_step"] == tool[0] and r["n_failed"] == len(tool)
    assert not fires(d.thedeepchecker_loss_stagnating(min_decrease=0.01), losses(flat))  # the threshold moves it
    assert not fires(c, losses(flat[:4]))  # fewer than window points: nothing to judge
    assert judged(c, losses(flat[:4]))["n_evaluated"] == 0
    assert fires(c, losses([10.0, 9.0, NAN, 7.0, 6.0, 5.0]))  # a NaN in the window fires
    # period means: with every=2 each point is the mean of the steps since the last check (the first: step 0)
    p = d.thedeepchecker_loss_stagnating(window=3, every=2)
    series = [float(numpy.float32(v)) for v in (10.0, 9.0, 8.0, 7.0, 6.0, 5.9, 5.8, 5.7, 5.6, 5.5, 5.4)]
    means = [10.0] + [(series[k] + series[k + 1]) / 2 for k in range(1, 10, 2)]
    dec = [(means[k - 1] - means[k]) / means[k - 1] for k in range(1, len(means))]
    worst = min(max(dec[k], dec[k + 1]) for k in range(len(dec) - 1))
    r = judged(p, losses(series))
    assert r["n_evaluated"] == len(means) - 2 and r["worst_value"] == pytest.approx(worst, rel=1e-12)
    assert r["first_failure_step"] == 10 and r["value_dtype"] == "float64"


def test_deepdiagnosis_loss_unchanged_uses_non_overlapping_blocks(tf_worker: None) -> None:
    c = d.deepdiagnosis_loss_unchanged()
    assert not fires(c, losses([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]))
    r = judged(c, losses([2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.4, 0.3, 0.2]))
    assert not r["fired"] and r["n_evaluated"] == 2  # five equal losses straddle two blocks: the tool sees neither
    r = judged(c, losses([2.0, 1.5, 1.2, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    assert r["fired"] and r["first_failure_step"] == 9
    assert fires(c, losses([1.0, 1.0, NAN, 1.0, 0.5]))
    # in fp16 a slowly falling loss can repeat exactly: the same values fire in float16 and not in float32
    slow = [1.0 + 1e-4 * k for k in range(5)]
    assert fires(c, losses(slow), "float16") and not fires(c, losses(slow), "float32")


def test_bundles_names_and_a_healthy_run(tf_worker: None) -> None:
    every = d.all_detectors()
    names = [c.name for c in every]
    assert sorted(names) == sorted(NEEDS) and len(set(names)) == len(names)
    assert all(n.split(".")[0] in ("autotrainer", "deepdiagnosis", "thedeepchecker") for n in names)
    assert [c.name for c in d.autotrainer()] + [c.name for c in d.deepdiagnosis()] + \
        [c.name for c in d.thedeepchecker()] == names
    steps = [healthy(loss=v) for v in (2.0, 1.0, 0.5)]
    for c in every:
        assert not fires(c, [dict(loss=0.4, accuracy=0.9)] if c.when == "final" else steps), c.name
    assert "autotrainer.not_converged" not in [c.name for c in d.autotrainer(metric=None)]
    assert {c.name for c in d.deepdiagnosis(activations=False)}.isdisjoint(
        {"deepdiagnosis.dead_relu", "deepdiagnosis.saturated_activation"})
    assert {(c.every, c.after) for c in d.all_detectors(every=4, after=10) if c.when == "step"} == {(4, 10)}


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_missing_observation_raises_a_key_error_naming_it(tf_worker: None, name: str) -> None:
    (c,) = [c for c in d.all_detectors() if c.name == name]
    obs = {k: v for k, v in healthy().items() if k != NEEDS[name]}
    with pytest.raises(KeyError, match=NEEDS[name]):
        c.evaluate([tensors(obs, "float32")])


def test_schedule_is_passed_through(tf_worker: None) -> None:
    for f in d.DETECTORS:
        if f is d.autotrainer_not_converged:
            continue
        made = f(every=3, after=2, judge="last")
        for c in (made,) if isinstance(made, Check) else made:
            assert (c.every, c.after, c.judge, c.when) == (3, 2, "last", "step")
    c = d.thedeepchecker_exploding_gradient(every=2, after=1)
    r = judged(c, [healthy(layer_grad_mean_abs=[v]) for v in (1e7, 1.0, 1e7, 1.0, 1e7)])
    assert r["n_evaluated"] == 2 and not r["fired"]  # only steps 1 and 3 are evaluated


def test_detectors_trace_in_graph(tf_worker: None) -> None:
    # the engine evaluates checks inside a tf.function: every observe must trace, with dynamic-length vectors too
    import tensorflow as tf

    step = [c for c in d.all_detectors() if c.when == "step"]
    spec = {k: tf.TensorSpec([None], tf.float32) for k, v in healthy().items() if isinstance(v, list)}
    spec.update(loss=tf.TensorSpec([], tf.float32), weights_finite=tf.TensorSpec([], tf.bool),
                grads_finite=tf.TensorSpec([], tf.bool))

    @tf.function(input_signature=[spec])
    def values(obs: dict) -> Any:
        return tf.stack([c.step_value(obs)[0] for c in step])

    ok = values(tensors({k: v for k, v in healthy().items() if k in spec}, "float32")).numpy()
    assert len(ok) == len(step) and all(math.isfinite(v) for v in ok)
    odd = healthy(layer_grad_norm=[NAN, 1.0], layer_dead_fraction=[], layer_saturated_fraction=[], loss=NAN)
    got = dict(zip([c.name for c in step], values(tensors({k: v for k, v in odd.items() if k in spec},
                                                         "float32")).numpy()))
    assert math.isnan(got["autotrainer.exploding_gradient"]) and math.isnan(got["autotrainer.vanishing_gradient"])
    assert math.isnan(got["autotrainer.nan_loss"]) and math.isnan(got["thedeepchecker.numerical_loss"])
    assert got["deepdiagnosis.dead_relu"] == 0.0 and got["deepdiagnosis.saturated_activation"] == 0.0


SOURCES = {"autotrainer": ("shiningrain/AUTOTRAINER", "AutoTrainer/utils/monitor.py", "ICSE 2021"),
           "deepdiagnosis": ("DeepDiagnosis/ICSE2022", "callback/callbacks.py", "ICSE 2022"),
           "thedeepchecker": ("thedeepchecker/thedeepchecker", "deep_checker/hooks.py", "TOSEM")}


def spellings(v: float) -> set[str]:
    short = f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")
    return {f"{v:g}", repr(v), short}


@pytest.mark.parametrize("factory", d.DETECTORS, ids=lambda f: f.__name__)
def test_docstrings_name_the_source_and_the_threshold(factory: Any) -> None:
    doc = inspect.getdoc(factory) or ""
    tool = factory.__name__.split("_")[0]
    repo, path, venue = SOURCES[tool]
    assert repo in doc and path in doc and venue in doc
    thresholds = {k: p.default for k, p in inspect.signature(factory).parameters.items()
                  if isinstance(p.default, float)}
    for k, v in thresholds.items():
        assert any(s in doc for s in spellings(v)), (k, v)
    if not thresholds:
        assert "Threshold: none" in doc
    assert "Here:" in doc  # how the in-graph version differs
    if tool == "thedeepchecker" and thresholds:
        assert "source not found in the index" in doc


GRADIENT_KEYS = {"layer_grad_norm", "layer_grad_zero_fraction", "layer_grad_mean_abs", "grads_finite", "weights_finite"}
SKIPPED = healthy(layer_grad_norm=[math.inf, 1.0, 0.1], layer_grad_zero_fraction=[0.0, 0.0, 0.0],
                  layer_grad_mean_abs=[math.inf, math.inf, 1e-3], grads_finite=False, skipped=True)


def test_a_step_loss_scaling_skipped_is_not_judged_by_gradient_and_weight_rules(tf_worker: None) -> None:
    """The step's gradients are inf (fp16 loss scaling overflowed and skipped it, by design): rules about
    gradients, updates and weights judge applied steps only; rules about the loss still judge it."""
    steps = [healthy(loss=v) for v in (2.0, 1.0)] + [{**SKIPPED, "loss": 0.8}] + [healthy(loss=0.5)]
    for c in d.all_detectors():
        if c.when == "final":
            continue
        r = judged(c, steps)
        assert not r["fired"], c.name
        if c.statistic == "value":
            assert r["n_evaluated"] == (3 if c.on == "applied" else 4), c.name
    gradient_rules = {c.name for c in d.all_detectors() if c.on == "applied"}
    assert gradient_rules == {n for n, key in NEEDS.items() if key in GRADIENT_KEYS}  # and nothing else
    # the same step not marked skipped is a fault the gradient rules see (its zero fraction and weights are healthy)
    unskipped = [healthy(loss=v) for v in (2.0, 1.0)] + [{**SKIPPED, "loss": 0.8, "skipped": False}]
    assert {c.name for c in d.all_detectors() if c.when == "step" and fires(c, unskipped)} == \
        {n for n in gradient_rules if NEEDS[n] not in ("weights_finite", "layer_grad_zero_fraction")}


def test_a_planted_fp16_overflow_step_fires_no_gradient_detector(tf_worker: None) -> None:
    """In the real engine: a healthy fp16 run with one planted overflow step. Loss scaling skips it
    (skipped_steps 1, the control that judges every step sees it), and no detector fires."""
    from conftest import make_spec

    from harness.engine import execute

    spec = make_spec(scenario="overflow", target="plugins.overflow.PlantedOverflow", params={"at": 3, "factor": 1000.0},
                     precision="fp16", steps=20, data_size=256, batch_size=32)
    r = execute(spec)
    assert r.status.value == "ok", r.error
    assert r.skipped_steps == 1
    by = {c.check: c for c in r.checks}
    assert not by["control.grads_finite_every_step"].passed and by["control.grads_finite_every_step"].n_failed == 1
    applied = {c.name for c in d.all_detectors() if c.on == "applied"}
    fired = {c.check for c in r.checks if not c.passed}
    assert len(applied) == 12 and not fired & applied  # no gradient, update or weight rule fires
    assert not fired & {"autotrainer.nan_loss", "deepdiagnosis.invalid_loss", "thedeepchecker.numerical_loss"}
    assert by["autotrainer.nan_gradient"].n_evaluated == 19 and by["autotrainer.nan_loss"].n_evaluated == 20


def test_a_run_that_applied_no_update_fails_the_gradient_rules_instead_of_passing_unjudged(tf_worker: None) -> None:
    """fp16 with gradients that are never finite: loss scaling skips every step and the model never trains.
    With nothing applied, the applied-steps rules judge every scheduled step, and fire."""
    steps = [{**SKIPPED, "loss": 0.8} for _ in range(4)]
    for name in ("autotrainer.nan_gradient", "deepdiagnosis.numerical_error_gradients",
                 "thedeepchecker.numerical_gradients", "autotrainer.exploding_gradient"):
        (c,) = [c for c in d.all_detectors() if c.name == name]
        r = judged(c, steps)
        assert r["fired"] and r["n_evaluated"] == 4, name
