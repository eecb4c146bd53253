"""Tolerance calibration: a recommended bound only with a guarantee, what is missing
otherwise, both comparison directions, NaN runs, schema-1 rows, native fp16 bounds,
validation on held-out seeds and on a fresh sweep; the GPD tail fit and its refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis import calibrate_tolerance, pot_quantile, split_seeds
from synthetic import results_frame, synthetic_results
from harness.analysis.verdicts import BoundVerdict, ValidationVerdict

STEPS, RATE, SCALE = 50, 0.01, 0.1
CHECKS = {"loss_below": ("below", 1.0), "out_min": ("above", 0.0)}


def true_exceedance(b: float, bound: float, sign: float = 1.0) -> float:
    """P(a run's worst value lies beyond b) in synthetic_results: the max of STEPS normals."""
    z = sign * (b - bound) / SCALE + stats.norm.ppf(1 - RATE)
    return float(1 - stats.norm.cdf(z) ** STEPS)


def sweep(seeds: range, seed: int = 11, **kw: object) -> pd.DataFrame:
    return synthetic_results(checks=CHECKS, seeds=seeds, steps=STEPS, eval_rate=RATE, scale=SCALE, seed=seed,
                             **kw)  # type: ignore[arg-type]


def test_split_seeds_holds_out_the_largest_seeds():
    assert split_seeds(range(10), 0.3) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    assert split_seeds([3], 0.3) == ([3], [])  # a single seed leaves nothing to hold out
    assert split_seeds(range(4), [0, 2]) == ([1, 3], [0, 2])
    with pytest.raises(ValueError):
        split_seeds(range(4), 1.5)


@pytest.fixture(scope="module")
def enough() -> pd.DataFrame:
    return sweep(range(400))


def test_21_runs_recommend_nothing_and_say_how_many_more_are_needed():
    tol = calibrate_tolerance(sweep(range(21)), by=["check"]).set_index("check")
    for check in CHECKS:
        row = tol.loc[check]
        assert row.bound_status == BoundVerdict.NEEDS_RUNS.value and np.isnan(row.recommended_bound)
        assert (row.n, row.runs_needed, row.runs_missing) == (21, 299, 278)
        assert row.guarantee == "needs 278 more runs (have 21; a 1% guarantee at 95% needs 299)"
        assert "tail too small" in row.gpd_note and np.isnan(row.gpd_bound)
        assert row.validation_status == ValidationVerdict.NOT_VALIDATED.value


def test_enough_runs_give_a_guaranteed_bound(enough: pd.DataFrame):
    tol = calibrate_tolerance(enough, by=["check"])
    assert tol.attrs["target"] == 0.01 and tol.attrs["confidence"] == 0.95 and tol.attrs["runs_needed"] == 299
    row = tol.set_index("check").loc["loss_below"]
    worst = enough.loc[enough["check"] == "loss_below", "worst_value"]
    assert row.bound_status == BoundVerdict.GUARANTEED.value and row.op == "<="
    assert (row.n, row.order_rank, row.runs_missing) == (400, 1, 0)  # 400 runs: still the maximum
    assert row.recommended_bound == worst.max()  # op <=, exact: the order statistic itself
    assert row.guarantee == "false alarms <= 1% of runs with 95% confidence, from 400 runs"
    assert true_exceedance(row.recommended_bound, 1.0) <= 0.01
    assert row.achieved_confidence == pytest.approx(1 - 0.99 ** 400)
    # the bound in use fails often; its rate and interval are reported beside the recommendation
    assert row.rate == row.failed / row.runs > 0.3 and row.rate_ci_low < row.rate < row.rate_ci_high
    # the GPD extrapolation: labelled, near the truth, its confidence end beyond its point
    assert row.gpd_note.startswith("extrapolation") and row.gpd_bound > row.gpd_point
    assert true_exceedance(row.gpd_point, 1.0) == pytest.approx(0.01, abs=0.01)


def test_a_lower_bound_check_mirrors(enough: pd.DataFrame):
    row = calibrate_tolerance(enough, by=["check"]).set_index("check").loc["out_min"]
    worst = enough.loc[enough["check"] == "out_min", "worst_value"]
    assert row.op == ">=" and row.bound_status == BoundVerdict.GUARANTEED.value
    assert row.recommended_bound == worst.min() < 0.0  # looser than the bound in use, on the low side
    assert true_exceedance(row.recommended_bound, 0.0, sign=-1.0) <= 0.01
    assert row.gpd_bound < row.gpd_point  # the conservative end is the low one


def test_strict_ops_recommend_the_next_value_beyond_the_worst_run(enough: pd.DataFrame):
    strict = enough.assign(op=enough["op"].map({"<=": "<", ">=": ">"}))
    tol = calibrate_tolerance(strict, by=["check"]).set_index("check")
    top = enough.loc[enough["check"] == "loss_below", "worst_value"].max()
    low = enough.loc[enough["check"] == "out_min", "worst_value"].min()
    assert tol.loc["loss_below", "recommended_bound"] == np.nextafter(top, np.inf)
    assert tol.loc["out_min", "recommended_bound"] == np.nextafter(low, -np.inf)


def test_nan_runs_above_the_target_leave_no_bound():
    rows = [{"seed": i, "n_failed": 1, "n_nonfinite": 1, "worst_value": np.nan, "worst_margin": -np.inf}
            for i in range(3)]
    rows += [{"seed": i, "worst_value": 0.5 + i / 100} for i in range(3, 20)]
    row = calibrate_tolerance(results_frame(rows), by=["check"]).iloc[0]
    assert row.bound_status == BoundVerdict.NO_BOUND.value and np.isnan(row.recommended_bound)
    assert row.n_nonfinite == 3 and "NaN/Inf" in row.guarantee and "3 of 20" in row.guarantee
    assert BoundVerdict(row.bound_status).tone == "bad"


def test_a_nan_run_as_the_needed_order_statistic_leaves_no_finite_bound_yet(enough: pd.DataFrame):
    df = enough.copy()
    first = df.index[df["check"] == "loss_below"][0]
    df.loc[first, ["worst_value", "worst_margin", "n_nonfinite"]] = [np.nan, -np.inf, 1]
    row = calibrate_tolerance(df, by=["check"]).set_index("check").loc["loss_below"]
    assert row.bound_status == BoundVerdict.NO_BOUND.value and "1 of 400 runs saw NaN/Inf" in row.guarantee
    assert "at that NaN/Inf rate about 473 runs would give one" in row.guarantee


def test_schema_1_rows_without_an_op_are_not_guessed():
    rows = [{"seed": i, "op": None, "worst_value": 0.5 + i / 1000} for i in range(300)]
    row = calibrate_tolerance(results_frame(rows), by=["check"]).iloc[0]
    assert row.bound_status == BoundVerdict.UNKNOWN_OP.value and np.isnan(row.recommended_bound)
    assert "predate recorded ops" in row.guarantee and "rerun" in row.guarantee
    assert "no completed runs" not in row.guarantee


def _fp16_native(n: int, op: str = "<") -> pd.DataFrame:
    """fp16 values compared natively with the bound 0.1 (not a float16 value)."""
    bound, compared = 0.1, float(np.float16(0.1))
    values = np.float16(0.05 + 0.01 * np.random.default_rng(3).standard_normal(n)).astype(float)
    rows = [{"seed": i, "worst_value": v, "worst_margin": compared - v, "n_failed": int(v >= compared)}
            for i, v in enumerate(values)]
    return results_frame(rows, op=op, compare="native", value_dtype="float16", bound=bound, bound_compared=compared,
                         precision="fp16")


def test_fp16_native_bound_gets_a_float16_recommendation_strictly_above_the_worst_run():
    df = _fp16_native(300)
    row = calibrate_tolerance(df, by=["check", "precision"]).iloc[0]
    top = np.float16(df["worst_value"].max())
    assert row.bound_status == BoundVerdict.GUARANTEED.value and "no completed runs" not in row.guarantee
    assert row.recommended_bound == float(np.nextafter(top, np.float16(np.inf)))
    assert float(np.float16(row.recommended_bound)) == row.recommended_bound  # native rounding keeps it
    few = calibrate_tolerance(_fp16_native(21), by=["check", "precision"]).iloc[0]
    assert few.guarantee.startswith("needs 278 more runs")  # not "no completed runs" (old direction guess)


def test_no_data_only_for_groups_without_evaluated_runs():
    rows = [{"seed": i, "status": "error", "precision": "fp16"} for i in range(3)]
    rows += [{"seed": i, "n_evaluated": 0, "n_failed": 0, "worst_value": np.nan, "worst_margin": np.inf,
              "precision": "bf16"} for i in range(4)]
    rows += [{"seed": i, "precision": "fp32", "worst_value": 0.5} for i in range(5)]
    tol = calibrate_tolerance(results_frame(rows), by=["check", "precision"]).set_index("precision")
    assert tol.loc["fp16", "bound_status"] == BoundVerdict.NO_DATA.value
    assert tol.loc["fp16", "guarantee"].startswith("no completed runs") and tol.loc["fp16", "runs"] == 0
    assert tol.loc["bf16", "bound_status"] == BoundVerdict.NO_DATA.value
    assert "no completed runs" not in tol.loc["bf16", "guarantee"] and "4 completed" in tol.loc["bf16", "guarantee"]
    assert tol.loc["fp32", "bound_status"] == BoundVerdict.NEEDS_RUNS.value


def test_every_axis_given_groups_and_check_is_required():
    df = sweep(range(5), data_sizes=(100, 1000), precisions=("fp32", "fp16"))
    tol = calibrate_tolerance(df, by=["scenario", "variant", "check", "precision", "data_size"])
    assert len(tol) == 2 * 2 * 2 and (tol["n"] == 5).all()
    assert list(tol.columns[:5]) == ["scenario", "variant", "check", "precision", "data_size"]
    with pytest.raises(ValueError):
        calibrate_tolerance(df, by=["precision"])


def test_validation_on_held_out_seeds_and_on_a_fresh_sweep(enough: pd.DataFrame):
    held = calibrate_tolerance(enough, by=["check"], holdout=0.25).set_index("check")
    assert (held["n"] == 300).all() and (held["validation_runs"] == 100).all()
    assert held.attrs["heldout_seeds"] == list(range(300, 400))
    for row in held.itertuples():  # 100 runs cannot show <= 1%: never "holds" on zero failures
        assert row.validation_status in (ValidationVerdict.INCONCLUSIVE.value, ValidationVerdict.EXCEEDS.value)
        assert row.validation_ci_low <= row.validation_rate <= row.validation_ci_high
    fresh = sweep(range(1000, 1400), seed=12)
    tol = calibrate_tolerance(enough, by=["check"], fresh=fresh).set_index("check")
    assert (tol["validation_runs"] == 400).all() and tol.attrs["fresh"]
    for row in tol.itertuples():
        rate = true_exceedance(row.recommended_bound, 1.0 if row.op == "<=" else 0.0, 1.0 if row.op == "<=" else -1.0)
        assert row.validation_failed == pytest.approx(rate * 400, abs=4 * np.sqrt(400 * rate) + 1)
    flipped = fresh.assign(op=fresh["op"].map({"<=": ">=", ">=": "<="}))  # not the same check: not used
    assert (calibrate_tolerance(enough, by=["check"], fresh=flipped)["validation_runs"] == 0).all()
    worse = synthetic_results(checks=CHECKS, seeds=range(1000, 1300), steps=STEPS, eval_rate=RATE, scale=3 * SCALE,
                              seed=13)  # a fresh sweep that fails far more often
    bad = calibrate_tolerance(enough, by=["check"], fresh=worse).set_index("check")
    assert (bad["validation_status"] == ValidationVerdict.EXCEEDS.value).all()
    assert bad["validation"].str.startswith("exceeds").all()


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
