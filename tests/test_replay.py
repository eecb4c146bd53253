"""``python -m harness replay``: rerun one stored run in-process and compare exactly."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from harness import load_results
from harness.replay import ReplayError, find_part, main, read_rows, rebuild_spec, same

SWEEP = ["sweep=smoke", "sweep.scenario=[loss_bound]", "sweep.name=rp", "sweep.data_size=[1000]", "sweep.seed=[0]", "sweep.clip_value=[null]",
         "sweep.precision=[fp32,fp16]", "sweep.steps=[50]", "scenarios.loss_bound.warmup=0", "ray.num_actors=1"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs stored by a real sweep (embedded Ray, one actor)."""
    root = tmp_path_factory.mktemp("replay")
    r = run_cli([*SWEEP, f"store.root={root}"], cwd=root)
    assert r.returncode == 0, r.stderr
    return root / "rp"


def _run_id(directory: Path, precision: str) -> str:
    df = load_results(directory)
    return str(df.loc[df["precision"] == precision, "run_id"].iloc[0])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_replay_of_a_stored_run_matches_exactly(stored: Path, precision: str) -> None:
    run_id = _run_id(stored, precision)
    r = run_cli(["replay", str(stored), f"run_id={run_id[:8]}"], cwd=stored)  # a unique prefix will do
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"replay {run_id}" in r.stdout and f"precision={precision}" in r.stdout
    assert "match: all 6 values of 1 check(s) are identical" in r.stdout
    assert "DIFFERS" not in r.stdout
    assert "absl::InitializeLog" not in r.stderr and "port.cc" not in r.stderr, r.stderr  # TF's import notices


def test_replay_of_a_tampered_value_is_a_mismatch(stored: Path, tmp_path: Path) -> None:
    copy = tmp_path / "rp"
    shutil.copytree(stored, copy)
    run_id = _run_id(copy, "fp32")
    part = find_part(copy, run_id)  # the part file that holds it (with the other run: one batch)
    table = pq.read_table(part)
    i = table.column_names.index("worst_value")
    values, mine = table.column("worst_value").to_pylist(), [r == run_id for r in table.column("run_id").to_pylist()]
    tampered = [float(np.nextafter(v, np.inf)) if m else v for v, m in zip(values, mine)]  # one ulp: only an exact
    worst = [v for v, m in zip(values, mine) if m]  # comparison sees it
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(tampered, pa.float64())), part)
    r = run_cli(["replay", str(copy), f"run_id={run_id}"], cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "mismatch: 1 of 6 values differ (loss_below.worst_value)" in r.stdout
    assert repr(float(np.nextafter(worst[0], np.inf))) in r.stdout and repr(worst[0]) in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere", "run_id=abc"], "error: nowhere: not a directory"),
    (["{dir}"], "error: run_id: missing"),
    (["{dir}", "run_id=ffffffffffffffff"], "error: run_id=ffffffffffffffff: no such run in"),
    (["{dir}", "run_id="], "error: run_id: missing"),
    (["{dir}", "run_id=abc", "colour=red"], "error: colour: unknown option"),
    (["{dir}", "run_id=abc", "threads=0"], "error: threads: '0' is not a positive integer"),
    (["{dir}", "{dir}", "run_id=abc"], "error: give one results directory (got 2"),
    (["{empty}", "run_id=abc"], "no stored runs"),
])
def test_bad_path_or_run_id_is_one_line_exit_2(stored: Path, tmp_path: Path, args: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main([a.format(dir=stored, empty=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def _runs_with_ids(directory: Path, run_ids: list[str]) -> None:
    """A part file holding one (made-up) run per id: enough for find_part, which reads run ids only."""
    from dataclasses import replace

    from conftest import make_spec

    from harness.records import CheckMeaning, RunResult, Status, result_rows
    from harness.store import write_batch

    meaning = (CheckMeaning("loss_below", 1.0, "<", "native", "step"),)
    write_batch(directory, [result_rows(replace(make_spec(seed=i), run_id=r),
                                        RunResult(run_id=r, status=Status.ERROR, declared=meaning, error="x"), "0")
                            for i, r in enumerate(run_ids)])


@pytest.mark.parametrize(("matching", "listed"), [(3, "aaaa0000, aaaa0001, aaaa0002"),
                                                  (5, "aaaa0000, aaaa0001, aaaa0002, aaaa0003, aaaa0004"),
                                                  (7, "aaaa0000, aaaa0001, aaaa0002, aaaa0003 and 3 more")])
def test_an_ambiguous_prefix_lists_its_runs_without_a_false_ellipsis(tmp_path: Path, matching: int,
                                                                      listed: str) -> None:
    """Every match when they are few (no "..." after the last of them), else a few and how many more."""
    _runs_with_ids(tmp_path, [f"aaaa{i:04d}" for i in range(matching)] + ["bbbb0000"])
    with pytest.raises(ReplayError) as info:
        find_part(tmp_path, "aaaa")
    assert str(info.value) == f"run_id=aaaa: ambiguous prefix, {matching} runs match ({listed}); give more of the run_id"
    assert "..." not in str(info.value)
    assert find_part(tmp_path, "bbbb").run_id == "bbbb0000"


def test_replay_through_the_cli_entry_point(stored: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main as cli_main

    assert cli_main(["replay", str(stored), "run_id=nope"]) == 2
    assert "run_id=nope: no such run" in capsys.readouterr().err


def test_exact_comparison() -> None:
    nan = float("nan")
    assert same(nan, nan) and same(None, None) and same(3, 3) and same(-math.inf, -math.inf)
    assert not same(0.0, -0.0) and not same(1.0, float(np.nextafter(1.0, 2.0))) and not same(None, 0)
    assert not same(nan, None) and not same(1, 2)


def _row(stored: Path) -> dict[str, Any]:
    return read_rows(find_part(stored, _run_id(stored, "fp32")))[0]


def test_rebuilt_spec_hashes_to_the_stored_run_id_or_is_refused(stored: Path) -> None:
    import yaml

    row = _row(stored)
    doc = yaml.safe_load((stored / "_sweep.yaml").read_text())
    spec = rebuild_spec(row, doc)
    assert spec.run_id == row["run_id"] and spec.params == json.loads(row["params"])
    with pytest.raises(ReplayError, match="does not hash to its run_id"):
        rebuild_spec(row, doc, target="plugins.faulty.Faulty")  # another class: not the stored run
    with pytest.raises(ReplayError, match="does not hash to its run_id"):
        rebuild_spec({**row, "seed": row["seed"] + 1}, doc)
    with pytest.raises(ReplayError, match="give target="):
        rebuild_spec(row, {})  # no _sweep.yaml: the class must be given
    assert rebuild_spec(row, {}, target=spec.target).run_id == row["run_id"]



KERAS_AT_THE_TOP = """
import keras  # at the top, as a Keras scenario module has it: importing the module imports TensorFlow

from harness.scenarios.loss_bound import LossBound


class KerasAtTheTop(LossBound):
    pass
"""

STORE_RUN = """
import sys
from dataclasses import replace
from pathlib import Path
from harness.engine import execute, init_worker
from harness.grid import RunSpec, make_run_id
from harness.records import result_rows
from harness.scenarios.base import definition
from harness.store import write_part

init_worker(1)
target = "keras_at_the_top.KerasAtTheTop"
spec = RunSpec(sweep="od", scenario="loss_bound", target=target, params={}, data_size=1000, batch_size=32, steps=150,
               epochs=None, seed=0, precision="bf16", clip_value=None, definition=definition(target, {}))
spec = replace(spec, run_id=make_run_id(spec))
write_part(Path(sys.argv[1]), spec.run_id, result_rows(spec, execute(spec), "test"))
print(spec.run_id)
"""


def test_a_run_records_onednn_and_its_replay_follows_it(tmp_path: Path) -> None:
    """A run stored with TensorFlow's oneDNN rewrite off (TF_ENABLE_ONEDNN_OPTS=0) records onednn=false, and its
    replay from a shell that has the variable at 1 switches it off again, says so and matches exactly, although
    the scenario's module imports Keras (and so TensorFlow) at its top. What replay promises is tested: the
    stored setting is applied (the replaying process has oneDNN off, else it prints a note saying it differs)
    and the values are equal. Whether this CPU's oneDNN kernels give other bf16 values than Eigen's is not: on
    some CPUs (AVX2/FMA without AVX-512) both give the same bits."""
    import os
    import subprocess
    import sys

    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "keras_at_the_top.py").write_text(KERAS_AT_THE_TOP)
    stored = {}
    for flag in ("0", "1"):
        out = tmp_path / f"onednn{flag}"
        out.mkdir()
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag, "PYTHONPATH": str(tmp_path / "mods")}
        made = subprocess.run([sys.executable, "-c", STORE_RUN, str(out)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert made.returncode == 0, made.stderr
        stored[flag] = load_results(out)
    if not stored["1"]["onednn"].all():
        pytest.skip("TensorFlow does not use oneDNN on this machine even with TF_ENABLE_ONEDNN_OPTS=1")
    off = stored["0"]
    assert off["onednn"].tolist() == [False]
    r = run_cli(["replay", str(tmp_path / "onednn0"), f"run_id={off['run_id'].iloc[0]}",
                 "target=keras_at_the_top.KerasAtTheTop"], cwd=tmp_path,
                env={"TF_ENABLE_ONEDNN_OPTS": "1", "PYTHONPATH": str(tmp_path / "mods")})
    assert r.returncode == 0, r.stdout + r.stderr
    text = " ".join(r.stdout.split())
    assert "stored with TensorFlow's oneDNN rewrite off: replaying with TF_ENABLE_ONEDNN_OPTS=0 instead of this " \
           "shell's 1" in text
    assert "this process has it on" not in text  # the replaying process has the stored setting
    assert "match: all" in text
