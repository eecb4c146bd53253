"""decompose and explain_rise: the evaluation count, with known answers."""

from __future__ import annotations

import pytest

from harness.analysis import decompose, explain_rise
from harness.analysis.synthetic import results_frame, synthetic_results

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
    assert row.verdict.startswith("explained by the number of evaluations")
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


def test_a_rise_with_a_fixed_step_count_cannot_be_the_count():
    df = synthetic_results(data_sizes=SIZES, seeds=range(200), steps=50, seed=7,
                           eval_rate=lambda d: 2e-4 * d["data_size"].to_numpy() / 1000)
    row = explain_rise(df).iloc[0]
    assert row.evals_smallest == row.evals_largest == 50
    assert "cannot explain" in row.verdict


def test_no_rise_means_nothing_to_explain():
    df = synthetic_results(data_sizes=SIZES, seeds=range(200), steps=100, eval_rate=1e-3, seed=8)
    assert "nothing to explain" in explain_rise(df).iloc[0].verdict
