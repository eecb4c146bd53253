"""failure_rates, wilson_interval and cluster_interval: known counts, and coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis import cluster_interval, failure_rates, wilson_interval
from synthetic import results_frame

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
    assert (out["interval"] == "cluster").all() and out.attrs["interval"] == "cluster"
    assert "clusters" in out.attrs["interval_method"]
    naive = failure_rates(_frame(), by=["precision"], level="check", interval="naive").set_index("precision")
    lo, hi = wilson_interval(3, 1000)
    assert naive.loc["fp32", "ci_low"] == pytest.approx(lo[0]) and naive.loc["fp32", "ci_high"] == pytest.approx(hi[0])
    assert (naive["interval"] == "naive").all() and naive.attrs["interval"] == "naive"
    assert "naive" in naive.attrs["interval_method"]
    # fp16: every run fails 5 of its 100 evaluations, no between-run spread: the design effect is 1
    assert out.loc["fp16", "design_effect"] == pytest.approx(1.0)
    # 10 and 4 runs: fewer than CLUSTER_MIN_RUNS, so no clustered interval, and the note says why
    assert out[["ci_low", "ci_high"]].isna().all().all() and not out["interval_ok"].any()
    assert out.loc["fp32", "note"].startswith("10 runs with evaluations, fewer than 30")
    assert naive["interval_ok"].loc[["fp32", "fp16"]].all() and naive.loc["fp32", "note"].startswith("naive")
    run_level = failure_rates(_frame(), by=["precision"])
    assert (run_level["interval"] == "wilson").all() and run_level["design_effect"].isna().all()


def test_cluster_interval_by_hand():
    # 30 runs of 50 evaluations: 20 never fail, the others fail 1, 2, ..., 10 times
    k, n = np.r_[np.zeros(20), np.arange(1.0, 11.0)], np.full(30, 50.0)
    lo, hi, deff = cluster_interval(k, n)
    r = k.sum() / n.sum()
    resid = k - r * n
    var = 30 / 29 * (resid**2).sum() / n.sum() ** 2
    assert deff[0] == pytest.approx(var / (r * (1 - r) / n.sum()))
    # 1. Korn-Graubard, df = runs with a failure - 1 = 9 (not runs - 1 = 29)
    n_eff = n.sum() / deff[0] * (stats.norm.ppf(0.975) / stats.t.ppf(0.975, 9)) ** 2
    kg = (stats.beta.ppf(0.025, r * n_eff, n_eff - r * n_eff + 1),
          stats.beta.ppf(0.975, r * n_eff + 1, n_eff - r * n_eff))
    # 2. Hall's transform of the studentised rate, skewness of u = resid / mean n, t with 29 df
    u = resid / 50
    skew = (u**3).mean() / (u**2).mean() ** 1.5
    a, c = skew / (3 * math.sqrt(30)), stats.t.ppf(0.975, 29)

    def g_inv(x):
        return (np.cbrt(1 + 3 * a * (x - skew / (6 * math.sqrt(30)))) - 1) / a

    hall = (r - math.sqrt(var) * g_inv(c), r - math.sqrt(var) * g_inv(-c))
    assert lo[0] == pytest.approx(min(kg[0], hall[0]))
    assert hi[0] == pytest.approx(max(kg[1], hall[1]))
    assert hall[1] - r > r - hall[0]  # right-skewed rates: the upper side is the longer
    one = cluster_interval(np.array([3.0]), np.array([10.0]))  # one run: no between-run variance
    assert all(math.isnan(v[0]) for v in one)


def test_cluster_interval_without_any_failure_is_wide_not_empty():
    # no run failed: nothing says how failures cluster, so df = 1 and the upper end is far
    # above the naive 3 / evaluations (Clopper-Pearson over 1500 evaluations: 0.0025)
    lo, hi, deff = cluster_interval(np.zeros(30), np.full(30, 50.0))
    assert lo[0] == 0.0 and deff[0] == 1.0
    n_eff = 1500 * (stats.norm.ppf(0.975) / stats.t.ppf(0.975, 1)) ** 2
    assert hi[0] == pytest.approx(stats.beta.ppf(0.975, 1, n_eff))
    assert hi[0] > 10 * wilson_interval(0, 1500)[1][0]


def test_without_check_in_by_a_runs_checks_form_one_cluster():
    rows = []
    for run in range(30):  # both checks of a run fail together: the run, not the row, is the unit
        k = 4 if run < 6 else 0
        rows += [{"run_id": f"r{run}", "check": c, "n_failed": k, "n_evaluated": 10} for c in ("a", "b")]
    df = results_frame(rows)
    pooled = failure_rates(df, by=None, level="check").iloc[0]
    k = np.r_[np.full(6, 8.0), np.zeros(24)]
    lo, hi, deff = cluster_interval(k, np.full(30, 20.0))
    assert (pooled.ci_low, pooled.ci_high, pooled.design_effect) == pytest.approx((lo[0], hi[0], deff[0]))
    assert pooled.interval_ok and pooled.note == ""


def _clustered_sweep(rng: np.random.Generator, reps: int, runs: int, evals: int, a: float | None, b: float):
    """``reps`` independent sweeps (column rep) of ``runs`` runs with ``evals`` evaluations each;
    a run's per-evaluation failure probability is Beta(a, b) (constant b when a is None)."""
    p = rng.beta(a, b, (reps, runs)) if a else np.full((reps, runs), b)
    k = rng.binomial(evals, p).ravel()
    return pd.DataFrame({"rep": np.repeat(np.arange(reps), runs), "run_id": np.arange(reps * runs).astype(str),
                         "check": "c", "status": "ok", "passed": k == 0, "n_evaluated": evals, "n_failed": k,
                         "n_nonfinite": 0})


def _coverage(df: pd.DataFrame, truth: float, interval: str) -> tuple[float, np.ndarray]:
    out = failure_rates(df, by=["rep"], level="check", interval=interval)
    return float(((out.ci_low <= truth) & (truth <= out.ci_high)).mean()), (out.ci_high - out.ci_low).to_numpy()


@pytest.mark.parametrize("a, b, runs, evals", [(0.5, 24.5, 30, 100), (0.2, 19.8, 60, 1000)])
def test_clustered_interval_covers_the_mean_per_evaluation_rate(a, b, runs, evals):
    """Per-run rates ~ Beta(a, b) (mean 0.02 / 0.01; intra-run correlation 0.04 / 0.05, design
    effect ~4 / ~40): the clustered 95% interval covers the mean per-evaluation rate about 95%
    of the time; the naive Wilson interval over evaluations undercovers badly."""
    df = _clustered_sweep(np.random.default_rng(3), 400, runs, evals, a, b)
    truth = a / (a + b)
    covered, width = _coverage(df, truth, "cluster")
    naive, naive_width = _coverage(df, truth, "naive")
    assert covered >= 0.90
    assert naive < 0.75
    assert np.median(width / naive_width) > 1.8  # sqrt(design effect)


def test_without_clustering_the_interval_stays_close_to_wilson():
    df = _clustered_sweep(np.random.default_rng(4), 400, 30, 100, None, 0.02)
    covered, width = _coverage(df, 0.02, "cluster")
    _, naive_width = _coverage(df, 0.02, "naive")
    assert covered >= 0.93
    assert np.median(width / naive_width) < 1.2


def test_unknown_interval_is_refused():
    with pytest.raises(ValueError, match="interval"):
        failure_rates(_frame(), level="check", interval="bootstrap")  # type: ignore[arg-type]


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
    from synthetic import synthetic_results, write_results
    from harness.store import load_results

    df = synthetic_results(seeds=range(6), eval_rate=0.0)
    write_results(df, str(tmp_path), parts=3)
    (tmp_path / ".part99999.parquet.123.abc.tmp").write_bytes(b"half a file")  # a part being written
    out = failure_rates(load_results(tmp_path), by=["check"])
    assert out.loc[0, "n"] == 6 and out.loc[0, "incomplete"] == 0


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="level"):
        failure_rates(_frame(), level="evaluation")  # type: ignore[arg-type]
