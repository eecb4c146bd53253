"""Cell formatters shared by the report's sections: intervals, ratios, p-values, counts,
axis columns, and a row's tone from a verdict enum (never from the wording)."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np

from harness.analysis.frame import label, pct, pformat
from harness.analysis.verdicts import Verdict
from harness.report.html import Column, Raw


def interval(lo: float, hi: float) -> str:
    """A rate interval "a – b" in percent; "–" when either end is missing."""
    return "–" if not (np.isfinite(lo) and np.isfinite(hi)) else f"{pct(lo)} – {pct(hi)}"


def num(x: float | None) -> str:
    """A number with 4 significant digits; "–" when missing."""
    return "–" if x is None or not np.isfinite(x) else f"{x:.4g}"


def pval(x: float | None) -> str:
    """A p-value for a table cell ("0.0072", "<1e-16", "–")."""
    return pformat(x).removeprefix("p=").removeprefix("p") if x is not None else "–"


def count(x: float | None) -> str:
    """A count or mean count: thousands separated when large, 3 digits when small."""
    return "–" if x is None or not np.isfinite(x) else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def ratio_ci(ratio: float, lo: float, hi: float) -> str:
    """An odds/hazard ratio with its interval (log scale ends); ∞ for an unbounded end, "–" when there is none."""
    def x(v: float) -> str:
        return "∞" if v == np.inf else f"{v:.3g}"
    if not (np.isfinite(lo) or np.isfinite(hi)) or np.isnan(ratio):
        return "–"
    return f"{x(ratio)} [{x(np.exp(lo))}, {x(np.exp(hi))}]"


def comparison(op: object) -> str:
    """"value <=" for a recorded op; "?" when the op was not recorded."""
    return f"value {op}" if op in ("<", "<=", ">", ">=") else "?"


def check(r: object) -> Raw:
    """A row's check label, "(none declared)" for a run without checks; a long dotted name
    (``autotrainer.exploding_gradient``) may break after its dots."""
    c = getattr(r, "check")
    return Raw(html.escape(c).replace(".", ".<wbr>") if isinstance(c, str) and c else "(none declared)")


def axis_column(key: str, align: str = "l") -> Column:
    """A table column showing the axis ``key`` of each row (``label`` formatting)."""
    return (key.replace("_", " "), lambda r: label(getattr(r, key)), align)


def plain(r: object) -> str:
    """No colour: a table without verdicts."""
    return "neutral"


def tone_of(kind: type[Verdict], column: str = "status") -> Callable[[object], str]:
    """Row -> the tone of its ``column``, a value of the enum ``kind`` ("neutral" when absent)."""
    def tone(r: object) -> str:
        try:
            return kind(getattr(r, column)).tone
        except (AttributeError, ValueError):
            return "neutral"
    return tone
