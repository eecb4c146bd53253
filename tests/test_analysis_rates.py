"""failure_rates and wilson_interval on hand-made frames with known counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis import failure_rates, wilson_interval
from harness.analysis.synthetic import results_frame

# Wilson 95% interval of 3/10, from the closed form (z = 1.959964): 0.10779 .. 0.60322
WILSON_3_OF_10 = (0.107789, 0.603222)


def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson_interval([3, 0, 10, 0], [10, 10, 10, 0])
    assert lo[0] == pytest.approx(WILSON_3_OF_10[0], abs=1e-5)
    assert hi[0] == pytest.approx(WILSON_3_OF_10[1], abs=1e-5)
    assert lo[1] == 0.0 and hi[2] == 1.0  # exact ends, no floating-point dust
    assert math.isnan(lo[3]) and math.isnan(hi[3])  # no runs: no interval


def _frame():
    rows = [{"precision": "fp32", "n_failed": 1 if i < 3 else 0, "seed": i} for i in range(10)]
    rows += [{"precision": "fp16", "n_failed": 5, "seed": i} for i in range(4)]
    rows += [{"precision": "fp16", "status": "error", "error": "RuntimeError: boom", "seed": 10 + i} for i in range(2)]
    rows += [{"precision": "bf16", "status": "crashed", "seed": 20}]
    return results_frame(rows)


def test_run_level_counts_rate_and_interval():
    out = failure_rates(_frame(), by=["precision"]).set_index("precision")
    fp32 = out.loc["fp32"]
    assert (fp32.n, fp32.failed, fp32.incomplete) == (10, 3, 0)
    assert fp32.rate == pytest.approx(0.3)
    assert (fp32.ci_low, fp32.ci_high) == pytest.approx(WILSON_3_OF_10, abs=1e-5)
    fp16 = out.loc["fp16"]
    assert (fp16.n, fp16.failed, fp16.incomplete, fp16.runs) == (4, 4, 2, 4)


def test_runs_that_did_not_complete_are_reported_apart_never_dropped():
    out = failure_rates(_frame(), by=["precision"]).set_index("precision")
    bf16 = out.loc["bf16"]  # a group whose only run crashed still has its row
    assert bf16.n == 0 and bf16.incomplete == 1 and math.isnan(bf16.rate)
    assert out["incomplete"].sum() == 3


def test_check_level_sums_evaluations():
    out = failure_rates(_frame(), by=["precision"], level="check").set_index("precision")
    assert (out.loc["fp32", "n"], out.loc["fp32", "failed"]) == (1000, 3)
    assert (out.loc["fp16", "n"], out.loc["fp16", "failed"]) == (400, 20)
    assert out.loc["fp16", "incomplete"] == 2  # errored runs add no evaluations but are counted
    lo, hi = wilson_interval(3, 1000)
    assert out.loc["fp32", "ci_low"] == pytest.approx(lo[0])


def test_run_level_without_check_collapses_a_runs_checks():
    rows = []
    for run in range(4):  # each run has two checks; runs 0 and 1 fail one check each
        rows += [{"run_id": f"r{run}", "check": "a", "n_failed": int(run == 0)},
                 {"run_id": f"r{run}", "check": "b", "n_failed": int(run == 1)}]
    df = results_frame(rows)
    per_run = failure_rates(df, by=None)
    assert (per_run.loc[0, "n"], per_run.loc[0, "failed"]) == (4, 2)
    per_check = failure_rates(df, by=["check"]).set_index("check")
    assert per_check["n"].tolist() == [4, 4] and per_check["failed"].tolist() == [1, 1]


def test_null_axis_values_form_their_own_group():
    df = results_frame([{"clip_value": np.nan, "n_failed": 1}, {"clip_value": 1.0}, {"clip_value": np.nan}])
    out = failure_rates(df, by=["clip_value"])
    assert len(out) == 2
    none = out[out["clip_value"].isna()].iloc[0]
    assert (none.n, none.failed) == (2, 1)


def test_a_sweep_still_running_counts_finished_part_files_only(tmp_path):
    from harness.analysis.synthetic import synthetic_results, write_results
    from harness.store import load_results

    df = synthetic_results(seeds=range(6), eval_rate=0.0)
    write_results(df, str(tmp_path), parts=3)
    (tmp_path / ".part99999.parquet.123.abc.tmp").write_bytes(b"half a file")  # a part being written
    out = failure_rates(load_results(tmp_path), by=["check"])
    assert out.loc[0, "n"] == 6 and out.loc[0, "incomplete"] == 0


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="level"):
        failure_rates(_frame(), level="evaluation")  # type: ignore[arg-type]
