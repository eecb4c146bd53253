"""``A.wide``: one row per run, a column per check and field, next to the tidy frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness import analysis as A
from synthetic import synthetic_results

CHECKS = {"loss_below": ("below", 1.0), "grad.finite": ("above", 0.0)}  # a dot in a name stays in the name


def _frame() -> pd.DataFrame:
    return synthetic_results(checks=CHECKS, precisions=("fp32", "fp16"), data_sizes=(100, 1000), seeds=range(6),
                             eval_rate=0.01, nonfinite_rate=0.1, error_rate=0.15, seed=3)


def test_one_row_per_run_and_every_value_of_the_long_frame() -> None:
    df = _frame()
    fields = ["passed", "worst_margin", "n_failed", "first_failure_step"]
    w = A.wide(df, fields)
    assert len(w) == df["run_id"].nunique() and w["run_id"].is_unique
    assert list(w["run_id"]) == list(dict.fromkeys(df["run_id"]))  # in the frame's order
    axes = ["scenario", "data_size", "batch_size", "steps", "epochs", "schedule", "seed", "precision", "clip_value",
            "optimizer", "learning_rate", "params", "variant"]
    assert list(w.columns[:len(axes) + 3]) == [*axes, "run_id", "status", "passed"]
    checks = [f"{c}/{f}" for c in CHECKS for f in fields]
    assert list(w.columns[-len(checks):]) == checks  # grouped by check, in the frame's order
    assert {"wall_s", "error", "final_loss"} <= set(w.columns) and "check" not in w.columns and "bound" not in w.columns
    assert w["loss_below/passed"].dtype == "boolean" and w["loss_below/worst_margin"].dtype == "float64"
    assert w["loss_below/n_failed"].dtype == "Int64" and w["passed"].dtype == "boolean"

    long = df.set_index(["run_id", "check"])
    by_run = w.set_index("run_id")
    for (run, check), row in long.iterrows():
        for f in fields:
            a, b = row[f], by_run.loc[run, f"{check}/{f}"]
            assert (pd.isna(a) and pd.isna(b)) or a == b, (run, check, f)
    assert (w["status"] == df.drop_duplicates("run_id")["status"].to_numpy()).all()
    assert np.isneginf(w["grad.finite/worst_margin"]).any()  # NaN/Inf runs keep their -inf


def test_run_passed_is_every_check_and_null_for_incomplete_runs() -> None:
    df, w = _frame(), A.wide(_frame())
    done = w["status"] == "ok"
    assert (~done).any() and w.loc[~done, "passed"].isna().all()
    both = w.loc[done, "loss_below/passed"] & w.loc[done, "grad.finite/passed"]
    assert (w.loc[done, "passed"] == both).all() and (~w.loc[done, "passed"]).any() and w.loc[done, "passed"].any()
    # one check's run failure rate, from either frame
    ok = df[(df["status"] == "ok") & (df["check"] == "loss_below")]
    assert w[done].groupby("precision")["loss_below/passed"].mean().to_dict() == \
        ok.groupby("precision")["passed"].mean().to_dict()


def test_several_scenarios_keep_equal_check_names_apart_and_duplicates_count_once() -> None:
    a = synthetic_results(seeds=range(3))
    b = a.assign(scenario="other", run_id=a["run_id"] + "o")
    w = A.wide(pd.concat([a, b, a.iloc[:1]], ignore_index=True))  # a run stored twice, as read_parquet reads it
    assert len(w) == 6
    assert [c for c in w.columns if "loss_below" in c] == ["synthetic/loss_below/passed",
                                                           "synthetic/loss_below/worst_margin",
                                                           "other/loss_below/passed", "other/loss_below/worst_margin"]
    assert w.loc[w["scenario"] == "other", "synthetic/loss_below/passed"].isna().all()
    assert list(w.filter(like="/passed").columns) == ["synthetic/loss_below/passed", "other/loss_below/passed"]


def test_a_field_that_is_not_per_check_is_refused() -> None:
    with pytest.raises(KeyError, match="not a per-check column: wall_s"):
        A.wide(_frame(), ["passed", "wall_s"])
    with pytest.raises(KeyError, match="lacks column"):
        A.wide(_frame().drop(columns="worst_margin"))
