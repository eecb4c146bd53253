"""DeepDiagnosis' motivating example, Stack Overflow 31880720 (harness/examples/deepdiagnosis_softmax.py): one
buggy run (a softmax over one unit) and one fixed run (a sigmoid), short, in-process; both complete with every
declared check, and the sweep file composes with the bug/fix variant axis."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import assert_reuse_holds
from conftest import make_spec

from harness.engine import execute
from harness.records import Status

TARGET = "harness.examples.deepdiagnosis_softmax.SingleUnitSoftmax"


def test_the_data_are_the_programs_rows_of_ones_and_zeros():
    from harness.examples.deepdiagnosis_softmax import ones_and_zeros

    x, y = ones_and_zeros(1000, seed=1)
    assert x.shape == (1000, 128) and y.shape == (1000, 1) and y.sum() == 500
    assert np.array_equal(x, np.repeat(y, 128, axis=1))  # a row of ones is labelled 1, a row of zeros 0
    assert not np.array_equal(y, ones_and_zeros(1000, seed=2)[1])
    x_test, y_test = ones_and_zeros(200, None)
    assert y_test[:100].all() and not y_test[100:].any()


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_buggy_and_a_fixed_run_complete_with_every_declared_check(tf_worker: None, precision: str):
    from harness.examples.deepdiagnosis_softmax import SingleUnitSoftmax

    declared = [c.name for c in SingleUnitSoftmax().checks()]
    assert declared[0] == "val_accuracy_at_least" and "deepdiagnosis.vanishing_gradient" in declared
    outcome, vanishing = {}, {}
    for fix in (False, True):
        spec = make_spec(scenario="softmax_one_unit", target=TARGET, params={"fix": fix}, data_size=2000,
                         batch_size=32, steps=60, precision=precision, variant=f"fix={fix}")
        r = execute(spec)
        assert r.status is Status.OK, r.error
        assert [c.check for c in r.checks] == declared
        by = {c.check: c for c in r.checks}
        outcome[fix] = by["val_accuracy_at_least"].worst_value
        vanishing[fix] = by["deepdiagnosis.vanishing_gradient"].n_failed
    assert outcome[False] == 0.5 and outcome[True] == 1.0  # the softmax predicts 1 for every row
    if precision == "bf16":  # the loss of the constant 1: every gradient is 0 from the first step
        assert vanishing[False] == 3 and vanishing[True] == 0


def test_the_sweep_file_sweeps_the_bug_and_its_fix():
    from harness.cli import compose_config
    from harness.config import sweep_config_from_dict
    from harness.grid import expand

    specs = expand(sweep_config_from_dict(compose_config(["sweep=softmax_one_unit"])))
    assert len(specs) == 2 * 3 * 30 and {s.variant for s in specs} == {"fix=False", "fix=True"}
    assert {s.data_size for s in specs} == {20000} and {s.steps for s in specs} == {1875}


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
def test_reuse_trace_holds_a_reused_run_equals_the_run_alone(tf_worker: None):
    """The class promises reuse_trace: a run on a cached trace (other seed and size) gives the results of the
    same run traced alone, bit for bit."""
    specs = [make_spec(scenario="softmax_one_unit", target=TARGET, params={"fix": False}, data_size=size,
                       batch_size=32, steps=30, seed=seed, precision="fp16") for size, seed in ((600, 1), (400, 2))]
    assert_reuse_holds(specs)
