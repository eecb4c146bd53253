"""The bench's results as data (bench/record.py) and the table drawn from them (bench/render.py):
the table of docs/benchmarks.md is the newest recorded row of each figure, and a recorded row says
what measured it (command, commit, machine, date)."""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))

from bench import cli, record, render, seed_history  # noqa: E402
from bench.common import Figure  # noqa: E402


def row(figure: str, value: float, command: str, date: str, cores: int = 2, **kw: Any) -> dict[str, Any]:
    base = {"figure": figure, "name": f"figure {figure}", "value": value, "unit": "ratio", "target": "<= 1.2",
            "met": value <= 1.2, "detail": f"detail of {figure}", "command": command, "commit": "c" * 40,
            "dirty": False, "machine": {k: None for k in record.MACHINE} | {"cores": cores}, "date": date,
            "source": "measured"}
    return base | kw


FIXTURE = [
    row("10", 4.29, "python scripts/bench.py --only 10", "2026-12-03T10:00:00Z"),
    row("1", 0.5, "python scripts/bench.py", "2026-12-01T09:00:00Z"),
    row("3a", 1.1, "python scripts/bench.py --only 1 3", "2026-12-03T08:00:00Z"),
    row("1", 1.23456, "python scripts/bench.py --only 1 3", "2026-12-03T08:00:00Z", unit="x faster"),
    row("9b", 0.872, "python scripts/bench.py --only 10", "2026-12-03T10:00:00Z", met=False),
]


def test_the_table_is_the_newest_row_of_each_figure_grouped_by_what_measured_it(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\ntext above\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\ntext below\n")
    render.update_doc(FIXTURE, doc)
    assert doc.read_text() == """# Benchmarks

text above

<!-- bench:start -->
Each row was measured by the command listed for it:

- figures 1, 3a: `python scripts/bench.py --only 1 3` on 2026-12-03 (2 CPUs)
- figures 9b, 10: `python scripts/bench.py --only 10` on 2026-12-03 (2 CPUs)

| # | figure | measured | target | met | detail |
|---|---|---|---|---|---|
| 1 | figure 1 | 1.23 x faster | <= 1.2 | no | detail of 1 |
| 3a | figure 3a | 1.1 ratio | <= 1.2 | yes | detail of 3a |
| 9b | figure 9b | 0.872 ratio | <= 1.2 | no | detail of 9b |
| 10 | figure 10 | 4.29 ratio | <= 1.2 | no | detail of 10 |
<!-- bench:end -->

text below
"""


def test_the_committed_table_is_drawn_from_the_committed_data() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from markers import read_block

    assert read_block(render.DOC, "bench").strip() == render.block(record.load(record.DATA)), \
        "docs/benchmarks.md's table is not the newest rows of docs/bench/results.jsonl: run " \
        "python scripts/bench.py --render"


def test_a_recorded_row_says_what_measured_it_and_is_plain_json(tmp_path: Path) -> None:
    fig = Figure("3a", "time per step", np.float64(1.1), "ratio", "<= 1.2", np.bool_(True), "d")
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    rows = record.measured_now([fig], "python scripts/bench.py --only 3")
    data = tmp_path / "results.jsonl"
    record.append(data, rows)
    record.append(data, rows)
    loaded = record.load(data)
    assert len(loaded) == 2 and list(loaded[0]) == list(record.FIELDS)
    got = loaded[-1]
    assert (got["figure"], got["value"], got["met"], got["command"]) == ("3a", 1.1, True,
                                                                        "python scripts/bench.py --only 3")
    assert len(got["commit"]) == 40 and int(got["commit"], 16) >= 0  # the tests run in a git checkout
    assert isinstance(got["dirty"], bool)
    assert set(got["machine"]) == set(record.MACHINE)
    assert got["machine"]["cores"] == os.cpu_count() and got["machine"]["hostname"] and got["machine"]["python"]
    assert got["machine"]["memory_bytes"] > 0
    when = datetime.datetime.strptime(got["date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert before <= when <= datetime.datetime.now(datetime.timezone.utc)


def test_a_figure_history_lists_its_rows_oldest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "results.jsonl"
    record.append(data, FIXTURE)
    assert cli.main(argv=["--results", str(data), "--history", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("2026-12-01T09:00:00") and " 0.5 ratio " in lines[0] and " met " in lines[0]
    assert lines[1].startswith("2026-12-03T08:00:00") and " 1.23 x faster " in lines[1] and " missed " in lines[1]


def test_a_figure_without_rows_or_an_unknown_figure_is_refused(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "results.jsonl"
    record.append(data, FIXTURE)
    for argv, said in ((["--results", str(data), "--history", "7"], "--history: no recorded rows of figure 7"),
                       (["--only", "12"], "--only: no figure 12")):
        with pytest.raises(SystemExit) as e:
            cli.main(argv=argv)
        assert e.value.code == 2 and said in capsys.readouterr().err
    assert record.load(data) == json.loads(json.dumps(FIXTURE))  # nothing written


def test_a_row_records_the_measuring_command_without_where_its_results_went() -> None:
    argv = ["--only", "9", "--readme", "--results", "/tmp/r.jsonl", "--load-repeats", "9", "--out=/tmp/o", "--record"]
    assert cli.measuring_command(argv) == "python scripts/bench.py --only 9 --load-repeats 9"


def test_the_importer_reads_both_forms_of_the_tables_provenance() -> None:
    single = ("Produced by `python scripts/bench.py ` on 2026-11-23 (2 CPUs):\n\n"
              "| # | figure | measured | target | met | detail |\n|---|---|---|---|---|---|\n"
              "| 1 | speed | 230 x faster | >= 200x | yes | seed loop 19 ms/step |\n")
    listed = ("- figures 1, 2: `python scripts/bench.py --only 1 2` on 2026-12-03 (2 CPUs)\n\n"
              "| 1 | speed | -1.77 % slower | >= 200x | no | a | b |\n"
              "| 2 | overhead | 1.5e+03 % slower | <= 10% | no | d |\n")
    rows, how = seed_history.parse(single)
    got = seed_history.to_row(rows["1"], how["1"], "a" * 40, "2026-11-23T06:00:00+00:00", "README.md")
    assert (got["value"], got["unit"], got["met"], got["command"], got["date"], got["machine"]["cores"]) == \
        (230.0, "x faster", True, "python scripts/bench.py", "2026-11-23", 2)
    rows, how = seed_history.parse(listed)
    first = seed_history.to_row(rows["1"], how["1"], "b" * 40, "2026-12-03T06:00:00+00:00", "docs/benchmarks.md")
    second = seed_history.to_row(rows["2"], how["2"], "b" * 40, "2026-12-03T06:00:00+00:00", "docs/benchmarks.md")
    assert (first["value"], first["unit"], first["detail"], first["met"]) == (-1.77, "% slower", "a | b", False)
    assert (second["value"], second["command"]) == (1500.0, "python scripts/bench.py --only 1 2")


def test_every_figure_number_selects_one_module_and_every_pair_has_one_name() -> None:
    from bench import registry

    assert sorted(registry.ONLY, key=render.key_order) == [str(i) for i in range(1, 12)]
    assert len(set(registry.ONLY)) == len(registry.ONLY)
    assert all(callable(m.measure) for m in registry.MODULES)
    declared = [name for m in registry.MODULES for name in getattr(m, "PAIRS", {})]
    assert sorted(declared) == sorted(registry.PAIRS) == ["checks", "detectors", "flat", "seed"]
