"""The comparison page of ``python -m harness compare BEFORE AFTER --out DIR``: what changed, a
heatmap of the failure-rate differences (check x the other cell axes), the table of every cell
and check with its verdict, and the runs that flipped, each with its replay command on both
sides. Colour comes from the verdict's tone only (harness.analysis.verdicts)."""

from __future__ import annotations

import html
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.frame import label
from harness.analysis.verdicts import CompareVerdict
from harness.report.html import Raw, code, details, page, paragraph, section, table

SHADE = {"bad": "255,80,80", "good": "60,170,90"}


def _heat(result: pd.DataFrame, cells: Sequence[str]) -> str:
    """Rows: scenario/check; columns: the other cell axes; each cell the difference in points,
    shaded by the verdict's tone and the size of the difference."""
    rows_key = [c for c in ("scenario", "cell_variant") if c in cells]
    cols_key = [c for c in cells if c not in rows_key]
    df = result.assign(heat_row=result[[*rows_key, "check"]].astype(str).agg("/".join, axis=1),
                       heat_col=result[cols_key].map(label).agg(" ".join, axis=1) if cols_key else "all")
    columns = list(dict.fromkeys(df["heat_col"]))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for name, part in df.groupby("heat_row", sort=False):
        by_col = {r.heat_col: r for r in part.itertuples(index=False)}
        tds = []
        for c in columns:
            r = by_col.get(c)
            if r is None or r.status in (CompareVerdict.ONLY_BEFORE, CompareVerdict.ONLY_AFTER):
                what = "" if r is None else "only " + r.status.value.split("_")[1]
                tds.append(f"<td class='cell none'>{what}</td>")
                continue
            tone = r.status.tone
            alpha = min(abs(r.diff) * 2, 1.0) if r.diff == r.diff else 0.0
            style = f" style='background:rgba({SHADE[tone]},{0.15 + 0.6 * alpha:.2f})'" if tone in SHADE and \
                r.status in (CompareVerdict.WORSE, CompareVerdict.BETTER) else ""
            text = "=" if r.status is CompareVerdict.IDENTICAL else f"{100 * r.diff:+.0f}"
            tds.append(f"<td class='cell'{style} title='{html.escape(r.status.value)}'>{text}</td>")
        body.append(f"<tr><th class='check'>{html.escape(name)}</th>{''.join(tds)}</tr>")
    legend = paragraph("Each cell: the change of the run-level failure rate, after - before, in percentage points; "
                       "= where every paired run recorded the same values; red: significantly worse, green: "
                       "significantly better (Holm over the rows that can reach significance).", "note")
    return legend + (f"<div class='scroll'><table class='heat'><thead><tr><th></th>{head}</tr></thead>"
                     f"<tbody>{''.join(body)}</tbody></table></div>")


def _rows_table(result: pd.DataFrame, cells: Sequence[str]) -> str:
    def num(v: Any, fmt: str = "{:.0%}") -> str:
        return fmt.format(v) if v == v else ""

    columns = [
        ("cell", lambda r: r.where, "l"), ("check", lambda r: r.check, "l"),
        ("before", lambda r: f"{r.before_failed}/{r.before_runs}", "r"),
        ("after", lambda r: f"{r.after_failed}/{r.after_runs}", "r"),
        ("difference (95% CI)", lambda r: "" if getattr(r, "diff", None) != getattr(r, "diff", None) else
         f"{100 * r.diff:+.0f} ({100 * r.diff_low:+.0f} to {100 * r.diff_high:+.0f}) points", "r"),
        ("paired / identical / flips", lambda r: f"{int(r.pairs)} / {int(r.identical)} / "
         f"{int(r.flipped_to_fail)} to fail, {int(r.flipped_to_pass)} to pass" if r.pairs == r.pairs else "", "l"),
        ("Holm p", lambda r: num(r.p_adjusted, "{:.2g}") if getattr(r, "tested", True) is True else "not tested", "r"),
        ("worst-margin shift", lambda r: num(getattr(r, "shift_median", float("nan")), "{:.3g}"), "r"),
        ("verdict", lambda r: r.status.value.replace("_", " ") + (f": about {int(r.more_seeds)} more seeds" if
                                                 r.more_seeds == r.more_seeds and r.more_seeds < float("inf") else ""),
         "l"),
    ]
    order = {v: i for i, v in enumerate([CompareVerdict.WORSE, CompareVerdict.BETTER, CompareVerdict.NOT_ENOUGH_DATA])}
    ranked = result.assign(rank=result["status"].map(lambda v: order.get(v, 9))).sort_values("rank", kind="stable")
    return table(ranked, columns, csv="compare.csv", tone=lambda r: r.status.tone, max_rows=200)


def _flips(flips: pd.DataFrame, cells: Sequence[str], before: str, after: str) -> str:
    if flips.empty:
        return paragraph("No paired run changed its outcome.")
    columns = [
        ("cell", lambda r: r.where, "l"), ("check", lambda r: r.check, "l"), ("seed", lambda r: r.seed, "r"),
        ("now", lambda r: "fails" if r.flip == "to_fail" else "passes", "l"),
        ("worst value before -> after", lambda r: f"{r.before_worst_value:.4g} -> {r.after_worst_value:.4g}", "r"),
        ("replay both sides", lambda r: Raw(code(f"python -m harness replay {shlex.quote(before)} "
                                                 f"run_id={r.before_run_id} --trace")
                                            + "<br>" + code(f"python -m harness replay {shlex.quote(after)} "
                                                            f"run_id={r.after_run_id} --trace")), "l"),
    ]
    ranked = flips.sort_values("flip", ascending=False, kind="stable")  # to_fail first
    return table(ranked, columns, csv="flips.csv", max_rows=100)


def write_page(result: pd.DataFrame, out: Path, *, before: str, after: str, changed: list[str],
               same: list[str]) -> Path:
    """Write ``index.html``, ``compare.csv`` and ``flips.csv`` into ``out``; the page's path."""
    cells = result.attrs.get("cells", [])
    out.mkdir(parents=True, exist_ok=True)
    flat = result.assign(status=result["status"].map(lambda v: v.value))
    flat.to_csv(out / "compare.csv", index=False)
    flips = result.attrs.get("flips", pd.DataFrame())
    flips.to_csv(out / "flips.csv", index=False)
    what = "".join(f"<li>{html.escape(c)}</li>" for c in changed) or "<li>nothing recorded differs</li>"
    sections = [
        section("What changed", f"<ul>{what}</ul>",
                paragraph("Same on both sides: " + html.escape(", ".join(same)), "note") if same else ""),
        section("Differences", _heat(result, cells)),
        section("Every cell and check", _rows_table(result, cells),
                details("How the verdicts are computed", paragraph(
                    "Runs are paired by seed when every run of the side with fewer runs has its seed on the other: "
                    "the exact McNemar test on the runs whose outcome flipped, with Tango's score interval of the "
                    "difference (unadjusted); otherwise Fisher's exact test and Newcombe's interval. A run that did "
                    "not complete counts as failing. Holm's method over the rows that can reach significance keeps "
                    "the chance of any false worse or better verdict at alpha. 'same' is an equivalence test (the 1 - 2 alpha "
                    "interval inside the margin); 'not enough data' says how many more seeds would detect a change "
                    "of the margin, or of the difference seen, with 80% power. The worst-margin shift is the median "
                    "of after - before on paired runs (a negative shift is less headroom)."))),
        section("Runs that flipped", _flips(flips, cells, before, after)),
    ]
    path = out / "index.html"
    path.write_text(page(f"{before} -> {after}", f"compared by python -m harness compare {before} {after}", sections))
    return path
