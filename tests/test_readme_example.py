"""The README's own-scenario example, run exactly as written there (so the docs cannot drift)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from harness.cli import EXIT_USAGE, compose_config, main
from harness.config import sweep_config_from_dict
from harness.engine import execute
from harness.grid import expand
from harness.records import Status


def readme_files() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- example:(\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return {name: body for name, body in blocks}


@pytest.fixture()
def example_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    files = readme_files()
    assert {"my_scenarios.py", "my_conf/sweep/sine.yaml"} <= set(files)
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("my_scenarios", None)


def test_readme_example_composes_and_runs(example_dir: Path, tf_worker: None) -> None:
    cfg = sweep_config_from_dict(compose_config(["sweep=sine"], str(example_dir / "my_conf")))
    specs = expand(cfg)
    assert len(specs) == 8 and {s.scenario for s in specs} == {"sine_fit"}
    result = execute(specs[0])
    assert result.status is Status.OK, result.error
    assert [c.check for c in result.checks] == ["loss_below", "weights_finite"]
    assert result.checks[0].n_evaluated == 300 and result.checks[1].n_evaluated == 1
    assert result.checks[1].passed and result.final_loss is not None


@pytest.mark.parametrize(("target", "message"), [
    ("plugins.faulty.NoTrainStep", "lacks method(s) train_step"),
    ("plugins.nowhere.Thing", "cannot import 'plugins.nowhere'"),
    ("plugins.faulty.Missing", "has no class 'Missing'"),
])
def test_bad_plugins_fail_before_the_sweep(target: str, message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep=smoke", f"+scenarios.bad._target_={target}", "sweep.scenario=[bad]",
                 f"store.root={tmp_path}"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize(("precision", "dtype"), [("fp32", "float32"), ("fp16", "float16"), ("bf16", "bfloat16")])
def test_readme_keras_program_runs_unchanged_under_every_precision(example_dir: Path, tf_worker: None,
                                                                   precision: str, dtype: str) -> None:
    """A plain Keras program (Sequential + compile, no dtype= anywhere) runs under fp32, fp16 and bf16
    as written, and its layers compute in the run's dtype."""
    import my_keras  # written by the fixture from the README

    cfg = sweep_config_from_dict(compose_config([
        "sweep=smoke", "+scenarios.xor._target_=my_keras.XorNet", "sweep.scenario=[xor]", "sweep.data_size=[512]",
        f"sweep.precision=[{precision}]", "sweep.seed=[0]", "sweep.clip_value=[null]", "sweep.steps=[300]"]))
    spec = expand(cfg)[0]
    result = execute(spec)
    assert result.status is Status.OK, result.error
    assert result.compute_dtype == dtype
    by = {c.check: c for c in result.checks}
    assert by["loss_finite"].n_evaluated == 300 and by["loss_finite"].passed
    assert by["accuracy_at_least"].n_evaluated == 1 and by["accuracy_at_least"].worst_value > 0.5

    from harness.engine.context import RunContext

    scenario = my_keras.XorNet()
    scenario.build(RunContext(spec))
    assert {layer.compute_dtype for layer in scenario.keras_model.layers} == {dtype}
    assert {v.dtype for v in scenario.keras_model.trainable_variables} == {"float32"}
    sys.modules.pop("my_keras", None)


def test_the_readme_keras_module_keeps_the_driver_free_of_tensorflow_and_a_top_level_import_is_warned_of(
        example_dir: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(example_dir), os.environ.get("PYTHONPATH", "")])}
    probe = "import sys, my_keras; print('tensorflow' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", probe], cwd=example_dir, env=env, capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr  # the README's module, as written
    args = [sys.executable, "-m", "harness", "sweep=smoke", "+scenarios.xor._target_=my_keras.XorNet",
            "sweep.scenario=[xor]", "-n"]
    r = subprocess.run(args, cwd=example_dir, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    top = (example_dir / "my_keras.py").read_text().replace("import numpy as np\n", "import keras\nimport numpy as np\n", 1)
    (example_dir / "keras_at_top.py").write_text(top)
    r = subprocess.run([*args[:4], "+scenarios.xor._target_=keras_at_top.XorNet", *args[5:]], cwd=example_dir, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert line.startswith("warning: importing keras_at_top imported TensorFlow into the driver")
