"""Issue 26, item 9: every number read from config is finite (NaN compares false with every limit, so
``sweep.timeout_s=nan`` passed ``<= 0`` and silently disabled the timeout, and
``ray.num_cpus_per_actor=nan`` passed ``-n`` and failed at Ray's start blaming ray.address)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.cli import EXIT_USAGE, main
from harness.config import AdaptiveConfig, ConfigError, RayConfig, StoreConfig, integer, number
from harness.scenarios.base import ParamError, typed_params


def _numeric_fields(cls: type, section: str) -> list[str]:
    """Every int/float key of a config section, read from its dataclass: a numeric key added later is
    covered without touching this test."""
    return [f"{section}.{f.name}" for f in dataclasses.fields(cls)
            if any(t in str(f.type) for t in ("int", "float")) and f.name != "rule"]


NUMERIC_KEYS = ["sweep.timeout_s", "sweep.retries", *_numeric_fields(RayConfig, "ray"),
                *_numeric_fields(StoreConfig, "store"), *_numeric_fields(AdaptiveConfig, "adaptive")]


def _bad_is_one_line(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    code = main(["sweep=smoke", *args, f"store.root={tmp_path / 'res'}"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing created
    return err


def test_the_numeric_keys_are_found() -> None:
    assert {"ray.num_cpus_per_actor", "ray.num_gpus_per_actor", "ray.num_actors", "store.flush_seconds",
            "store.flush_runs", "store.compact_files", "adaptive.width", "adaptive.target",
            "adaptive.confidence", "adaptive.round", "adaptive.max_seeds"} <= set(NUMERIC_KEYS)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_nan_and_infinity_are_refused_for_every_numeric_key(key: str, value: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    adaptive = [f"adaptive={'bound' if key == 'adaptive.target' else 'width'}"] if key.startswith("adaptive.") else []
    err = _bad_is_one_line([*adaptive, f"{key}={value}"], tmp_path, capsys, monkeypatch)
    assert err.startswith(f"error: {key}: {float(value)!r} is not ") and "(NaN and infinity are refused)" in err, err


@pytest.mark.parametrize("override", ["sweep.data_size=[1000,nan]", "sweep.batch_size=[inf]", "sweep.seed=[nan]",
                                      "sweep.clip_value=[nan]", "sweep.clip_value=[inf]", "sweep.steps=[nan]"])
def test_nan_and_infinity_are_refused_on_the_axes(override: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    key = override.split("=", 1)[0]
    err = _bad_is_one_line([override], tmp_path, capsys, monkeypatch)
    assert err.startswith(f"error: {key}: ") and "(NaN and infinity are refused)" in err, err


def test_epochs_and_exclude_refuse_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    err = _bad_is_one_line(["sweep.steps=null", "sweep.epochs=[nan]"], tmp_path, capsys, monkeypatch)
    assert err.startswith("error: sweep.epochs: nan is not a positive number"), err
    # a rule value NaN equals nothing: it would silently exclude nothing
    err = _bad_is_one_line(["sweep.exclude=[{data_size: nan}]"], tmp_path, capsys, monkeypatch)
    assert err.startswith("error: sweep.exclude[0].data_size: nan is not a value of the axis"), err


@pytest.mark.parametrize(("override", "message"), [
    ("scenarios.loss_bound.learning_rate=nan",
     "scenarios.loss_bound.learning_rate: nan is not a number (NaN is refused)"),
    ("scenarios.loss_bound.learning_rate='nan'", "scenarios.loss_bound.learning_rate: nan is not a number"),
    ("scenarios.loss_bound.noise_std=inf", "scenarios.loss_bound.noise_std: inf is not a finite number"),
    ("+scenarios.loss_bound._axes_.learning_rate=[0.1,nan]", "scenarios.loss_bound._axes_.learning_rate: nan is not a number"),
])
def test_scenario_parameters_refuse_nan_and_infinity(override: str, message: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    err = _bad_is_one_line(["sweep.scenario=[loss_bound]", override], tmp_path, capsys, monkeypatch)
    assert message in err, err


@pytest.mark.parametrize("override, message", [
    ("ray.num_actors=abc", "error: ray.num_actors: 'abc' is not a positive integer or null\n"),
    ("ray.warm=maybe", "error: ray.warm: 'maybe' is not true or false\n"),
    ("store.flush_runs=1.5", "error: store.flush_runs: 1.5 is not a positive integer\n"),
    ("adaptive.width=wide", "error: adaptive.width: 'wide' is not a number strictly between 0 and 1\n"),
])
def test_a_value_hydra_cannot_type_is_worded_by_the_harness(override: str, message: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The groups are typed by Hydra (harness.schema), which refuses these first; the line is the harness's."""
    assert _bad_is_one_line([override], tmp_path, capsys, monkeypatch) == message


def test_every_adaptive_key_can_be_set_under_any_adaptive_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys come from the typed group, not from the file selected, so no + is needed."""
    monkeypatch.chdir(tmp_path)
    assert main(["sweep=smoke", "adaptive=width", "adaptive.target=0.1", "--cfg"]) == 0
    assert "target: 0.1" in capsys.readouterr().out


def test_dry_run_refuses_a_nan_actor_shape_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to pass -n and fail at Ray's start with exit 3 naming ray.address."""
    monkeypatch.chdir(tmp_path)
    assert main(["sweep=smoke", "ray.num_cpus_per_actor=nan", "-n"]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: ray.num_cpus_per_actor: nan is not a positive number")


def test_the_one_rule() -> None:
    for bad in (float("nan"), float("inf"), -float("inf"), True, "1", None):
        with pytest.raises(ConfigError):
            number("k", bad, "a number")
        with pytest.raises(ConfigError):
            integer("k", bad, "an integer", at_least=0)
    assert number("k", 2, "a number", above=0) == 2.0 and integer("k", 1e6, "an integer", at_least=1) == 1_000_000
    assert integer("k", 10**30, "an integer", at_least=0) == 10**30  # a big int is finite (no float overflow)
    with pytest.raises(ConfigError, match="k: 0 is not a positive number$"):
        number("k", 0, "a positive number", above=0)
    with pytest.raises(ConfigError, match="k: 1 is not below one$"):
        number("k", 1, "below one", below=1)


class _Clip:
    """A scenario whose clip norm may be infinite (no clipping), and whose tolerance may not."""

    allows_inf = ("clip_norm",)

    def __init__(self, clip_norm: float = 1.0, tol: float = 0.1, **more: object) -> None:
        pass


def test_allows_inf_names_the_parameters_that_may_be_infinite() -> None:
    assert typed_params(_Clip, {"clip_norm": "inf"}) == {"clip_norm": float("inf")}
    with pytest.raises(ParamError, match=r"tol: inf is not a finite number \(_Clip.allows_inf does not name tol\)"):
        typed_params(_Clip, {"tol": float("inf")})
    for params in ({"clip_norm": float("nan")}, {"extra": float("nan")}, {"extra": [1.0, float("nan")]}):
        with pytest.raises(ParamError, match="NaN is refused"):  # NaN never, typed or not (**more)
            typed_params(_Clip, params)
