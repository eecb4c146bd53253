"""HARNESS_TIMELINE: the events a sweep's processes append, and the phases read from them (a real
sweep's timeline is checked in tests/test_pool.py, beside the warm pool it is compared with)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import timeline


def test_mark_appends_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.txt"
    monkeypatch.delenv(timeline.ENV, raising=False)
    timeline.mark("driver start")
    assert not path.exists()
    monkeypatch.setenv(timeline.ENV, str(path))
    timeline.mark("driver start")
    timeline.mark("ray.init start")
    events = timeline.read(path)
    assert [e.name for e in events] == ["driver start", "ray.init start"] and events[0].t <= events[1].t
    monkeypatch.setenv(timeline.ENV, str(tmp_path / "no" / "such" / "dir" / "t.txt"))
    timeline.mark("x")  # a diagnostic never stops a sweep


def test_phases_span_first_start_to_last_end_and_skip_what_is_missing(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["100.0 1 driver start", "101.0 1 ray.init start", "105.0 1 ray.init done",
             "105.5 2 actor tf import start", "105.7 3 actor tf import start", "110.0 3 actor tf import done",
             "111.0 2 actor tf import done", "111.1 1 run dispatched", "112.0 1 run finished",
             "112.1 1 run dispatched", "113.0 1 run finished", "113.1 9 not a number line", "garbage",
             "113.2 1 ray.shutdown start", "114.5 1 ray.shutdown done", "114.6 1 driver exit"]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(lines[::-1]) + "\n")  # order in the file does not matter
    got = timeline.phases(timeline.read(path))
    assert got == pytest.approx({"driver before Ray": 1.0, "Ray start": 4.0, "actor start": 0.5,
                                 "TF import in actors": 5.5, "runs": 1.9, "end": 1.6, "Ray shutdown": 1.3})
    assert timeline.phases(timeline.read(path)[:3]) == pytest.approx({"driver before Ray": 1.0, "Ray start": 4.0})
    assert timeline.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "TF import in actors" in out and "5.50 s" in out and "total" in out and "14.60 s" in out
    assert timeline.main([str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err


def test_a_tensorflow_import_that_starts_during_ray_start_counts_from_ray_start_on() -> None:
    """Workers that Ray starts with its raylet import TensorFlow as they start (harness.engine.preload),
    possibly before ray.init returns: the phases still add up, with no actor start."""
    events = [timeline.Event(t, pid, name) for t, pid, name in [
        (100.0, 1, "driver start"), (101.0, 1, "ray.init start"), (102.5, 2, "actor tf import start"),
        (103.0, 1, "ray.init done"), (104.0, 2, "actor tf import done"), (104.1, 2, "actor tf import start"),
        (104.1, 2, "actor tf import done"), (104.2, 1, "run dispatched"), (105.0, 1, "run finished")]]
    got = timeline.phases(events)
    assert got == pytest.approx({"driver before Ray": 1.0, "Ray start": 2.0, "actor start": 0.0,
                                 "TF import in actors": 1.1, "runs": 0.8})
