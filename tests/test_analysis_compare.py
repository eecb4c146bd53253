"""harness compare: the statistics hold their stated error rates on simulated sweeps with a known
answer, mismatched cells and seeds are listed, and the gate's exit codes follow the verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis.compare import compare
from harness.analysis.paired import paired_difference, paired_shift
from synthetic import results_frame, write_results
from harness.analysis.verdicts import CompareVerdict


def _sweep(outcomes: dict[tuple[str, int], list[bool]], *, seeds: list[int] | None = None,
           params: str = "{}", shift: float = 0.0) -> pd.DataFrame:
    """A frame with one check per (precision, data_size) cell; ``outcomes[cell][i]`` is True where seed i fails."""
    rows = []
    for (precision, size), fails in outcomes.items():
        for i, fail in enumerate(fails):
            seed = seeds[i] if seeds is not None else i
            rows.append({"precision": precision, "data_size": size, "seed": seed, "n_failed": int(fail),
                         "worst_value": 1.0 + (0.1 if fail else -0.1) + shift + 1e-3 * seed, "params": params})
    df = results_frame(rows)
    df["run_id"] = [f"{p}-{s}-{z}-{params}" for p, s, z in zip(df["precision"], df["seed"], df["data_size"])]
    return df


def exact_coverage(n: int, p_worse: float, p_better: float, alpha: float = 0.05) -> float:
    """The probability that the paired interval covers the true difference, summed over every
    outcome (worse, better) of n pairs (outcomes of probability under 1e-12 left out)."""
    from harness.analysis.paired import tango_interval

    total = 0.0
    for worse in range(n + 1):
        for better in range(n + 1 - worse):
            pr = stats.multinomial.pmf([worse, better, n - worse - better], n, [p_worse, p_better,
                                                                                 1 - p_worse - p_better])
            if pr > 1e-12:
                low, high = tango_interval(worse, better, n, alpha)
                total += pr * (low <= p_worse - p_better <= high)
    return total


def test_the_paired_interval_covers_the_true_difference_close_to_its_level() -> None:
    """Tango's score interval is approximate: its exact coverage (enumerated, not simulated) stays
    within about a point of 95% over these designs and averages 95% (docs/compare.md's table)."""
    designs = [(30, 0.05, 0.0), (100, 0.1, 0.02), (300, 0.02, 0.01), (100, 0.05, 0.05), (200, 0.15, 0.05)]
    coverage = [exact_coverage(*d) for d in designs]
    assert min(coverage) >= 0.935, dict(zip(designs, coverage))
    assert np.mean(coverage) >= 0.945, dict(zip(designs, coverage))


def test_the_median_shift_interval_covers_the_true_median() -> None:
    rng = np.random.default_rng(11)
    reps, hits = 1000, 0
    for _ in range(reps):
        before = rng.normal(size=40)
        after = before + 0.3 + rng.standard_t(3, size=40)  # median of the difference is 0.3
        s = paired_shift(before, after)
        hits += s.low <= 0.3 <= s.high
    assert hits / reps >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / reps)


def _no_change(rng: np.random.Generator, cells: int, seeds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two sweeps of the same seeds under no change: each seed has its own failure propensity
    (heterogeneous, Beta), and each side draws its outcome from it independently (exchangeable)."""
    before, after = {}, {}
    for c in range(cells):
        q = rng.beta(0.5, 4.0, size=seeds)  # mean rate about 11%, very uneven across seeds
        before[("fp32", 1000 * (c + 1))] = list(rng.random(seeds) < q)
        after[("fp32", 1000 * (c + 1))] = list(rng.random(seeds) < q)
    return _sweep(before), _sweep(after)


def test_under_no_change_the_chance_of_any_false_verdict_stays_at_alpha() -> None:
    """Family-wise: over 24 cells x 30 seeds, repeated, the share of repetitions with any worse or
    better verdict is at most alpha (the test fails only when the simulation is strong evidence
    against it: without Holm, about half the repetitions have one). docs/compare.md has more grids
    and repetitions (python scripts/compare_tables.py)."""
    rng = np.random.default_rng(2026)
    reps, false = 40, 0
    for _ in range(reps):
        b, a = _no_change(rng, cells=24, seeds=30)
        out = compare(b, a)
        false += out["status"].isin([CompareVerdict.WORSE, CompareVerdict.BETTER]).any()
    upper = stats.binomtest(false, reps).proportion_ci(0.99).low
    assert upper <= 0.05, f"{false} of {reps} repetitions had a false verdict"


def test_a_planted_worsening_is_found_worse_and_the_rest_identical() -> None:
    fails = [False] * 40
    worse = [i < 15 for i in range(40)]
    b = _sweep({("fp32", 1000): fails, ("fp16", 1000): fails})
    a = _sweep({("fp32", 1000): fails, ("fp16", 1000): worse})
    out = compare(b, a).set_index("precision")
    assert out.loc["fp16", "status"] is CompareVerdict.WORSE
    assert out.loc["fp16", "flipped_to_fail"] == 15 and out.loc["fp16", "diff"] == pytest.approx(15 / 40)
    assert out.loc["fp32", "status"] is CompareVerdict.IDENTICAL
    flips = compare(b, a).attrs["flips"]
    assert len(flips) == 15 and set(flips["flip"]) == {"to_fail"} and flips["before_run_id"].str.startswith("fp16").all()


def test_a_change_within_the_margin_is_same_and_without_one_says_how_many_more_seeds() -> None:
    rng = np.random.default_rng(3)
    base = list(rng.random(300) < 0.1)
    flipped = list(base)
    flipped[0] = not flipped[0]  # one seed flips: a tiny change
    b, a = _sweep({("fp32", 1000): base}), _sweep({("fp32", 1000): flipped}, shift=0.0)
    same = compare(b, a, margin=0.05).iloc[0]
    assert same["status"] is CompareVerdict.SAME
    few_b, few_a = _sweep({("fp32", 1000): base[:20]}), _sweep({("fp32", 1000): [not x for x in base[:3]] + base[3:20]})
    row = compare(few_b, few_a, margin=0.05).iloc[0]
    assert row["status"] is CompareVerdict.NOT_ENOUGH_DATA and row["more_seeds"] > 0


def test_the_equivalence_verdict_keeps_its_error_rate_at_the_margin() -> None:
    """True difference exactly at the margin: 'same' at most alpha of the time."""
    rng = np.random.default_rng(5)
    reps, same, n, margin = 1000, 0, 1000, 0.05
    for _ in range(reps):
        worse, better, _ = rng.multinomial(n, [0.06, 0.01, 0.93])  # difference 0.05 = the margin
        d = paired_difference(int(worse), int(better), n, alpha=0.10)
        same += d.low > -margin and d.high < margin
    assert same / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)


def test_one_side_missing_a_precision_and_the_other_extra_seeds_are_listed_not_dropped() -> None:
    fails = [False] * 10
    b = _sweep({("fp32", 1000): fails, ("fp16", 1000): fails})
    a = _sweep({("fp32", 1000): fails + [True, True]}, seeds=list(range(12)))
    out = compare(b, a).set_index("precision")
    assert out.loc["fp16", "status"] is CompareVerdict.ONLY_BEFORE
    assert out.loc["fp32", "pairs"] == 10 and out.loc["fp32", "after_runs"] == 12
    unpaired = out.attrs["unpaired"]
    assert unpaired["only_after"].tolist() == [2] and unpaired["seeds_only_after"].tolist() == ["10, 11"]


def test_the_setting_that_differs_is_the_change_and_runs_still_pair() -> None:
    fails = [True] * 10
    b = _sweep({("fp16", 1000): fails}, params='{"accumulate_float32": false}')
    a = _sweep({("fp16", 1000): [False] * 10}, params='{"accumulate_float32": true}')
    out = compare(b, a)
    assert out.attrs["changed"] == ["scenarios.hand.accumulate_float32: false -> true"]
    assert out.iloc[0]["pairs"] == 10 and out.iloc[0]["status"] is CompareVerdict.BETTER


def _write(df: pd.DataFrame, directory: Path) -> str:
    directory.mkdir(parents=True)
    write_results(df, str(directory))
    return str(directory)


def test_the_gate_exits_1_on_worse_and_0_on_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    fails = [False] * 30
    b = _write(_sweep({("fp32", 1000): fails}), tmp_path / "before")
    same = _write(_sweep({("fp32", 1000): fails}), tmp_path / "same")
    worse = _write(_sweep({("fp32", 1000): [i < 20 for i in range(30)]}), tmp_path / "worse")
    assert main(["compare", b, worse, "--fail-on", "worse"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[2].startswith("worse (1):") or "worse (1):" in out.split("same:")[-1].splitlines()[1]
    assert main(["compare", b, same, "--fail-on", "worse"]) == 0
    assert "identical (1)" in capsys.readouterr().out
    assert main(["compare", b, worse]) == 0  # without the gate, a worse cell is reported, not an error
    assert main(["compare", b, worse, "--out", str(tmp_path / "page")]) == 0
    page = (tmp_path / "page" / "index.html").read_text()
    assert "python -m harness replay" in page and (tmp_path / "page" / "compare.csv").is_file()


@pytest.mark.parametrize("args, message", [
    (["nowhere", "nowhere2"], "before: nowhere: no such directory"),
    (["B", "B", "--margin", "2"], "margin: 2.0 is not a rate difference strictly between 0 and 1"),
    (["B", "B", "--by", "colour"], "--by: colour is not an axis a cell can be made of"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    b = _write(_sweep({("fp32", 1000): [False] * 3}), tmp_path / "b")
    argv = [b if a == "B" else a for a in args]
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_an_axis_that_is_the_change_pairs_its_runs() -> None:
    """clip_value none -> 1.0 (or fp32 -> fp16) is the change: the runs pair across it, not two one-sided cells."""
    b = _sweep({("fp32", 1000): [False] * 10})
    a = _sweep({("fp32", 1000): [i < 8 for i in range(10)]})
    a["clip_value"] = 1.0
    out = compare(b, a)
    assert out.attrs["changed"][0] == "clip_value: none -> 1" and len(out) == 1
    assert out.iloc[0]["pairs"] == 10 and out.iloc[0]["status"] is CompareVerdict.WORSE


def test_runs_that_no_longer_complete_count_as_failing() -> None:
    """A change that makes every run error is worse, not 'only before'; 8 of 10 erroring is worse too."""
    b = _sweep({("fp32", 1000): [False] * 10})
    for errored in (10, 8):
        a = _sweep({("fp32", 1000): [False] * 10})
        a = a.astype({"passed": object, "n_failed": object})
        lost = a["seed"] < errored
        a.loc[lost, "status"] = "error"
        a.loc[lost, ["passed", "n_failed"]] = None
        a.loc[lost, ["worst_value", "worst_margin"]] = np.nan
        row = compare(b, a).iloc[0]
        assert row["status"] is CompareVerdict.WORSE and row["after_incomplete"] == errored, row


def test_a_partial_overlap_of_seeds_is_compared_as_independent_samples() -> None:
    """One shared seed must not stand for a hundred unpaired runs."""
    b = _sweep({("fp32", 1000): [i < 10 for i in range(100)]}, seeds=list(range(100)))
    a = _sweep({("fp32", 1000): [i < 90 for i in range(100)]}, seeds=list(range(99, 199)))
    row = compare(b, a).iloc[0]
    assert row["method"] == "independent" and row["status"] is CompareVerdict.WORSE


def test_a_key_numeric_on_one_side_and_null_on_the_other_does_not_break_the_match() -> None:
    b = _sweep({("fp32", 1000): [False] * 6})
    a = pd.concat([_sweep({("fp32", 1000): [False] * 6}),
                   _sweep({("fp16", 1000): [False] * 6}).assign(scenario="other", batch_size=np.nan)])
    out = compare(b, a)
    assert set(out["status"]) == {CompareVerdict.IDENTICAL, CompareVerdict.ONLY_AFTER}


def test_by_names_only_axes_and_margin_needs_alpha_below_one_half() -> None:
    b = _sweep({("fp32", 1000): [False] * 6})
    for by in (["check"], ["seed"], ["precision", "precision"]):
        with pytest.raises(KeyError, match="--by"):
            compare(b, b, by=by)
    with pytest.raises(ValueError, match="--alpha"):
        compare(b, b, margin=0.1, alpha=0.6)


def test_an_out_that_is_a_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    b = _write(_sweep({("fp32", 1000): [False] * 3}), tmp_path / "b")
    (tmp_path / "taken").write_text("")
    assert main(["compare", b, b, "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out:") and err.count("\n") == 1
