"""The built-in scenarios normalization, activation_bounds and train_inference, in-process with real TF.

Each scenario's checks are shown to fail where they must and to pass in their control.
The expectations are measurements (TF 2.21, CPU), not the seed documents' claims.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ROOT, make_spec

from harness.engine import execute
from harness.records import RunResult, Status
from harness.scenarios.base import declared_checks, instantiate

NAMES = ("normalization", "activation_bounds", "train_inference")
MODES = ("none", "preprocessing", "dropout", "shape")
CHECKS = ("input_stats_match", "inference_deterministic", "shapes_match", "loss_matches_training")


BUILTIN = {name: yaml.safe_load((ROOT / "conf" / "scenario" / f"{name}.yaml").read_text())["_target_"]
           for name in NAMES}


def conf_params(name: str) -> dict[str, Any]:
    body = yaml.safe_load((ROOT / "conf" / "scenario" / f"{name}.yaml").read_text())
    assert body.pop("_target_") == BUILTIN[name]
    return body


def run(name: str, precision: str = "fp32", data_size: int = 1000, **params: Any) -> RunResult:
    """One run of a built-in scenario with its conf defaults, ``params`` overriding them."""
    axes = {k: params.pop(k) for k in ("steps", "batch_size", "clip_value", "seed") if k in params}
    spec = make_spec(scenario=name, target=BUILTIN[name], params={**conf_params(name), **params},
                     data_size=data_size, precision=precision, **{"steps": 50, **axes})
    result = execute(spec)
    assert result.status is Status.OK, result.error
    return result


def by_name(result: RunResult) -> dict[str, Any]:
    return {c.check: c for c in result.checks}


# --------------------------------------------------------------------------- protocol, no TF


@pytest.mark.parametrize("name", NAMES)
def test_conf_matches_class_and_declares_checks(name: str) -> None:
    scenario = instantiate(BUILTIN[name], conf_params(name))
    names = [c.name for c in declared_checks(scenario)]
    expected = {"normalization": ["mean_near_zero", "std_near_one"],
                "activation_bounds": ["output_min", "output_max"],
                "train_inference": [f"{m}.{c}" for m in MODES for c in CHECKS]}[name]
    assert names == expected
    assert all(c.when == "final" for c in declared_checks(scenario))


def test_scenario_modules_do_not_import_tensorflow() -> None:
    code = ("import sys, harness.scenarios.normalization, harness.scenarios.activation_bounds, "
            "harness.scenarios.train_inference; sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.parametrize(("name", "params"), [
    ("normalization", {"low": 1.0, "high": -1.0}), ("normalization", {"compare": "approx"}),
    ("activation_bounds", {"threshold": 0.5}), ("activation_bounds", {"compare": "float64"}),
    ("train_inference", {"modes": ["none", "typo"]}), ("train_inference", {"modes": []}),
])
def test_bad_parameters_are_rejected(name: str, params: dict[str, Any]) -> None:
    # as the driver's preflight does before anything runs: construct, then declare the checks
    with pytest.raises(ValueError, match="must|not|give"):
        declared_checks(instantiate(BUILTIN[name], {**conf_params(name), **params}))


def test_sweep_config_knows_the_scenarios() -> None:
    from harness.cli import compose_config
    from harness.config import sweep_config_from_dict

    cfg = sweep_config_from_dict(compose_config(["sweep=smoke", f"sweep.scenario=[{','.join(NAMES)}]"]))
    for name in NAMES:
        assert cfg.scenarios[name].target == BUILTIN[name]
        assert dict(cfg.scenarios[name].params) == conf_params(name)


# --------------------------------------------------------------------------- normalization


@pytest.mark.parametrize(("precision", "n", "acc32", "mean_ok", "std_ok", "reduce_dtype"), [
    ("fp32", 100_000, False, True, True, "float32"),  # the seed's claim does not hold in fp32
    ("bf16", 100_000, False, True, True, "bfloat16"),
    ("fp16", 1_000, False, True, True, "float16"),
    ("fp16", 10_000, False, True, False, "float16"),  # sum of squares > 65504: std = inf, z = 0
    ("fp16", 100_000, False, False, False, "float16"),  # the count itself overflows: NaN
    ("fp16", 100_000, True, True, True, "float32"),  # float32 accumulation fixes both
])
def test_normalization_fails_by_fp16_overflow_not_by_data_size(
        tf_worker: None, precision: str, n: int, acc32: bool, mean_ok: bool, std_ok: bool, reduce_dtype: str) -> None:
    r = run("normalization", precision, n, accumulate_float32=acc32)
    c = by_name(r)
    assert (c["mean_near_zero"].passed, c["std_near_one"].passed) == (mean_ok, std_ok)
    assert r.extras["reduce_dtype"] == reduce_dtype
    assert (r.extras["stats_nonfinite"] > 0) == (not std_ok)
    assert r.steps == 0 and r.train_s == 0 and r.final_loss is None  # no training loop ran
    if not mean_ok:  # NaN is a failure, counted as non-finite
        assert c["mean_near_zero"].n_nonfinite == 1 and math.isnan(c["mean_near_zero"].worst_value)
    if mean_ok and not std_ok:
        assert c["mean_near_zero"].worst_value == 0.0  # passes vacuously: all standardized values are 0


def test_normalization_tolerance_is_honoured(tf_worker: None) -> None:
    loose, tight = run("normalization", "bf16", 1000), run("normalization", "bf16", 1000, tol=1e-4)
    assert by_name(loose)["std_near_one"].passed and not by_name(tight)["std_near_one"].passed
    assert by_name(tight)["std_near_one"].worst_value == by_name(loose)["std_near_one"].worst_value


# --------------------------------------------------------------------------- activation_bounds


def test_activation_bounds_pass_without_saturation(tf_worker: None) -> None:
    for precision in ("fp32", "fp16", "bf16"):
        r = run("activation_bounds", precision, 1000, compare="exact")
        assert all(c.passed for c in r.checks) and r.extras["saturated_fraction"] == 0.0
        assert r.steps == 0 and r.final_loss is None


@pytest.mark.parametrize(("precision", "act32", "min_ok", "max_ok", "lo", "hi"), [
    ("fp32", False, False, False, np.float32(0.01), np.float32(0.99)),
    ("fp16", False, True, False, np.float16(0.01), np.float16(0.99)),
    ("bf16", False, True, True, 0.010009765625, 0.98828125),
    ("bf16", True, False, False, np.float32(0.01), np.float32(0.99)),  # float32 output: as fp32
])
def test_saturation_exposes_the_rounded_clip_thresholds(
        tf_worker: None, precision: str, act32: bool, min_ok: bool, max_ok: bool, lo: float, hi: float) -> None:
    exact = run("activation_bounds", precision, 100, weight_scale=3.0, compare="exact", activation_float32=act32)
    c = by_name(exact)
    assert (c["output_min"].passed, c["output_max"].passed) == (min_ok, max_ok)
    assert (c["output_min"].worst_value, c["output_max"].worst_value) == (float(lo), float(hi))
    assert 0 < exact.extras["saturated_fraction"] < 0.1 and exact.extras["compare_dtype"] == "float64"
    native = run("activation_bounds", precision, 100, weight_scale=3.0, activation_float32=act32)
    assert all(c.passed for c in native.checks)  # TF's own comparison rounds the bound the same way
    assert native.extras["compare_dtype"] == ("float32" if act32 else exact.extras["activation_dtype"])


def test_saturation_needs_enough_rows(tf_worker: None) -> None:
    one, many = (run("activation_bounds", "fp32", n, weight_scale=3.0, compare="exact") for n in (1, 100))
    assert by_name(one)["output_min"].passed and not by_name(many)["output_min"].passed


def test_fp16_input_overflow_gives_nan_outputs_that_fail(tf_worker: None) -> None:
    fp16 = run("activation_bounds", "fp16", 100, input_scale=1e5)
    assert not any(c.passed for c in fp16.checks) and all(c.n_nonfinite == 1 for c in fp16.checks)
    assert fp16.extras["nonfinite_outputs"] > 0
    fp32 = run("activation_bounds", "fp32", 100, input_scale=1e5)  # saturates layer 1 only
    assert all(c.passed for c in fp32.checks) and fp32.extras["nonfinite_outputs"] == 0


def test_chunked_forward_pass_does_not_change_results(tf_worker: None) -> None:
    whole, chunked = (run("activation_bounds", "fp16", 1000, weight_scale=3.0, chunk=k) for k in (65536, 96))
    assert whole.checks == chunked.checks and whole.extras == chunked.extras


# --------------------------------------------------------------------------- train_inference


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_each_mismatch_is_caught_by_its_checks_and_the_control_passes(tf_worker: None, precision: str) -> None:
    r = run("train_inference", precision, 1000, steps=100, clip_value=1.0)
    c = by_name(r)
    failing = {m: {k for k in CHECKS if not c[f"{m}.{k}"].passed} for m in MODES}
    assert failing == {
        "none": set(),
        "preprocessing": {"input_stats_match", "loss_matches_training"},
        "dropout": {"inference_deterministic", "loss_matches_training"},
        "shape": {"shapes_match", "loss_matches_training"},
    }
    assert r.extras["broadcast_loss_shape"] == "(1000, 1000, 1)"  # broadcast silently, no error
    # run-level numerics come from ctx.minimize
    assert r.steps == 100 and math.isfinite(r.final_loss) and r.nonfinite_values == 0
    assert r.extras["grad_norm_max"] > 0 and r.extras["clip_active_steps"] >= 0
    if precision == "fp16":
        assert r.loss_scale_min is not None and r.loss_scale_min <= 32768 and r.skipped_steps is not None
    else:
        assert r.loss_scale_min == 1.0 and r.skipped_steps == 0


def test_modes_share_one_training_and_runs_are_deterministic(tf_worker: None) -> None:
    one = run("train_inference", "fp32", 500, steps=40, modes=["dropout"])
    again = run("train_inference", "fp32", 500, steps=40, modes=["dropout"])
    both = run("train_inference", "fp32", 500, steps=40, modes=["none", "dropout"])
    assert one.checks == again.checks and one.extras == again.extras
    assert [c.check for c in one.checks] == [f"dropout.{k}" for k in CHECKS]
    assert one.extras["reference_loss"] == both.extras["reference_loss"]  # the mode list does not touch training
    assert one.final_loss == both.final_loss


# --------------------------------------------------------------------------- engine: trains = False


class StepCheckWithoutTraining:
    """A non-training scenario that wrongly declares a step check: an error record."""

    trains = False

    def checks(self) -> list[Any]:
        from harness import checks

        return [checks.below("x_below", "x", 1.0)]

    def build(self, ctx: Any) -> tuple[Any, ...]:
        import tensorflow as tf

        return (tf.zeros([ctx.data_size, 1]),)

    def train_step(self, batch: tuple[Any, ...], step: Any) -> dict[str, Any]:
        raise AssertionError("never called")


def test_non_training_scenario_with_step_checks_is_an_error(tf_worker: None) -> None:
    target = f"{Path(__file__).stem}.StepCheckWithoutTraining"
    r = execute(make_spec(scenario="bad", target=target, params={}))
    assert r.status is Status.ERROR and "does not train" in (r.error or "")


@pytest.mark.parametrize("name", NAMES)
def test_the_extra_columns_a_scenario_declares_are_those_its_runs_have(tf_worker: None, name: str) -> None:
    """Every built-in scenario declares its run-level columns (names and types), so every part file of a
    sweep can carry them all; the declaration is checked against a real run."""
    from harness.records import EXTRA_TYPES, result_rows
    from harness.scenarios.base import extra_columns

    params = {"modes": list(MODES)} if name == "train_inference" else {}
    declared = extra_columns(BUILTIN[name], {**conf_params(name), **params})
    result = run(name, data_size=256, steps=5, **params)
    assert set(result.extras) == set(declared)
    spec = make_spec(scenario=name, target=BUILTIN[name], params={**conf_params(name), **params})
    table = result_rows(spec, result, "0")
    assert {k: table.schema.field(k).type for k in declared} == {k: EXTRA_TYPES[v] for k, v in declared.items()}
