"""The report: `python -m harness.report` on synthetic sweeps, exit codes, degenerate inputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic import synthetic_results, write_results
from harness.report import build_report, headline, main

SECTIONS = ("Summary", "Overview: failure rate per check", "What bound would hold", "Key findings",
            "Failure rate by data size", "Does the failure rate rise with data size?", "More data, more evaluations?",
            "Worst margins against the bound", "Which axis moves the failure rate most?",
            "Failing runs and how to replay them", "Runs that did not complete")
PNG = b"\x89PNG\r\n\x1a\n"


def _sweep(**kw: object):
    base = dict(checks={"loss_below": ("below", 1.0), "out_min": ("above", 0.0)}, data_sizes=(100, 1000, 10_000),
                precisions=("fp32", "fp16"), seeds=range(8), steps=None, epochs=1, error_rate=0.1, seed=4,
                eval_rate=lambda d: np.where(d["precision"] == "fp16", 2e-3, 2e-4))
    base.update(kw)
    return synthetic_results(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results directory with two scenarios (so checks are named scenario/check) and
    some errored runs."""
    root = tmp_path_factory.mktemp("results") / "synthetic"
    a = _sweep()
    b = _sweep(seed=5).assign(scenario="other", run_id=lambda d: d["run_id"] + "o")
    df = pd.concat([a, b], ignore_index=True)
    assert (df["status"] == "error").any()
    write_results(df, str(root), parts=4)
    return root


def test_cli_writes_every_section_with_figures_and_tables(written: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "elsewhere"
    assert main([str(written), "--out", str(out), "--target", "0.05"]) == 0
    page = (out / "index.html").read_text()
    for title in SECTIONS:
        assert f">{title}</h2>" in page
    for name in ("rates", "decomposition", "margins", "attribution"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 5000
        assert f"src='{name}.png'" in page
    for table in ("headline", "trend", "explain_rise", "decomposition", "tolerance", "attribution", "incomplete_runs"):
        assert (out / "tables" / f"{table}.csv").is_file()
    assert "RuntimeError: synthetic" in page  # the errored runs are listed
    assert "at or under 5.0%" in page  # --target reached the tolerance section
    assert "synthetic/loss_below" in page and "other/loss_below" in page  # scenarios kept apart
    terminal = capsys.readouterr().out
    assert "Run-level failure rate" in terminal and "synthetic/out_min" in terminal
    assert str(out / "index.html") in terminal


def test_headline_is_per_check_precision_and_data_size():
    head = headline(_sweep())
    assert list(head.columns[:3]) == ["check", "precision", "data_size"]
    assert len(head) == 2 * 2 * 3 and head["incomplete"].sum() > 0
    assert {"n", "failed", "rate", "ci_low", "ci_high"} <= set(head.columns)


def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main([str(tmp_path / "missing")]) == 2
    assert main([str(tmp_path)]) == 2  # exists, but holds no part file
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "no finished runs" in err[1]


def test_module_entry_point_exit_code(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(tmp_path / "nope")], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2 and "is not a results directory" in proc.stderr


def test_every_run_errored_writes_the_default_out_dir_outside_the_dataset(tmp_path: Path):
    import pyarrow.dataset as ds

    write_results(_sweep(error_rate=1.0), str(tmp_path / "sw"))
    assert main([str(tmp_path / "sw")]) == 0
    page = (tmp_path / "sw_report" / "index.html").read_text()
    assert not (tmp_path / "sw" / "report").exists()
    assert len(pd.read_parquet(tmp_path / "sw")) == len(ds.dataset(tmp_path / "sw").to_table()) > 0
    assert "No run completed" in page and ">Runs that did not complete</h2>" in page
    assert "48 of 48 stored runs did not complete" in page


def test_checks_that_never_fail_always_fail_or_only_see_nan(tmp_path: Path):
    never = _sweep(checks={"never": ("below", 1.0)}, eval_rate=0.0, error_rate=0.0)
    always = _sweep(checks={"always": ("below", 1.0)}, eval_rate=0.9, error_rate=0.0)
    nan = _sweep(checks={"nan": ("above", 0.0)}, nonfinite_rate=1.0, error_rate=0.0)
    df = pd.concat([never, always.assign(run_id=always["run_id"] + "a"), nan.assign(run_id=nan["run_id"] + "n")])
    rep = build_report(df, tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert all(f">{t}</h2>" in page for t in SECTIONS)
    verdicts = rep.tables["trend"].groupby("check")["verdict"].first()
    assert verdicts["never"].startswith("never fails") and verdicts["always"].startswith("fails in every run")
    assert (rep.tables["tolerance"].set_index("check").loc["nan", "bound_status"] == "no_bound").all()
    assert "runs saw NaN/Inf" in page
    assert "fails in every run: nothing to attribute" in page


def test_a_single_data_size_and_seed_are_said_in_words(tmp_path: Path):
    build_report(_sweep(data_sizes=(1000,), seeds=[0], error_rate=0.0), tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "Only one data size in these results" in page and "needs 298 more runs" in page
    assert all(f">{t}</h2>" in page for t in SECTIONS)


def test_analysis_and_report_import_neither_tensorflow_nor_ray():
    code = ("import sys, harness.analysis, harness.report; "
            "bad = [m for m in ('tensorflow', 'ray', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_swept_scenario_parameter_splits_its_checks(tmp_path: Path):
    from harness.report import prepare

    a = _sweep(error_rate=0.0)
    df = pd.concat([a.assign(params='{"compare": "native"}', variant="compare=native"),
                    a.assign(params='{"compare": "exact"}', variant="compare=exact", run_id=a["run_id"] + "x")],
                   ignore_index=True)
    checks = set(prepare(df)["check"])
    assert checks == {f"synthetic[compare={c}]/{k}" for c in ("native", "exact") for k in ("loss_below", "out_min")}
    rep = build_report(df, tmp_path / "rep")
    assert set(rep.headline["check"]) == checks
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "variant (" in page and "{&quot;compare" not in page  # the summary names variants, not JSON


def test_the_bound_follows_the_findings_with_the_command_for_the_missing_runs_and_its_cost(tmp_path: Path):
    """Too few runs for a guarantee: no bound is recommended, the report says how many more runs
    it takes and gives the sweep's own command with adaptive=bound and what it would cost (after
    the answer and the findings, not before them); with enough runs the bound and its guarantee are
    shown, validated on a fresh sweep."""
    small = _sweep(data_sizes=(1000,), precisions=("fp32",), seeds=range(40), error_rate=0.0, steps=50, epochs=None)
    build_report(small, tmp_path / "small", command="python -m harness sweep=smoke store.root=r")
    page = (tmp_path / "small" / "index.html").read_text()
    assert page.index(">What breaks, where, and what to try next</h2>") < page.index(">Key findings</h2>") \
        < page.index(">What bound would hold</h2>")
    assert "needs 259 more runs" in page
    assert "python -m harness sweep=smoke store.root=r adaptive=bound adaptive.target=0.01" in page
    assert "It would run about 259 more runs, about " in page  # one cell, one configuration: its missing seeds
    big = _sweep(data_sizes=(1000,), precisions=("fp32",), seeds=range(320), error_rate=0.0, steps=50, epochs=None)
    fresh = _sweep(data_sizes=(1000,), precisions=("fp32",), seeds=range(1000, 1400), error_rate=0.0, steps=50,
                   epochs=None, seed=9)
    rep = build_report(big, tmp_path / "big", fresh=fresh)
    tol = rep.tables["tolerance"]
    assert (tol["bound_status"] == "guaranteed").all() and (tol["validation_runs"] == 400).all()
    page = (tmp_path / "big" / "index.html").read_text()
    assert "with 95% confidence, from 320 runs" in page and "adaptive=bound" not in page


ALARMS = "False alarms against the outcome"


def test_the_false_alarm_section_appears_only_with_an_outcome(tmp_path: Path):
    df = _sweep(error_rate=0.0)
    build_report(df, tmp_path / "without")
    assert f">{ALARMS}</h2>" not in (tmp_path / "without" / "index.html").read_text()
    assert not (tmp_path / "without" / "tables" / "false_alarms.csv").exists()
    rep = build_report(df, tmp_path / "with", outcome="loss_below")
    page = (tmp_path / "with" / "index.html").read_text()
    assert f">{ALARMS}</h2>" in page and page.index(f">{ALARMS}</h2>") < page.index(">What bound would hold</h2>")
    assert all(f">{t}</h2>" in page for t in SECTIONS)
    alarms = rep.tables["false_alarms"]
    # by precision; data sizes pooled: a precision x data-size cell of this sweep has too few unhealthy runs to test
    assert set(alarms["check"]) == {"out_min"} and len(alarms) == 2
    assert alarms.attrs["by"] == ["precision"] and alarms.attrs["by_rule"].startswith("data sizes pooled")
    assert set(alarms["pooled"]) == {"data size (100, 1,000, 10,000), 8 seeds"}
    assert (tmp_path / "with" / "tables" / "false_alarms.csv").is_file()
    with pytest.raises(ValueError, match="matches no check"):
        build_report(df, tmp_path / "bad", outcome="nope")
    assert not (tmp_path / "bad").exists()  # nothing written


def test_cli_outcome_option(written: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "rep"
    assert main([str(written), "--out", str(out), "--outcome", "loss_below"]) == 0  # bare name: every scenario
    page = (out / "index.html").read_text()
    assert f">{ALARMS}</h2>" in page and "synthetic/out_min" in page and "other/out_min" in page
    alarms = pd.read_csv(out / "tables" / "false_alarms.csv")
    assert set(alarms["check"]) == {"synthetic/out_min", "other/out_min"} and (alarms["incomplete"] > 0).any()
    capsys.readouterr()
    assert main([str(written), "--out", str(tmp_path / "bad"), "--outcome", "accuracy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --outcome:") and "'accuracy'" in err[0]
    assert "synthetic/loss_below" in err[0] and not (tmp_path / "bad").exists()


def test_failing_runs_are_listed_with_the_command_that_replays_them(written: Path,
                                                                   default_report: tuple[Path, list[str]]):
    page = (default_report[0] / "index.html").read_text()
    assert ">Failing runs and how to replay them</h2>" in page
    df = pd.read_parquet(written)
    failing = df[(df["status"] == "ok") & (df["passed"] == False)]  # noqa: E712
    assert f"python -m harness replay {written} run_id=" in page
    assert any(r in page for r in failing["run_id"])


@pytest.fixture(scope="module")
def default_report(written: Path) -> tuple[Path, list[str]]:
    """The report of ``written`` at its default place (``python -m harness report RESULTS``),
    with the dataset's file names before it was written."""
    from harness.cli import main as harness_main

    before = sorted(p.name for p in written.iterdir())
    assert harness_main(["report", str(written)]) == 0
    return written.parent / f"{written.name}_report", before


def test_the_report_is_written_beside_the_dataset_not_inside(written: Path, default_report: tuple[Path, list[str]]):
    out, before = default_report
    assert out == written.parent / "synthetic_report" and (out / "index.html").is_file()
    assert sorted(p.name for p in written.iterdir()) == before  # nothing added to the dataset
    assert len(pd.read_parquet(written)) == len(pd.read_parquet(written, columns=["run_id"])) > 0


CELL = re.compile(r"<td class='cell' style='background:(#[0-9a-f]{6});color:#[0-9a-f]+' "
                  r"title='(\d+) of (\d+) completed runs fail (.+?) at (\w+), data size ([\d,]+) \(\d+%\)'>(.*?)</td>")


def test_the_overview_heatmap_shows_k_of_n_and_links_to_the_failing_runs(written: Path,
                                                                         default_report: tuple[Path, list[str]]):
    from harness.analysis.frame import failed_mask, label, ok_mask
    from harness.report import prepare
    from harness.report.sections.overview import colour

    page = (default_report[0] / "index.html").read_text()
    overview = page[page.index(">Overview: failure rate per check</h2>"):page.index(">What bound would hold</h2>")]
    failing = page[page.index(">Failing runs and how to replay them</h2>"):
                   page.index(">Runs that did not complete</h2>")]
    assert page.index(">Summary</h2>") < page.index(">Overview: failure rate per check</h2>")
    assert overview.count("<table class='heat'>") == 2  # one heatmap per scenario
    df = prepare(pd.read_parquet(written))
    keys = ["check", "precision", "data_size"]
    completed = df[ok_mask(df)].groupby(keys)["run_id"].nunique()
    failed = df[failed_mask(df)].groupby(keys)["run_id"].nunique().reindex(completed.index, fill_value=0)
    cells = {(c, p, s): (bg, int(k), int(n), text) for bg, k, n, c, p, s, text in CELL.findall(overview)}
    assert len(cells) == len(completed) == 2 * 2 * 2 * 3  # scenario x check x precision x data size
    linked = 0
    for (check, precision, size), n in completed.items():
        bg, k, n_shown, text = cells[(check, precision, label(size))]
        assert (k, n_shown) == (failed[(check, precision, size)], n) and f"{k}/{n}" in text
        assert bg == colour(k / n)  # fixed 0..1 scale
        href = re.search(r"href='#(fail-[^']+)'", text)
        assert (href is not None) == (k > 0)
        if href:  # the target row lists the cell's runs, the replay command and the trace of the worst run
            linked += 1
            row = failing[failing.index(f"<tbody id='{href.group(1)}'>"):]
            row = row[:row.index("</tbody>")]
            runs = df[failed_mask(df) & (df["check"] == check) & (df["precision"] == precision)
                      & (df["data_size"] == size)].sort_values(["seed", "run_id"])
            worst = runs.sort_values("worst_margin", kind="stable")["run_id"].iloc[0]
            assert f"{k} / {n}" in row and runs["run_id"].iloc[0] in row
            assert f"python -m harness replay {written} run_id={runs['run_id'].iloc[0]}</code>" in row
            assert f"python -m harness replay {written} run_id={worst} --trace</code>" in row
    assert linked > 0 and "runs that did not complete</th>" in overview  # the errored runs: their own grey row
    table = pd.read_csv(default_report[0] / "tables" / "failing_runs.csv")
    assert len(table) == int(failed_mask(df).sum()) and table["trace"].str.endswith("--trace").all()


def test_the_colour_scale_is_fixed_from_0_to_1():
    from harness.report.sections.overview import STOPS, colour

    assert colour(0.0) == STOPS[0] and colour(1.0) == STOPS[-1] and colour(0.5) == STOPS[4]
    assert colour(-1) == STOPS[0] and colour(2) == STOPS[-1]


def test_the_registry_drives_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A registered section appears, in its place and in the navigation; one whose applies()
    is False does not; the page is the registry, in order."""
    from harness.report import Section, registry
    from harness.report.sections import incomplete, summary

    shown = Section("A dummy analysis", lambda ctx: f"<p>dummy saw {ctx.completed_runs} completed rows</p>")
    hidden = Section("Never shown", lambda ctx: "<p>hidden</p>", applies=lambda ctx: False)
    monkeypatch.setattr(registry, "SECTIONS", [summary.SECTION, shown, hidden, incomplete.SECTION])
    df = _sweep(data_sizes=(100,), precisions=("fp32",), seeds=range(3), error_rate=0.0)
    rep = build_report(df, tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text()
    assert rep.sections == ["Summary", "A dummy analysis", "Runs that did not complete"]
    assert ">A dummy analysis</h2>" in page and f"dummy saw {len(df)} completed rows" in page
    assert '<a href="#a-dummy-analysis">A dummy analysis</a>' in page  # in the navigation
    assert "Never shown" not in page and "hidden" not in page
    titles = [page.index(f">{t}</h2>") for t in ("Summary", "A dummy analysis", "Runs that did not complete")]
    assert titles == sorted(titles)
    assert "What bound would hold" not in page  # not registered, not computed
    assert "tolerance" not in rep.tables


def test_report_subcommand_and_short_out_option(written: Path, tmp_path: Path):
    from harness.cli import main as harness_main

    assert harness_main(["report", str(tmp_path / "nope")]) == 2
    proc = subprocess.run([sys.executable, "-m", "harness.report", "--help"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0 and all(o in proc.stdout for o in ("-o OUT, --out OUT", "--fresh", "--outcome",
                                                                   "--holdout", "--target", "--gof"))


def test_summary_says_what_the_runs_ran_on_and_flags_a_mix() -> None:
    """The TensorFlow version and oneDNN setting of the completed runs; a sweep whose runs ran on other
    versions or kernels (e.g. resumed from another shell, or over part files of schema < 4, which lack the
    setting) says so with its counts; versions in version order; nothing known, nothing said."""
    from harness.report.sections.summary import _ran_on

    done = pd.DataFrame({"tf_version": ["2.21.0"] * 3, "onednn": [True, True, True]})
    assert _ran_on(done) == "ran on TensorFlow 2.21.0; oneDNN rewrite on"
    mixed = _ran_on(done.assign(onednn=[True, False, None]))
    assert "<strong>ran on TensorFlow 2.21.0; oneDNN rewrite on in 1 run, off in 1 run, unknown in 1 run</strong>" \
        in mixed and "compare like with like" in mixed
    assert "oneDNN rewrite off in 1 run, unknown in 2 runs</strong>" in _ran_on(done.assign(onednn=[None, False, None]))
    assert _ran_on(done.assign(onednn=None)) == "ran on TensorFlow 2.21.0"
    assert _ran_on(done.assign(onednn=pd.array([False] * 3, dtype="boolean"))).endswith("oneDNN rewrite off")
    assert "TensorFlow 2.9.1 (1 run), 2.10.0 (2 runs);" in _ran_on(done.assign(tf_version=["2.10.0", "2.9.1", "2.10.0"]))
    assert _ran_on(pd.DataFrame({"status": ["ok"]})) == ""


def test_the_report_answers_for_the_target_the_adaptive_bound_sweep_ran_for(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]):
    """A sweep run with adaptive=bound adaptive.target=0.05 stops at the runs a 5% bound needs (59 at 95%):
    its report gives that bound, without --target, and says where the target came from."""
    import yaml

    root = tmp_path / "calib"
    write_results(synthetic_results(seeds=range(80)), str(root))
    (root / "_sweep.yaml").write_text(yaml.safe_dump({"sweep": "calib", "runs": 80, "config": {
        "adaptive": {"rule": "bound", "target": 0.05, "confidence": 0.95}}}))
    assert main([str(root), "--out", str(tmp_path / "r")]) == 0
    tol = pd.read_csv(tmp_path / "r" / "tables" / "tolerance.csv")
    assert (tol["bound_status"] == "guaranteed").all()
    assert "bounds at a 5% false-alarm target with 95% confidence (the sweep's adaptive.target)" in capsys.readouterr().out
    assert main([str(root), "--out", str(tmp_path / "r1"), "--target", "0.01"]) == 0  # an explicit target wins
    assert (pd.read_csv(tmp_path / "r1" / "tables" / "tolerance.csv")["bound_status"] == "needs_runs").all()


def test_the_report_analyses_the_runs_of_the_current_definition_and_says_what_it_left_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from harness.store import write_plan

    root = tmp_path / "sw"
    df = synthetic_results(seeds=range(12))
    write_results(df, str(root))
    current = sorted(df["run_id"].unique())[:10]  # two runs of an earlier definition of a check
    write_plan(root, current)
    assert main([str(root), "--out", str(tmp_path / "r")]) == 0
    assert "left out 2 stored run(s) of other definitions" in " ".join(capsys.readouterr().out.split())
    assert pd.read_csv(tmp_path / "r" / "tables" / "headline.csv")["runs"].sum() == 10
    assert main([str(root), "--out", str(tmp_path / "all"), "--all-runs"]) == 0
    assert pd.read_csv(tmp_path / "all" / "tables" / "headline.csv")["runs"].sum() == 12
    assert "left out" not in capsys.readouterr().out


def test_the_worst_margins_plot_draws_runs_that_saw_nan_or_inf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A run with margin -inf failed: it is drawn (a red cross at the panel's bottom edge), not only counted."""
    from harness.report import plots

    df = _sweep(error_rate=0.0, nonfinite_rate=0.3)
    n_bad = int(((df["status"] == "ok") & (df["worst_margin"] == -np.inf) & (df["check"] == "loss_below")).sum())
    assert n_bad > 0
    figs = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: figs.append(fig) or path)
    plots.plot_margins(df[df["check"] == "loss_below"], tmp_path / "m.png")
    crosses = [ln for ax in figs[0].axes for ln in ax.get_lines() if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert sum(len(ln.get_xdata()) for ln in crosses) == n_bad
    assert all(ln.get_color() == "#b00000" for ln in crosses)


def test_no_trace_command_is_offered_for_runs_with_no_training_steps(tmp_path: Path):
    """A scenario that does not train has no per-step values: its failing cells offer a replay, not a trace."""
    df = _sweep(error_rate=0.0).assign(steps=0, when="final")  # as a scenario of final checks records its runs
    build_report(df, tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "replay the first:" in page and "trace the worst" not in page and "--trace" not in page
    build_report(_sweep(error_rate=0.0), tmp_path / "t")  # training runs: traced
    assert "trace the worst" in (tmp_path / "t" / "index.html").read_text()


def test_the_summary_groups_many_checks_instead_of_listing_every_name(tmp_path: Path):
    from harness import detectors as D

    names = [c.name for c in D.all_detectors() if c.when == "step"]
    df = _sweep(error_rate=0.0, checks={n: ("below", 1.0) for n in names}, data_sizes=(100,), precisions=("fp32",))
    build_report(df, tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    summary = page.split(">Summary</h2>", 1)[1].split("</ul>", 1)[0]
    assert "autotrainer.* (6)" in summary and "thedeepchecker.* (" in summary
    assert "autotrainer.exploding_gradient" not in summary


def test_an_explicit_target_keeps_the_confidence_the_sweep_ran_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import yaml

    root = tmp_path / "calib"
    write_results(synthetic_results(seeds=range(80)), str(root))
    (root / "_sweep.yaml").write_text(yaml.safe_dump({"sweep": "calib", "runs": 80, "config": {
        "adaptive": {"rule": "bound", "target": 0.05, "confidence": 0.99}}}))
    assert main([str(root), "--out", str(tmp_path / "r"), "--target", "0.02"]) == 0
    assert "bounds at a 2% false-alarm target with 99% confidence (--target)" in capsys.readouterr().out
