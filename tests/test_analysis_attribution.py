"""attribute_factors: the axis that drives failures comes first; degenerate checks say why."""

from __future__ import annotations

import numpy as np

from harness.analysis import attribute_factors
from synthetic import results_frame, synthetic_results


def test_the_axis_that_drives_failures_ranks_first():
    # fp16 evaluations fail 50x more often; batch size and clipping change nothing
    df = synthetic_results(precisions=("fp32", "fp16"), batch_sizes=(32, 64), clip_values=(None, 1.0),
                           seeds=range(60), steps=100, seed=21,
                           eval_rate=lambda d: np.where(d["precision"] == "fp16", 5e-3, 1e-4))
    out = attribute_factors(df)
    assert out["axis"].tolist()[0] == "precision"
    top = out.iloc[0]
    assert top["rank"] == 1 and top.p_value < 1e-10
    assert (top.lowest, top.highest) == ("fp32", "fp16")
    assert top.verdict.startswith("moves the rate most")
    rest = out.set_index("axis").loc[["batch_size", "clip_value"]]
    assert (rest["p_value"] > 0.01).all()
    assert rest["verdict"].str.startswith("no significant effect").all()
    assert set(out["axis"]) == {"precision", "batch_size", "clip_value"}  # the seed is not a factor


def test_checks_with_nothing_to_attribute_say_why():
    never = results_frame([{"precision": p, "seed": i} for p in ("fp32", "fp16") for i in range(3)])
    assert attribute_factors(never).iloc[0].verdict == "never fails: nothing to attribute"
    always = results_frame([{"precision": p, "seed": i, "n_failed": 2} for p in ("fp32", "fp16") for i in range(3)])
    assert attribute_factors(always).iloc[0].verdict == "fails in every run: nothing to attribute"
    one = results_frame([{"seed": i, "n_failed": i % 2} for i in range(4)])
    assert attribute_factors(one).iloc[0].verdict.startswith("one configuration only")


def test_each_check_is_attributed_on_its_own():
    rows = [{"check": c, "precision": p, "batch_size": b, "seed": i,
             "n_failed": int((c == "a" and p == "fp16") or (c == "b" and b == 64 and i % 2 == 0))}
            for c in ("a", "b") for p in ("fp32", "fp16") for b in (32, 64) for i in range(12)]
    out = attribute_factors(results_frame(rows))
    top = out[out["rank"] == 1].set_index("check")["axis"]
    assert top.to_dict() == {"a": "precision", "b": "batch_size"}
