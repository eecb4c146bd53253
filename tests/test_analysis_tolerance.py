"""Tolerance calibration: recommended bounds hold on held-out seeds; the GPD tail fit and
its refusals; both comparison directions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.analysis import calibrate_tolerance, pot_quantile, split_seeds
from harness.analysis.synthetic import results_frame, synthetic_results

STEPS, RATE, SCALE = 50, 0.01, 0.1


def true_quantile(q: float, bound: float, sign: float = 1.0) -> float:
    """Quantile q of a run's worst value in synthetic_results: the max of STEPS normals."""
    z = stats.norm.ppf(q ** (1 / STEPS)) - stats.norm.ppf(1 - RATE)
    return bound + sign * SCALE * z


def test_split_seeds_holds_out_the_largest_seeds():
    assert split_seeds(range(10), 0.3) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    assert split_seeds([3], 0.3) == ([3], [])  # a single seed leaves nothing to hold out
    assert split_seeds(range(4), [0, 2]) == ([1, 3], [0, 2])
    with pytest.raises(ValueError):
        split_seeds(range(4), 1.5)


@pytest.fixture(scope="module")
def big() -> "object":
    checks = {"loss_below": ("below", 1.0), "out_min": ("above", 0.0)}
    return synthetic_results(checks=checks, seeds=range(4000), steps=STEPS, eval_rate=RATE, scale=SCALE, seed=11)


def test_recommended_bound_holds_on_held_out_seeds(big):
    tol = calibrate_tolerance(big, by=["check"], target=0.01).set_index("check")
    row = tol.loc["loss_below"]
    assert row.direction == "below" and row.rate > 0.3  # the bound in use fails often
    assert (row.n_calib, row.n_heldout) == (2800, 1200)
    truth = true_quantile(0.99, 1.0)
    assert row.empirical_bound == pytest.approx(truth, abs=0.03)
    assert np.isfinite(row.evt_bound), row.evt_note  # 560 runs in the tail: the GPD fit is used
    assert row.evt_bound == pytest.approx(truth, abs=0.03)
    assert row.recommended_from == "extreme value (GPD)"
    assert row.empirical_heldout_rate <= 0.02 and row.evt_heldout_rate <= 0.02
    assert row.verdict.startswith("holds")


def test_a_lower_bound_check_is_calibrated_downwards(big):
    row = calibrate_tolerance(big, by=["check"], target=0.01).set_index("check").loc["out_min"]
    assert row.direction == "above"
    truth = true_quantile(0.99, 0.0, sign=-1.0)  # the 1% lower quantile of the worst (smallest) value
    assert row.empirical_bound == pytest.approx(truth, abs=0.03)
    assert row.recommended_bound < 0.0  # looser than the bound in use, on the low side
    assert row.verdict.startswith("holds")


def test_a_tight_target_moves_the_bound_outwards(big):
    loose = calibrate_tolerance(big, by=["check"], target=0.05).set_index("check")
    tight = calibrate_tolerance(big, by=["check"], target=0.005).set_index("check")
    assert tight.loc["loss_below", "empirical_bound"] > loose.loc["loss_below", "empirical_bound"]
    assert tight.loc["out_min", "empirical_bound"] < loose.loc["out_min", "empirical_bound"]


def test_small_configurations_say_why_there_is_no_tail_fit():
    df = synthetic_results(seeds=range(10), steps=STEPS, eval_rate=RATE, scale=SCALE)
    row = calibrate_tolerance(df, by=["check"]).iloc[0]
    assert np.isnan(row.evt_bound) and row.evt_note.startswith("tail too small")
    assert row.recommended_from == "empirical quantile"
    assert "maximum of 7 calibration runs" in row.note


def test_nan_runs_beyond_the_target_leave_no_bound():
    rows = [{"seed": i, "n_failed": 1, "n_nonfinite": 1, "worst_value": np.nan, "worst_margin": -np.inf}
            for i in range(3)]
    rows += [{"seed": i, "worst_value": 0.5 + i / 100, "worst_margin": 0.5 - i / 100} for i in range(3, 20)]
    row = calibrate_tolerance(results_frame(rows), by=["check"]).iloc[0]
    assert row.recommended_from == "none" and row.verdict == "no recommendation"
    assert "NaN/Inf" in row.note


def test_a_single_seed_is_calibrated_but_not_validated():
    df = synthetic_results(seeds=[0], data_sizes=(100, 1000), steps=STEPS, eval_rate=RATE)
    tol = calibrate_tolerance(df)
    assert tol["n_heldout"].eq(0).all() and tol["recommended_bound"].notna().all()
    assert tol["verdict"].str.startswith("not validated").all()


def test_gpd_tail_quantile_recovers_a_known_quantile():
    x = stats.genpareto.rvs(0.2, scale=1.0, size=5000, random_state=np.random.default_rng(0))
    fit = pot_quantile(x, 0.001)
    assert fit.ok, fit.note
    assert fit.value == pytest.approx(stats.genpareto.ppf(0.999, 0.2), rel=0.2)
    assert fit.shape == pytest.approx(0.2, abs=0.15)


def test_gpd_refusals_have_reasons():
    rng = np.random.default_rng(1)
    assert "tail too small" in pot_quantile(rng.normal(size=40), 0.01).note
    assert "distinct value" in pot_quantile(np.r_[np.zeros(400), np.ones(100)], 0.001).note
    # a two-cluster tail no GPD describes: the goodness-of-fit test rejects it
    lumpy = np.r_[rng.normal(size=2000), 3 + rng.uniform(0, 0.01, 400), 9 + rng.uniform(0, 0.01, 100)]
    fit = pot_quantile(lumpy, 0.001)
    assert not fit.ok and "rejected" in fit.note and np.isnan(fit.value)


def test_anderson_darling_goodness_of_fit_is_available():
    x = stats.genpareto.rvs(0.1, scale=2.0, size=300, random_state=np.random.default_rng(3))
    fit = pot_quantile(x, 0.01, gof="ad", tail_fraction=0.3)
    assert fit.ok and "Anderson-Darling" in fit.note and 0 <= fit.gof_p <= 1
