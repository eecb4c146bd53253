"""trend: a rise that exists, one that does not, separation and degenerate inputs."""

from __future__ import annotations

import math

import numpy as np

from harness.analysis import trend
from harness.analysis.synthetic import results_frame, synthetic_results

SIZES = (100, 1000, 10_000, 100_000)


def test_a_rise_with_data_size_is_found():
    # one epoch: steps = size / 32, a constant 2e-4 per evaluation -> run failure 0.08% .. 46%
    df = synthetic_results(data_sizes=SIZES, seeds=range(150), steps=None, epochs=1, eval_rate=2e-4, seed=1)
    row = trend(df).iloc[0]
    assert row.sizes == 4 and row.runs == 600
    assert row.slope > 0 and row.ci_low > 0 and row.odds_ratio > 1
    assert row.p_value < 1e-6
    assert row.method.startswith("logistic")
    assert row.verdict.startswith("rises with data size")
    assert row.rate_largest > row.rate_smallest and row.diff_ci_low > 0


def test_no_trend_when_the_run_failure_rate_does_not_depend_on_size():
    # fixed 100 steps and a constant per-evaluation rate: 9.5% of runs fail at every size
    df = synthetic_results(data_sizes=SIZES, seeds=range(150), steps=100, eval_rate=1e-3, seed=2)
    row = trend(df).iloc[0]
    assert row.p_value > 0.05
    assert row.ci_low < 0 < row.ci_high  # the interval and the p-value agree (same likelihood)
    assert row.verdict.startswith("no evidence of a trend")


def test_a_falling_rate_is_called_falling():
    df = synthetic_results(data_sizes=SIZES, seeds=range(150), steps=100,
                           eval_rate=lambda d: 1e-2 / (d["data_size"].to_numpy() / 100), seed=3)
    row = trend(df).iloc[0]
    assert row.slope < 0 and row.p_value < 0.05 and row.verdict.startswith("falls")


def test_complete_separation_falls_back_to_the_trend_test():
    rows = [{"data_size": 100, "seed": i} for i in range(15)]
    rows += [{"data_size": 10_000, "seed": i, "n_failed": 3} for i in range(15)]
    row = trend(results_frame(rows)).iloc[0]
    assert "Cochran-Armitage" in row.method
    assert row.slope == math.inf and row.p_value < 1e-4
    assert row.verdict.startswith("rises with data size") and "infinite" in row.verdict


def test_degenerate_inputs_are_said_in_words():
    one = results_frame([{"data_size": 1000, "seed": i, "n_failed": i % 2} for i in range(6)])
    assert trend(one).iloc[0].verdict.startswith("one data size only")
    never = results_frame([{"data_size": s, "seed": i} for s in SIZES for i in range(3)])
    assert trend(never).iloc[0].verdict.startswith("never fails")
    always = results_frame([{"data_size": s, "seed": i, "n_failed": 1} for s in SIZES for i in range(3)])
    row = trend(always).iloc[0]
    assert row.verdict.startswith("fails in every run") and np.isnan(row.p_value)


def test_other_axes_on_request_and_errored_runs_do_not_count():
    rows = [{"data_size": s, "batch_size": b, "seed": i, "n_failed": int(s == 10_000 and i < 2)}
            for s in (100, 10_000) for b in (32, 64) for i in range(5)]
    rows += [{"data_size": 100, "batch_size": 32, "seed": 99, "status": "timeout"}]
    out = trend(results_frame(rows), by=["check", "batch_size"])
    assert out["batch_size"].tolist() == [32, 64]
    assert out["runs"].tolist() == [10, 10]  # the timed-out run is not a run that passed
