"""The answer, first: per scenario, which checks fail in which cells (precision x data size),
how often, where neither axis alone explains it, the cause where the data show one, and the
command to try next. Every sentence is read off the stored runs (harness.analysis.where,
harness.summary's hints); nothing is said that the counts do not show."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.analysis.frame import pct
from harness.analysis.where import failure_pattern
from harness.report.base import ReportContext, Section, has_completed_runs

TITLE = "What breaks, where, and what to try next"
MAX_GROUPS = 6  # failing-check groups listed per scenario; the rest are counted (the overview has them all)


MAX_NEXT = 3  # hints listed per scenario (the sweep's closing summary prints every one)


def _split(name: str, scenario: str) -> tuple[str, str]:
    """A check label as (heading, check): ``scenario[variant]/check`` -> (``scenario [variant]``, ``check``);
    a bare check (one scenario, no variant) -> (``scenario``, ``check``)."""
    if scenario and name.startswith(scenario + "["):
        end = name.find("]/", len(scenario))
        if end > 0:
            return f"{scenario} {name[len(scenario):end + 1]}", name[end + 2:]
    if scenario and name.startswith(scenario + "/"):
        return scenario, name[len(scenario) + 1:]
    return scenario, name


def _short(name: str, scenario: str) -> str:
    return _split(name, scenario)[1]


def _names(names: list[str]) -> str:
    """A few names, or for many (every detector of several tools) their prefixes with counts."""
    if len(names) <= 4:
        return f"<b>{html.escape(', '.join(names))}</b>"
    groups: dict[str, int] = {}
    for n in names:
        prefix = n.split(".", 1)[0] + ".*" if "." in n else n
        groups[prefix] = groups.get(prefix, 0) + 1
    parts = [f"{k} ({v})" if v > 1 else k for k, v in groups.items()]
    shown = ", ".join(parts[:6]) + (f" and {len(parts) - 6} more" if len(parts) > 6 else "")
    return f"<b>{len(names)} checks: {html.escape(shown)}</b>"


def _fails(r: pd.Series, n_checks: int) -> str:
    """One failing group: where, how often inside and outside, the interaction."""
    each = " each" if n_checks > 1 else ""
    verb = "fails" if n_checks == 1 else "fail"
    nan = f", {r.nonfinite} with NaN/Inf" if r.nonfinite else ""
    if r.pattern == "in every cell":
        text = f"{verb} in every cell (every precision and data size): {r.inside_failed} of {r.inside_runs} runs{each}{nan}"
    else:
        text = f"{verb} {html.escape(r.pattern)}: {r.inside_failed} of {r.inside_runs} runs there{each}{nan}"
        text += (f"; everywhere else 0 of {r.outside_runs} runs fail (the rate there is at most "
                 f"{pct(r.outside_upper)} at 95% confidence, from these runs)")
        if r.interaction:
            text += f". {html.escape(r.interaction[0].upper() + r.interaction[1:])}"
    if 0 < r.inside_failed < r.inside_runs:
        text += (f". Seed-dependent there ({pct(r.inside_failed / r.inside_runs)} of runs): "
                 "<a href=\"#what-bound-would-hold\">What bound would hold</a> gives a bound with a guarantee")
    return text


def _command(command: str | None, overrides: Mapping[str, Any]) -> str:
    import json

    extra = " ".join(f"scenarios.{k}={json.dumps(v)}" for k, v in overrides.items())
    return f"{command} {extra}" if command else f"the sweep's command with {extra}"


def body(raw: pd.DataFrame, path: str, command: str | None, fixes: Mapping[str, Mapping[str, Any]]) -> str:
    """Per scenario: a list of failing-check groups (identical pattern and counts share a line),
    the checks that held everywhere in one line, and the next steps the data point to."""
    from harness.summary import hints, overflow_hints, summary_frame

    pat = failure_pattern(raw)
    if pat.empty:
        return ""
    frame = summary_frame(raw)
    notes = hints(frame, raw, path)
    causes = overflow_hints(frame, raw, fixes)
    out = []
    pat = pat.assign(heading=[_split(n, sc)[0] for n, sc in zip(pat["check"], pat["scenario"])])
    for heading, g in pat.groupby("heading", sort=True):
        scenario = str(g["scenario"].iloc[0])
        items = []
        failing = g[g["failed"] > 0]
        key = ["pattern", "inside_failed", "inside_runs", "outside_runs", "nonfinite", "interaction"]
        groups = list(failing.groupby(key, sort=False, dropna=False))
        groups.sort(key=lambda kv: -kv[1]["failed"].sum())
        for _, grp in groups[:MAX_GROUPS]:
            names = [_short(n, scenario) for n in grp["check"]]
            items.append(f"{_names(names)} {_fails(grp.iloc[0], len(names))}")
        if len(groups) > MAX_GROUPS:
            rest = sum(len(grp) for _, grp in groups[MAX_GROUPS:])
            items.append(f"{rest} more failing checks: the overview below has every one")
        held = g[g["failed"] == 0]
        if len(held):
            names = [_short(n, scenario) for n in held["check"]]
            items.append(f"{_names(names)} {'holds' if len(names) == 1 else 'hold'} in every run "
                         f"({int(held['runs'].max())} runs)")
        for line in causes:
            if line.startswith(f"{scenario}:"):
                cause, _, fix = line.partition("; to compute it in float32: ")
                text = "Cause: " + html.escape(cause.split(": ", 1)[1])
                if fix:
                    overrides = dict(kv.split("=", 1) for kv in fix.split())
                    overrides = {k.removeprefix("scenarios."): v for k, v in overrides.items()}
                    cmd = _command(command, {k: _loads(v) for k, v in overrides.items()})
                    text += f". Try it in float32: <code>{html.escape(cmd)}</code>"
                items.append(text)
        mine = [line for line in notes if line.split(" ", 1)[0] in set(g["check"])]
        items += ["Next: " + _next(line, scenario) for line in mine[:MAX_NEXT]]
        if len(mine) > MAX_NEXT:
            items.append(f"{len(mine) - MAX_NEXT} more checks that fail in every run: the sweep's closing summary "
                         "has a line for each")
        if not len(failing):
            items.insert(0, "every check held in every run")
        head = f"<h3>{html.escape(heading)}</h3>" if heading else ""
        out.append(head + "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
    runs = raw.loc[raw["status"] == "ok", "run_id"].nunique() if "status" in raw.columns else raw["run_id"].nunique()
    seeds = raw["seed"].nunique() if "seed" in raw.columns else 0
    lead = (f"<p>From {runs:,} completed runs ({seeds} seed{'s' if seeds != 1 else ''}); a cell is a precision "
            "and a data size, other axes pooled. A cell fails a check when one of its runs did.</p>")
    return lead + "".join(out)


def _next(hint: str, scenario: str) -> str:
    """A summary hint without what the line above already says: "NAME fails ... in every run (FACTS);
    REST. Step by step: CMD" becomes "NAME: FACTS; REST. Step by step: <code>CMD</code>"."""
    m = re.match(r"(\S+) fails(?: from step 0)? in every run \((.*?)\)(.*?)(?:\. Step by step: (.*))?$", hint)
    if not m:
        return html.escape(hint)
    name, facts, rest, cmd = m.groups()
    text = f"{html.escape(_short(name, scenario))}: {html.escape(facts)}{html.escape(rest)}"
    return text + (f". Step by step: <code>{html.escape(cmd)}</code>" if cmd else "")


def _loads(v: str) -> Any:
    import json

    try:
        return json.loads(v)
    except ValueError:
        return v


def render(ctx: ReportContext) -> str:
    return body(ctx.raw if ctx.raw is not None else ctx.df, ctx.results_path, ctx.command, ctx.fixes)


SECTION = Section(TITLE, render, applies=has_completed_runs)
