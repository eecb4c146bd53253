"""Bounds with a guarantee: the distribution-free bound's coverage by simulation (light,
heavy-tailed and discrete scores), the GPD bound's coverage, strict ops and dtypes,
validation verdicts. Pure numpy/scipy: no TensorFlow, no Ray."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from harness.analysis.bounds import (gpd_bound, order_statistic_bound, runs_for_finite_bound, runs_needed,
                                     runs_to_decide, safe_bound, validate, value_dtype)
from harness.analysis.verdicts import BoundVerdict, ValidationVerdict

P, C, REPS = 0.01, 0.95, 2000
NAN_SHARE = 0.004  # runs that saw NaN/Inf in the "normal + NaN runs" distribution

# name -> (draw(rng, shape), true exceedance probability P(score > b)), continuous?
DISTRIBUTIONS: dict[str, tuple[Callable, Callable, bool]] = {
    "normal": (lambda rng, shape: rng.standard_normal(shape), stats.norm.sf, True),
    "student-t, 2 df": (lambda rng, shape: rng.standard_t(2, shape), lambda b: stats.t.sf(b, 2), True),
    "pareto, shape 1.5": (lambda rng, shape: rng.pareto(1.5, shape) + 1.0, lambda b: stats.pareto.sf(b, 1.5), True),
    "poisson(3), discrete": (lambda rng, shape: rng.poisson(3.0, shape).astype(float),
                             lambda b: stats.poisson.sf(b, 3.0), False),
    "normal + NaN runs": (lambda rng, shape: np.where(rng.random(shape) < NAN_SHARE, np.inf,
                                                      rng.standard_normal(shape)),
                          lambda b: 0.0 if np.isposinf(b) else NAN_SHARE + (1 - NAN_SHARE) * stats.norm.sf(b), False),
}


def test_runs_needed_is_the_smallest_n_whose_maximum_is_a_bound():
    assert runs_needed(0.01, 0.95) == 299
    assert 0.99 ** 299 <= 0.05 < 0.99 ** 298
    assert runs_needed(0.05, 0.95) == 59 and runs_needed(0.01, 0.99) == 459 and runs_needed(0.001, 0.95) == 2995
    for bad in ((0.0, 0.95), (0.01, 1.0), (1.0, 0.5)):
        with pytest.raises(ValueError):
            runs_needed(*bad)


def test_the_rank_is_the_largest_that_keeps_the_confidence():
    b = order_statistic_bound(np.arange(600.0), P, C)
    assert (b.status, b.rank, b.value, b.n, b.runs_missing) == (BoundVerdict.GUARANTEED, 2, 598.0, 600, 0)
    assert b.confidence == pytest.approx(1 - stats.binom.cdf(1, 600, P))
    assert stats.binom.cdf(b.rank, 600, P) > 1 - C  # one rank further would lose the confidence
    assert order_statistic_bound(np.arange(299.0), P, C).value == 298.0  # 299 runs: the maximum
    short = order_statistic_bound(np.r_[np.arange(298.0), np.nan], P, C)  # NaN = did not evaluate: not a run
    assert (short.status, short.runs_missing, short.rank) == (BoundVerdict.NEEDS_RUNS, 1, 0) and np.isnan(short.value)
    assert order_statistic_bound(np.array([]), P, C).status is BoundVerdict.NO_DATA


def test_nan_runs_leave_no_bound():
    few = order_statistic_bound(np.r_[np.zeros(17), np.full(3, np.inf)], P, C)  # 3/20: above 1% for sure
    assert few.status is BoundVerdict.NO_BOUND and few.nonfinite == 3
    late = order_statistic_bound(np.r_[np.zeros(400), [np.inf]], P, C)  # 1/401: the maximum is the NaN run
    assert late.status is BoundVerdict.NO_BOUND and late.rank == 1
    fine = order_statistic_bound(np.r_[np.arange(599.0), [np.inf]], P, C)  # rank 2 of 600: a finite run
    assert fine.status is BoundVerdict.GUARANTEED and fine.value == 598.0


def test_runs_for_a_finite_bound_with_nan_runs():
    m = int(runs_for_finite_bound(2, 420, P, C))  # 2 NaN/Inf runs in 420: the maximum is one of them

    def at(runs: int) -> BoundVerdict:  # NaN/Inf runs at the same share
        k = round(2 / 420 * runs)
        return order_statistic_bound(np.r_[np.zeros(runs - k), np.full(k, np.inf)], P, C).status

    assert at(m) is BoundVerdict.GUARANTEED and at(m - 1) is BoundVerdict.NO_BOUND
    assert runs_for_finite_bound(0, 100, P, C) == 299
    assert np.isnan(runs_for_finite_bound(1, 100, P, C))  # the NaN/Inf share alone is at the target


def _coverage(name: str, n: int, seed: int) -> tuple[int, float, int]:
    """(repetitions whose bound has true exceedance <= P, the stated confidence, NO_BOUND count)."""
    draw, sf, _ = DISTRIBUTIONS[name]
    x = draw(np.random.default_rng(seed), (REPS, n))
    covered = no_bound = 0
    for row in x:
        b = order_statistic_bound(row, P, C)
        assert b.status in (BoundVerdict.GUARANTEED, BoundVerdict.NO_BOUND)
        no_bound += b.status is BoundVerdict.NO_BOUND
        covered += sf(b.value) <= P  # NO_BOUND: +inf, no false alarm, no claim
    return covered, b.confidence, no_bound


@pytest.mark.parametrize("n", [299, 600])
@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_the_guarantee_holds_by_simulation(name: str, n: int):
    """Share of repetitions whose bound truly keeps exceedance <= 1% is >= 95% (up to a
    binomial 99.9% Monte Carlo allowance); for continuous scores it matches the achieved
    confidence 1 - BinomCDF(r - 1; n, p) (so an off-by-one rank fails too)."""
    covered, achieved, no_bound = _coverage(name, n, seed=n)
    assert covered >= stats.binom.ppf(0.001, REPS, C), f"{name}, n={n}: {covered / REPS:.3f} < {C}"
    if DISTRIBUTIONS[name][2]:
        lo, hi = stats.binom.ppf([0.0005, 0.9995], REPS, achieved)
        assert lo <= covered <= hi, f"{name}, n={n}: {covered / REPS:.3f} vs stated {achieved:.3f}"
    assert no_bound == 0 or "NaN" in name  # with NaN runs the maximum of 299 is often one: NO_BOUND


def test_the_simulation_can_fail_a_plain_quantile():
    """The same check rejects the old estimate (the 99% sample quantile, here of 299 runs)."""
    x = np.random.default_rng(0).standard_normal((REPS, 299))
    covered = int((stats.norm.sf(np.quantile(x, 1 - P, axis=1, method="higher")) <= P).sum())
    assert covered < stats.binom.ppf(0.001, REPS, C)


def test_gpd_confidence_bound_covers_the_true_quantile_at_about_its_nominal_rate():
    """GPD(0.2) and exponential samples of 400 runs (80 exceedances): the (1 - alpha) upper
    bound lies above the true 1% quantile in about 95% of repetitions; the point estimate in
    about half."""
    reps, n, upper, point = 100, 400, 0, 0
    rng = np.random.default_rng(5)
    for dist in (stats.genpareto(0.2), stats.expon()):
        truth = dist.ppf(1 - P)
        for i in range(reps):
            fit = gpd_bound(dist.rvs(size=n, random_state=rng), P, C, n_boot=99, seed=i)
            assert fit.ok, fit.note
            assert fit.lower <= fit.point <= fit.upper
            upper += fit.upper >= truth
            point += fit.point >= truth
    assert 0.89 <= upper / (2 * reps) <= 0.995
    assert 0.3 <= point / (2 * reps) <= 0.7


def test_gpd_refusals_and_nan_runs():
    rng = np.random.default_rng(1)
    assert "tail too small" in gpd_bound(rng.normal(size=40), P, C).note
    nan_heavy = gpd_bound(np.r_[rng.normal(size=500), np.full(10, np.inf)], P, C)
    assert not nan_heavy.ok and "NaN/Inf" in nan_heavy.note and np.isnan(nan_heavy.upper)
    fit = gpd_bound(rng.exponential(size=2000), P, C)
    assert fit.ok and fit.note.startswith("extrapolation") and fit.upper > fit.point


def _below(x: float, t: type) -> float:
    return float(np.nextafter(t(x), t(-np.inf)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("compare", ["native", "exact"])
def test_safe_bound_is_the_tightest_bound_that_keeps_the_runs_inside(dtype: str, compare: str):
    """For values of the dtype: value <op> bound holds for every value on the safe side of
    the order statistic x (<= x for upper ops, >= x for lower ops), also after the check
    rounds a native bound to the dtype, and (x a dtype value, as worst values are) for no
    other; the bound is strictly beyond x for < and >."""
    t, _ = value_dtype(dtype)
    rng = np.random.default_rng(2)
    for x in np.r_[float(t(0.5)), float(t(-3.25)), float(t(rng.normal())), 0.1, 1 / 3, 1e-3 * rng.normal()]:
        grid = [t(x)]
        for _ in range(3):
            grid = [np.nextafter(grid[0], t(-np.inf)), *grid, np.nextafter(grid[-1], t(np.inf))]
        values = np.array([float(v) for v in grid])
        for op, keep in (("<", values <= x), ("<=", values <= x), (">", values >= x), (">=", values >= x)):
            b, _ = safe_bound(x, op, compare, dtype)
            compared = float(t(b)) if compare == "native" else b
            assert compare != "native" or compared == b, f"{op} {b} is not a {dtype} value"
            ok = {"<": values < compared, "<=": values <= compared, ">": values > compared,
                  ">=": values >= compared}[op]
            msg = f"{dtype} {compare} {op} x={x!r} b={b!r}"
            assert ok[keep].all(), msg  # safe: every run on the safe side of x passes
            if float(t(x)) == x:  # and tight: all others fail
                np.testing.assert_array_equal(ok, keep, err_msg=msg)
            else:  # x between two dtype values: the tightest native bound passes just one more value
                assert ok.sum() <= keep.sum() + (compare == "native"), msg
            if op in ("<", ">"):
                assert (b > x) if op == "<" else (b < x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("compare", ["native", "exact"])
def test_the_printed_bound_is_the_bound(dtype: str, compare: str):
    """The text printed for a user to paste compares exactly as the recommended bound, for random
    worst values of every dtype and every op: every run the bound keeps inside stays inside with
    the pasted text (as a Python float, rounded to the dtype by a native check)."""
    from harness.analysis.bounds import bound_text

    t, _ = value_dtype(dtype)
    rng = np.random.default_rng(7)
    xs = np.r_[[float(t(v)) for v in rng.normal(scale=30, size=300)], 25.1125431, 1e-4, 0.1]
    for x in xs:
        for op in ("<", "<=", ">", ">="):
            b, _ = safe_bound(x, op, compare, dtype)
            if not np.isfinite(b):
                continue
            text = bound_text(b, compare, dtype)
            pasted = float(text)
            compared = float(t(pasted)) if compare == "native" else pasted
            assert compared == (float(t(b)) if compare == "native" else b), (dtype, compare, op, x, b, text)
            worst = float(t(x)) if float(t(x)) == x else x  # the run that defined the bound passes with it
            assert {"<": worst < compared, "<=": worst <= compared, ">": worst > compared,
                    ">=": worst >= compared}[op], (dtype, compare, op, x, text)
            assert len(text) <= len(repr(b))  # and it is no longer than the float64 repr
    b, _ = safe_bound(25.1125431, "<", "native", "float32")
    assert bound_text(b, "native", "float32") == "25.112543" != f"{b:.6g}"  # 25.1125 would fail that run


def test_strict_bounds_step_to_the_next_value_of_the_dtype():
    import ml_dtypes

    assert safe_bound(0.5, "<", "exact", "float16")[0] == 0.5 + 2 ** -11
    assert safe_bound(0.5, ">", "exact", "float16")[0] == 0.5 - 2 ** -12
    assert safe_bound(0.5, "<", "native", "bfloat16")[0] == 0.5 + 2 ** -8
    assert safe_bound(0.5, ">=", "native", "bfloat16")[0] == 0.5
    assert safe_bound(0.5, "<", "exact", "float32")[0] == float(np.nextafter(np.float32(0.5), np.float32(1)))
    assert safe_bound(0.5, "<=", "exact", "float16")[0] == 0.5  # non-strict: the order statistic itself
    # native rounding goes the safe way: 0.1 is between two float16 values
    up, down = safe_bound(0.1, "<=", "native", "float16")[0], safe_bound(0.1, ">=", "native", "float16")[0]
    assert down < 0.1 < up and np.float16(up) == up and np.float16(down) == down
    assert _below(up, np.float16) < 0.1 < -_below(-down, np.float16)  # and the tightest such values
    b16 = safe_bound(0.1, "<", "native", "bfloat16")[0]
    assert b16 > 0.1 and float(ml_dtypes.bfloat16(b16)) == b16
    assert np.isnan(safe_bound(65504.0, "<", "native", "float16")[0])  # no finite float16 above the maximum
    assert safe_bound(0.1, "<=", "exact", "int32") == (0.1, "")  # integer values: compared in float64


def test_bfloat16_without_ml_dtypes_falls_back_to_float32_and_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import fails
    t, note = value_dtype("bfloat16")
    assert t is np.float32 and "float32" in note
    b, note = safe_bound(0.5, "<", "native", "bfloat16")
    assert b == float(np.nextafter(np.float32(0.5), np.float32(1))) and "ml_dtypes" in note


def test_validation_verdicts_need_the_power_to_tell():
    v = validate(np.zeros(9), 1.0, P, C)
    assert v.status is ValidationVerdict.INCONCLUSIVE and v.runs_to_decide == 299 and v.ci_high > 0.25
    v = validate(np.zeros(299), 1.0, P, C)
    assert v.status is ValidationVerdict.HOLDS and v.ci_high <= P and v.failed == 0
    v = validate(np.r_[np.full(20, 2.0), np.zeros(280)], 1.0, P, C)
    assert v.status is ValidationVerdict.EXCEEDS and v.ci_low > P and v.rate == pytest.approx(20 / 300)
    v = validate(np.r_[np.full(3, 2.0), np.zeros(97)], 1.0, P, C)
    assert v.status is ValidationVerdict.INCONCLUSIVE and v.ci_low <= P < v.ci_high
    assert v.runs_to_decide == runs_to_decide(3, 100, P, C) > 100
    assert validate(np.zeros(5), np.nan, P, C).status is ValidationVerdict.NOT_VALIDATED
    assert validate(np.array([]), 1.0, P, C).status is ValidationVerdict.NOT_VALIDATED
    # a run at the bound fails a strict check only; a NaN/Inf run fails always
    assert validate(np.array([1.0, 0.0]), 1.0, P, C).failed == 0
    assert validate(np.array([1.0, 0.0]), 1.0, P, C, strict=True).failed == 1
    assert validate(np.array([np.inf, 0.0, np.nan]), 1.0, P, C).failed == 1
