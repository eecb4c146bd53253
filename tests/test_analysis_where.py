"""Where a check fails (harness.analysis.where) and the report's first section built on it."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic import results_frame
from harness.analysis.where import failure_pattern


def _grid(fails, *, seeds: int = 3, nan: bool = False, sizes=(1000, 10000, 100000), check: str = "c") -> pd.DataFrame:
    """Runs of one check over fp32/fp16 x sizes; ``fails(precision, size, seed)`` says which fail."""
    rows = []
    for i, (p, d, s) in enumerate(itertools.product(("fp32", "fp16"), sizes, range(seeds))):
        bad = bool(fails(p, d, s))
        rows.append(dict(run_id=f"{check}{i}", seed=s, precision=p, data_size=d, check=check, when="final",
                         n_evaluated=1, n_failed=int(bad), n_nonfinite=int(bad and nan),
                         worst_value=float("nan") if bad and nan else (2.0 if bad else 0.5),
                         worst_margin=float("-inf") if bad and nan else (-1.0 if bad else 0.5)))
    return results_frame(rows)


@pytest.mark.parametrize("fails, words", [
    (lambda p, d, s: False, ""),
    (lambda p, d, s: True, "in every cell"),
    (lambda p, d, s: p == "fp16", "only in fp16"),
    (lambda p, d, s: d == 10000, "only at 10,000 rows"),
    (lambda p, d, s: d >= 10000, "only from 10,000 rows on"),
    (lambda p, d, s: d <= 10000, "only up to 10,000 rows"),
    (lambda p, d, s: p == "fp16" and d == 100000, "only in fp16 at 100,000 rows"),
    (lambda p, d, s: p == "fp16" and d >= 10000, "only in fp16 from 10,000 rows on"),
    (lambda p, d, s: (p, d) in {("fp16", 1000), ("fp32", 100000)}, "at fp16 1,000 rows; fp32 100,000 rows"),
])
def test_the_pattern_is_the_shortest_description_that_is_exactly_true(fails, words) -> None:
    row = failure_pattern(_grid(fails)).iloc[0]
    assert row["pattern"] == words
    df = _grid(fails)
    failed = df["passed"].eq(False)
    assert row["failed"] == int(failed.sum()) and row["runs"] == len(df)


def test_an_interaction_says_neither_condition_alone_fails_and_counts_both_sides() -> None:
    row = failure_pattern(_grid(lambda p, d, s: p == "fp16" and d == 100000, nan=True)).iloc[0]
    assert row["inside_failed"] == row["inside_runs"] == 3 and row["nonfinite"] == 3
    assert row["outside_runs"] == 15
    assert row["interaction"] == ("neither alone: in fp16 but not at 100,000 rows, 0 of 6 runs fail; "
                                  "at 100,000 rows but not in fp16, 0 of 3")
    assert failure_pattern(_grid(lambda p, d, s: p == "fp16")).iloc[0]["interaction"] == ""  # one condition


def test_a_flaky_cell_is_still_a_failing_cell_with_its_counts() -> None:
    row = failure_pattern(_grid(lambda p, d, s: p == "fp16" and s == 0)).iloc[0]  # one seed of three fails
    assert row["pattern"] == "only in fp16" and (row["inside_failed"], row["inside_runs"]) == (3, 9)


def test_the_upper_bound_where_no_run_failed_keeps_its_confidence_on_fresh_draws() -> None:
    """Simulation against a known rate: over many sweeps of n runs at a true rate p, the one-sided
    95% upper bound printed for a cell without failures is below p in at most 5% of all sweeps
    (Clopper-Pearson is exact: P(K = 0 and U(0) < p) <= alpha for every p)."""
    from harness.analysis.where import _upper

    rng = np.random.default_rng(7)
    for n in (6, 20, 60):
        u0 = _upper(0, n, 0.05)
        assert u0 == pytest.approx(1 - 0.05 ** (1 / n))
        for p in (0.01, 0.05, 0.2, u0 * 1.01):
            k = rng.binomial(n, p, size=20000)
            wrong = np.mean((k == 0) & (u0 < p))
            assert wrong <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 20000)


def test_the_report_leads_with_the_answer_per_scenario(tmp_path: Path) -> None:
    from harness.report import build_report

    a = _grid(lambda p, d, s: p == "fp16" and d == 100000, nan=True, check="mean_near_zero")
    b = _grid(lambda p, d, s: True, check="loss_below")
    a["scenario"], b["scenario"] = "normalization", "loss_bound"
    a["params"] = '{"accumulate_float32": false}'
    df = pd.concat([a, b], ignore_index=True)
    build_report(df, tmp_path / "r", command="python -m harness sweep=mine",
                 fixes={"normalization": {"accumulate_float32": True}})
    page = (tmp_path / "r" / "index.html").read_text()
    first = page.split("<section>", 2)[1]
    assert ">What breaks, where, and what to try next</h2>" in first
    assert "<h3>loss_bound</h3>" in first and "<h3>normalization</h3>" in first
    assert "<b>mean_near_zero</b> fails only in fp16 at 100,000 rows: 3 of 3 runs there, 3 with NaN/Inf" in first
    assert "everywhere else 0 of 15 runs fail (the rate there is at most 18% at 95% confidence" in first
    assert "a float16 overflow" in first
    assert "<code>python -m harness sweep=mine scenarios.normalization.accumulate_float32=true</code>" in first
    assert "<b>loss_below</b> fails in every cell (every precision and data size): 18 of 18 runs" in first
    findings = page.split(">Key findings</h2>", 1)[1].split("</section>", 1)[0]
    attribution = page.split(">Which axis moves the failure rate most?</h2>", 1)[1].split("</section>", 1)[0]
    for text in (findings, attribution):  # the pooled one-axis ranking is followed by where the failures are
        assert "fails only in fp16 at 100,000 rows" in text and "neither alone" in text


def test_each_swept_variant_of_a_scenario_gets_its_own_answer(tmp_path: Path) -> None:
    """A scenario whose parameters are swept (a bug and its fix): each variant is answered apart,
    under its own heading, never two same-named checks of different variants in one list."""
    from harness.report import build_report

    bug = _grid(lambda p, d, s: True, check="acc")
    fix = _grid(lambda p, d, s: s == 0, check="acc")
    for df, v in ((bug, "fix=False"), (fix, "fix=True")):
        df["scenario"], df["variant"], df["run_id"] = "prog", v, v + df["run_id"]
    build_report(pd.concat([bug, fix], ignore_index=True), tmp_path / "r")
    first = (tmp_path / "r" / "index.html").read_text().split("<section>", 2)[1]
    assert "<h3>prog [fix=False]</h3>" in first and "<h3>prog [fix=True]</h3>" in first
    bug_part, fix_part = first.split("<h3>prog [fix=True]</h3>")
    assert "<b>acc</b> fails in every cell (every precision and data size): 18 of 18 runs" in bug_part
    assert "<b>acc</b> fails in every cell (every precision and data size): 6 of 18 runs. Seed-dependent" in fix_part
