"""The closing summary table of a sweep on the terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from synthetic import synthetic_results
from harness.summary import print_summary


def _printed(width: int) -> list[str]:
    df = synthetic_results(checks={"normalization/mean_near_zero": ("below", 1.0)}, data_sizes=(1000, 100000),
                           precisions=("fp16", "fp32"), seeds=range(4), eval_rate=0.01)
    out = io.StringIO()
    print_summary(Console(file=out, width=width, force_terminal=False), df, "results/x", 1.0, 16, 0)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 140])
def test_the_failure_rate_table_fits_the_terminal_without_cutting_a_header_or_cell(width: int) -> None:
    """At 80 columns (a default terminal) the table drops its borders and shortens its headers instead
    of cutting them ("precis…"); wider, it keeps the full ones. Every line fits, nothing is elided."""
    lines = _printed(width)
    table = lines[:lines.index(next(x for x in lines if x.startswith("16 runs stored")))]
    assert all(len(x) <= width for x in table), table
    assert not any("…" in x for x in table), table
    text = "\n".join(table)
    assert "precision" in text and "100,000" in text and "normalization/mean_near_zero" in text
    if width == 80:
        assert "first fails" in text and "┃" not in text
    else:
        assert "100,000 rows" in text and "first fails at step" in text


@pytest.mark.parametrize("path", ["results/smoke", "my results/it's [b] $HOME", "/tmp/résumé_日本"])
def test_the_report_command_is_quoted_for_the_shell(path: str) -> None:
    """The printed command can be pasted into a shell whatever the path holds (a space, an apostrophe,
    $); "[b]" is printed, not taken for markup."""
    import shlex

    df = synthetic_results(seeds=range(2))
    out = io.StringIO()
    print_summary(Console(file=out, width=400, force_terminal=False), df, path, 1.0, 2, 0)
    lines = out.getvalue().splitlines()
    assert f"results: {path}" in lines
    report = next(x for x in lines if x.startswith("report:"))
    assert shlex.split(report.split(":", 1)[1]) == ["python", "-m", "harness", "report", path]
    assert path != "results/smoke" or report == "report:  python -m harness report results/smoke"  # as the README shows


def test_an_adaptive_bound_sweep_ends_with_each_checks_bound_and_guarantee_or_what_is_missing() -> None:
    import io

    import pandas as pd
    from rich.console import Console

    from synthetic import synthetic_results
    from harness.analysis.tolerance import calibrate_tolerance
    from harness.summary import print_bounds

    enough = synthetic_results(seeds=range(300), precisions=("fp32",), data_sizes=(1000,))
    few = synthetic_results(seeds=range(40), precisions=("fp16",), data_sizes=(1000,), seed=1)
    df = pd.concat([enough, few.assign(run_id="f" + few["run_id"])], ignore_index=True)
    out = io.StringIO()
    print_bounds(Console(file=out, width=200), df, target=0.01, confidence=0.95)
    text = out.getvalue()
    tol = calibrate_tolerance(enough, by=["check"], target=0.01, confidence=0.95).iloc[0]
    assert "bounds for a 1% false-alarm rate per run, with 95% confidence" in text
    assert f"loss_below fp32 1,000 rows: {tol.op} {tol.recommended_text} (false alarms <= 1% of runs" in text
    assert "loss_below fp16 1,000 rows: no bound:" in text and "more runs" in text


def _frame(runs: list[dict]) -> "pd.DataFrame":
    import pandas as pd

    from synthetic import results_frame

    return results_frame(runs)


def _summary_text(df) -> str:
    out = io.StringIO()
    print_summary(Console(file=out, width=300, force_terminal=False), df, "results/x", 1.0, len(df), 0)
    return " ".join(out.getvalue().split())


def test_a_check_that_never_held_gets_the_facts_and_no_warm_up_hint() -> None:
    """Planted: a step check that fails from step 0 and never gets below its bound (100 of 100
    evaluations fail in every run). The summary says so from the counts; no warm-up is suggested."""
    runs = [dict(run_id=f"r{s}", seed=s, check="loss_below", bound=1.0, op="<", when="step", n_evaluated=100,
                 n_failed=100, first_failure_step=0, worst_value=4.0 + s, worst_margin=-3.0 - s) for s in range(4)]
    text = _summary_text(_frame(runs))
    assert "loss_below fails from step 0 in every run (worst value median 5.5, bound 1); 4 of 4 runs never held it" in text
    assert "warm-up" not in text and "after=N" not in text
    assert "python -m harness replay results/x run_id=r0 --trace" in text


def test_a_check_that_fails_early_then_holds_gets_the_warm_up_hint() -> None:
    runs = [dict(run_id=f"r{s}", seed=s, check="loss_below", bound=1.0, op="<", when="step", n_evaluated=100,
                 n_failed=5 + s, first_failure_step=0, worst_value=4.0, worst_margin=-3.0) for s in range(4)]
    text = _summary_text(_frame(runs))
    assert "never held it" not in text and "the closest run failed 5 of 100 evaluations" in text
    assert "checks.below(..., after=N)" in text and "scenarios." not in text  # no warmup parameter to name


def test_the_warm_up_hint_names_the_scenarios_own_parameter_and_a_warmed_check_that_held() -> None:
    """With a ``warmup`` among the stored parameters the hint names the override; where the same runs
    also ask the same bound from a later step on and that held everywhere, the hint says so instead."""
    import json

    def run(s: int, check: str, after: int, n_failed: int) -> dict:
        return dict(run_id=f"r{s}", seed=s, scenario="loss_bound", check=check, bound=1.0, op="<", when="step",
                    statistic="post_loss", after=after, n_evaluated=100 - after, n_failed=n_failed,
                    first_failure_step=0 if n_failed else None, worst_value=4.0 if n_failed else 0.5,
                    worst_margin=-3.0 if n_failed else 0.5, params=json.dumps({"warmup": 0}))

    text = _summary_text(_frame([run(s, "loss_below", 0, 5 + s) for s in range(4)]))
    assert "(this scenario's parameter: scenarios.loss_bound.warmup=N)" in text
    both = [run(s, "loss_below", 0, 5 + s) for s in range(4)] + [run(s, "later", 50, 0) for s in range(4)]
    text = _summary_text(_frame(both))
    assert "; later (the same bound from step 50 on) holds in all 4 runs" in text
    assert "after=N" not in text
    broken = [run(s, "loss_below", 0, 5 + s) for s in range(4)] + [run(s, "later", 50, int(s == 0)) for s in range(4)]
    text = _summary_text(_frame(broken))  # the later check failed once: it is not offered as the answer
    assert "holds in all" not in text and "after=N" in text


def test_rates_below_one_percent_are_not_printed_as_zero_and_nan_runs_are_in_their_cell() -> None:
    runs = [dict(run_id=f"r{s}", seed=s, check="c", bound=1.0, op="<", when="final", n_evaluated=1,
                 n_failed=int(s < 3), first_failure_step=0 if s < 3 else None, worst_value=2.0 if s < 3 else 0.5,
                 worst_margin=-1.0 if s < 3 else 0.5, data_size=1000) for s in range(1000)]
    runs[0].update(worst_value=float("nan"), worst_margin=float("-inf"), n_nonfinite=1)
    text = _summary_text(_frame(runs))
    assert "0.3% 3/1000 (1 NaN/Inf)" in text and " final " in f" {text} "


def test_an_fp16_overflow_where_fp32_holds_is_named_with_the_scenarios_float32_switch() -> None:
    import json

    def run(i: int, precision: str, size: int, nan: bool, params: dict) -> dict:
        return dict(run_id=f"r{i}", seed=i, scenario="normalization", check="mean_near_zero", when="final",
                    precision=precision, data_size=size, n_evaluated=1, n_failed=int(nan), n_nonfinite=int(nan),
                    first_failure_step=0 if nan else None, worst_value=float("nan") if nan else 0.01,
                    worst_margin=float("-inf") if nan else 0.09, params=json.dumps(params))

    fixes = {"normalization": {"accumulate_float32": True}}
    plain = {"accumulate_float32": False}
    runs = [run(0, "fp16", 100000, True, plain), run(1, "fp32", 100000, False, plain),
            run(2, "fp16", 1000, False, plain), run(3, "fp32", 1000, False, plain)]
    out = io.StringIO()
    print_summary(Console(file=out, width=400, force_terminal=False), _frame(runs), "r", 1.0, 4, 0, fixes)
    text = " ".join(out.getvalue().split())
    assert ("normalization: NaN/Inf in fp16 at 100,000 rows where fp32 saw none: a float16 overflow" in text
            and "to compute it in float32: scenarios.normalization.accumulate_float32=true" in text)
    switched = [{**r, "params": json.dumps({"accumulate_float32": True})} for r in runs]  # already tried: no fix offered
    out = io.StringIO()
    print_summary(Console(file=out, width=400, force_terminal=False), _frame(switched), "r", 1.0, 4, 0, fixes)
    text = " ".join(out.getvalue().split())
    assert "a float16 overflow" in text and "to compute it in float32" not in text
    both = runs[:1] + [run(1, "fp32", 100000, True, plain)]  # fp32 fails alike: not an fp16 overflow
    out = io.StringIO()
    print_summary(Console(file=out, width=400, force_terminal=False), _frame(both), "r", 1.0, 2, 0, fixes)
    assert "overflow" not in out.getvalue()


def test_a_check_judged_by_its_last_evaluation_gets_no_warm_up_hint() -> None:
    runs = [dict(run_id=f"r{s}", seed=s, check="dead_relu", bound=0.7, op="<", when="step", judge="last",
                 n_evaluated=100, n_failed=3, first_failure_step=97, worst_value=0.9, worst_margin=-0.2)
            for s in range(4)]
    text = _summary_text(_frame(runs))
    assert "judged by its last evaluation" in text and "after=N" not in text


def test_a_check_whose_schedule_never_came_up_is_not_evaluated_not_passed() -> None:
    """A step check whose warm-up is longer than the runs is evaluated 0 times: its cell says so
    instead of 0%, a line names why, and it is never offered as the check that holds."""
    import json

    runs = [dict(run_id=f"r{s}", seed=s, scenario="loss_bound", check=c, bound=1.0, op="<", when="step",
                 statistic="post_loss", after=a, steps=100, n_evaluated=n, n_failed=k, first_failure_step=0 if k else None,
                 worst_value=4.0 if k else float("nan"), worst_margin=-3.0 if k else float("nan"),
                 params=json.dumps({"warmup": 400}))
            for s in range(3) for c, a, n, k in (("loss_below", 0, 100, 10), ("later", 400, 0, 0))]
    text = _summary_text(_frame(runs))
    assert "not evaluated 0/3" in text and "0% 0/3" not in text
    assert "later was never evaluated in 3 of 3 runs (its schedule starts at step 400); those runs had 100 steps" in text
    assert "holds in all" not in text
