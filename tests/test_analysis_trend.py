"""trend: a rise that exists, one that does not, two sizes, separation judged from the data, statuses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis import trend
from synthetic import results_frame, synthetic_results

SIZES = (100, 1000, 10_000, 100_000)


def test_a_rise_with_data_size_is_found():
    # one epoch: steps = size / 32, a constant 2e-4 per evaluation -> run failure 0.08% .. 46%
    df = synthetic_results(data_sizes=SIZES, seeds=range(150), steps=None, epochs=1, eval_rate=2e-4, seed=1)
    row = trend(df).iloc[0]
    assert row.sizes == 4 and row.runs == 600
    assert row.slope > 0 and row.ci_low > 0 and row.odds_ratio > 1
    assert row.p_value < 1e-6
    assert row.method.startswith("logistic")
    assert row.verdict.startswith("rises with data size") and row.status == "rises"
    assert row.rate_largest > row.rate_smallest and row.diff_ci_low > 0


def test_no_trend_when_the_run_failure_rate_does_not_depend_on_size():
    # fixed 100 steps and a constant per-evaluation rate: 9.5% of runs fail at every size
    df = synthetic_results(data_sizes=SIZES, seeds=range(150), steps=100, eval_rate=1e-3, seed=2)
    row = trend(df).iloc[0]
    assert row.p_value > 0.05
    assert row.ci_low < 0 < row.ci_high  # the interval and the p-value agree (same likelihood)
    assert row.verdict.startswith("no evidence of a trend") and row.status == "flat"


def test_a_falling_rate_is_called_falling():
    df = synthetic_results(data_sizes=SIZES, seeds=range(150), steps=100,
                           eval_rate=lambda d: 1e-2 / (d["data_size"].to_numpy() / 100), seed=3)
    row = trend(df).iloc[0]
    assert row.slope < 0 and row.p_value < 0.05 and row.verdict.startswith("falls") and row.status == "falls"


def test_complete_separation_falls_back_to_the_trend_test():
    rows = [{"data_size": 100, "seed": i} for i in range(15)]
    rows += [{"data_size": 10_000, "seed": i, "n_failed": 3} for i in range(15)]
    row = trend(results_frame(rows)).iloc[0]
    assert "Cochran-Armitage" in row.method
    assert row.slope == math.inf and row.p_value < 1e-4
    assert row.status == "rises"
    assert row.verdict.startswith("rises with data size") and "unbounded" in row.verdict


def _two_sizes(k_small: int, k_large: int, runs: int = 30, sizes=(1000, 10_000)):
    rows = [{"data_size": sizes[0], "seed": i, "n_failed": int(i < k_small)} for i in range(runs)]
    rows += [{"data_size": sizes[1], "seed": i, "n_failed": int(i < k_large)} for i in range(runs)]
    return results_frame(rows)


def test_two_sizes_give_a_finite_slope_and_the_right_odds_ratio():
    # 5/30 at 1,000 vs 20/30 at 10,000: odds 5/25 = 0.2 and 20/10 = 2, so the odds ratio per 10x is exactly 10
    row = trend(_two_sizes(5, 20)).iloc[0]
    assert row.method.startswith("logistic regression")
    assert row.slope == pytest.approx(math.log(10), rel=1e-8)
    assert row.odds_ratio == pytest.approx(10.0, rel=1e-8)
    assert row.ci_low < math.log(10) < row.ci_high and row.ci_low > 0
    assert (np.exp(row.ci_low), np.exp(row.ci_high)) == pytest.approx((3.13, 37.3), rel=0.01)
    assert row.p_value == pytest.approx(5.47e-5, rel=0.01)
    assert row.status == "rises"
    assert "infinite" not in row.verdict and "unbounded" not in row.verdict and "x10 per 10x" in row.verdict


def test_separated_data_are_detected_from_the_data():
    row = trend(_two_sizes(0, 30)).iloc[0]
    assert row.status == "rises" and "Cochran-Armitage" in row.method
    assert row.slope == math.inf and row.ci_high == math.inf
    assert 0 < row.ci_low < math.inf  # the finite end of the profile-likelihood interval
    assert row.p_value < 1e-10 and "unbounded" in row.verdict and "at least" in row.verdict
    down = trend(_two_sizes(30, 0)).iloc[0]
    assert down.status == "falls" and down.slope == -math.inf and down.ci_high == pytest.approx(-row.ci_low)
    weak = trend(_two_sizes(0, 1)).iloc[0]  # separated, but one failure is no evidence
    assert weak.status == "flat" and weak.slope == math.inf and weak.p_value > 0.05


def test_a_check_that_fails_in_most_runs_is_flat_not_good():
    from harness.analysis import TrendVerdict

    row = trend(_two_sizes(25, 26)).iloc[0]
    assert row.status == "flat" and TrendVerdict(row.status).tone == "neutral"
    assert row.verdict.startswith("no evidence of a trend") and "85% of runs fail overall" in row.verdict


def test_the_report_colours_from_the_status_not_the_wording():
    from harness.report.sections import trend as section

    tr = trend(pd.concat([_two_sizes(25, 26), _two_sizes(5, 20).assign(check="b", run_id=lambda d: d.run_id + "b")]))
    def rows(page: str) -> list[str]:
        return [r for r in page.split("<tbody>")[1].split("<tr>") if r]

    flat, rises = (next(r for r in rows(section.body(tr)) if words in r)
                   for words in ("no evidence of a trend", "rises with data size"))
    assert "good" not in flat and "bad" not in flat  # the wording ("no evidence") used to make it green
    assert "class='bad'" in rises
    swapped = tr.assign(status=np.where(tr["status"] == "flat", "rises", "flat"))  # colour follows the status
    flat = next(r for r in rows(section.body(swapped)) if "no evidence of a trend" in r)
    assert "class='bad'" in flat


def test_default_smoke_like_sweep_with_two_sizes_gets_a_finite_slope():
    df = synthetic_results(data_sizes=(1000, 10_000), seeds=range(40), steps=None, epochs=1, eval_rate=1e-3, seed=4)
    row = trend(df).iloc[0]
    assert row.sizes == 2 and 0 < row.rate_smallest < 1 and 0 < row.rate_largest < 1
    assert np.isfinite(row.slope) and np.isfinite(row.ci_low) and np.isfinite(row.ci_high)
    assert row.method.startswith("logistic regression") and row.status == "rises"


def test_degenerate_inputs_are_said_in_words():
    one = results_frame([{"data_size": 1000, "seed": i, "n_failed": i % 2} for i in range(6)])
    assert trend(one).iloc[0].verdict.startswith("one data size only")
    assert trend(one).iloc[0].status == "not_enough_data"
    never = results_frame([{"data_size": s, "seed": i} for s in SIZES for i in range(3)])
    assert trend(never).iloc[0].verdict.startswith("never fails")
    assert trend(never).iloc[0].status == "never_fails"
    always = results_frame([{"data_size": s, "seed": i, "n_failed": 1} for s in SIZES for i in range(3)])
    row = trend(always).iloc[0]
    assert row.verdict.startswith("fails in every run") and np.isnan(row.p_value)
    assert row.status == "always_fails"


def test_status_values_are_the_enum_and_carry_a_tone():
    from harness.analysis import TrendVerdict

    assert {v.value for v in TrendVerdict} == {"rises", "falls", "flat", "never_fails", "always_fails",
                                               "not_enough_data"}
    assert TrendVerdict("rises").tone == "bad" and TrendVerdict("falls").tone == "good"
    assert TrendVerdict("flat").tone == "neutral" and TrendVerdict("always_fails").tone == "bad"


def test_other_axes_on_request_and_errored_runs_do_not_count():
    rows = [{"data_size": s, "batch_size": b, "seed": i, "n_failed": int(s == 10_000 and i < 2)}
            for s in (100, 10_000) for b in (32, 64) for i in range(5)]
    rows += [{"data_size": 100, "batch_size": 32, "seed": 99, "status": "timeout"}]
    out = trend(results_frame(rows), by=["check", "batch_size"])
    assert out["batch_size"].tolist() == [32, 64]
    assert out["runs"].tolist() == [10, 10]  # the timed-out run is not a run that passed
