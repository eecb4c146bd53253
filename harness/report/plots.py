"""PNG figures of the report (matplotlib, Agg backend; imported only when a report is drawn).

Each function takes a frame the analysis layer produced (or the results frame), draws
one small-multiple figure with one panel per check, writes it to ``path`` and returns
the path. Point clouds are subsampled so a million rows draw as fast as a hundred.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.frame import label, ok_mask

PRECISION_COLORS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "bf16": "#2ca02c"}
MARKERS = "osD^v<>p"
DODGE = 0.035  # decades between the lines of neighbouring hues, so equal rates stay visible


def order(values: object) -> list:
    """Hue values in a stable order: known precisions first (fp32, bf16, fp16), then sorted."""
    seen = list(pd.unique(pd.Series(values)))
    known = [p for p in ("fp32", "bf16", "fp16") if p in seen]
    return known + sorted((v for v in seen if v not in known), key=str)


def _dodge(xs: np.ndarray, i: int, n: int) -> np.ndarray:
    return xs * 10 ** ((i - (n - 1) / 2) * DODGE) if np.all(xs > 0) else xs


MAX_PANELS = 12


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(values: list) -> dict:
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    out, spare = {}, iter(c for c in palette if c not in PRECISION_COLORS.values())
    for v in values:
        out[v] = PRECISION_COLORS.get(str(v)) or next(spare, "#333333")
    return out


def _panels(n: int, width: float = 5.2, height: float = 3.6):  # noqa: ANN202
    plt = _pyplot()
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:n])


def _size_axis(ax, sizes: np.ndarray) -> None:  # noqa: ANN001
    if len(sizes) > 1 and np.all(sizes > 0):
        ax.set_xscale("log")
    ax.set_xticks(sizes, [label(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("data size (rows)")


def _save(plt, fig, path: Path) -> Path:  # noqa: ANN001
    fig.tight_layout()
    fig.savefig(path, dpi=96)
    plt.close(fig)
    return path


def plot_rates(rates: pd.DataFrame, path: Path, *, x: str = "data_size", hue: str = "precision",
               panel: str = "check", title: str = "run-level failure rate") -> Path:
    """Failure rate against data size, one line per ``hue`` with its 95% Wilson band."""
    panels = list(pd.unique(rates[panel]))[:MAX_PANELS]
    plt, fig, axes = _panels(len(panels))
    hues = order(rates[hue])
    colors = _colors(hues)
    for ax, name in zip(axes, panels):
        part = rates[rates[panel] == name]
        for i, h in enumerate(hues):
            g = part[part[hue] == h].sort_values(x)
            if g.empty:
                continue
            xs = _dodge(g[x].to_numpy(float), i, len(hues))
            ax.plot(xs, g["rate"], "-", marker=MARKERS[i % len(MARKERS)], color=colors[h], label=label(h))
            ax.fill_between(xs, g["ci_low"], g["ci_high"], color=colors[h], alpha=0.18, linewidth=0)
        _size_axis(ax, np.sort(part[x].unique().astype(float)))
        ax.set_ylim(-0.03, 1.03)
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        ax.set_ylabel(title)
        ax.set_title(str(name) or "(no check)")
        ax.grid(alpha=0.3)
        ax.legend(title=hue, fontsize=8)
    return _save(plt, fig, path)


def plot_decomposition(decomp: pd.DataFrame, path: Path, *, x: str = "data_size", hue: str = "precision") -> Path:
    """Observed run-level rate (solid) against the rate expected from the per-evaluation rate
    and the evaluation count (dashed), and the per-evaluation rate itself (dotted)."""
    panels = list(pd.unique(decomp["check"]))[:MAX_PANELS]
    plt, fig, axes = _panels(len(panels))
    hues = order(decomp[hue])
    colors = _colors(hues)
    for ax, name in zip(axes, panels):
        part = decomp[decomp["check"] == name]
        for i, h in enumerate(hues):
            g = part[part[hue] == h].sort_values(x)
            if g.empty:
                continue
            xs = _dodge(g[x].to_numpy(float), i, len(hues))
            ax.plot(xs, g["run_rate"], "o-", color=colors[h])
            ax.plot(xs, g["expected_run_rate"], "x--", color=colors[h], alpha=0.8, markersize=8)
            ax.plot(xs, g["eval_rate"], ":", color=colors[h], alpha=0.8)
        _size_axis(ax, np.sort(part[x].unique().astype(float)))
        ax.set_ylim(-0.03, 1.03)
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        ax.set_ylabel("failure rate")
        ax.set_title(str(name) or "(no check)")
        ax.grid(alpha=0.3)
        Line2D = plt.matplotlib.lines.Line2D
        handles = [Line2D([], [], color=colors[h], label=label(h)) for h in hues]
        handles += [Line2D([], [], color="k", marker="o", label="observed, per run"),
                    Line2D([], [], color="k", marker="x", linestyle="--", label="expected from per-evaluation rate"),
                    Line2D([], [], color="k", linestyle=":", label="per evaluation")]
        ax.legend(handles=handles, fontsize=7)
    return _save(plt, fig, path)


def plot_margins(df: pd.DataFrame, path: Path, *, x: str = "data_size", hue: str = "precision",
                 max_points: int = 150, max_box: int = 20000, seed: int = 0) -> Path:
    """Distribution of each completed run's worst margin (signed distance to the bound;
    below 0 = violated) per data size and ``hue``; runs that saw NaN/Inf (margin -inf) are drawn
    at the bottom edge of the panel, a red cross each, with their count: they failed, whatever the
    scale of the finite margins."""
    mask = ok_mask(df).to_numpy()
    ok = pd.DataFrame({"check": df["check"].to_numpy()[mask], "x": df[x].to_numpy()[mask],
                       "hue": df[hue].to_numpy()[mask], "m": df["worst_margin"].to_numpy(float, na_value=np.nan)[mask]})
    panels = list(pd.unique(ok["check"]))[:MAX_PANELS] or ["(no completed runs)"]
    plt, fig, axes = _panels(len(panels), width=5.6)
    hues = order(ok["hue"].unique()) if len(ok) else []
    colors = _colors(hues)
    rng = np.random.default_rng(seed)
    cells = {k: g.to_numpy() for k, g in ok.groupby(["check", "hue", "x"], sort=False, dropna=False)["m"]}
    for ax, name in zip(axes, panels):
        sizes = np.sort(ok.loc[ok["check"] == name, "x"].unique())
        width = 0.8 / max(1, len(hues))
        spread = []
        nonfinite = False
        for i, h in enumerate(hues):
            for j, s in enumerate(sizes):
                m = cells.get((name, h, s), np.empty(0))
                pos = j - 0.4 + width * (i + 0.5)
                fin = m[np.isfinite(m)]
                bad = int(np.count_nonzero(m == -np.inf))
                if fin.size:
                    box = fin if fin.size <= max_box else rng.choice(fin, max_box, replace=False)
                    ax.boxplot(box, positions=[pos], widths=width * 0.8, showfliers=False, patch_artist=True,
                               boxprops={"facecolor": colors[h], "alpha": 0.35}, medianprops={"color": "k"})
                    pts = fin if fin.size <= max_points else rng.choice(fin, max_points, replace=False)
                    ax.plot(pos + rng.uniform(-width / 4, width / 4, pts.size), pts, ".", color=colors[h],
                            alpha=0.6, markersize=3)
                    spread.append(box)
                if bad:  # margin -inf: drawn, one mark a run, at the panel's bottom edge in the failure colour
                    shown = min(bad, max_points)
                    ax.plot(pos + rng.uniform(-width / 4, width / 4, shown), np.full(shown, 0.04), "x",
                            color="#b00000", markersize=6, mew=1.5, transform=ax.get_xaxis_transform(), zorder=5)
                    ax.annotate(f"{bad} NaN/Inf", (pos, 0.09), xycoords=("data", "axes fraction"), fontsize=8,
                                ha="center", va="bottom", color="#b00000", fontweight="bold")
                    nonfinite = True
        if spread:
            allv = np.concatenate(spread)
            if np.nanmax(np.abs(allv)) > 100 * max(np.nanmedian(np.abs(allv)), 1e-12):
                ax.set_yscale("symlog", linthresh=max(np.nanmedian(np.abs(allv)), 1e-12))
        ax.axhline(0.0, color="#b00000", linewidth=1.2)
        lo = ax.get_ylim()[0]
        ax.axhspan(min(lo, 0.0), 0.0, color="#b00000", alpha=0.06)
        ax.set_xticks(range(len(sizes)), [label(s) for s in sizes])
        ax.set_xlim(-0.6, len(sizes) - 0.4)
        ax.set_xlabel("data size (rows)")
        ax.set_ylabel("worst margin to the bound (< 0 = violated)")
        ax.set_title(str(name) or "(no check)")
        ax.grid(alpha=0.3, axis="y")
        for h in hues:
            ax.plot([], [], "s", color=colors[h], alpha=0.6, label=label(h))
        if nonfinite:
            ax.plot([], [], "x", color="#b00000", mew=1.5, label="run that saw NaN/Inf (margin -inf, failed)")
        if hues:
            ax.legend(title=hue, fontsize=8, loc="best")
    return _save(plt, fig, path)


def plot_attribution(attr: pd.DataFrame, path: Path) -> Path:
    """Per check, the range of the failure rate across each axis's levels (bars), labelled
    with the likelihood-ratio p-value of the axis."""
    attr = attr[attr["axis"].astype(str) != ""]
    panels = list(pd.unique(attr["check"]))[:MAX_PANELS]
    plt, fig, axes = _panels(len(panels), width=5.0, height=0.5 + 0.45 * max(3, attr["axis"].nunique()))
    for ax, name in zip(axes, panels):
        part = attr[attr["check"] == name].sort_values("rank", ascending=False)
        ax.barh(part["axis"], part["rate_range"], color=["#d62728" if r == 1 else "#7f7f7f" for r in part["rank"]])
        for yy, (rr, p) in enumerate(zip(part["rate_range"], part["p_value"])):
            ax.text(rr + 0.01, yy, f"p={p:.2g}" if np.isfinite(p) else "", va="center", fontsize=8)
        ax.set_xlim(0, 1.15)
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel("failure-rate range across the axis's levels")
        ax.set_title(str(name))
        ax.grid(alpha=0.3, axis="x")
    return _save(plt, fig, path)
