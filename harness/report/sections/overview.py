"""Overview: per scenario, a heatmap of the run failure rate of every check over precision x
data size, as an HTML table (accessible, linkable, no image map).

Each cell is "k/n": k of the n completed runs of that configuration failed the check
(``passed`` False; seeds and every other axis pooled as replicates). Its background is
the rate on a fixed 0..1 scale; a cell without completed runs is grey. A cell with
failing runs links to its row in "Failing runs and how to replay them". Runs that did
not complete are not counted in any cell: the scenario's last row gives their number.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from harness import analysis as A
from harness.analysis.frame import failed_mask, label, ok_mask
from harness.report.base import Section, has_completed_runs
from harness.report.html import anchor
from harness.report.plots import order
from harness.report.sections.failing import TITLE as FAILING, fail_anchor

TITLE = "Overview: failure rate per check"
COLUMNS = ("precision", "data_size")
# ColorBrewer "Reds" (9 classes), interpolated: rate 0 -> nearly white, rate 1 -> dark red.
STOPS = ("#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#a50f15", "#67000d")
DARK_FROM = 0.5  # from this rate on, the cell's text is white


def colour(rate: float) -> str:
    """The background of a cell with failure rate ``rate`` (fixed scale 0..1)."""
    x = min(max(float(rate), 0.0), 1.0) * (len(STOPS) - 1)
    i = min(int(x), len(STOPS) - 2)
    a, b = (np.array([int(s[k:k + 2], 16) for k in (1, 3, 5)]) for s in STOPS[i:i + 2])
    return "#" + "".join(f"{int(round(v)):02x}" for v in a + (b - a) * (x - i))


def _keys(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The key columns without nulls (a missing scenario or check is "", a missing
    precision "none", as ``label`` reads it), so cells are found by equality."""
    fill = {"scenario": "", "check": "", "precision": "none", "data_size": -1}
    out = {}
    for k in keys:
        col = df[k] if k in df.columns else pd.Series(fill[k], index=df.index)
        out[k] = col if col.notna().all() else col.astype(object).where(col.notna(), fill[k])
    return pd.DataFrame(out, index=df.index)


def grid(df: pd.DataFrame) -> pd.DataFrame:
    """Per scenario x check x precision x data size: completed runs, failing runs, rate
    (NaN without completed runs). Rows are (run, check) pairs, so counting rows counts runs."""
    keys = ["scenario", "check", *COLUMNS]
    work = _keys(df, keys).assign(completed=ok_mask(df).to_numpy(), failed=failed_mask(df).to_numpy())
    out = work.groupby(keys, dropna=False, sort=False, observed=True)[["completed", "failed"]].sum().reset_index()
    return out.assign(rate=np.where(out["completed"] > 0, out["failed"] / out["completed"].clip(lower=1), np.nan))


def not_completed(df: pd.DataFrame) -> pd.DataFrame:
    """Per scenario x precision x data size: stored runs and runs that did not complete."""
    keys = ["scenario", *COLUMNS]
    first = ~df["run_id"].duplicated().to_numpy()  # one row per run
    runs = _keys(df[first], keys).assign(runs=1, incomplete=~ok_mask(df[first]).to_numpy())
    return runs.groupby(keys, dropna=False, sort=False, observed=True)[["runs", "incomplete"]].sum().reset_index()


def _sorted(values: list) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return sorted(values, key=str)


def _cell(row: pd.Series | None, scenario_check: str) -> str:
    if row is None or not row["completed"]:
        return "<td class='cell none' title='no completed run'>–</td>"
    k, n, rate = int(row["failed"]), int(row["completed"]), float(row["rate"])
    fg = "#fff" if rate >= DARK_FROM else "#222"
    where = f"{scenario_check} at {label(row['precision'])}, data size {label(row['data_size'])}"
    tip = html.escape(f"{k} of {n} completed runs fail {where} ({rate:.0%})", quote=True)
    text = f"{k}/{n}"
    if k:
        href = fail_anchor(row["check"], row["precision"], row["data_size"])
        text = f"<a href='#{href}'><b>{text}</b></a>"
    return f"<td class='cell' style='background:{colour(rate)};color:{fg}' title='{tip}'>{text}</td>"


def heatmap(cells: pd.DataFrame, missing: pd.DataFrame) -> str:
    """One scenario's table: checks as rows, precision x data size as columns, "k/n" per
    cell coloured by the rate; a last, grey row with the runs that did not complete."""
    precisions = order(cells["precision"])
    columns = [(p, s) for p in precisions for s in _sorted(list(pd.unique(cells.loc[cells["precision"] == p,
                                                                                    "data_size"])))]
    index = {(r["check"], r["precision"], r["data_size"]): r for _, r in cells.iterrows()}
    top = "".join(f"<th colspan='{sum(1 for q, _ in columns if q == p)}'>{html.escape(label(p))}</th>"
                  for p in precisions)
    head = (f"<thead><tr><th>precision</th>{top}</tr><tr><th>check \\ data size</th>"
            + "".join(f"<th>{html.escape(label(s))}</th>" for _, s in columns) + "</tr></thead>")
    body = []
    for c in _sorted(list(pd.unique(cells["check"]))):
        name = c if isinstance(c, str) and c else "(none declared)"
        body.append(f"<tr><th class='check'>{html.escape(name)}</th>"
                    + "".join(_cell(index.get((c, p, s)), name) for p, s in columns) + "</tr>")
    miss = {(r.precision, r.data_size): r for r in missing.itertuples()}
    if int(missing["incomplete"].sum()):
        row = "".join(f"<td class='cell'>{int(miss[k].incomplete)}/{int(miss[k].runs)}</td>" if k in miss
                      else "<td class='cell'>–</td>" for k in columns)
        body.append(f"<tr class='incomplete'><th class='check'>runs that did not complete</th>{row}</tr>")
    return f"<div class='scroll'><table class='heat'>{head}<tbody>{''.join(body)}</tbody></table></div>"


def legend() -> str:
    """The colour scale (0% to 100%, fixed) and the grey of a cell without completed runs."""
    stops = ", ".join(f"{s} {i / (len(STOPS) - 1):.0%}" for i, s in enumerate(STOPS))
    return (f"<div class='legend'>0%<span class='bar' style='background:linear-gradient(to right, {stops})'></span>"
            "100% of completed runs fail <span class='swatch'></span> no completed run</div>")


def body(df: pd.DataFrame) -> str:
    """The explanation, the legend, and one heatmap per scenario."""
    cells, missing = grid(df), not_completed(df)
    pooled = [a for a in A.factor_axes(df) if a not in ("scenario", "variant", "params", *COLUMNS)]
    text = ("Per check: how many of the completed runs of each precision and data size fail it (a run fails a "
            "check when any evaluation fails; NaN/Inf always fails). Seeds are pooled as replicates"
            + (f", and so are {html.escape(', '.join(a.replace('_', ' ') for a in pooled))} (see the attribution "
               "section)" if pooled else "")
            + ". The colour is the failure rate on a fixed scale; a cell with failures links to its runs and the "
            f"commands that replay them (<a href='#{anchor(FAILING)}'>{html.escape(FAILING)}</a>). "
            + ("Runs that did not complete are in no cell: the grey last row counts them (not completed / stored "
               "runs)." if missing["incomplete"].sum() else "Every stored run completed."))
    parts = [f"<p>{text}</p>", legend()]
    scenarios = _sorted(list(pd.unique(cells["scenario"])))
    for sc in scenarios:
        if len(scenarios) > 1 or (isinstance(sc, str) and sc):
            parts.append(f"<h3>scenario {html.escape(label(sc))}</h3>")
        parts.append(heatmap(cells[cells["scenario"].eq(sc)], missing[missing["scenario"].eq(sc)]))
    return "".join(parts)


SECTION = Section(TITLE, lambda ctx: body(ctx.df), applies=has_completed_runs)
