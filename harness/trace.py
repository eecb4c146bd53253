"""Per-step traces of a replayed run (``python -m harness replay ... --trace``).

The replay compiles the run's loop so that it also returns what the default loop only
summarises in-graph: every step's float64 value of each step check (at every step, whether
or not the check's schedule evaluates it there) and the training numerics (loss,
grads_finite, skipped, loss_scale, grad_norm, clip_active). From those and the replayed
check results this module writes, into one directory:

  trace.parquet, trace.csv  one row per step: ``step``, one float64 column per step check
                            (named as the check; ``check:<name>`` if that clashes with
                            ``step`` or a numeric), the numerics (float32 and bool), and for a
                            check with a windowed statistic a column ``<name>.<statistic>``
                            holding the statistic at the steps it is evaluated (null elsewhere)
  checks.json               the side table: per check its meaning (when, op, bound as declared
                            and as compared, compare, value_dtype, every, after, judge,
                            statistic, window), its column, the replayed summary (n_evaluated,
                            n_failed, first_failure_step, worst_value, ...), a final check's
                            value, and the failures recomputed from the trace; plus the run
                            and whether the replay matched the stored rows (``verified``).
                            Non-finite floats are the strings "nan", "inf", "-inf".
  trace.png                 one panel per step check (its values, the bound as compared,
                            failing evaluations in red, unscheduled steps in grey), one panel
                            of loss, grad_norm and loss scale; final checks in a text box.

and, into a TensorBoard run directory of its own (``write_events``; replay puts it under a
logdir the sweep's traces share, named by ``run_label``), an event file of scalars whose
tags are the same in every run, so that runs overlay: ``check/<name>`` a step check's value
at every step, ``check/<name>.<statistic>`` a windowed check's statistic at the steps it is
evaluated, ``final/<name>`` a final check's value (one point, at the step count),
``train/loss``, ``train/grad_norm`` (where the run has one) and ``train/loss_scale`` (where
the loss is scaled). The values are trace.parquet's, as float32 (what TensorBoard's scalars
hold); they are written with TensorFlow's own ``tf.summary`` (no TensorBoard needed to write).

A step check fails at a scheduled step when its value is not finite or does not satisfy
``value <op> bound_compared`` (the bound rounded to the measured dtype when compare is
"native"), exactly as ``Check.summarize`` judges it; the recomputed counts are checked
against the engine's summary (``consistent`` in checks.json).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import axes as axis_table
from harness.engine.loop import NUMERIC_FIELDS

_FLAGS = ("grads_finite", "skipped", "clip_active")
_CMP = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
FILES = ("trace.parquet", "trace.csv", "checks.json", "trace.png")
EVENTS = "events.out.tfevents.*"  # the event files tf.summary writes
SHORT_ID = 8  # hex digits of the run_id that end a run label


@dataclass
class Evaluations:
    """A step check's evaluations recomputed from its per-step values."""

    steps: np.ndarray  # int64: the step each evaluation is made at
    values: np.ndarray  # float64: what is compared with the bound (the step value, or the windowed statistic)
    failed: np.ndarray  # bool


def _statistic(check: Any) -> str:
    return str(getattr(check, "statistic", "value") or "value")


def evaluations(check: Any, values: np.ndarray, bound_compared: float, skipped: np.ndarray | None = None) -> Evaluations:
    """The evaluations of a step check over a run's step values (steps 0..n-1), judged as
    ``Check.summarize`` judges them: scheduled steps only (``every``, ``after``; for a check
    ``on="applied"``, not the steps marked ``skipped``), or the check's windowed statistic; a
    failure is a non-finite value or a false comparison."""
    x = np.asarray(values, np.float64).reshape(-1)
    steps = np.arange(len(x), dtype=np.int64)
    if _statistic(check) != "value":
        import tensorflow as tf

        stat, at = check._windowed(tf.constant(x, tf.float64), tf.constant(steps, tf.int64))
        x, steps = np.asarray(stat, np.float64).reshape(-1), np.asarray(at, np.int64).reshape(-1)
    else:
        keep = scheduled(check, len(x), skipped)
        x, steps = x[keep], steps[keep]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x) & _CMP[check.op](x, np.float64(bound_compared))
    return Evaluations(steps, x, ~ok)


def scheduled(check: Any, n_steps: int, skipped: np.ndarray | None = None) -> np.ndarray:
    """Which of steps 0..n-1 a step check's schedule evaluates (after, after + every, ...; for a
    check ``on="applied"``, not the steps ``skipped`` marks)."""
    steps = np.arange(n_steps, dtype=np.int64)
    keep = (steps >= check.after) & ((steps - check.after) % check.every == 0)
    if getattr(check, "on", "all") == "applied" and skipped is not None:
        applied = keep & ~np.asarray(skipped, bool).reshape(-1)[:n_steps]
        keep = applied if applied.any() else keep  # none applied: every scheduled step judged (Check.summarize)
    return keep


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def _columns(checks: Sequence[Any]) -> dict[str, str]:
    taken = {"step", *NUMERIC_FIELDS}
    out = {}
    for c in checks:
        out[c.name] = c.name if c.name not in taken else f"check:{c.name}"
        taken.add(out[c.name])
    return out


def build_trace(spec: Any, result: Any, series: Any, checks: Sequence[Any], *, verified: bool) -> tuple[Any, dict]:
    """(the per-step Arrow table, the side table as a JSON-ready dict)."""
    import pyarrow as pa

    rows = np.asarray(series.numerics, np.float32).reshape(-1, len(NUMERIC_FIELDS))
    n = rows.shape[0]
    skipped = rows[:, NUMERIC_FIELDS.index("skipped")] > 0
    step_checks = [c for c in checks if c.when == "step"]
    names = _columns(step_checks)
    by_name = {r.check: r for r in result.checks}
    arrays: dict[str, Any] = {"step": pa.array(np.arange(n, dtype=np.int64))}
    side_checks = []
    for c in checks:
        r = by_name.get(c.name)
        entry: dict[str, Any] = {
            "check": c.name, "when": c.when, "op": c.op, "bound": float(c.bound),
            "bound_compared": r.bound_compared if r else None, "compare": c.compare,
            "value_dtype": r.value_dtype if r else None, "every": c.every, "after": c.after, "judge": c.judge,
            "statistic": _statistic(c), "window": int(getattr(c, "window", 1)), "on": getattr(c, "on", "all"),
        }
        if r is not None:
            entry.update(n_evaluated=r.n_evaluated, n_failed=r.n_failed, n_nonfinite=r.n_nonfinite,
                         first_failure_step=r.first_failure_step, worst_value=r.worst_value,
                         worst_margin=r.worst_margin, passed=r.passed)
        if c.when == "final":
            entry["value"] = r.worst_value if r else None  # one evaluation: its value is the worst
        else:
            values = np.asarray(series.values[c.name], np.float64).reshape(-1)
            entry["column"] = names[c.name]
            arrays[names[c.name]] = pa.array(values, pa.float64())
            if r is not None and r.bound_compared is not None:
                ev = evaluations(c, values, r.bound_compared, skipped)
                failing = ev.steps[ev.failed]
                entry.update(trace_n_evaluated=int(len(ev.steps)), trace_n_failed=int(len(failing)),
                             trace_first_failure_step=int(failing[0]) if len(failing) else None)
                entry["consistent"] = (entry["trace_n_evaluated"] == r.n_evaluated
                                       and entry["trace_n_failed"] == r.n_failed
                                       and entry["trace_first_failure_step"] == r.first_failure_step)
                if _statistic(c) != "value":
                    col = f"{names[c.name]}.{_statistic(c)}"
                    stat = np.full(n, np.nan)
                    stat[ev.steps] = ev.values
                    mask = np.ones(n, bool)
                    mask[ev.steps] = False
                    arrays[col] = pa.array(stat, pa.float64(), mask=mask)
                    entry["statistic_column"] = col
        side_checks.append({k: _jsonable(v) for k, v in entry.items()})
    for i, f in enumerate(NUMERIC_FIELDS):
        col = rows[:, i]
        arrays[f] = pa.array(col > 0) if f in _FLAGS else pa.array(col, pa.float32())
    side = {
        "run_id": spec.run_id, "target": spec.target, "params": dict(spec.params),
        **axis_table.axis_values(spec), "steps": n,  # every axis of the run (harness.axes), steps as run
        "status": result.status.value, "verified": bool(verified), "columns": list(arrays), "checks": side_checks,
    }
    table = pa.table(arrays).replace_schema_metadata({"harness.trace": json.dumps(side, sort_keys=True)})
    return table, side


def write_trace(out: Path, spec: Any, result: Any, series: Any, checks: Sequence[Any], *, verified: bool,
                events: Path | None = None) -> list[Path]:
    """Write trace.parquet, trace.csv, checks.json and trace.png into ``out``, and with ``events``
    (a TensorBoard run directory) the scalars' event file into it; their paths."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table, side = build_trace(spec, result, series, checks, verified=verified)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f for f in FILES]
    pq.write_table(table, paths[0])
    pcsv.write_csv(table.replace_schema_metadata(None), paths[1])
    paths[2].write_text(json.dumps(side, indent=1) + "\n")
    plot_trace(table, side, checks, paths[3])
    if events is not None:
        paths.append(write_events(events, table, side))
    return paths


# ---------------------------------------------------------------------- TensorBoard


def scalars(table: Any, side: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The TensorBoard scalars of a trace (``build_trace``'s table and side table): tag ->
    (steps int64, values float64), every value as trace.parquet holds it (see the module
    docstring for the tags)."""
    n = table.num_rows
    steps = np.arange(n, dtype=np.int64)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    for e in side["checks"]:
        if e["when"] == "final":
            if e.get("value") is not None:
                value = float(e["value"])  # JSON-ready: a number, or "nan", "inf", "-inf"
                out[f"final/{e['check']}"] = (np.array([n], np.int64), np.array([value]))
            continue
        if "column" not in e:
            continue
        out[f"check/{e['check']}"] = (steps, col(e["column"]))
        if "statistic_column" in e:  # the statistic exists at the steps it is evaluated only
            stat = table.column(e["statistic_column"])
            at = ~np.asarray(stat.is_null().to_numpy(zero_copy_only=False), bool)
            out[f"check/{e['check']}.{e['statistic']}"] = (steps[at], col(e["statistic_column"])[at])
    if n:
        out["train/loss"] = (steps, col("loss"))
        grad_norm = col("grad_norm")
        if np.isfinite(grad_norm).any():
            out["train/grad_norm"] = (steps, grad_norm)
        scale = col("loss_scale")
        finite = scale[np.isfinite(scale)]
        if finite.size and not (finite.min() == finite.max() == 1.0):  # fp32, bf16: no scaling, no tag
            out["train/loss_scale"] = (steps, scale)
    return out


_label_value = axis_table.show  # a value in a run's label, as the harness prints it


def run_label(run: Mapping[str, Any], varying: Sequence[str] = ()) -> str:
    """A TensorBoard run's name (its directory under the shared logdir): the scenario, the
    swept parameters (``variant``), the precision, the other axes of ``varying`` as
    ``key=value``, the seed and the first SHORT_ID digits of the run_id, joined by commas,
    e.g. ``loss_bound,fp16,data_size=100000,seed=1,f549eab3``. The same run always ends in the
    same run_id, which tells its directory (``clear_stale_runs``)."""
    parts = [_label_value(run.get("scenario"))]
    variant = str(run.get("variant") or "").replace(", ", ",")
    if variant:
        parts.append(variant)
    parts.append(_label_value(run.get("precision")))
    skip = {"scenario", "precision", "seed", "variant", "params", "schedule"}
    parts += [f"{a}={_label_value(run.get(a))}" for a in varying if a not in skip]
    parts += [f"seed={_label_value(run.get('seed'))}", str(run["run_id"])[:SHORT_ID]]
    return ",".join("".join(ch if ch.isalnum() or ch in "._=+-," else "_" for ch in p) for p in parts)


def clear_stale_runs(root: Path, label: str) -> list[Path]:
    """Remove the event files of this run's earlier TensorBoard directories under ``root`` (a
    label that ends in the same run_id but names other axes, written when other axes varied),
    and the directories left empty: a traced run shows once in TensorBoard. Returns those removed."""
    suffix = "," + label.rsplit(",", 1)[-1]
    removed = []
    for d in sorted(root.glob(f"*{suffix}")) if root.is_dir() else []:
        if d.name == label or not d.is_dir():
            continue
        for f in d.glob(EVENTS):
            f.unlink()
        if not any(d.iterdir()):
            d.rmdir()
        removed.append(d)
    return removed


def write_events(logdir: Path, table: Any, side: Mapping[str, Any]) -> Path:
    """Write the trace's scalars (``scalars``) as one TensorBoard event file into ``logdir``,
    replacing the event files an earlier trace wrote there, with ``tf.summary.write`` and the
    scalar plugin's metadata (what ``tf.summary.scalar`` writes, without needing the
    tensorboard package); step by step, tag by tag, as a training loop would. Its path."""
    import tensorflow as tf

    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob(EVENTS):
        old.unlink()
    series = scalars(table, side)
    tags = np.concatenate([np.zeros(0, np.int64), *(np.full(len(s), i) for i, (s, _) in enumerate(series.values()))])
    steps = np.concatenate([np.zeros(0, np.int64), *(s for s, _ in series.values())])
    values = np.concatenate([np.zeros(0), *(v for _, v in series.values())])
    order = np.lexsort((tags, steps))  # by step, then tag
    names = np.array([*series, ""], dtype=str)[tags[order]]
    meta = tf.compat.v1.SummaryMetadata(plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"),
                                        data_class="DATA_CLASS_SCALAR").SerializeToString()

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64),
                                                   tf.TensorSpec([None], tf.float32)])
    def write_all(tag: Any, step: Any, value: Any) -> Any:  # one graph: ~20 us a value, not ~0.5 ms eagerly
        def body(i: Any) -> tuple[Any]:
            tf.summary.write(tag[i], value[i], step=step[i], metadata=meta)
            return (i + 1,)

        return tf.while_loop(lambda i: i < tf.size(value), body, (tf.constant(0),))

    with np.errstate(over="ignore"):  # beyond float32's range: inf, as tf.summary.scalar's cast gives
        as_float32 = values[order].astype(np.float32)
    writer = tf.summary.create_file_writer(str(logdir))
    try:
        with writer.as_default():
            write_all(tf.constant(names, tf.string), tf.constant(steps[order], tf.int64), tf.constant(as_float32))
    finally:
        writer.close()
    files = sorted(logdir.glob(EVENTS), key=lambda p: p.stat().st_mtime_ns)
    if not files:
        raise OSError(f"{logdir}: tf.summary wrote no event file")
    return files[-1]


# ---------------------------------------------------------------------- the plot


def _fmt(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        return v
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _maybe_log(ax: Any, *series: np.ndarray, ratio: float = 1e3) -> None:
    vals = np.concatenate([np.asarray(s, np.float64)[np.isfinite(s)] for s in series]) if series else np.array([])
    if len(vals) and np.all(vals > 0) and vals.max() / vals.min() > ratio:
        ax.set_yscale("log")


def _check_panel(ax: Any, check: Any, entry: Mapping[str, Any], table: Any) -> None:
    steps = table.column("step").to_numpy()
    values = table.column(entry["column"]).to_numpy(zero_copy_only=False).astype(np.float64)
    bound = entry.get("bound_compared")
    bound = float(bound) if isinstance(bound, (int, float)) else float(check.bound)
    windowed = "statistic_column" in entry
    extra = []
    if windowed:
        # the bound applies to the statistic: raw step values on a second axis, in grey
        twin = ax.twinx()
        extra = twin.plot(steps, values, color="0.7", lw=0.8, label="step value (right axis)")
        twin.set_ylabel("step value", color="0.5")
        ev = evaluations(check, values, bound)
        x_eval, y_eval = ev.steps, ev.values
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
    else:
        skipped = table.column("skipped").to_numpy(zero_copy_only=False) > 0 if "skipped" in table.column_names \
            else None
        keep = scheduled(check, len(values), skipped)
        if not keep.all():
            ax.plot(steps, np.where(keep, np.nan, values), ".", color="0.75", ms=3,
                    label="not evaluated (not scheduled, or a skipped step)")
        ev = evaluations(check, values, bound, skipped)
        x_eval, y_eval = ev.steps, ev.values
    many = len(x_eval) > 150
    ax.plot(x_eval, y_eval, "-" if many else "-o", color="C0", lw=1, ms=3,
            label=f"{check.statistic} (evaluated)" if windowed else "value (evaluated)")
    finite_fail = ev.failed & np.isfinite(y_eval)
    if finite_fail.any():
        ax.plot(x_eval[finite_fail], y_eval[finite_fail], "o", color="red", ms=4, label="failed", zorder=5)
    nonfinite = ~np.isfinite(y_eval)
    if nonfinite.any():  # no y value: drawn on the top edge
        ax.plot(x_eval[nonfinite], np.full(nonfinite.sum(), 0.97), "x", color="red", ms=6, zorder=5,
                transform=ax.get_xaxis_transform(), label="non-finite (failed)")
    declared = "" if bound == float(check.bound) else f", declared {check.bound:g}"
    ax.axhline(bound, color="black", ls="--", lw=1, label=f"bound: {check.op} {bound!r}{declared}")
    _maybe_log(ax, y_eval, np.array([bound]), ratio=50)
    sched = []
    if check.every != 1 or check.after != 0:
        sched.append(f"every={check.every} after={check.after}")
    if windowed:
        sched.append(f"window={getattr(check, 'window', 1)}")
    if check.judge != "any":
        sched.append(f"judge={check.judge}")
    if getattr(check, "on", "all") != "all":
        sched.append(f"on={check.on}")
    n_failed, n_eval = entry.get("n_failed"), entry.get("n_evaluated")
    first = entry.get("first_failure_step")
    verdict = f"{n_failed}/{n_eval} evaluations failed" + (f", first at step {first}" if first is not None else "")
    if entry.get("consistent") is False:
        verdict += " [trace disagrees with the engine's summary]"
    ax.set_title(f"{check.name}: {'statistic' if windowed else 'value'} {check.op} bound"
                 f"{' (' + ', '.join(sched) + ')' if sched else ''} - {verdict}", fontsize=9, loc="left")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles + extra, labels + [h.get_label() for h in extra], fontsize=7, loc="best", framealpha=0.8)
    ax.grid(alpha=0.3)


def _numerics_panel(ax: Any, table: Any) -> None:
    steps = table.column("step").to_numpy()

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False)

    loss, gnorm, scale = (col(k).astype(np.float64) for k in ("loss", "grad_norm", "loss_scale"))
    ax.plot(steps, loss, color="C0", lw=1, label="loss")
    if np.isfinite(gnorm).any():
        ax.plot(steps, gnorm, color="C1", lw=1, label="grad_norm")
    bad = ~np.isfinite(loss)
    if bad.any():
        ax.plot(steps[bad], np.full(bad.sum(), 0.97), "x", color="red", ms=6, transform=ax.get_xaxis_transform(),
                label="non-finite loss")
    skipped = col("skipped").astype(bool)
    for s in steps[skipped][:500]:
        ax.axvline(s, color="orange", alpha=0.3, lw=1)
    if skipped.any():
        ax.plot([], [], color="orange", alpha=0.5, label=f"skipped step ({int(skipped.sum())})")
    _maybe_log(ax, loss, gnorm, ratio=100)
    handles, labels = ax.get_legend_handles_labels()
    finite_scale = scale[np.isfinite(scale)]
    if finite_scale.size and not (finite_scale.min() == finite_scale.max() == 1.0):  # fp32/bf16: no scaling, no line
        twin = ax.twinx()
        twin.step(steps, scale, where="post", color="C2", lw=1)
        twin.set_ylabel("loss scale", color="C2")
        finite = scale[np.isfinite(scale)]
        if finite.min() > 0 and finite.max() / finite.min() > 10:
            twin.set_yscale("log", base=2)
        handles.append(twin.get_lines()[0])
        labels.append("loss scale (right axis)")
    ax.legend(handles, labels, fontsize=7, loc="best", framealpha=0.8)
    ax.set_title("training numerics", fontsize=9, loc="left")
    ax.grid(alpha=0.3)


def plot_trace(table: Any, side: Mapping[str, Any], checks: Sequence[Any], path: Path) -> Path:
    """The trace's PNG: one panel per step check, one of the training numerics, the final
    checks in a text box (margins fixed in inches: no layout pass over every label)."""
    from matplotlib.figure import Figure

    entries = {e["check"]: e for e in side["checks"]}
    n = table.num_rows
    step_checks = [c for c in checks if c.when == "step" and "column" in entries[c.name]]
    final = [c for c in checks if c.when == "final"]
    panels = [*step_checks, None] if n else []
    lines = []
    for c in final:
        e = entries[c.name]
        verdict = "" if e.get("passed") is None else ("pass" if e["passed"] else "FAIL")
        lines.append(f"{c.name}: {_fmt(e.get('value'))} {c.op} {_fmt(e.get('bound_compared'))}  {verdict}")
    head = [] if n else [f"0 steps: {'the scenario does not train; ' if not step_checks else ''}no per-step trace"]
    box = len(head) + len(lines) + (1 if final else 0)
    header = 0.35 + (0.14 * box + 0.2 if box else 0)  # inches above the first panel's title
    axis_h, gap, bottom = 2.1, 0.5, 0.55
    height = header + (0.3 + len(panels) * axis_h + (len(panels) - 1) * gap + bottom if panels else 0.1)
    fig = Figure(figsize=(10, height))
    verified = "replay matches the stored run" if side["verified"] else "replay DIFFERS from the stored run"
    # the run's other axes: those set, and those whose null is a value (no clipping)
    shown = [a for a in axis_table.DISPLAY if a not in ("scenario", "steps", "precision")
             and (side.get(a) is not None or axis_table.BY_NAME[a].nullable)]
    fig.suptitle(f"run {side['run_id']}: {side['scenario']} {n} steps {side['precision']} "
                 f"{axis_table.label(shown, side).replace(', ', ' ')} ({verified})", fontsize=9, y=1 - 0.1 / height,
                 x=0.01, ha="left", va="top")
    if box:
        text = "\n".join([*head, *(["final checks:", *(f"  {ln}" for ln in lines)] if final else [])])
        fig.text(0.01, 1 - 0.4 / height, text, fontsize=8, va="top", ha="left", family="monospace",
                 bbox={"facecolor": "0.95", "edgecolor": "0.7"})
    if panels:
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        fig.subplots_adjust(left=0.08, right=0.915, top=1 - (header + 0.3) / height, bottom=bottom / height,
                            hspace=gap / axis_h)
        for ax, c in zip(axes, panels):
            if c is None:
                _numerics_panel(ax, table)
            else:
                _check_panel(ax, c, entries[c.name], table)
        axes[-1].set_xlabel("step")
    fig.savefig(path, dpi=96)
    return path
