"""Summary: what is in the results (runs stored and planned, what did not complete, the
checks, the axes that vary, the seeds, the TensorFlow version and kernels the runs ran on)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from harness import analysis as A
from harness.analysis.frame import label
from harness.report.base import Section

TITLE = "Summary"


def _checks_by_scenario(df: pd.DataFrame) -> str:
    """Many checks (every detector of several tools): how many per scenario, grouped by their
    prefix (a tool's detectors share one: autotrainer.*), instead of every name in one paragraph."""
    out = []
    for scenario, g in df.groupby("scenario", sort=True) if "scenario" in df.columns else [("", df)]:
        names = sorted(c for c in g["check"].dropna().unique() if c)
        groups: dict[str, int] = {}
        for n in names:
            prefix = n.split(".", 1)[0] + ".*" if "." in n else n
            groups[prefix] = groups.get(prefix, 0) + 1
        parts = [f"{k} ({v})" if v > 1 else k for k, v in groups.items()]
        out.append(f"{scenario}: {len(names)} ({', '.join(parts)})" if scenario else f"{len(names)}: {', '.join(parts)}")
    return "; ".join(out) + " (every name in tables/headline.csv)"


def _sorted(values: np.ndarray) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return sorted(values, key=str)


def body(df: pd.DataFrame, planned: int | None) -> str:
    """A list: runs stored (of planned), completed and not, checks, varying axes, seeds, and what the
    completed runs ran on (TensorFlow version, oneDNN)."""
    runs = df.drop_duplicates("run_id")
    status = runs["status"].value_counts()
    done = int(status.get("ok", 0))
    stored = (f"{len(runs)} of {planned} planned runs stored" if planned and len(runs) <= planned else
              f"{len(runs)} runs stored ({planned} planned by the sweep's last invocation)" if planned else
              f"{len(runs)} runs stored")
    bad = ", ".join(f"{v} {k}" for k, v in status.items() if k != "ok") or "none"
    names = sorted(c for c in df["check"].dropna().unique() if c)
    checks = _checks_by_scenario(df) if len(names) > 12 else (", ".join(names) or "none")

    def values(a: str) -> str:
        vs = _sorted(df[a].dropna().unique())
        if a == "variant":  # each value is itself a "k=v, k=v" list
            return "; ".join(f"[{v}]" if v else "(not swept)" for v in vs[:8]) + ("; ..." if len(vs) > 8 else "")
        return ", ".join(label(v) for v in vs[:8]) + (", ..." if len(vs) > 8 else "") + \
            (", none" if df[a].isna().any() else "")

    axes = [f"{a} ({values(a)})" for a in A.factor_axes(df)]
    items = [stored + (" &mdash; the sweep may still be running or was cut short" if planned and len(runs) < planned
                       else ""), f"{done} completed; did not complete: {bad}", f"checks: {html.escape(checks)}",
             "axes that vary: " + html.escape("; ".join(axes) or "none (a single configuration)"),
             f"seeds: {df['seed'].nunique()}"]
    ran_on = _ran_on(runs[runs["status"] == "ok"])
    if ran_on:
        items.append(ran_on)
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _version_key(v: str) -> tuple:
    return tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in v.replace("-", ".").split("."))


def _ran_on(done: pd.DataFrame) -> str:
    """The TensorFlow version(s) and oneDNN setting of the completed runs (null in part files of
    schema < 4: counted as unknown when other runs know it). Runs on other versions or kernels can
    differ beyond their seeds' effect (docs/engine.md), so a mix is said, with its counts."""
    parts, mixed = [], False
    if "tf_version" in done.columns:
        versions = done["tf_version"].replace("", np.nan).dropna().value_counts()
        if len(versions) == 1:
            parts.append(f"TensorFlow {versions.index[0]}")
        elif len(versions) > 1:
            mixed = True
            parts.append("TensorFlow " + ", ".join(f"{v} ({_runs(versions[v])})"
                                                   for v in sorted(versions.index, key=_version_key)))
    if "onednn" in done.columns:
        known = done["onednn"].dropna().astype(bool)
        counts = {k: int((known == k).sum()) for k in (True, False)}
        unknown = len(done) - len(known)
        if not known.empty:  # else no run recorded it (results from before the column): nothing to say
            if not unknown and not all(counts.values()):
                parts.append(f"oneDNN rewrite {'on' if counts[True] else 'off'}")
            else:
                mixed = True
                said = [f"{w} in {_runs(counts[k])}" for k, w in ((True, "on"), (False, "off")) if counts[k]]
                parts.append("oneDNN rewrite " + ", ".join(said + ([f"unknown in {_runs(unknown)}"] if unknown
                                                                    else [])))
    if not parts:
        return ""
    text = html.escape("ran on " + "; ".join(parts))
    if mixed:
        return (f"<strong>{text}</strong>: runs on other TensorFlow versions or kernels can differ beyond their "
                "seeds' effect; compare like with like")
    return text


SECTION = Section(TITLE, lambda ctx: body(ctx.df, ctx.planned_runs))
