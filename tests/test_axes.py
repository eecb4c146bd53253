"""The axes table (harness/axes.py) is the one vocabulary of axes: config keys, grid, run ids, results
columns, summary rows, replay. Tested on the axis added through it, learning_rate."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from harness import axes
from harness.config import ConfigError, sweep_config_from_dict
from harness.grid import expand

SCEN = {"loss_bound": {"_target_": "harness.scenarios.loss_bound.LossBound", "bound": 1.0},
        "normalization": {"_target_": "harness.scenarios.normalization.Normalization"}}


def cfg(**sweep: Any) -> Any:
    base = dict(name="a", scenario=["loss_bound", "normalization"], data_size=[100], batch_size=[16],
                precision=["fp32", "fp16"], seed=[0, 1], clip_value=[None], steps=[10])
    base.update(sweep)
    return sweep_config_from_dict({"sweep": base, "scenarios": SCEN})


def test_every_axis_is_a_sweep_key_a_results_column_and_an_analysis_axis() -> None:
    from harness.analysis.frame import AXES
    from harness.config import SWEEP_KEYS
    from harness.records import CORE_SCHEMA

    for a in axes.AXES:
        assert a.name in SWEEP_KEYS and a.name in AXES
        assert str(CORE_SCHEMA.field(a.name).type) == {"float64": "double"}.get(a.column_type, a.column_type)
    assert sorted(a.display for a in axes.AXES) == list(range(len(axes.AXES)))  # one place each


@pytest.mark.parametrize("value, message", [
    ("abc", "sweep.learning_rate: 'abc' is not a positive number"),
    ([0.01, 0], "sweep.learning_rate: 0 is not a positive number"),
    (float("nan"), "sweep.learning_rate: nan is not a positive number (NaN and infinity are refused)"),
    ([0.01, 0.01], "sweep.learning_rate: [0.01, 0.01] has repeated values"),
])
def test_a_bad_learning_rate_is_one_line_naming_the_key(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        cfg(learning_rate=value)
    assert str(e.value) == message


def test_learning_rate_unset_keeps_the_run_ids_set_is_new_runs_and_collapses_without_training() -> None:
    base = expand(cfg())
    assert [s.run_id for s in expand(cfg(learning_rate=None))] == [s.run_id for s in base]
    assert [s.run_id for s in expand(cfg(learning_rate=[None]))] == [s.run_id for s in base]
    swept = expand(cfg(learning_rate=[0.001, 0.01]))
    lb = [s for s in swept if s.scenario == "loss_bound"]
    norm = [s for s in swept if s.scenario == "normalization"]
    assert {s.axis("learning_rate") for s in lb} == {0.001, 0.01} and len(lb) == 2 * 4
    assert not {s.run_id for s in lb} & {s.run_id for s in base}
    # normalization does not train: the axis collapses to null, its runs are the stored ones, not repeated
    assert {s.run_id for s in norm} == {s.run_id for s in base if s.scenario == "normalization"} and len(norm) == 4


def test_an_exclude_rule_may_name_learning_rate() -> None:
    runs = expand(cfg(scenario=["loss_bound"], learning_rate=[0.001, 0.01],
                      exclude=[{"learning_rate": 0.01, "precision": "fp16"}]))
    assert sorted((s.precision, s.axis("learning_rate")) for s in runs if s.seed == 0) == [
        ("fp16", 0.001), ("fp32", 0.001), ("fp32", 0.01)]


def test_the_summary_splits_its_rows_by_learning_rate_only_where_it_varies() -> None:
    from synthetic import synthetic_results

    from harness.summary import summary_frame

    df = synthetic_results(checks={"loss_below": ("below", 1.0)}, precisions=("fp32",), data_sizes=(100,),
                           seeds=range(4), seed=1)
    assert "learning_rate" not in summary_frame(df).columns  # null everywhere: one value, no split
    lr = df.assign(learning_rate=(df["seed"] % 2).map({0: 0.001, 1: 0.1}))
    frame = summary_frame(lr)
    assert list(frame["learning_rate"]) == [0.001, 0.1] and list(frame["runs"]) == [2, 2]


def _row(spec: Any) -> dict[str, Any]:
    from harness.records import RunResult, Status, result_rows

    return result_rows(spec, RunResult(run_id=spec.run_id, status=Status.OK), "0").to_pylist()[0]


def test_replay_rebuilds_the_spec_of_a_stored_row_with_its_learning_rate() -> None:
    from harness.replay import rebuild_spec

    doc = {"config": {"scenarios": SCEN}}
    for spec in expand(cfg(learning_rate=[None, 0.01]))[::3]:
        row = _row(spec)
        if row["learning_rate"] is None:
            row["learning_rate"] = float("nan")  # how pandas reads a null of a float column
        rebuilt = rebuild_spec(row, doc)
        assert rebuilt == spec and rebuilt.axis("learning_rate") == spec.axis("learning_rate")


def test_a_schema_5_part_file_reads_learning_rate_null(tmp_path) -> None:
    from harness.records import SCHEMA_VERSION
    from harness.store import load_results, write_part

    old_spec = expand(cfg(scenario=["loss_bound"], precision=["fp32"], seed=[0]))[0]
    old = pa.Table.from_pylist([_row(old_spec)]).drop_columns(["learning_rate"])
    old = old.set_column(old.schema.get_field_index("schema_version"), "schema_version", pa.array(["5"], pa.string()))
    write_part(tmp_path, "old", old)
    new = next(s for s in expand(cfg(scenario=["loss_bound"], precision=["fp32"], seed=[1], learning_rate=[0.01])))
    write_part(tmp_path, new.run_id, pa.Table.from_pylist([_row(new)]))
    df = load_results(tmp_path).set_index("schema_version")
    assert pd.isna(df.loc["5", "learning_rate"]) and df.loc[SCHEMA_VERSION, "learning_rate"] == 0.01


def test_ignoring_steps_ignores_the_length_however_given_and_no_training_every_training_axis() -> None:
    from harness.scenarios.base import unused_axes

    class Fixed:
        ignores_axes = ("steps",)

    class Once:
        trains = False

    assert unused_axes(Fixed) == {"steps", "epochs"}
    assert unused_axes(Once) == set(axes.TRAINING) >= {"batch_size", "clip_value", "steps", "epochs", "learning_rate"}


def test_an_unknown_optimizer_is_one_line_with_the_known_ones_and_a_guess() -> None:
    with pytest.raises(ConfigError) as e:
        cfg(optimizer=["adma"])
    assert str(e.value).startswith("sweep.optimizer: unknown optimizer 'adma' (known: adadelta, ") and "adam" in \
        str(e.value).split(")", 1)[1]
    runs = expand(cfg(scenario=["loss_bound"], optimizer=["SGD", None]))
    assert {s.axis("optimizer") for s in runs} == {"sgd", None}
