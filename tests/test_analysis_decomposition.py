"""decompose and explain_rise: the evaluation count, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import decompose, explain_rise, wilson_interval
from synthetic import results_frame, synthetic_results

SIZES = (1000, 10_000, 100_000)


def test_expected_run_rate_follows_from_the_per_evaluation_rate():
    # 4 runs x 10 evaluations, 2 failing evaluations: p = 0.05 -> 1 - 0.95^10 = 0.401263
    rows = [{"n_evaluated": 10, "n_failed": k, "seed": i} for i, k in enumerate([1, 0, 0, 1])]
    rows.append({"status": "error", "seed": 9})
    row = decompose(results_frame(rows), by=["check"]).iloc[0]
    assert (row.runs, row.failed_runs, row.evaluations, row.failed_evaluations) == (4, 2, 40, 2)
    assert row.eval_rate == pytest.approx(0.05)
    assert row.expected_run_rate == pytest.approx(1 - 0.95**10)
    assert row.run_rate == pytest.approx(0.5)
    assert row.observed_over_expected == pytest.approx(0.5 / (1 - 0.95**10))
    assert row.incomplete == 1 and row.mean_evaluations == 10


def test_expected_run_rate_uses_each_runs_own_evaluation_count():
    rows = [{"n_evaluated": 10, "n_failed": 1}, {"n_evaluated": 30, "n_failed": 0, "seed": 1}]
    row = decompose(results_frame(rows), by=["check"]).iloc[0]
    p = 1 / 40
    assert row.expected_run_rate == pytest.approx(((1 - (1 - p) ** 10) + (1 - (1 - p) ** 30)) / 2)


def test_a_rise_explained_by_the_evaluation_count():
    # one epoch: 32x, 313x, 3125x evaluations per run; the per-evaluation rate is constant
    df = synthetic_results(data_sizes=SIZES, seeds=range(300), steps=None, epochs=1, eval_rate=1e-4, seed=5)
    row = explain_rise(df).iloc[0]
    assert row.total_slope > 0 and row.total_p < 1e-6  # run failures do rise with data size ...
    assert row.beyond_p > 0.05  # ... but not beyond what the count predicts
    assert row.beyond_ci_low < 0 < row.beyond_ci_high
    assert row.verdict.startswith("explained by the number of evaluations") and row.status == "explained"
    assert row.evals_largest / row.evals_smallest == pytest.approx(3125 / 32, rel=0.01)
    dec = decompose(df, by=["check", "data_size"])
    assert (dec["observed_over_expected"] - 1).abs().max() < 0.35  # independent evaluations: observed ~ expected


def test_a_rise_not_explained_by_the_evaluation_count():
    # the per-evaluation rate itself grows 10x per 10x data, on top of the count
    df = synthetic_results(data_sizes=SIZES, seeds=range(300), steps=None, epochs=1, seed=6,
                           eval_rate=lambda d: 1e-5 * d["data_size"].to_numpy() / 1000)
    row = explain_rise(df).iloc[0]
    assert row.beyond_slope > 0 and row.beyond_p < 1e-3
    assert row.hazard_ratio_beyond > 1
    assert row.verdict.startswith("not explained by the number of evaluations alone")
    assert row.status == "not_explained"


def test_a_rise_with_a_fixed_step_count_cannot_be_the_count():
    df = synthetic_results(data_sizes=SIZES, seeds=range(200), steps=50, seed=7,
                           eval_rate=lambda d: 2e-4 * d["data_size"].to_numpy() / 1000)
    row = explain_rise(df).iloc[0]
    assert row.evals_smallest == row.evals_largest == 50
    assert "cannot explain" in row.verdict and row.status == "rate_rises"


def test_no_rise_means_nothing_to_explain():
    df = synthetic_results(data_sizes=SIZES, seeds=range(200), steps=100, eval_rate=1e-3, seed=8)
    row = explain_rise(df).iloc[0]
    assert "nothing to explain" in row.verdict and row.status == "no_rise"


def _two_sizes(k_small: int, k_large: int, runs: int = 30):
    """30 runs at 1,000 (31 evaluations each) and at 10,000 (313 each)."""
    rows = [{"data_size": 1000, "seed": i, "n_evaluated": 31, "n_failed": int(i < k_small)} for i in range(runs)]
    rows += [{"data_size": 10_000, "seed": i, "n_evaluated": 313, "n_failed": int(i < k_large)} for i in range(runs)]
    return results_frame(rows)


def test_two_sizes_get_finite_slopes():
    # 5/30 -> 20/30 with 10x the evaluations: a finite cloglog slope with and without the count
    row = explain_rise(_two_sizes(5, 20)).iloc[0]
    h1, h2 = -np.log1p(-5 / 30), -np.log1p(-20 / 30)  # cloglog: log(-log(1 - p)) per size, saturated
    assert row.total_slope == pytest.approx(np.log(h2) - np.log(h1), rel=1e-6)
    assert row.beyond_slope == pytest.approx(np.log(h2 / 313) - np.log(h1 / 31), rel=1e-5)
    assert row.beyond_ci_low < row.beyond_slope < row.beyond_ci_high
    assert row.status == "explained"


def test_separated_sizes_keep_a_finite_limit_and_a_verdict():
    # 0/30 at the smallest size: the slopes are unbounded, yet 10x the evaluations explain 0 -> 5 failures
    row = explain_rise(_two_sizes(0, 5)).iloc[0]
    assert row.total_slope == np.inf and row.beyond_slope == np.inf and row.beyond_ci_high == np.inf
    assert np.isfinite(row.beyond_ci_low) and row.beyond_ci_low < 0 and row.beyond_p > 0.05
    assert row.status == "explained" and "unbounded" in row.verdict
    # 0/30 -> 30/30 is far more than 10x the evaluations can do
    row = explain_rise(_two_sizes(0, 30)).iloc[0]
    assert row.status == "not_explained" and row.beyond_ci_low > 0 and row.beyond_p < 1e-3


def test_degenerate_rise_statuses():
    from harness.analysis import RiseVerdict

    assert explain_rise(_two_sizes(0, 0)).iloc[0].status == "never_fails"
    assert explain_rise(_two_sizes(30, 30)).iloc[0].status == "always_fails"
    one = results_frame([{"seed": i, "n_failed": i % 2} for i in range(6)])
    assert explain_rise(one).iloc[0].status == "not_enough_data"
    assert RiseVerdict("explained").tone == "good" and RiseVerdict("not_explained").tone == "bad"
    assert RiseVerdict("no_rise").tone == "neutral"


def test_per_evaluation_interval_treats_runs_as_clusters():
    # 20 runs of 100 evaluations: 2 runs fail 40 times each, the others never. Wilson over 2,000
    # evaluations would say 4.0% [3.2%, 5.0%]; with runs as clusters the interval is far wider.
    rows = [{"seed": i, "n_failed": 40 if i < 2 else 0} for i in range(20)]
    row = decompose(results_frame(rows), by=["check"]).iloc[0]
    assert row.eval_rate == pytest.approx(0.04)
    naive_lo, naive_hi = wilson_interval(80, 2000)
    assert row.eval_ci_low < naive_lo[0] and row.eval_ci_high > naive_hi[0]
    assert (row.eval_ci_high - row.eval_ci_low) > 4 * (naive_hi[0] - naive_lo[0])
    assert row.eval_ci_low <= 0.04 <= row.eval_ci_high
