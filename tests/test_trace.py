"""``python -m harness replay ... --trace``: per-step traces of a stored run (in-process, no Ray)."""

from __future__ import annotations

import json
import operator
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml

from harness.replay import main, same

TRACED = "plugins.traced.Traced"  # tests/plugins/traced.py: scheduled, windowed and final checks
NORMALIZATION = "harness.scenarios.normalization.Normalization"
PARAMS = {"learning_rate": 0.1, "sched_bound": 0.05, "grad_bound": 1.0}
NUMERICS = ("loss", "grads_finite", "skipped", "loss_scale", "grad_norm", "clip_active")
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
PNG = b"\x89PNG\r\n\x1a\n"


def _spec(target: str, params: dict[str, Any], **kw: Any) -> Any:
    from harness.grid import RunSpec, make_run_id, steps_for
    from harness.scenarios.base import definition

    base: dict[str, Any] = dict(sweep="rp", scenario="traced", target=target, params=params, data_size=200,
                                batch_size=16, steps=steps_for(200, 16, 3.0), epochs=3.0, seed=0, precision="fp32",
                                clip_value=None, definition=definition(target, params))
    base.update(kw)
    spec = RunSpec(**base)
    return replace(spec, run_id=make_run_id(spec))


def _store(directory: Path, spec: Any) -> str:
    """Run ``spec`` in this process and store it as a sweep would (part file, _sweep.yaml)."""
    from harness.engine import execute
    from harness.records import result_rows
    from harness.store import write_part, write_text

    result = execute(spec)
    assert result.status.value == "ok", result.error
    write_part(directory, spec.run_id, result_rows(spec, result, "test"))
    write_text(directory / "_sweep.yaml",
               yaml.safe_dump({"config": {"scenarios": {spec.scenario: {"_target_": spec.target}}}}))
    return spec.run_id


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, tf_worker: None) -> dict[str, Any]:
    """Traced runs (epochs schedule, fp32 and fp16) in rp/, a normalization run (no training) in nm/."""
    root = tmp_path_factory.mktemp("trace")
    ids = {p: _store(root / "rp", _spec(TRACED, PARAMS, precision=p)) for p in ("fp32", "fp16")}
    ids["normalization"] = _store(root / "nm", _spec(NORMALIZATION, {"tol": 0.1}, sweep="nm", scenario="normalization",
                                                     batch_size=None, steps=0, epochs=None, data_size=500))
    return {"root": root, "ids": ids}


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main([*args, "threads=2"])
    return code, capsys.readouterr().out.splitlines()


def _assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 500


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trace_of_a_stored_run_has_every_step_and_its_failures(stored: dict[str, Any], precision: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    directory, run_id = stored["root"] / "rp", stored["ids"][precision]
    code, out = _replay(capsys, str(directory), f"run_id={run_id[:6]}", "--trace")
    assert code == 0, out
    assert any(ln.startswith("match: all 30 values of 5 check(s)") for ln in out)
    trace_dir = stored["root"] / "rp_traces" / run_id  # beside the results directory, not in it
    files = [trace_dir / f for f in ("trace.parquet", "trace.csv", "checks.json", "trace.png")]
    assert out[-6:-2] == [str(f) for f in files] and all(f.is_file() for f in files)
    events = Path(out[-2])  # then the TensorBoard event file, in the logdir the sweep's traces share
    assert events.is_file() and events.parent.parent == stored["root"] / "rp_traces" / "tensorboard"
    assert out[-1] == f"curves: tensorboard --logdir {events.parent.parent}"
    assert sorted(p.name for p in directory.iterdir()) == sorted([f"{r}.parquet" for k, r in stored["ids"].items()
                                                                  if k != "normalization"] + ["_sweep.yaml"])

    rows = {r["check"]: r for r in pq.read_table(directory / f"{run_id}.parquet").to_pylist()}
    steps = next(iter(rows.values()))["steps"]
    assert steps == 38  # ceil(3 epochs x 200 rows / 16)
    table = pq.read_table(files[0])
    side = json.loads(files[2].read_text())
    assert json.loads(table.schema.metadata[b"harness.trace"]) == side
    assert side["run_id"] == run_id and side["verified"] is True and side["steps"] == steps
    meaning = {c["check"]: c for c in side["checks"]}
    step_checks = [c for c, r in rows.items() if r["when"] == "step"]
    assert table.num_rows == steps and table.column("step").to_pylist() == list(range(steps))
    assert {"step", *step_checks, *NUMERICS} <= set(table.column_names)
    assert all(table.schema.field(c).type == pa.float64() for c in step_checks)
    csv = pcsv.read_csv(files[1])
    assert csv.column_names == table.column_names and csv.num_rows == steps
    for c in step_checks:  # the CSV holds the float64 values exactly
        assert all(same(a, b) for a, b in zip(csv.column(c).to_pylist(), table.column(c).to_pylist()))

    checked = 0
    for name in step_checks:
        row, m = rows[name], meaning[name]
        assert (m["op"], m["every"], m["after"], m["bound"]) == (row["op"], row["every"], row["after"], row["bound"])
        assert same(m["bound_compared"], row["bound_compared"])
        assert m["consistent"] is True and m["trace_n_failed"] == row["n_failed"]
        if m["statistic"] != "value":  # windowed: the statistic at each evaluated step
            stat = table.column(m["statistic_column"])
            assert len(stat) - stat.null_count == row["n_evaluated"]
            continue
        # recomputed here from the step values, the bound as compared and the schedule
        x = table.column(name).to_numpy()
        s = np.arange(steps)
        evaluated = (s >= m["after"]) & ((s - m["after"]) % m["every"] == 0)
        with np.errstate(invalid="ignore"):
            failed = evaluated & ~(np.isfinite(x) & OPS[m["op"]](x, m["bound_compared"]))
        failing = s[failed]
        assert int(evaluated.sum()) == row["n_evaluated"]
        assert len(failing) == row["n_failed"] > 0
        assert int(failing[0]) == row["first_failure_step"]
        checked += 1
    assert checked == 3 and meaning["loss_sched"]["every"] == 3 and rows["loss_sched"]["n_evaluated"] == 12
    assert same(meaning["slope_near"]["value"], rows["slope_near"]["worst_value"])  # the final check's one value
    loss = table.column("loss").to_numpy()
    assert same(float(loss[-1]), next(iter(rows.values()))["final_loss"])
    assert int(table.column("skipped").to_numpy(zero_copy_only=False).sum()) == rows["loss_below"]["skipped_steps"]
    _assert_png(files[3])


def test_trace_of_a_scenario_that_does_not_train(stored: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    run_id = stored["ids"]["normalization"]
    code, out = _replay(capsys, str(stored["root"] / "nm"), f"run_id={run_id}", "--trace", f"target={NORMALIZATION}")
    assert code == 0, out
    assert "trace (0 steps: no per-step values, the final value of 2 check(s)):" in out
    trace_dir = stored["root"] / "nm_traces" / run_id
    table = pq.read_table(trace_dir / "trace.parquet")
    assert table.num_rows == 0 and table.column_names == ["step", *NUMERICS]
    rows = {r["check"]: r for r in pq.read_table(stored["root"] / "nm" / f"{run_id}.parquet").to_pylist()}
    side = json.loads((trace_dir / "checks.json").read_text())
    assert side["steps"] == 0
    for c in side["checks"]:
        assert c["when"] == "final" and same(c["value"], rows[c["check"]]["worst_value"])
    _assert_png(trace_dir / "trace.png")


def test_trace_of_a_run_that_now_differs_is_written_and_exits_1(stored: dict[str, Any], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "rp"
    shutil.copytree(stored["root"] / "rp", copy)
    run_id = stored["ids"]["fp32"]
    part = copy / f"{run_id}.parquet"
    table = pq.read_table(part)
    i = table.column_names.index("n_failed")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array([v + 1 for v in table.column(i).to_pylist()],
                                                                       pa.int64())), part)
    out_dir = tmp_path / "elsewhere"
    code, out = _replay(capsys, str(copy), f"run_id={run_id}", "--trace", f"out={out_dir}")
    assert code == 1
    assert any(ln.startswith("mismatch: 5 of 30 values differ") for ln in out)
    assert out[-3] == str(out_dir / "trace.png") and "DIFFERS from the stored run" in out[-7]
    assert Path(out[-2]).parent.parent == out_dir / "tensorboard"
    assert json.loads((out_dir / "checks.json").read_text())["verified"] is False
    assert not (tmp_path / "rp_traces").exists()


def test_series_leave_the_default_loop_unchanged(tf_worker: None) -> None:
    """The default loop returns the summaries only; the loop with series returns the same
    summaries, bit for bit, plus the series, whose summaries are those summaries."""
    import tensorflow as tf

    from harness.checks import state_to_values
    from harness.engine import execute
    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.scenarios.base import declared_checks, instantiate

    spec = _spec(TRACED, PARAMS, precision="fp16", epochs=None, steps=20)
    got: list[Any] = []
    plain, traced = execute(spec), execute(spec, on_series=lambda *a: got.append(a))
    assert plain.checks and len(plain.checks) == len(traced.checks)
    for a, b in zip(plain.checks, traced.checks):
        for f in ("n_evaluated", "n_failed", "n_nonfinite", "first_failure_step", "worst_value", "worst_margin",
                  "bound_compared", "value_dtype", "last_failed"):
            assert same(getattr(a, f), getattr(b, f)), (a.check, f)
    for f in ("final_loss", "nonfinite_values", "loss_scale_min", "skipped_steps"):
        assert same(getattr(plain, f), getattr(traced, f)), f
    assert plain.extras == traced.extras
    (series, checks), = got
    assert series.numerics.shape == (20, len(NUMERICS)) and series.numerics.dtype == np.float32
    for c in checks:
        if c.when == "step":
            values = series.values[c.name]
            assert values.shape == (20,) and values.dtype == np.float64
            r = next(r for r in plain.checks if r.check == c.name)
            mine = state_to_values(c.summarize(tf.constant(values), tf.range(20, dtype=tf.int64), r.value_dtype))
            assert all(same(mine[f], getattr(r, f)) for f in ("n_failed", "first_failure_step", "worst_value"))

    scenario = instantiate(spec.target, spec.params)
    seed_everything(spec.seed)
    data = tuple(tf.convert_to_tensor(t) for t in scenario.build(RunContext(spec)))
    loop = compile_loop(scenario, data, declared_checks(scenario), batch_size=16)
    assert len(loop.fn.structured_outputs) == 2  # (states, numerics): nothing more leaves the default loop
    assert loop.run(data, steps=3, seed=0).series is None


@pytest.mark.parametrize(("args", "message"), [
    (["{dir}", "run_id=abc", "--traces"], "error: --traces: unknown option"),
    (["{dir}", "run_id=abc", "out=/tmp/x"], "error: out=: only with --trace"),
    (["{dir}", "run_id=abc", "--trace", "out="], "error: out=: empty"),
    (["{dir}", "run_id={id}", "--trace", "out={dir}/traces"], "inside the results directory"),
])
def test_bad_trace_options_are_one_line_exit_2(stored: dict[str, Any], args: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    directory = stored["root"] / "rp"
    code = main([a.format(dir=directory, id=stored["ids"]["fp32"]) for a in args])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and message in captured.err, captured.err
    assert "replay " not in captured.out  # nothing ran
