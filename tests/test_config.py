"""Config composition (Hydra compose API) and validation: every bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ROOT

from harness.cli import EXIT_USAGE, compose_config, main
from harness.config import ConfigError, sweep_config_from_dict
from harness.grid import expand

SWEEPS = sorted(p.stem for p in (ROOT / "conf" / "sweep").glob("*.yaml"))


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_shipped_sweep_composes_and_expands(sweep: str) -> None:
    cfg = sweep_config_from_dict(compose_config([f"sweep={sweep}"]))
    runs = expand(cfg)
    assert cfg.name == sweep
    assert runs and len({r.run_id for r in runs}) == len(runs)
    assert all(r.batch_size is None or r.batch_size <= r.data_size for r in runs)


def test_overrides_reach_the_typed_config() -> None:
    cfg = sweep_config_from_dict(compose_config([
        "sweep=smoke", "sweep.precision=[bf16]", "sweep.data_size=[500]", "sweep.clip_value=[null,2]",
        "scenarios.loss_bound.bound=0.25", "ray.num_actors=3", "store.root=/tmp/x"]))
    assert cfg.axes.precision == ("bf16",)
    assert cfg.axes.data_size == (500,)
    assert cfg.axes.clip_value == (None, 2.0)
    assert cfg.scenarios["loss_bound"].params["bound"] == 0.25
    assert cfg.ray.num_actors == 3 and cfg.results_root == "/tmp/x"


BAD = [
    (["sweep=nope"], "sweep: unknown sweep 'nope'"),
    ([], "sweep: none selected"),
    (["sweep=smoke", "scenario=nope"], "scenario: not a top-level key"),
    (["sweep=smoke", "sweep.scenario=[nope]"], "sweep.scenario: unknown scenario 'nope'"),
    (["sweep=smoke", "sweep.scenario=[loss_bnd]"], "(known: activation_bounds, circles, loss_bound, normalization, "
                                                    "train_inference); did you mean loss_bound?"),
    (["sweep=smoke", "sweep.precision=[fp8]"], "sweep.precision: unknown precision 'fp8'"),
    (["sweep=smoke", "sweep.data_size=[0]"], "sweep.data_size: 0 is not a positive integer"),
    (["sweep=smoke", "sweep.data_size=[-5]"], "sweep.data_size: -5 is not a positive integer"),
    (["sweep=smoke", "sweep.data_size=[10.5]"], "sweep.data_size: 10.5 is not a positive integer"),
    (["sweep=smoke", "sweep.batch_size=[abc]"], "sweep.batch_size: 'abc' is not a positive integer"),
    (["sweep=smoke", "sweep.data_size=[10]"], "sweep.batch_size: 32 > data_size 10"),
    (["sweep=smoke", "sweep.seed=[]"], "sweep.seed: empty axis"),
    (["sweep=smoke", "sweep.clip_value=[big]"], "sweep.clip_value: 'big' is not a positive number or null"),
    (["sweep=smoke", "sweep.clip_value=[-1]"], "sweep.clip_value: -1 is not a positive number or null"),
    (["sweep=smoke", "sweep.steps=[0]"], "sweep.steps: 0 is not a positive integer"),
    (["sweep=smoke", "sweep.epochs=[1]"], "sweep.steps: set exactly one of"),
    (["sweep=smoke", "sweep.seed=[1,1]"], "sweep.seed: [1, 1] has repeated values"),
    (["sweep=smoke", "sweep.nope=1"], "sweep.nope: unknown config key"),
    (["sweep=smoke", "precision=[fp16]"], "precision: not a top-level key; axes are set as sweep.precision"),
    (["sweep=smoke", "sweep.exclude=[{data_size:1000,colour:red}]"], "sweep.exclude[0].colour: unknown key"),
    (["sweep=smoke", "sweep.exclude=[{data_size:[1000,100000]}]"], "sweep.exclude: every run of the grid is excluded"),
    (["sweep=smoke", "ray.address=nowhere"], "ray.address: 'nowhere' is not auto, host:port"),
    (["sweep=smoke", "ray.num_actors=0"], "ray.num_actors: 0 is not a positive integer"),
    (["sweep=smoke", "ray.malloc=fast"], "ray.malloc: 'fast' is not auto, system, jemalloc or the path of a malloc library"),
    (["sweep=smoke", "ray.malloc=/no/libtcmalloc.so"], "ray.malloc: /no/libtcmalloc.so: no such file"),
    (["sweep=smoke", "sweep.timeout_s=-1"], "sweep.timeout_s: -1 is not a positive number"),
    (["sweep=smoke", "scenarios.loss_bound._target_=no.such.Module"], "scenario loss_bound: cannot import 'no.such'"),
    (["sweep=smoke", "scenarios.loss_bound.colour=red"], "scenarios.loss_bound.colour: 'colour' is not a parameter of scenario loss_bound"),
    (["sweep=smoke", "+scenarios.loss_bound.colour=red"],
     "scenarios.loss_bound.colour: not a parameter of LossBound (parameters: bound, learning_rate"),
    (["sweep=smoke", "scenarios.loss_bound.loss_in_compute_dtype=no"],
     "scenarios.loss_bound.loss_in_compute_dtype: 'no' is not true or false"),
    (["sweep=smoke", "scenarios.loss_bound.bound=abc"], "scenarios.loss_bound.bound: 'abc' is not a number"),
    (["sweep=smoke", "sweep.scenario=[normalization]", "scenarios.normalization.tol=abc"],
     "scenarios.normalization.tol: 'abc' is not a number"),
    (["sweep=smoke", "sweep.scenario=[normalization]", "scenarios.normalization.features=2.5"],
     "scenarios.normalization.features: 2.5 is not an integer"),
    (["sweep=smoke", "sweep.scenario=[normalization]", "scenarios.normalization.low=20"],
     "Normalization(tol=0.1, features=5, low=20.0, high=10.0, accumulate_float32=False, compare='native'): "
     "ValueError: low=20.0 must be < high=10.0"),
    (["sweep=smoke", "scenarios.loss_bound.bound=nan"], "scenarios.loss_bound.bound: nan is not a number (NaN is "
                                                         "refused)"),
    (["sweep=smoke", "sweep.scenario=[normalization]", "scenarios.normalization.tol=inf"],
     "scenarios.normalization.tol: inf is not a finite number (Normalization.allows_inf does not name tol)"),
    (["sweep=smoke", "adaptive=nope"], "adaptive: unknown adaptive 'nope'"),
    (["sweep=smoke", "adaptive=width", "adaptive.width=0"], "adaptive.width: 0.0 is not a number strictly between"),
    (["sweep=smoke", "adaptive=bound", "adaptive.target=2"], "adaptive.target: 2.0 is not a number strictly between"),
    (["sweep=smoke", "adaptive=width", "adaptive.max_seeds=1"], "adaptive.max_seeds: 1 is fewer than the 2 seeds"),
    (["sweep=smoke", "adaptive=width", "sweep.exclude=[{seed:0}]"],
     "sweep.exclude: a rule naming seed cannot be combined with adaptive seeds"),
    (["sweep=smoke", "sweep.name=../x"], "sweep.name: '../x' is not a plain directory name"),
    (["sweep=smoke", "--fast"], "--fast: unknown option"),
    (["sweep=smoke", "smoke"], "smoke: not KEY=VALUE"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) or "no-args" for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_nothing_written(args: list[str], message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = main([*args, f"store.root={tmp_path / 'res'}"] if args and "=" in args[0] else args)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.count("\n") == 1, err
    assert message in err, err
    assert list(tmp_path.iterdir()) == []  # no results, no outputs/ directory, nothing


def test_unwritable_results_root_fails_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["sweep=smoke", f"store.root={blocker}/sub"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "store.root:" in err and "not a directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_config_error_names_key() -> None:
    with pytest.raises(ConfigError) as info:
        sweep_config_from_dict({"sweep": {"name": "x"}, "scenarios": {}})
    assert str(info.value).startswith("scenarios:")


def test_help_and_cfg(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "usage: python -m harness [sweep] sweep=NAME" in capsys.readouterr().out
    assert main(["sweep=smoke", "--cfg"]) == 0
    assert "name: smoke" in capsys.readouterr().out


def test_a_broken_sweep_yaml_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf" / "sweep").mkdir(parents=True)
    broken = tmp_path / "conf" / "sweep" / "broken.yaml"
    broken.write_text("sweep:\n  name: broken\n  seed: [0, 1\n  precision: [fp32]\n")
    code = main(["--config-dir", str(tmp_path / "conf"), "sweep=broken", f"store.root={tmp_path / 'res'}"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and err.count("\n") == 1
    assert f"{broken}:4:" in err and "YAML syntax error" in err and "opened at line 3" in err
    assert not (tmp_path / "res").exists()


def test_a_results_root_where_mkdir_fails_is_refused_before_ray_starts(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path("/sys/harness_x")  # os.access says writable to root, but sysfs refuses mkdir
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) is False:
        pytest.skip("needs /sys (a directory where mkdir fails even though access() allows it)")
    code = main(["sweep=smoke", f"store.root={root}"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and err.count("\n") == 1 and err.startswith(f"error: store.root: cannot create {root}")
    assert not root.exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["sweep=smoke", "sweep.seed=range(0,5)", "--dry-run"], "sweep smoke: 60 runs = 12 configurations x 5 seeds"),
    (["sweep=smoke", "sweep.seed=0,1,2", "-m", "-n"], "sweep smoke: 36 runs = 12 configurations x 3 seeds"),
    (["sweep", "sweep=smoke", "sweep.scenario=[normalization]", "-n"], "sweep smoke: 8 runs = 4 configurations"),
])
def test_hydra_habits_and_the_dry_run(args: list[str], expected: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*args, f"store.root={tmp_path / 'res'}"]) == 0
    out = capsys.readouterr().out
    assert expected in out and "nothing was run or written" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (["sweep=smoke", "hydra.sweep.dir=/tmp/x"], "hydra.sweep.dir: Hydra's own settings are not used by harness"),
    (["sweep=smoke", "hydra/launcher=ray"], "hydra/launcher: Hydra's own settings are not used"),
    (["sweep=smoke", "sweep.precison=[fp16]"], "did you mean sweep.precision?"),
    (["sweep=smok"], "did you mean smoke?"),
    (["sweep=smoke", "sweep.seed=range(0,5,0)"], "range step must not be 0"),
])
def test_hydra_keys_and_typos_are_one_line_with_a_suggestion(args: list[str], message: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, f"store.root={tmp_path / 'res'}"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_list_version_and_report_subcommands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "smoke" in out and "check loss_below: value < 1 (step, native)" in out
    assert "check autotrainer.exploding_gradient: value <= 70" in out  # the detectors, with their thresholds
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("harness ")
    assert main(["report", str(tmp_path / "missing")]) == 2 and "is not a results directory" in capsys.readouterr().err
