"""glm: separation judged from the data, saturated two-size fits, profile-likelihood intervals."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from harness.analysis.glm import deviance, detect_separation, fit_binomial, intercept_deviance, slope_test

X3 = np.column_stack([np.ones(3), [2.0, 3.0, 4.0]])
N30 = np.full(3, 30.0)
LOG10 = math.log(10.0)


def test_complete_separation_one_covariate():
    sep = detect_separation(np.array([0.0, 0.0, 30.0]), N30, X3)
    assert sep.separated
    assert sep.direction[1] == 1.0 and sep.infinite.all()
    assert not sep.boundary.any()  # every pattern is predicted perfectly in the limit


def test_quasi_complete_separation_with_a_shared_middle_group():
    # failures only at x >= 3, passes only at x <= 3: the cut x = 3 holds both
    sep = detect_separation(np.array([0.0, 5.0, 30.0]), N30, X3)
    assert sep.separated and sep.direction[1] == 1.0
    assert sep.boundary.tolist() == [False, True, False]  # only the shared group keeps likelihood
    mirrored = detect_separation(np.array([30.0, 5.0, 0.0]), N30, X3)
    assert mirrored.separated and mirrored.direction[1] == -1.0


@pytest.mark.parametrize("failed", [[1.0, 5.0, 29.0], [0.0, 30.0, 0.0], [5.0, 0.0, 5.0], [3.0, 3.0, 3.0]])
def test_not_separated(failed):
    # rates strictly inside (0, 1) at the ends, or a bump / dip that no monotone cut reproduces
    assert not detect_separation(np.array(failed), N30, X3).separated


def test_two_sizes_are_saturated_not_separated():
    x2 = np.column_stack([np.ones(2), [3.0, 4.0]])
    assert not detect_separation(np.array([5.0, 20.0]), np.array([30.0, 30.0]), x2).separated
    assert detect_separation(np.array([0.0, 5.0]), np.array([30.0, 30.0]), x2).separated  # 0% at one end
    assert detect_separation(np.array([0.0, 30.0]), np.array([30.0, 30.0]), x2).separated


def test_separation_in_one_factor_of_several():
    # intercept, dummy A, dummy B: the pattern with A = 1 always fails, the others are mixed
    exog = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    sep = detect_separation(np.array([3.0, 10.0, 4.0]), np.array([10.0, 10.0, 10.0]), exog)
    assert sep.separated
    assert sep.infinite.tolist() == [False, True, False] and sep.direction.tolist() == [0.0, 1.0, 0.0]
    assert not detect_separation(np.array([3.0, 9.0, 4.0]), np.array([10.0, 10.0, 10.0]), exog).separated


def test_separation_agrees_with_the_cut_rule_on_random_one_covariate_data():
    """For one covariate (with intercept) the LP must agree with the textbook rule: separated
    iff all failures lie at x >= c and all passes at x <= c for some c (or mirrored)."""
    rng = np.random.default_rng(0)
    for _ in range(150):
        x = np.sort(rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=rng.integers(2, 5), replace=False))
        n = rng.integers(1, 4, size=len(x)).astype(float)
        k = np.minimum(n, rng.integers(0, 4, size=len(x))).astype(float)
        fail_x, pass_x = x[k > 0], x[k < n]
        if len(fail_x) == 0 or len(pass_x) == 0:
            expected = True  # the intercept alone runs off
        else:
            expected = pass_x.max() <= fail_x.min() or fail_x.max() <= pass_x.min()
        got = detect_separation(k, n, np.column_stack([np.ones(len(x)), x])).separated
        assert got == expected, (x, k, n)


def test_saturated_two_size_fit_is_kept_although_statsmodels_warns():
    """5/30 vs 20/30 a decade apart: statsmodels flags 'perfect separation' because fitted =
    observed (saturated), but the slope is finite: log((20/10) / (5/25)) = log(10) per decade."""
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM

    failed, n, x = np.array([5.0, 20.0]), np.array([30.0, 30.0]), np.array([3.0, 4.0])
    exog = np.column_stack([np.ones(2), x])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GLM(np.column_stack([failed, n - failed]), exog, family=families.Binomial()).fit()
    assert any("separation" in str(w.message).lower() for w in caught)  # the misleading signal
    res, note = fit_binomial(failed, n, exog)
    assert res is not None and note == ""
    assert res.params[1] == pytest.approx(LOG10, rel=1e-8)
    fit = slope_test(failed, n, x)
    assert fit.ok and not fit.separated
    assert fit.coef == pytest.approx(LOG10, rel=1e-8) and math.exp(fit.coef) == pytest.approx(10.0)
    # LR test: the saturated model against the pooled rate 25/60
    pooled = 25 / 60
    null = 2 * sum(k * math.log(k / (m * pooled)) + (m - k) * math.log((m - k) / (m * (1 - pooled)))
                   for k, m in zip(failed, n))
    assert fit.p_value == pytest.approx(stats.chi2.sf(null, 1), rel=1e-6)
    # profile-likelihood interval, checked on a brute-force grid of the profile deviance
    grid = np.linspace(0.5, 4.5, 2001)
    prof = np.array([deviance(failed, n, np.ones((2, 1)), "logit", b * x) for b in grid])
    inside = grid[prof <= stats.chi2.ppf(0.95, 1)]
    assert fit.ci_low == pytest.approx(inside.min(), abs=3e-3)
    assert fit.ci_high == pytest.approx(inside.max(), abs=3e-3)
    assert fit.ci_low < LOG10 < fit.ci_high


def test_a_falling_slope_gets_both_ends_of_its_interval():
    up = slope_test(np.array([5.0, 20.0]), np.array([30.0, 30.0]), np.array([3.0, 4.0]))
    down = slope_test(np.array([20.0, 5.0]), np.array([30.0, 30.0]), np.array([3.0, 4.0]))
    assert down.coef == pytest.approx(-up.coef)
    assert (down.ci_low, down.ci_high) == pytest.approx((-up.ci_high, -up.ci_low), abs=1e-5)


def test_separated_slope_is_unbounded_with_a_finite_profile_limit():
    failed, n, x = np.array([0.0, 30.0]), np.array([30.0, 30.0]), np.array([3.0, 4.0])
    fit = slope_test(failed, n, x)
    assert fit.separated and not fit.ok
    assert fit.coef == math.inf and fit.ci_high == math.inf
    assert 0 < fit.ci_low < math.inf
    # at the finite limit the profile deviance exceeds its infimum (0: every group fitted) by chi2(0.95, 1)
    dev = intercept_deviance(failed, n, fit.ci_low * x)
    assert dev == pytest.approx(stats.chi2.ppf(0.95, 1), abs=1e-4)
    assert fit.p_value < 1e-10
    # quasi-complete (0/30 vs 5/30): still unbounded, and the limit is below the 0/30 vs 30/30 one
    weak = slope_test(np.array([0.0, 5.0]), n, x)
    assert weak.separated and weak.coef == math.inf and 0 < weak.ci_low < fit.ci_low


@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_intercept_deviance_matches_statsmodels(link):
    k, n, off = np.array([3.0, 7.0, 1.0]), np.array([10.0, 20.0, 5.0]), np.array([0.1, 2.0, -1.0])
    assert intercept_deviance(k, n, off, link) == pytest.approx(deviance(k, n, np.ones((3, 1)), link, off), rel=1e-7)


def test_slope_interval_covers_the_true_slope_in_a_two_size_design():
    """30 runs at each of two sizes a decade apart, failure probabilities 0.2 and 0.6: the
    95% profile-likelihood interval should cover the true log-odds slope about 95% of the time."""
    rng = np.random.default_rng(7)
    truth = math.log(0.6 / 0.4) - math.log(0.2 / 0.8)
    n, x = np.array([30.0, 30.0]), np.array([3.0, 4.0])
    reps, covered, finite = 300, 0, 0
    for _ in range(reps):
        k = rng.binomial(30, [0.2, 0.6]).astype(float)
        fit = slope_test(k, n, x)
        finite += fit.ok
        covered += fit.ci_low <= truth <= fit.ci_high
    assert finite >= reps - 2  # 0/30 at p = 0.2 has probability 0.8^30 ~ 0.1%
    assert 0.91 <= covered / reps <= 0.99
