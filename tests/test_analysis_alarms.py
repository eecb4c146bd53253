"""False alarms of detector checks against an outcome check: counts, intervals (coverage by
simulation), the association test (false-positive rate under independence), verdicts,
outcome matching and degenerate cases. Synthetic frames only: no TensorFlow, no Ray."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis import AlarmVerdict, false_alarms, match_outcome
from synthetic import results_frame, synthetic_results
from harness.report import prepare

OUTCOME = "accuracy_at_least"
DETECTOR = "grad_explodes"


def correlated(*, seeds: int = 40, data_sizes=(1000,), precisions=("fp32",), p_unhealthy: float = 0.3,
               fire: tuple[float, float] = (0.1, 0.8), error_rate: float = 0.0, seed: int = 0,
               detectors: tuple[str, ...] = (DETECTOR,)) -> pd.DataFrame:
    """A results frame where each completed run is unhealthy (fails OUTCOME) with probability
    ``p_unhealthy`` and each detector fires (fails) with probability fire[0] in a healthy run
    and fire[1] in an unhealthy one, independently across detectors given the outcome."""
    checks = {OUTCOME: ("above", 0.9), **{d: ("below", 10.0) for d in detectors}}
    df = synthetic_results(checks=checks, data_sizes=data_sizes, precisions=precisions, seeds=range(seeds),
                           eval_rate=0.0, error_rate=error_rate, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    runs = df["run_id"].unique()
    sick = pd.Series(rng.random(len(runs)) < p_unhealthy, index=runs)
    unhealthy = df["run_id"].map(sick).to_numpy(dtype=bool)
    p = np.where(unhealthy, fire[1], fire[0])
    fails = np.where(df["check"].eq(OUTCOME).to_numpy(), unhealthy, rng.random(len(df)) < p)
    ok = df["status"].eq("ok").to_numpy()
    df["passed"] = pd.array(np.where(ok, ~fails, None), dtype="boolean")
    df["n_failed"] = pd.array(np.where(ok, fails.astype(int), None), dtype="Int64")
    return df


def hand(outcome_fails: list[bool], detector_fires: list[bool], **kw: object) -> pd.DataFrame:
    """One run per pair: the outcome check and the detector, as hand-made rows."""
    rows = []
    for seed, (bad, fires) in enumerate(zip(outcome_fails, detector_fires)):
        run = f"run{seed:03d}"
        rows.append(dict(run_id=run, seed=seed, check=OUTCOME, op=">=", bound=0.9, n_failed=int(bad), **kw))
        rows.append(dict(run_id=run, seed=seed, check=DETECTOR, op="<", bound=10.0, n_failed=int(fires), **kw))
    return results_frame(rows)


def test_counts_rates_and_sentence_on_a_hand_made_table():
    # 10 healthy runs, 6 of them fire; 5 unhealthy runs, 4 of them fire
    out = [False] * 10 + [True] * 5
    fires = [True] * 6 + [False] * 4 + [True] * 4 + [False]
    r = false_alarms(hand(out, fires), OUTCOME).iloc[0]
    assert r["check"] == DETECTOR and r["outcome"] == OUTCOME
    assert (r.runs, r.outcome_passed, r.outcome_failed, r.fired) == (15, 10, 5, 10)
    assert (r.fired_when_healthy, r.fired_when_unhealthy, r.incomplete, r.unknown) == (6, 4, 0, 0)
    assert r.false_alarm_rate == pytest.approx(0.6) and r.detection_rate == pytest.approx(0.8)
    assert r.ppv == pytest.approx(0.4)
    assert (r.false_alarm_ci_low, r.false_alarm_ci_high) == pytest.approx((0.3127, 0.8318), abs=1e-4)
    assert "fires in 6 of 10 healthy runs (60%, 95% CI 31%-83%) and in 4 of 5 unhealthy runs (80%" in r.verdict
    assert "4 of its 10 alarms were in unhealthy runs (40%)" in r.verdict
    # the one-sided Fisher exact test (fires more when unhealthy) and the sample odds ratio
    table = [[4, 1], [6, 4]]  # rows: unhealthy, healthy; columns: fired, quiet
    assert r.p_value == pytest.approx(stats.fisher_exact(table, alternative="greater")[1])
    assert r.odds_ratio == pytest.approx(4 * 4 / (1 * 6))
    assert r.status == AlarmVerdict.NOISY.value  # 60% false alarms, lower limit 31% > 5%
    assert r.verdict.startswith("noisy: ")


def test_a_known_association_is_found_and_estimated():
    df = correlated(seeds=400, fire=(0.1, 0.8), seed=3)
    r = false_alarms(df, OUTCOME).iloc[0]
    assert r.false_alarm_ci_low <= 0.1 <= r.false_alarm_ci_high
    assert r.detection_ci_low <= 0.8 <= r.detection_ci_high
    assert r.p_value < 1e-10 and r.odds_ratio > 10
    assert r.status == "noisy"  # 10% false alarms is above the default 5%, with confidence
    relaxed = false_alarms(df, OUTCOME, max_false_alarm=0.2).iloc[0]
    assert relaxed.status == "informative" and "fires more often in unhealthy runs" in relaxed.verdict
    lenient = false_alarms(correlated(seeds=400, fire=(0.01, 0.8), seed=4), OUTCOME, max_false_alarm=0.2).iloc[0]
    assert lenient.status == "informative"  # informative comes before quiet


def test_an_independent_detector_is_uninformative():
    # 30% false alarms, and a limit of 30%: neither noisy nor quiet
    r = false_alarms(correlated(seeds=200, fire=(0.3, 0.3), seed=5), OUTCOME, max_false_alarm=0.3).iloc[0]
    assert r.false_alarm_ci_low < 0.3 < r.false_alarm_ci_high
    assert r.status == "uninformative" and r.p_value > 0.05
    assert "no evidence that it fires more often in unhealthy runs" in r.verdict


def test_groups_by_precision_and_data_size_and_checks_each_detector():
    df = correlated(seeds=20, data_sizes=(100, 1000), precisions=("fp32", "fp16"), detectors=("a", "b", "c"))
    res = false_alarms(df, OUTCOME, by=["precision", "data_size"])
    assert list(res.columns[:3]) == ["check", "precision", "data_size"]
    assert res.equals(false_alarms(df, OUTCOME)) and res.attrs["by"] == ["precision", "data_size"]  # auto: the same
    assert len(res) == 3 * 2 * 2 and set(res["check"]) == {"a", "b", "c"}
    assert (res["runs"] == 20).all() and (res["outcome_passed"] + res["outcome_failed"] == 20).all()
    whole = false_alarms(df, OUTCOME, by=None)
    assert len(whole) == 3 and (whole["runs"] == 80).all()
    assert set(res["status"]) <= {v.value for v in AlarmVerdict}


def test_no_unhealthy_run_leaves_the_detection_rate_unknown_never_zero():
    r = false_alarms(hand([False] * 10, [True] + [False] * 9), OUTCOME).iloc[0]
    assert r.outcome_failed == 0 and np.isnan(r.detection_rate) and np.isnan(r.detection_ci_low)
    assert np.isnan(r.p_value) and r.ppv == 0  # its one alarm was false: known, even with no unhealthy run
    assert r.false_alarm_rate == pytest.approx(0.1)
    assert "no unhealthy runs: detection rate unknown" in r.verdict
    assert r.status == "not_enough_data"
    # enough healthy runs without an alarm: quiet, with the upper limit in the sentence
    quiet = false_alarms(hand([False] * 80, [False] * 80), OUTCOME).iloc[0]
    assert quiet.status == "quiet" and quiet.false_alarm_ci_high <= 0.05 and np.isnan(quiet.ppv)  # no alarm
    assert "no unhealthy runs: detection rate unknown" in quiet.verdict and "upper limit" in quiet.verdict


def test_no_healthy_run_leaves_the_false_alarm_rate_unknown():
    r = false_alarms(hand([True] * 6, [True] * 3 + [False] * 3), OUTCOME).iloc[0]
    assert r.outcome_passed == 0 and np.isnan(r.false_alarm_rate) and r.detection_rate == pytest.approx(0.5)
    assert r.status == "not_enough_data" and "no healthy runs: false-alarm rate unknown" in r.verdict


def test_too_few_runs_to_test_is_not_enough_data():
    # one unhealthy run of five: even a perfect detector gives p = 1/5
    r = false_alarms(hand([True, False, False, False, False], [True, False, False, False, False]), OUTCOME).iloc[0]
    assert r.status == "not_enough_data" and np.isnan(r.p_value)
    assert "too few runs to test" in r.verdict and "p >= 0.2" in r.verdict


def test_incomplete_runs_and_missing_results_are_counted_apart():
    df = correlated(seeds=60, error_rate=0.25, seed=7)
    n_bad = df.loc[df["check"] == OUTCOME, "status"].ne("ok").sum()
    assert n_bad > 0
    r = false_alarms(df, OUTCOME).iloc[0]
    assert r.incomplete == n_bad and r.runs == 60 - n_bad
    res = false_alarms(df, OUTCOME)
    assert res.attrs["incomplete_runs"] == n_bad and res.attrs["outcome_judged"] == 60 - n_bad
    # a completed run whose outcome has no result is not in any rate
    rows = [dict(run_id="x", check=OUTCOME, passed=None), dict(run_id="x", check=DETECTOR, n_failed=1),
            dict(run_id="y", check=OUTCOME), dict(run_id="y", check=DETECTOR, n_failed=1),
            dict(run_id="z", check=OUTCOME, status="crashed"), dict(run_id="z", check=DETECTOR, status="crashed")]
    r = false_alarms(results_frame(rows), OUTCOME).iloc[0]
    assert (r.runs, r.unknown, r.incomplete, r.fired_when_healthy) == (1, 1, 1, 1)
    crashed = false_alarms(correlated(seeds=4, error_rate=1.0), OUTCOME).iloc[0]
    assert (crashed.runs, crashed.incomplete, crashed.status) == (0, 4, "not_enough_data")
    assert np.isnan(crashed.false_alarm_rate) and np.isnan(crashed.detection_rate)
    assert crashed.verdict == ("not enough data: no completed run with a result for both this check and the outcome "
                               "(4 did not complete)")


def test_outcome_by_bare_or_full_name_after_prepare():
    a = correlated(seeds=12, seed=1)
    b = correlated(seeds=12, seed=2).assign(scenario="other", run_id=lambda d: d["run_id"] + "o")
    df = prepare(pd.concat([a.assign(scenario="mlp"), b], ignore_index=True))
    bare = false_alarms(df, OUTCOME)
    assert set(bare["check"]) == {f"mlp/{DETECTOR}", f"other/{DETECTOR}"}
    assert dict(zip(bare["check"], bare["outcome"])) == {f"mlp/{DETECTOR}": f"mlp/{OUTCOME}",
                                                        f"other/{DETECTOR}": f"other/{OUTCOME}"}
    assert bare.attrs["outcome_checks"] == [f"mlp/{OUTCOME}", f"other/{OUTCOME}"]
    full = false_alarms(df, f"other/{OUTCOME}")
    assert list(full["check"]) == [f"other/{DETECTOR}"] and full["runs"].sum() == 12
    variant = prepare(a.assign(variant="lr=0.1", scenario="mlp"))
    assert match_outcome(variant["check"].unique(), OUTCOME) == [f"mlp[lr=0.1]/{OUTCOME}"]


def test_an_outcome_that_matches_no_check_is_a_one_line_value_error():
    with pytest.raises(ValueError) as err:
        false_alarms(correlated(seeds=5), "accuracy")
    text = str(err.value)
    assert "\n" not in text and "'accuracy'" in text and OUTCOME in text and DETECTOR in text
    with pytest.raises(ValueError, match="matches no check"):
        match_outcome(["mlp/loss"], "other/loss")


def test_the_outcome_as_the_only_check_gives_an_empty_frame():
    df = correlated(seeds=5)
    res = false_alarms(df[df["check"] == OUTCOME], OUTCOME)
    assert res.empty and "false_alarm_rate" in res.columns and "status" in res.columns


def test_wilson_intervals_cover_the_true_rates_by_simulation():
    """1000 independent cells (data sizes) of 30 runs each: 30% unhealthy, the detector fires
    with probability 0.1 in healthy runs and 0.8 in unhealthy ones. The 95% Wilson intervals
    cover the true false-alarm and detection rates in about 95% of cells (measured 97% and 96.5%)."""
    res = false_alarms(correlated(seeds=30, data_sizes=range(1, 1001), fire=(0.1, 0.8), seed=11), OUTCOME,
                       by=["precision", "data_size"])
    assert len(res) == 1000
    fa = res.dropna(subset=["false_alarm_ci_low"])
    det = res.dropna(subset=["detection_ci_low"])
    cover_fa = ((fa["false_alarm_ci_low"] <= 0.1) & (0.1 <= fa["false_alarm_ci_high"])).mean()
    cover_det = ((det["detection_ci_low"] <= 0.8) & (0.8 <= det["detection_ci_high"])).mean()
    assert cover_fa >= 0.93 and cover_det >= 0.93, (cover_fa, cover_det)
    assert (res["p_value"] < 0.05).mean() > 0.9  # and the association is found (power)


def test_the_association_verdict_is_rarely_informative_under_independence():
    """Firing independent of the outcome (0.2 in every run): the one-sided Fisher test at 5%
    calls at most about 5% of 1000 cells informative (exact, so conservative: measured ~2%)."""
    res = false_alarms(correlated(seeds=40, data_sizes=range(1, 1001), fire=(0.2, 0.2), seed=12), OUTCOME,
                       by=["precision", "data_size"], max_false_alarm=0.5)
    significant = (res["p_value"] < 0.05).mean()
    informative = (res["status"] == AlarmVerdict.INFORMATIVE.value).mean()
    assert significant <= 0.05 + 0.015 and informative <= 0.05 + 0.015, (significant, informative)


def test_verdict_tones():
    assert AlarmVerdict.NOISY.tone == "bad"
    assert AlarmVerdict.INFORMATIVE.tone == "good" and AlarmVerdict.QUIET.tone == "good"
    assert AlarmVerdict.UNINFORMATIVE.tone == "neutral" and AlarmVerdict.NOT_ENOUGH_DATA.tone == "neutral"


def test_the_section_states_the_runs_and_colours_the_verdicts():
    from harness.report.sections import alarms as S

    df = correlated(seeds=30, precisions=("fp32", "fp16"), error_rate=0.1, seed=2)
    res = false_alarms(df, OUTCOME)
    page = S.body(res, OUTCOME)
    assert S.TITLE == "False alarms against the outcome"
    a = res.attrs
    assert f"{a['healthy_runs']:,} healthy and {a['unhealthy_runs']:,} unhealthy" in page
    assert f"{a['incomplete_runs']:,} did not complete" in page
    assert "false alarms [95% CI]" in page and "detection [95% CI]" in page
    noisy = false_alarms(hand([False] * 10 + [True] * 5, [True] * 10 + [False] * 5), OUTCOME)
    assert "class='bad'" in S.body(noisy, OUTCOME)
    none = false_alarms(hand([False] * 10, [False] * 10), OUTCOME)
    assert "unknown (no unhealthy runs)" in S.body(none, OUTCOME)
    empty = S.body(res.iloc[0:0], OUTCOME)
    assert "no detector to measure" in empty


# ------------------------------------------------------------------------------------------------ pooling


def bug_and_fix(*, seeds: int = 30, precisions=("fp32", "fp16", "bf16"), data_sizes=(500,), prepared: bool = True,
                also_fires_on_fix: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A program swept with a bug/fix variant axis (``scenarios.p._axes_.fix=[false,true]``): every buggy run
    fails the outcome and every fixed run passes it; DETECTOR fires on every buggy run and (with probability
    ``also_fires_on_fix``) on fixed runs; "quiet_one" never fires. As ``report.prepare`` names the checks
    (``p[fix=False]/accuracy_at_least``) unless ``prepared=False``."""
    rng = np.random.default_rng(seed)
    rows = []
    for fix in (False, True):
        for prec in precisions:
            for size in data_sizes:
                for s in range(seeds):
                    run = f"{fix}-{prec}-{size}-{s}"
                    variant = f"fix={fix}"
                    fires = (not fix) or rng.random() < also_fires_on_fix
                    for name, failed in ((OUTCOME, not fix), (DETECTOR, fires), ("quiet_one", False)):
                        check = f"p[{variant}]/{name}" if prepared else name
                        rows.append(dict(run_id=run, seed=s, precision=prec, data_size=size, scenario="p",
                                         variant=variant, params=f'{{"fix": {str(fix).lower()}}}', check=check,
                                         n_failed=int(failed)))
    return results_frame(rows)


def test_a_bug_and_its_fix_as_variants_are_pooled_and_the_detector_is_informative_per_precision():
    df = bug_and_fix()
    res = false_alarms(df, OUTCOME)  # by="auto": precision (one data size), variants and seeds pooled
    assert res.attrs["by"] == ["precision"] and res.attrs["by_rule"] == ""
    assert res.attrs["pooled"] == {"variant": ["fix=False", "fix=True"], "seed": list(range(30))}
    det = res[res["check"] == DETECTOR].set_index("precision")
    assert sorted(det.index) == ["bf16", "fp16", "fp32"] and (det["outcome"] == OUTCOME).all()
    assert (det["outcome_passed"] == 30).all() and (det["outcome_failed"] == 30).all()
    assert (det["fired_when_unhealthy"] == 30).all() and (det["fired_when_healthy"] == 0).all()
    assert (det["status"] == AlarmVerdict.INFORMATIVE.value).all()
    # a perfect detector on 30 + 30 runs: p = 1 / C(60, 30)
    assert det["p_value"].to_numpy() == pytest.approx(1 / math.comb(60, 30))
    assert (det["pooled"] == "variant (fix=False, fix=True), 30 seeds").all()
    never = res[res["check"] == "quiet_one"]  # fires nowhere: 0 of 30 healthy runs is not yet within 5% (11%)
    assert (never["status"] == AlarmVerdict.UNINFORMATIVE.value).all() and (never["p_value"] == 1).all()


def test_with_the_variant_in_by_each_variant_alone_is_not_enough_data():
    df = bug_and_fix()
    res = false_alarms(df, OUTCOME, by=["precision", "variant"])
    assert list(res.columns[:3]) == ["check", "precision", "variant"]
    assert set(res["variant"]) == {"fix=False", "fix=True"}
    assert set(res["check"]) == {DETECTOR, "quiet_one"}  # named without the variant, which has its own column
    det = res[res["check"] == DETECTOR]
    assert len(det) == 6 and (det["status"] == AlarmVerdict.NOT_ENOUGH_DATA.value).all()
    assert ((det["outcome_passed"] == 0) | (det["outcome_failed"] == 0)).all()
    assert res.attrs["pooled"] == {"seed": list(range(30))} and (res["pooled"] == "30 seeds").all()


def test_pooling_works_on_raw_frames_and_on_several_scenarios():
    raw = false_alarms(bug_and_fix(prepared=False), OUTCOME)  # load_results' names: no variant in the check
    prepped = false_alarms(bug_and_fix(), OUTCOME)
    cols = ["check", "precision", "outcome_passed", "outcome_failed", "fired_when_healthy", "fired_when_unhealthy",
            "status"]
    assert raw[cols].equals(prepped[cols])
    a, b = bug_and_fix(seeds=10), bug_and_fix(seeds=10, seed=1)
    b = b.assign(scenario="q", run_id=b["run_id"] + "q", check=b["check"].str.replace("p[", "q[", regex=False))
    both = false_alarms(pd.concat([a, b], ignore_index=True), OUTCOME)
    assert set(both["check"]) == {f"p/{DETECTOR}", "p/quiet_one", f"q/{DETECTOR}", "q/quiet_one"}
    assert set(both["outcome"]) == {f"p/{OUTCOME}", f"q/{OUTCOME}"}
    assert (both.loc[both["check"].str.endswith(DETECTOR), "status"] == "informative").all()


def test_auto_splits_data_size_only_when_every_data_size_cell_can_be_tested():
    df = bug_and_fix(seeds=10, data_sizes=(100, 1000))
    res = false_alarms(df, OUTCOME)
    assert res.attrs["by"] == ["precision", "data_size"] and "split by data size" in res.attrs["by_rule"]
    assert "data_size" not in res.attrs["pooled"]
    # one cell without an unhealthy run: data sizes are pooled, and the rule names the cell
    lopsided = df[~((df["data_size"] == 1000) & (df["precision"] == "fp16") & df["check"].str.contains("False"))]
    res = false_alarms(lopsided, OUTCOME)
    assert res.attrs["by"] == ["precision"] and res.attrs["pooled"]["data_size"] == [100, 1000]
    assert res.attrs["by_rule"] == "data sizes pooled: fp16 x 1,000 rows has no unhealthy run"
    assert (res["pooled"].str.startswith("variant (fix=False, fix=True), data size (100, 1,000)")).all()
    # too few to test: 1 healthy and 1 unhealthy run (C(2, 1) = 2 <= 1 / 0.05)
    tiny = bug_and_fix(seeds=1, data_sizes=(100, 1000))
    assert false_alarms(tiny, OUTCOME).attrs["by_rule"] == (
        "data sizes pooled: bf16 x 100 rows has 1 healthy and 1 unhealthy runs, too few to test")
    # explicit by: as given, no rule
    assert false_alarms(lopsided, OUTCOME, by=["precision", "data_size"]).attrs["by_rule"] == ""


def test_a_detector_that_also_fires_on_the_fix_is_noisy_when_pooled():
    res = false_alarms(bug_and_fix(also_fires_on_fix=0.5, seed=3), OUTCOME)
    det = res[res["check"] == DETECTOR]
    assert (det["status"] == AlarmVerdict.NOISY.value).all() and (det["fired_when_unhealthy"] == 30).all()
    assert (det["p_value"] < 0.05).all()  # it does go with the bug, and the sentence says so
    assert det["verdict"].str.contains("although firing does go with an unhealthy outcome").all()


def test_pooling_keeps_the_association_test_valid_under_independence():
    """A bug/fix variant axis, 20 + 20 runs per precision, 1000 precisions: the detector fires with
    probability 0.3 whatever the variant. Pooling over the variant (and seeds) must not make the one-sided
    Fisher test call it informative in more than about 5% of cells."""
    rng = np.random.default_rng(21)
    n_cells, n = 1000, 20
    fix = np.tile(np.r_[np.zeros(n, bool), np.ones(n, bool)], n_cells)
    cell = np.repeat(np.arange(n_cells), 2 * n)
    fires = rng.random(len(fix)) < 0.3
    runs = np.arange(len(fix)).astype(str)
    variant = np.where(fix, "fix=True", "fix=False")
    frame = pd.concat([
        pd.DataFrame({"run_id": runs, "check": [f"p[{v}]/{OUTCOME}" for v in variant], "n_failed": (~fix).astype(int)}),
        pd.DataFrame({"run_id": runs, "check": [f"p[{v}]/{DETECTOR}" for v in variant], "n_failed": fires.astype(int)}),
    ], ignore_index=True)
    frame["precision"] = np.tile(cell.astype(str), 2)
    frame["variant"] = np.tile(variant, 2)
    frame["scenario"] = "p"
    frame["status"], frame["passed"] = "ok", frame["n_failed"] == 0
    res = false_alarms(frame, OUTCOME, max_false_alarm=0.5)
    assert len(res) == n_cells and res.attrs["pooled"] == {"variant": ["fix=False", "fix=True"]}
    informative = (res["status"] == AlarmVerdict.INFORMATIVE.value).mean()
    assert informative <= 0.05 + 0.015, informative


def test_the_section_says_in_one_line_what_it_grouped_by_and_pooled():
    from harness.report.sections import alarms as S

    res = false_alarms(bug_and_fix(seeds=10, data_sizes=(100, 1000)), OUTCOME)
    assert S.pooled_line(res) == ("Grouped by precision, data size; pooled over: variant (fix=False, fix=True), "
                                  "10 seeds (split by data size: every data-size cell has enough healthy and "
                                  "unhealthy runs to test).")
    page = S.body(res, OUTCOME)
    assert S.pooled_line(res) in page and "Per detector and precision x data size:" in page
    split = false_alarms(bug_and_fix(seeds=10), OUTCOME, by=["precision", "variant"])
    assert S.pooled_line(split) == "Grouped by precision, variant; pooled over: 10 seeds."
    assert S.pooled_line(false_alarms(hand([False, True] * 5, [False, True] * 5), OUTCOME, by=None)) == (
        "Not grouped; pooled over: 10 seeds.")


def test_report_cli_by_option(tmp_path):
    from synthetic import write_results
    from harness.report import main

    root = tmp_path / "bugfix"
    df = bug_and_fix(seeds=8, prepared=False)
    df["sweep"] = "bugfix"
    write_results(df, str(root), parts=2)
    assert main([str(root), "--out", str(tmp_path / "auto"), "--outcome", OUTCOME]) == 0
    auto = pd.read_csv(tmp_path / "auto" / "tables" / "false_alarms.csv")
    det = auto[auto["check"] == DETECTOR]
    assert len(det) == 3 and (det["status"] == "informative").all() and "variant" not in auto.columns
    page = (tmp_path / "auto" / "index.html").read_text()
    assert "Grouped by precision; pooled over: variant (fix=False, fix=True), 8 seeds." in page
    assert main([str(root), "--out", str(tmp_path / "split"), "--outcome", OUTCOME, "--by", "precision,variant"]) == 0
    split = pd.read_csv(tmp_path / "split" / "tables" / "false_alarms.csv")
    assert len(split[split["check"] == DETECTOR]) == 6 and (split["status"] == "not_enough_data").all()
    assert main([str(root), "--out", str(tmp_path / "none"), "--outcome", OUTCOME, "--by", "none"]) == 0
    assert len(pd.read_csv(tmp_path / "none" / "tables" / "false_alarms.csv")) == 2  # two detectors, every run
    for args, words in ((["--outcome", OUTCOME, "--by", "precison"], "precison: not a column"),
                        (["--by", "precision"], "needs --outcome")):
        assert main([str(root), "--out", str(tmp_path / "bad"), *args]) == 2
        assert not (tmp_path / "bad").exists()
