"""Shared helpers: check directions, scores, incomplete runs, factor axes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis import directions, factor_axes, incomplete_runs
from harness.analysis.frame import label, pct, scores
from synthetic import results_frame, synthetic_results


def test_directions_are_read_from_the_recorded_op_never_inferred():
    rows = [{"check": "low", "op": "<", "bound": 1.0, "worst_value": 0.7},
            {"check": "high", "op": ">=", "bound": 0.0, "worst_value": 0.2},
            {"check": "old", "op": None, "bound": 1.0, "worst_value": 0.7, "worst_margin": 0.3}]
    d = directions(results_frame(rows))
    assert d[0] == 1.0 and d[1] == -1.0 and np.isnan(d[2])  # a schema-1 row has no op: unknown, not guessed


def test_scores_put_nan_runs_worst_and_flip_lower_bounds():
    rows = [{"check": "high", "op": ">", "bound": 0.0, "worst_value": 0.2},
            {"check": "high", "op": ">", "bound": 0.0, "worst_value": np.nan, "worst_margin": -np.inf, "n_failed": 1},
            {"check": "high", "op": ">", "status": "error"}]
    s = scores(results_frame(rows))
    assert s[0] == -0.2 and s[1] == np.inf and np.isnan(s[2])


def test_incomplete_runs_lists_each_run_once_with_its_checks():
    rows = [{"run_id": "x", "check": c, "status": "timeout", "error": "TimeoutError: 120 s"} for c in ("a", "b")]
    rows += [{"run_id": "y", "check": "", "status": "crashed", "error": None}, {"run_id": "z", "check": "a"}]
    out = incomplete_runs(results_frame(rows)).set_index("run_id")
    assert sorted(out.index) == ["x", "y"]
    assert out.loc["x", "checks"] == "a, b" and out.loc["x", "status"] == "timeout"
    assert out.loc["y", "checks"] == ""


def test_factor_axes_leave_out_seeds_and_derived_steps():
    epochs = synthetic_results(data_sizes=(100, 1000), batch_sizes=(16, 32), seeds=range(2), steps=None, epochs=1)
    assert factor_axes(epochs) == ["data_size", "batch_size"]  # steps follow from size and batch
    fixed = synthetic_results(data_sizes=(100, 1000), seeds=range(2), steps=100)
    fixed = pd.concat([fixed, fixed.assign(steps=200, run_id=fixed["run_id"] + "b")])
    assert factor_axes(fixed) == ["data_size", "steps"]


def test_display_helpers():
    assert label(np.nan) == "none" and label(1_000_000) == "1,000,000" and label(1e6) == "1,000,000"
    assert label(0.5) == "0.5" and label("fp16") == "fp16"
    assert (pct(0.0), pct(0.0004), pct(0.047), pct(0.43), pct(np.nan)) == ("0%", "0.04%", "4.7%", "43%", "–")


def test_variant_names_the_swept_parameters_of_each_scenario_and_stands_for_params():
    from harness.analysis import with_variant

    a = synthetic_results(data_sizes=(100,), seeds=range(2), steps=100)
    swept = pd.concat([a.assign(params=f'{{"compare": "{c}", "scale": 1.0}}', run_id=a["run_id"] + c, variant=None)
                       for c in ("native", "exact")])
    other = a.assign(scenario="other", params='{"k": 3}', run_id=a["run_id"] + "o", variant=None)  # schema 1 rows
    df = with_variant(pd.concat([swept, other], ignore_index=True))
    assert set(df.loc[df["scenario"] != "other", "variant"]) == {"compare=native", "compare=exact"}
    assert set(df.loc[df["scenario"] == "other", "variant"]) == {""}
    assert "variant" in factor_axes(df) and "params" not in factor_axes(df)
    assert factor_axes(df.drop(columns="variant")).count("params") == 1
