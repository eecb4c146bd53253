"""``replay --trace`` writes TensorBoard event files (read back here with TensorBoard's own reader),
and ``replay worst=cell`` / ``run_id=A,B`` replays and traces a set of runs (in-process, no Ray)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_trace import PARAMS, TRACED, _replay, _spec, _store

from harness import load_results
from harness.replay import main

ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.util import tensor_util  # noqa: E402  (after the skip: TensorBoard's own tensor decoding)

DT_FLOAT = 1  # tensorflow.DataType: TensorBoard's scalars are float32


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, tf_worker: None) -> dict[str, Any]:
    """Three traced runs of one sweep directory (tb/): fp32 seed 0, fp16 seeds 0 and 1."""
    root = tmp_path_factory.mktemp("tb")
    ids = {(p, s): _store(root / "tb", _spec(TRACED, PARAMS, precision=p, seed=s))
           for p, s in (("fp32", 0), ("fp16", 0), ("fp16", 1))}
    return {"root": root, "dir": root / "tb", "ids": ids}


def _scalars(run_dir: Path) -> dict[str, tuple[list[int], np.ndarray]]:
    """tag -> (steps, values) of a TensorBoard run directory, as TensorBoard reads it."""
    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.TENSORS: 0})  # 0: keep every event
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        events = acc.Tensors(tag)
        assert acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"  # the scalars dashboard's
        assert all(e.tensor_proto.dtype == DT_FLOAT for e in events)
        out[tag] = ([e.step for e in events], np.array([tensor_util.make_ndarray(e.tensor_proto).item()
                                                        for e in events], np.float32))
    return out


def test_trace_writes_tensorboard_scalars_equal_to_the_trace(stored: dict[str, Any],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run_id = stored["ids"][("fp16", 1)]
    logdir = stored["root"] / "tb_traces" / "tensorboard"  # shared by the sweep's traces
    label = f"traced,fp16,seed=1,{run_id[:8]}"  # named by what varies in the sweep (precision, seed), and the run_id
    stale = logdir / f"traced,fp16,data_size=200,seed=1,{run_id[:8]}"  # this run, when data_size varied too
    for d in (stale, logdir / label):  # event files of earlier traces of this run
        d.mkdir(parents=True)
        (d / "events.out.tfevents.1.host.1.0.v2").write_bytes(b"")
    code, out = _replay(capsys, str(stored["dir"]), f"run_id={run_id[:6]}", "--trace")
    assert code == 0, out
    assert out[-1] == f"curves: tensorboard --logdir {logdir}"
    events = Path(out[-2])
    assert events.parent == logdir / label and events.name.startswith("events.out.tfevents.")
    assert [p.name for p in logdir.iterdir()] == [label] and list(events.parent.iterdir()) == [events]  # replaced

    table = pq.read_table(stored["root"] / "tb_traces" / run_id / "trace.parquet")
    side = json.loads(table.schema.metadata[b"harness.trace"])
    n = table.num_rows
    expected: dict[str, tuple[list[int], np.ndarray]] = {}
    for c in side["checks"]:
        if c["when"] == "final":
            expected[f"final/{c['check']}"] = ([n], np.array([float(c["value"])]))
            continue
        expected[f"check/{c['check']}"] = (list(range(n)), table.column(c["column"]).to_numpy())
        if "statistic_column" in c:  # at the evaluated steps only
            stat = table.column(c["statistic_column"]).to_pandas()
            expected[f"check/{c['check']}.{c['statistic']}"] = (list(stat.dropna().index), stat.dropna().to_numpy())
    for name in ("loss", "grad_norm", "loss_scale"):
        expected[f"train/{name}"] = (list(range(n)), table.column(name).to_numpy())
    got = _scalars(events.parent)
    assert sorted(got) == sorted(expected)
    assert {"final/slope_near", "train/loss_scale"} <= set(got) and n == 38
    for tag, (steps, values) in expected.items():
        assert got[tag][0] == steps, tag
        assert np.array_equal(got[tag][1], np.asarray(values, np.float64).astype(np.float32), equal_nan=True), tag


def test_a_set_of_runs_worst_of_each_cell_is_replayed_and_traced(stored: dict[str, Any], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "tb"
    shutil.copytree(stored["dir"], directory)
    code, out = _replay(capsys, str(directory), "worst=cell", "check=loss_below", "--trace")
    assert code == 0, out

    df = load_results(directory, filter={"check": "loss_below"})  # its worst run per precision (seeds pooled)
    worst = df.sort_values(["worst_margin", "seed"]).groupby("precision").head(1)
    chosen = set(worst["run_id"])
    assert len(chosen) == 2 and df["worst_margin"].nunique() == 3
    assert out[0] == ("worst=cell: 2 run(s), the worst (lowest worst_margin) of each of 2 cell(s) "
                      "(scenario, check, precision; seeds pooled)")
    assert sum(ln.startswith("replay ") for ln in out) == 2
    assert out[-2:] == ["2 run(s) replayed: 2 match, 0 differ",
                        f"curves: tensorboard --logdir {tmp_path / 'tb_traces' / 'tensorboard'}"]
    traces = {p.name for p in (tmp_path / "tb_traces").iterdir()} - {"tensorboard"}
    assert traces == chosen and all((tmp_path / "tb_traces" / r / "trace.parquet").is_file() for r in chosen)
    runs = {p.name.rsplit(",", 1)[1]: p for p in (tmp_path / "tb_traces" / "tensorboard").iterdir()}
    assert sorted(runs) == sorted(r[:8] for r in chosen)
    tags = {p.name: set(_scalars(p)) for p in runs.values()}
    (fp16, a), (fp32, b) = sorted(tags.items(), key=lambda kv: ",fp32," in kv[0])
    assert ",fp16," in fp16 and ",fp32," in fp32
    assert a - b == {"train/loss_scale"} and b < a  # the same tags, so they overlay; a loss scale where there is one


def test_a_run_id_list_replays_each(stored: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = stored["ids"][("fp32", 0)], stored["ids"][("fp16", 0)]
    code, out = _replay(capsys, str(stored["dir"]), f"run_id={a[:6]},{b},{a}")  # prefixes; a run given twice runs once
    assert code == 0, out
    assert [ln.split(":")[0] for ln in out if ln.startswith("replay ")] == [f"replay {a}", f"replay {b}"]
    assert out[-1] == "2 run(s) replayed: 2 match, 0 differ"
    assert sum(ln.startswith("match: all 30 values of 5 check(s)") for ln in out) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["worst=row"], "error: worst=row: unknown value; give worst=cell"),
    (["worst=cell", "run_id={id}"], "error: run_id={id}: not with worst=cell"),
    (["worst=cell", "target=x.Y"], "error: target=x.Y: only with run_id="),
    (["run_id={id}", "check=loss_below"], "error: check=loss_below: only with worst=cell"),
    (["worst=cell", "check=loss_belw"], "error: check=loss_belw: no such check in {dir} (did you mean loss_below?)"),
    (["worst=cell", "check="], "error: check=: empty"),
    (["run_id={id},,{id}"], "error: run_id={id},,{id}: an empty run id in the list"),
    (["run_id={id},ffffffffffffffff"], "error: run_id=ffffffffffffffff: no such run in {dir}"),
])
def test_bad_set_options_are_one_line_exit_2_and_write_nothing(stored: dict[str, Any], tmp_path: Path,
                                                               args: list[str], message: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "tb"
    shutil.copytree(stored["dir"], directory)
    run_id = stored["ids"][("fp32", 0)]
    code = main([str(directory), *(a.format(id=run_id) for a in args), "--trace"])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(message.format(id=run_id, dir=directory)), captured.err
    assert "replay " not in captured.out and not (tmp_path / "tb_traces").exists()  # nothing ran, nothing written


def test_the_tensorboard_line_says_how_to_install_it_where_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from harness.replay import _tensorboard_hint

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert _tensorboard_hint(Path("r_traces/tensorboard")) == ("curves: tensorboard --logdir r_traces/tensorboard   "
                                                                "(TensorBoard is not installed here: pip install tensorboard)")


def test_worst_of_cells_takes_nan_inf_first_and_splits_by_what_varies() -> None:
    from synthetic import results_frame
    from harness.replay import worst_of_cells

    rows = [{"seed": s, "precision": p, "worst_margin": m} for s, p, m in
            [(0, "fp32", 0.5), (1, "fp32", 0.2), (0, "fp16", -np.inf), (1, "fp16", -3.0), (2, "fp16", np.nan)]]
    rows.append({"seed": 3, "precision": "fp32", "status": "error", "worst_margin": np.nan})
    cells = worst_of_cells(results_frame(rows))
    assert list(cells.columns) == ["scenario", "check", "precision", "run_id", "seed", "worst_margin"]
    got = dict(zip(cells["precision"], cells["seed"]))
    assert got == {"fp16": 0, "fp32": 1}
    assert worst_of_cells(results_frame(rows), check="other").empty
    assert isinstance(cells, pd.DataFrame)


def test_event_files_are_written_without_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     tf_worker: None) -> None:
    """tf.summary.write and the scalar plugin's metadata, both TensorFlow's own: nothing imports
    tensorboard (TensorFlow 2.21 no longer depends on it; its tf.summary.scalar would need it)."""
    import sys

    import pyarrow as pa

    from harness.trace import write_events

    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard raises ImportError
    table = pa.table({"step": pa.array([0, 1, 2], pa.int64()), "c": pa.array([0.5, float("nan"), 2.0]),
                      "loss": pa.array([3.0, 2.0, 1.0], pa.float32()),
                      "grad_norm": pa.array([1.0, 1.0, 1.0], pa.float32()),
                      "loss_scale": pa.array([1.0, 1.0, 1.0], pa.float32())})
    side = {"checks": [{"check": "c", "when": "step", "column": "c"}, {"check": "f", "when": "final", "value": "inf"}]}
    path = write_events(tmp_path / "run", table, side)
    assert path.parent == tmp_path / "run" and sys.modules["tensorboard"] is None
    monkeypatch.undo()
    got = _scalars(tmp_path / "run")
    assert sorted(got) == ["check/c", "final/f", "train/grad_norm", "train/loss"]  # no scaling, no loss_scale tag
    assert got["check/c"][0] == [0, 1, 2] and np.array_equal(got["check/c"][1], [0.5, np.nan, 2.0], equal_nan=True)
    assert got["final/f"][0] == [3] and np.array_equal(got["final/f"][1], [np.inf])
