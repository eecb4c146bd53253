"""Failing runs and how to replay them: per check x precision x data size with failing
runs, how many of its completed runs fail, a few run ids, the command that replays the
first and the command that traces the worst (``python -m harness replay ... --trace``).

Each row is a link target (``fail_anchor``): the overview's heatmap cells point here. All
failing (run, check) rows, with both commands, are in ``tables/failing_runs.csv``.
"""

from __future__ import annotations

import hashlib
import html
import shlex

import numpy as np
import pandas as pd

from harness.analysis.frame import failed_mask, label, ok_mask
from harness.report.base import ReportContext, Section, has_completed_runs
from harness.report.cells import check, num
from harness.report.html import anchor, paragraph

TITLE = "Failing runs and how to replay them"
KEYS = ("check", "precision", "data_size")
PER_CELL = 5  # run ids listed per configuration; the CSV has all
CSV = "tables/failing_runs.csv"


def fail_anchor(check: object, precision: object, data_size: object) -> str:
    """The id of a configuration's row in this section: readable, and unique through a
    short hash of the exact labels."""
    key = "\x1f".join(label(v) for v in (check, precision, data_size))
    slug = anchor(" ".join(label(v) for v in (check, precision, data_size)))[:60].strip("-")
    return f"fail-{slug}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def replay_command(results: str, run_id: str, *, trace: bool = False) -> str:
    """``python -m harness replay RESULTS run_id=ID`` (``--trace``: step by step)."""
    words = ["python", "-m", "harness", "replay", results, f"run_id={run_id}"] + (["--trace"] if trace else [])
    return shlex.join(words)


def failing_runs(df: pd.DataFrame, results: str) -> pd.DataFrame:
    """One row per failing (run, check) of a completed run (``passed`` False): the
    configuration, run id, seed, first failing step, worst value and margin, and the replay
    and trace commands; by configuration, then seed."""
    cols = [*KEYS, "run_id", "seed", "steps", "first_failure_step", "n_failed", "n_evaluated", "worst_value",
            "worst_margin"]
    failed = df.loc[failed_mask(df), [c for c in cols if c in df.columns]]
    failed = failed.sort_values([*KEYS, "seed", "run_id"], na_position="last", kind="stable")
    replay = shlex.join(["python", "-m", "harness", "replay", results]) + " run_id=" + \
        failed["run_id"].astype(str).map(shlex.quote)
    trace = replay + " --trace"
    if "steps" in failed.columns:  # a run of no training steps has no per-step values to trace
        trace = trace.where(failed["steps"].fillna(1).to_numpy() > 0, "")
    return failed.assign(replay=replay, trace=trace).reset_index(drop=True)


def cells(df: pd.DataFrame, failing: pd.DataFrame) -> pd.DataFrame:
    """Per configuration with failing runs: failing and completed runs, first failing step,
    the first few runs (lowest seeds), the first run and the worst run (most violated)."""
    # one row per (run, check): counting the rows of completed runs counts the runs
    completed = df.loc[ok_mask(df), list(KEYS)].groupby(list(KEYS), dropna=False, sort=False).size()
    rows = []
    for key, g in failing.groupby(list(KEYS), dropna=False, sort=True):
        first = g["first_failure_step"].dropna()
        worst = g.sort_values("worst_margin", na_position="last", kind="stable").iloc[0]
        rows.append({**dict(zip(KEYS, key)), "anchor": fail_anchor(*key), "failing": g["run_id"].nunique(),
                     "completed": int(completed.get(key, g["run_id"].nunique())),
                     "first_step": int(first.min()) if len(first) else None,
                     "some": list(zip(g["run_id"].head(PER_CELL), g["seed"].head(PER_CELL))),
                     "first_run": g["run_id"].iloc[0], "worst_run": worst["run_id"], "worst_seed": worst["seed"],
                     "worst_margin": worst["worst_margin"],
                     # a run of no training steps has no per-step values to trace
                     "traceable": bool(worst["steps"] > 0) if "steps" in g.columns and pd.notna(worst["steps"])
                     else True})
    return pd.DataFrame(rows)


def _runs(r: object) -> str:
    listed = ", ".join(f"{html.escape(str(run))} (seed {html.escape(label(seed))})" for run, seed in r.some)
    more = r.failing - len(r.some)
    return listed + (f" <span class='muted'>+{more:,} more in {CSV}</span>" if more > 0 else "")


def _commands(r: object, results: str) -> str:
    margin = "NaN/Inf" if r.worst_margin == -np.inf else num(r.worst_margin)
    first = f"replay the first: <code>{html.escape(replay_command(results, r.first_run))}</code><br>"
    worst = f"(seed {html.escape(label(r.worst_seed))}, margin {html.escape(margin)})"
    if not getattr(r, "traceable", True):  # the scenario does not train: nothing to trace step by step
        if r.worst_run == r.first_run:
            return first.removesuffix("<br>")
        return first + f"replay the worst {worst}: <code>{html.escape(replay_command(results, r.worst_run))}</code>"
    return first + f"trace the worst {worst}: <code>{html.escape(replay_command(results, r.worst_run, trace=True))}</code>"


def body(frame: pd.DataFrame, results: str) -> str:
    """One block per configuration of ``cells`` (every one, each a link target): a row with
    the configuration, counts and run ids, and under it the replay and trace commands."""
    if frame.empty:
        return paragraph("No completed run failed a check.", "good")
    heads = ("check", "precision", "data size", "failing / completed runs", "first failing step",
             "runs (lowest seeds first)")
    blocks = []
    for r in frame.itertuples(index=False):
        cells = [check(r), html.escape(label(r.precision)), html.escape(label(r.data_size)),
                 f"{r.failing:,} / {r.completed:,}", html.escape(label(r.first_step)), _runs(r)]
        row = "".join(f"<td class='r'>{c}</td>" if 2 <= i <= 4 else f"<td>{c}</td>" for i, c in enumerate(cells))
        blocks.append(f"<tbody id='{html.escape(r.anchor)}'><tr>{row}</tr>"
                      f"<tr class='cmd'><td colspan='{len(heads)}'>{_commands(r, results)}</td></tr></tbody>")
    text = ("Every configuration with failing runs (the overview's cells link here): how many of its completed "
            "runs fail, a few of them, the command that runs the first again in this process, bit for bit (add "
            "threads=N to match the sweep's actors), and the command that traces the worst run (the largest "
            f"violation of the bound) step by step. Every failing run, with both commands: <a href='{CSV}'>{CSV}</a>.")
    head = "".join(f"<th>{h}</th>" for h in heads)
    return (paragraph(text) + f"<div class='scroll'><table class='runs'><thead><tr>{head}</tr></thead>"
            + "".join(blocks) + "</table></div>")


def render(ctx: ReportContext) -> str:
    """The section from the context's results, keeping every failing run as a table."""
    failing = ctx.table("failing_runs", lambda: failing_runs(ctx.df, ctx.results_path))
    return body(cells(ctx.df, failing), ctx.results_path)


SECTION = Section(TITLE, render, applies=has_completed_runs)
