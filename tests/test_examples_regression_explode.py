"""AUTOTRAINER's "gradient explode" regression program (harness/examples/autotrainer_regression.py): one
buggy run (unscaled target) and one fixed run (standardized target), short, in-process; both complete with
every declared check, and the sweep file composes with the bug/fix variant axis."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import assert_reuse_holds
from conftest import make_spec

from harness.engine import execute
from harness.records import Status

TARGET = "harness.examples.autotrainer_regression.RegressionExplode"


def test_make_regression_is_seeded_and_shaped_like_scikit_learns():
    from harness.examples.autotrainer_regression import make_regression

    x, y = make_regression(1000, 0.1, seed=3)
    assert x.shape == (1000, 20) and y.shape == (1000, 1)
    again, _ = make_regression(1000, 0.1, seed=3)
    assert np.array_equal(x, again) and not np.array_equal(x, make_regression(1000, 0.1, seed=4)[0])
    # 10 informative features with coefficients 100 * U(0, 1): an unscaled target, std ~ 100-200
    coef, *_ = np.linalg.lstsq(x, y[:, 0], rcond=None)
    assert (np.abs(coef) > 1).sum() == 10 and 80 < y.std() < 300
    assert (y - x @ coef[:, None]).std() == pytest.approx(0.1, rel=0.2)  # the noise


def test_a_buggy_and_a_fixed_run_complete_with_every_declared_check(tf_worker: None):
    from harness.examples.autotrainer_regression import RegressionExplode

    windowed = {c.name for c in RegressionExplode().checks() if c.statistic != "value"}  # need 5 periods
    declared = [c.name for c in RegressionExplode().checks()]
    assert declared[0] == "val_r2_at_least" and "autotrainer.exploding_gradient" in declared
    assert "thedeepchecker.exploding_gradient" in declared and "autotrainer.not_converged" not in declared
    r2 = {}
    for fix in (False, True):
        spec = make_spec(scenario="regression_explode", target=TARGET, params={"fix": fix}, data_size=500,
                         batch_size=32, steps=150, precision="fp32", variant=f"fix={fix}")
        r = execute(spec)
        assert r.status is Status.OK, r.error
        assert [c.check for c in r.checks] == declared
        assert all(c.n_evaluated >= 1 for c in r.checks if c.check not in windowed)
        r2[fix] = next(c.worst_value for c in r.checks if c.check == "val_r2_at_least")
    assert r2[True] > r2[False]  # the fix trains on a target of unit scale


def test_the_sweep_file_sweeps_the_bug_and_its_fix():
    from harness.cli import compose_config
    from harness.config import sweep_config_from_dict
    from harness.grid import expand

    specs = expand(sweep_config_from_dict(compose_config(["sweep=regression_explode"])))
    assert len(specs) == 2 * 3 * 30 and {s.variant for s in specs} == {"fix=False", "fix=True"}
    assert {s.precision for s in specs} == {"fp32", "fp16", "bf16"} and {s.steps for s in specs} == {8000}
    assert {s.params["min_r2"] for s in specs} == {0.99}


def test_reuse_trace_holds_a_reused_run_equals_the_run_alone(tf_worker: None):
    """The class promises reuse_trace: a run on a cached trace (other seed and size) gives the results of the
    same run traced alone, bit for bit."""
    specs = [make_spec(scenario="regression_explode", target=TARGET, params={"fix": True}, data_size=size,
                       batch_size=32, steps=60, seed=seed, precision="fp16") for size, seed in ((500, 1), (300, 2))]
    assert_reuse_holds(specs)
