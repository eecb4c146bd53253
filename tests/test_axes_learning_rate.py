"""A new axis end to end: ``learning_rate``, one entry of harness/axes.py, swept on the circles example
through the real CLI, is a results column, a row of the summary, in the report, in the RunSpec replay
rebuilds and in the trace's side record, with no code of its own in any of them."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

from harness import load_results

SWEEP = ["sweep=circles", "sweep.learning_rate=[0.001,0.1]", "sweep.data_size=[200]", "sweep.batch_size=[50]",
         "sweep.precision=[fp32]", "sweep.seed=[0]", "sweep.steps=[20]", "scenarios.circles.check_every=5",
         "ray.num_actors=2", "ray.num_cpus_per_actor=0.5"]


def test_learning_rate_swept_on_circles_reaches_results_summary_report_replay_and_trace(tmp_path: Path) -> None:
    first = run_cli([*SWEEP, f"store.root={tmp_path}"], cwd=tmp_path, timeout=600)
    assert first.returncode in (0, 1), first.stderr
    out = tmp_path / "circles"
    df = load_results(out)
    runs = df.drop_duplicates("run_id")
    assert sorted(runs["learning_rate"]) == [0.001, 0.1] and (runs["status"] == "ok").all()  # a column, each run's own
    header = next(ln for ln in first.stdout.splitlines() if "precision" in ln and "rows" in ln)
    assert "learning rate" in header  # a row dimension of the summary: it varies
    rows = [ln for ln in first.stdout.splitlines() if "val_accuracy_at_least" in ln]
    assert any("0.001" in ln for ln in rows) and any("0.1" in ln and "0.001" not in ln for ln in rows)

    report = run_cli(["report", str(out)], cwd=tmp_path, timeout=600)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "circles_report" / "index.html").read_text()
    assert "learning_rate (0.001, 0.1)" in page  # the report's summary names the axis that varies

    run_id = runs.loc[runs["learning_rate"] == 0.1, "run_id"].iloc[0]
    replay = run_cli(["replay", str(out), f"run_id={run_id}", "--trace"], cwd=tmp_path, timeout=600)
    assert replay.returncode == 0, replay.stdout + replay.stderr  # the rebuilt RunSpec hashed to the stored run_id
    side = json.loads((tmp_path / "circles_traces" / run_id / "checks.json").read_text())
    assert side["learning_rate"] == 0.1 and side["run_id"] == run_id and side["verified"]
    labels = [p.name for p in (tmp_path / "circles_traces" / "tensorboard").iterdir()]
    assert labels == [f"circles,fp32,learning_rate=0.1,seed=0,{run_id[:8]}"]  # the run's TensorBoard label names it
