"""In-graph checks: margins, worst values, first failure, and NaN/Inf never passing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import checks
from harness.checks import state_to_values


def fold(check: checks.Check, values: list, dtype: str = "float32") -> dict:
    import tensorflow as tf

    return state_to_values(check.evaluate([{"x": tf.constant(v, dtype)} for v in values]))


def test_below_counts_failures_margin_and_first_step(tf_worker: None) -> None:
    r = fold(checks.below("loss", "x", 1.0), [0.5, 1.5, 0.9, 3.0])
    assert r["n_evaluated"] == 4 and r["n_failed"] == 2 and r["n_nonfinite"] == 0
    assert r["first_failure_step"] == 1
    assert r["worst_value"] == 3.0 and r["worst_margin"] == -2.0


def test_strict_and_inclusive_at_the_bound(tf_worker: None) -> None:
    assert fold(checks.below("b", "x", 1.0), [1.0])["n_failed"] == 1
    assert fold(checks.below("b", "x", 1.0, inclusive=True), [1.0])["n_failed"] == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_never_passes_below(tf_worker: None, bad: float) -> None:
    # A naive `assert loss < 1.0` raises for NaN only by accident and *passes* for -inf.
    r = fold(checks.below("loss", "x", 1.0), [0.1, bad, 0.2])
    assert r["n_failed"] == 1 and r["n_nonfinite"] == 1 and r["first_failure_step"] == 1
    assert r["worst_margin"] == -math.inf


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_never_passes_above_or_near(tf_worker: None, bad: float) -> None:
    assert fold(checks.above("a", "x", 0.0), [bad])["n_failed"] == 1
    assert fold(checks.near("n", "x", 0.0, tol=0.1), [bad])["n_failed"] == 1


def test_vector_observation_is_judged_by_its_worst_element(tf_worker: None) -> None:
    lo, hi = checks.within("out", "x", 0.01, 0.99)
    values = [[0.5, 0.2, 0.995], [0.5, 0.005, 0.3]]
    rlo, rhi = fold(lo, values), fold(hi, values)
    assert (lo.name, hi.name) == ("out_min", "out_max")
    assert rhi["n_failed"] == 1 and rhi["first_failure_step"] == 0
    assert rhi["worst_value"] == pytest.approx(0.995, rel=1e-6)
    assert rlo["n_failed"] == 1 and rlo["first_failure_step"] == 1
    assert rlo["worst_margin"] == pytest.approx(0.005 - 0.01, rel=1e-4)


def test_nan_element_in_vector_fails_even_if_others_pass(tf_worker: None) -> None:
    r = fold(checks.below("v", "x", 1.0), [[0.1, math.nan, 0.2]])
    assert r["n_failed"] == 1 and r["n_nonfinite"] == 1 and math.isnan(r["worst_value"])


def test_near_finite_and_equal_shape(tf_worker: None) -> None:
    import tensorflow as tf

    assert fold(checks.near("m", "x", 0.0, tol=0.1), [0.05, -0.2])["n_failed"] == 1
    r = fold(checks.finite("f", "x"), [[1.0, 2.0], [1.0, math.inf]])
    assert r["n_failed"] == 1 and r["n_nonfinite"] == 1 and r["first_failure_step"] == 1
    c = checks.equal_shape("s", "a", "b")
    r = state_to_values(c.evaluate([{"a": tf.zeros([4, 1]), "b": tf.zeros([4, 1])},
                                    {"a": tf.zeros([4, 1, 1]), "b": tf.zeros([4, 1])}]))
    assert r["n_evaluated"] == 2 and r["n_failed"] == 1 and r["first_failure_step"] == 1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_native_compares_like_tf_exact_compares_in_float64(tf_worker: None, dtype: str) -> None:
    # fp16(0.99) rounds *up* to 0.990234375 (float32: 0.99000000954): a value clipped to 0.99 is
    # above 0.99 in float64 but equal to the bound as TF's `x <= 0.99` sees it in that dtype.
    import tensorflow as tf

    x = tf.constant(0.99, dtype)
    as_stored = float(tf.cast(x, tf.float64).numpy())
    native = checks.below("b", "x", 0.99, inclusive=True)
    exact = checks.below("b", "x", 0.99, inclusive=True, compare="exact")
    sn = state_to_values(native.evaluate([{"x": x}]))
    se = state_to_values(exact.evaluate([{"x": x}]))
    assert bool((x <= 0.99).numpy()) is True  # what the user's TF assertion does
    assert sn["n_failed"] == 0 and sn["worst_margin"] == 0.0
    assert (se["n_failed"] == 1) is (as_stored > 0.99)
    assert se["worst_margin"] == 0.99 - as_stored


def test_fp16_rounding_of_0_99_is_upward() -> None:
    assert float(np.float16(0.99)) == 0.990234375


def test_bad_declarations_raise() -> None:
    with pytest.raises(ValueError):
        checks.within("w", "x", 1.0, 0.0)
    with pytest.raises(ValueError):
        checks.near("n", "x", 0.0, tol=0.0)
    with pytest.raises(ValueError):
        checks.Check("", "x", 1.0, "<")


def test_equal_shape_across_ranks_in_graph(tf_worker: None) -> None:
    # the train_inference shape mismatch: (n, 1, 1) against (n, 1), traced in a tf.function
    import tensorflow as tf

    c = checks.equal_shape("s", "pred", "labels", when="final")

    @tf.function
    def value(pred: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return c.step_value({"pred": pred, "labels": labels})[0]

    assert float(value(tf.zeros([4, 1, 1]), tf.zeros([4, 1]))) == 1.0
    assert float(value(tf.zeros([4, 1]), tf.zeros([4, 1]))) == 0.0
    assert float(value(tf.zeros([4, 2]), tf.zeros([4, 1]))) == 1.0


@pytest.mark.parametrize("dtype, bound", [("float16", 0.1), ("bfloat16", 0.1), ("float32", 0.7), ("float64", 0.7)])
def test_the_bound_as_compared_and_the_value_dtype_are_recorded(tf_worker: None, dtype: str, bound: float) -> None:
    """A bound the dtype cannot represent is rounded for native comparison; the rounded value is
    what the run records as bound_compared (exact keeps the declared bound), so no analysis has
    to work it out again from margins."""
    import tensorflow as tf

    rounded = float(tf.cast(tf.constant(bound, tf.float64), dtype).numpy())
    assert rounded != bound or dtype == "float64"
    native = fold(checks.below("b", "x", bound), [bound / 2], dtype)
    exact = fold(checks.above("a", "x", bound, compare="exact"), [bound * 2], dtype)
    assert native["bound_compared"] == rounded and native["value_dtype"] == dtype
    assert exact["bound_compared"] == bound and exact["value_dtype"] == dtype
    assert checks.below("b", "x", bound).meaning().op == "<" and checks.above("a", "x", bound).meaning().op == ">"


@pytest.mark.parametrize("bound", [float("nan"), float("inf"), "abc"])
def test_a_bound_must_be_a_finite_number(bound: object) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        checks.Check("c", "x", bound, "<")  # type: ignore[arg-type]


def test_a_schedule_evaluates_every_kth_step_after_a_warm_up(tf_worker: None) -> None:
    values = [5.0, 5.0, 0.5, 5.0, 0.5, 0.5, 0.5, 5.0]  # steps 0..7; > 1 fails
    every_step = fold(checks.below("c", "x", 1.0), values)
    scheduled = fold(checks.below("c", "x", 1.0, after=2, every=2), values)  # steps 2, 4, 6 only
    assert every_step["n_evaluated"] == 8 and every_step["n_failed"] == 4
    assert scheduled["n_evaluated"] == 3 and scheduled["n_failed"] == 0 and scheduled["first_failure_step"] is None
    late = fold(checks.below("c", "x", 1.0, after=3, every=4), values)  # steps 3, 7
    assert late["n_evaluated"] == 2 and late["n_failed"] == 2 and late["first_failure_step"] == 3


def test_judge_last_lets_only_the_last_scheduled_evaluation_decide(tf_worker: None) -> None:
    from harness.records import CheckResult

    falls = fold(checks.below("c", "x", 1.0, judge="last"), [5.0, 3.0, 0.5])
    rises = fold(checks.below("c", "x", 1.0, judge="last"), [0.5, 0.5, 3.0])
    assert falls["n_failed"] == 2 and not falls["last_failed"] and rises["last_failed"]
    assert CheckResult("c", 1.0, judge="last", **falls).passed
    assert not CheckResult("c", 1.0, judge="last", **rises).passed
    assert not CheckResult("c", 1.0, judge="any", **falls).passed


@pytest.mark.parametrize("kw, words", [({"every": 0}, "every=0"), ({"after": -1}, "after=-1"),
                                       ({"judge": "most"}, "judge='most'")])
def test_a_bad_schedule_is_refused(kw: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        checks.below("c", "x", 1.0, **kw)


def test_a_schedule_past_the_last_step_evaluates_nothing(tf_worker: None) -> None:
    r = fold(checks.below("c", "x", 1.0, after=10, every=5), [5.0, 5.0, 5.0])
    assert r["n_evaluated"] == 0 and r["first_failure_step"] is None and not r["last_failed"]


@pytest.mark.parametrize("kw, words", [
    ({"statistic": "mean"}, "statistic='mean'"), ({"window": 3}, "window=3 needs a statistic"),
    ({"statistic": "range", "window": 1}, "window >= 2"), ({"statistic": "range", "window": 0}, "window=0"),
    ({"statistic": "range", "window": 3, "when": "final"}, "when='step'")])
def test_a_bad_window_is_refused(kw: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        checks.Check("c", "x", 1.0, "<", **kw)


def test_windowed_statistics_are_recorded_and_leave_old_run_ids_alone(tf_worker: None) -> None:
    from harness.scenarios.base import _meaning_key

    c = checks.Check("c", "x", 0.0, ">", statistic="range", window=4)
    assert (c.meaning().statistic, c.meaning().window) == ("range", 4)
    assert "statistic" in _meaning_key(c) and "statistic" not in _meaning_key(checks.below("c", "x", 1.0))
    r = fold(c, [3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 7.0])  # blocks: steps 0-3 and 4-7; step 8 incomplete
    assert r["n_evaluated"] == 2 and r["n_failed"] == 1 and r["first_failure_step"] == 7
    assert r["worst_value"] == 0.0 and r["value_dtype"] == "float64"


def test_the_steps_judged_enter_run_ids_only_when_not_all() -> None:
    """A check judging every step hashes as it did before ``on`` existed: stored sweeps keep their run ids."""
    from harness.scenarios.base import _meaning_key

    every = checks.below("g", "grad_norm", 1.0)
    applied = checks.below("g", "grad_norm", 1.0, on="applied")
    assert "on" not in _meaning_key(every) and _meaning_key(applied)["on"] == "applied"
    assert every.meaning().on == "all" and applied.meaning().on == "applied"
    with pytest.raises(ValueError, match="on='applied' needs when='step'"):
        checks.below("g", "grad_norm", 1.0, when="final", on="applied")
    with pytest.raises(ValueError, match="on='sometimes' is not one of all, applied"):
        checks.Check("g", "grad_norm", 1.0, "<", on="sometimes")  # type: ignore[arg-type]
