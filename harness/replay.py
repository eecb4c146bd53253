"""``python -m harness replay results/<sweep> run_id=ID[,ID...] [threads=N] [target=pkg.Class] [--trace [out=DIR]]``,
``python -m harness replay results/<sweep> worst=cell [check=NAME] [threads=N] [--trace [out=DIR]]``

Reruns one stored run (or each of a set, below) in this process (no Ray) and compares every
check's stored n_evaluated, n_failed, n_nonfinite, first_failure_step, worst_value and
worst_margin with the replayed ones, exactly: floats bit for bit (NaN equals NaN, -0.0
differs from 0.0).
Exit codes: 0 every value matches, 1 some value differs (or the run now ends differently; of
any run of a set), 2 bad path, run_id, option or stored data (one line, nothing run).

Where the run comes from. The stored rows are the source: they are written once with the
run and never rewritten, and hold every axis and the scenario's parameters (``params``,
JSON). What the rows lack is the scenario's class, taken from ``_sweep.yaml``
(``scenarios.<name>._target_``) or given as ``target=``. ``_sweep.yaml`` alone is not
trusted: every invocation of a sweep rewrites it, so it describes the last grid, not
necessarily this run's. The rebuilt spec is accepted only if it hashes to the stored
run_id (which hashes scenario, class, parameters, every axis and the engine's
RUN_ID_VERSION): a replay either runs exactly the stored run or refuses with exit 2.
TensorFlow's thread pools follow the stored ``ray.num_cpus_per_actor`` unless ``threads=``, and
its oneDNN rewrite the stored ``onednn`` (TF_ENABLE_ONEDNN_OPTS is set for this process before
TensorFlow is imported; its kernels give other numbers than Eigen's).

Per-step traces. With ``--trace`` the loop also returns every step's check values and
training numerics; the run's summary is still compared exactly (so the trace is the stored
run's), and trace.parquet, trace.csv (one row per step), checks.json (each check's bound,
op, schedule and summary) and trace.png (a panel per step check: values, bound, failing
steps; a panel of loss, grad_norm, loss scale; final checks in a text box) are written to
``out=DIR``, by default ``<results dir>_traces/<run_id>/`` (outside the results directory,
whose Parquet readers must see part files only). Their paths are printed, one a line. A
scenario that does not train has zero steps: the files hold its final values. See
harness/trace.py.

TensorBoard. ``--trace`` also writes the trace's scalars as a TensorBoard event file, into
``<results dir>_traces/tensorboard/<run label>/`` (``out=DIR``: ``DIR/tensorboard/...``), a
logdir every trace of the sweep shares: ``tensorboard --logdir <results dir>_traces/tensorboard``
shows one run per traced run, labelled ``<scenario>,[<swept parameters>,]<precision>,
[<axis>=<value>,...]seed=<seed>,<the run_id's first 8 digits>`` (the axes its scenario's stored
runs vary), with the same tags in every run, so seeds and precisions overlay: ``check/<name>``
(a step check's value at every step), ``check/<name>.<statistic>`` (a windowed check's
statistic where it is evaluated), ``final/<name>`` (a final check's value, one point at the
step count), ``train/loss``, ``train/grad_norm``, ``train/loss_scale`` (where the loss is
scaled). Values are float32, as TensorBoard's scalars are (trace.parquet keeps float64); they
are written with TensorFlow's tf.summary, and TensorBoard is needed only to view them. The
event file's path and the ``tensorboard`` command are printed. Tracing a run again replaces its
event file (and the directory of an earlier label of the same run).

A set of runs. ``run_id=A,B,C`` replays each run of the list; ``worst=cell`` the worst run
(lowest worst_margin, NaN/Inf first) of every cell, a cell being a scenario's check in one
configuration (every axis the sweep varies but the seed), among the runs the sweep's current
definition plans (``_plan.json``); ``check=NAME`` keeps the cells of that check. Each run is
compared exactly, as one is; with ``--trace`` each gets its trace, ``<out>/<run_id>/``, and its
TensorBoard run. Every run is found and rebuilt before the first is replayed, so a bad value
writes nothing. Exit 1 if any run differs.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

FIELDS = ("n_evaluated", "n_failed", "n_nonfinite", "first_failure_step", "worst_value", "worst_margin")
EXIT_MATCH, EXIT_MISMATCH, EXIT_BAD = 0, 1, 2
USAGE = ("usage: python -m harness replay RESULTS_DIR run_id=ID[,ID...] [threads=N] [target=pkg.module.Class] "
         "[--trace [out=DIR]]\n"
         "       python -m harness replay RESULTS_DIR worst=cell [check=NAME] [threads=N] [--trace [out=DIR]]\n")
FLAGS = ("--trace",)
KEYS = ("run_id", "threads", "target", "out", "worst", "check")
WORST = ("cell",)  # worst=: what a set of runs is chosen by
TENSORBOARD = "tensorboard"  # the logdir the sweep's traces share, under the traces' directory
AMBIGUOUS_SHOWN = 5  # run ids an ambiguous prefix lists; beyond them it says how many more


class ReplayError(ValueError):
    """Bad path, run id or stored data: one line, exit 2."""


def same(a: Any, b: Any) -> bool:
    """Exact equality of stored and replayed values: None only equals None, floats compare
    bit for bit (NaN == NaN, -0.0 != 0.0), ints by value."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        return (math.isnan(a) and math.isnan(b)) or a.hex() == b.hex()
    return bool(a == b)


def _args(argv: list[str]) -> tuple[Path, dict[str, str]]:
    flags = [a for a in argv if a.startswith("--") and "=" not in a]
    paths = [a for a in argv if "=" not in a and a not in flags]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    unknown = sorted(set(opts) - set(KEYS)) + sorted(set(flags) - set(FLAGS))
    if len(paths) != 1:
        raise ReplayError(f"give one results directory (got {len(paths)}: {' '.join(paths)})")
    if unknown:
        raise ReplayError(f"{unknown[0]}: unknown option (run_id=, worst=, check=, threads=, target=, --trace, out=)")
    if "out" in opts and "--trace" not in flags:
        raise ReplayError("out=: only with --trace (where to write the trace)")
    if "out" in opts and not opts["out"]:
        raise ReplayError("out=: empty; give out=DIR")
    if "--trace" in flags:
        opts["trace"] = "yes"
    if "worst" in opts:
        if opts["worst"] not in WORST:
            raise ReplayError(f"worst={opts['worst']}: unknown value; give worst=cell (the worst run of each cell)")
        if "run_id" in opts:
            raise ReplayError(f"run_id={opts['run_id']}: not with worst=cell; give the runs or how to choose them")
        if "target" in opts:
            raise ReplayError(f"target={opts['target']}: only with run_id= (worst=cell takes each run's class "
                              "from _sweep.yaml)")
    elif "check" in opts:
        raise ReplayError(f"check={opts['check']}: only with worst=cell (the cells of that check)")
    if "check" in opts and not opts["check"]:
        raise ReplayError("check=: empty; give check=NAME")
    if "worst" not in opts and not opts.get("run_id"):
        raise ReplayError("run_id: missing; give run_id=ID (the run_id column, or a unique prefix of it; "
                          "several: run_id=A,B), or worst=cell")
    if "run_id" in opts and not all(opts["run_id"].split(",")):
        raise ReplayError(f"run_id={opts['run_id']}: an empty run id in the list; give run_id=A,B")
    if "threads" in opts and not (opts["threads"].isdigit() and int(opts["threads"]) > 0):
        raise ReplayError(f"threads: {opts['threads']!r} is not a positive integer")
    return Path(paths[0]), opts


def _run_files(directory: Path) -> dict[str, Path]:
    """run_id -> the part file that holds it (ReplayError for a bad path or no stored runs)."""
    from harness.store import StoreError, run_files

    if not directory.is_dir():
        raise ReplayError(f"{directory}: not a directory")
    try:
        where = run_files(directory)
    except StoreError as exc:
        raise ReplayError(str(exc)) from exc
    if not where:
        raise ReplayError(f"{directory}: no stored runs (expected the Parquet part files of results/<sweep>/)")
    return where


def find_part(directory: Path, run_id: str, where: dict[str, Path] | None = None) -> Path:
    """The part file that holds the run ``run_id`` (or a unique prefix of it; its newest rows if
    it is stored twice), as a Path that also carries the full run_id (``.run_id``): a part file
    may hold many runs. ``where``: the directory's run files, if already read (_run_files)."""
    from harness.store import RunPath

    where = _run_files(directory) if where is None else where
    hits = [run_id] if run_id in where else sorted(r for r in where if r.startswith(run_id))
    if not hits:
        raise ReplayError(f"run_id={run_id}: no such run in {directory} ({len(where)} runs stored)")
    if len(hits) > 1:
        shown = hits if len(hits) <= AMBIGUOUS_SHOWN else hits[:AMBIGUOUS_SHOWN - 1]
        more = f" and {len(hits) - len(shown)} more" if len(shown) < len(hits) else ""
        raise ReplayError(f"run_id={run_id}: ambiguous prefix, {len(hits)} runs match ({', '.join(shown)}{more}); "
                          "give more of the run_id")
    return RunPath(where[hits[0]], run_id=hits[0])


def read_rows(part: Path) -> list[dict[str, Any]]:
    """The stored rows of one run: those of ``part.run_id`` in ``part`` (as find_part returns
    it), or of a plain path to a file that holds one run."""
    import pyarrow.parquet as pq

    run_id = getattr(part, "run_id", None)
    try:
        table = pq.read_table(part, filters=[("run_id", "==", run_id)]) if run_id else pq.read_table(part)
        rows = table.to_pylist()
    except Exception as exc:
        raise ReplayError(f"{part}: unreadable part file: {type(exc).__name__}: {exc}") from exc
    if not rows or len({r["run_id"] for r in rows}) != 1:
        raise ReplayError(f"{part}: expected the rows of one run{f' ({run_id})' if run_id else ''}")
    return rows


def rebuild_spec(row: dict[str, Any], doc: dict[str, Any], target: str | None = None) -> Any:
    """The RunSpec of a stored row, verified against its run_id (ReplayError if it cannot be)."""
    from harness import axes as table
    from harness.grid import make_run_id, run_spec
    from harness.scenarios.base import ScenarioError, definition

    config = doc.get("config") or {}
    scenarios = config.get("scenarios") or {}
    sc = scenarios.get(row["scenario"]) or {}
    target = target or sc.get("_target_") or sc.get("target")
    if not target:
        raise ReplayError(f"scenario {row['scenario']!r}: its class is not in _sweep.yaml; "
                          "give target=pkg.module.Class")
    try:
        params = json.loads(row["params"] or "{}")
    except ValueError as exc:
        raise ReplayError(f"params: not JSON: {exc}") from exc
    point = {a.name: _typed(row.get(a.name), a.type) for a in table.AXES}  # every axis of the table (null: unset)
    steps = [point["steps"]]
    # the composed config, or asdict(SweepConfig)
    axes = config.get("sweep") or (config.get("axes") or {}).get("values") or {}
    sweep_steps = axes.get("steps") or []
    sweep_steps = sweep_steps if isinstance(sweep_steps, (list, tuple)) else [sweep_steps]
    steps += [s for s in sweep_steps if isinstance(s, int) and s not in steps]
    try:
        digest = definition(target, params)
    except ScenarioError as exc:
        raise ReplayError(f"scenario {row['scenario']!r}: {exc}") from exc
    for n in steps:  # a scenario that does not train stores steps=0; its spec had the sweep's steps
        spec = run_spec(row["sweep"], target, params, digest, {**point, "steps": n})
        if make_run_id(spec) == row["run_id"]:
            return replace(spec, run_id=row["run_id"])
    raise ReplayError(f"run_id={row['run_id']}: the stored row with target {target} does not hash to its run_id "
                      f"(the scenario's code or checks, or the engine version, changed since it was stored?); "
                      f"nothing was run")


def _typed(value: Any, kind: type) -> Any:
    """A stored axis value as the axis's type (a column with nulls reads whole numbers as floats); None for null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return kind(value)


def _threads(doc: dict[str, Any], opts: dict[str, str]) -> int:
    if "threads" in opts:
        return int(opts["threads"])
    cpus = ((doc.get("config") or {}).get("ray") or {}).get("num_cpus_per_actor", 1)
    try:
        return max(1, int(round(float(cpus))))
    except (TypeError, ValueError):
        return 1


def match_onednn(stored: bool | None) -> str | None:
    """Set TF_ENABLE_ONEDNN_OPTS for the stored run's oneDNN setting (unknown for part files of
    schema < 4: left alone) while TensorFlow is not imported yet; a note when that overrides this
    shell's value."""
    if stored is None or "tensorflow" in sys.modules:
        return None
    flag, before = ("1" if stored else "0"), os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = flag
    as_tf_reads = {"1": "1", "true": "1", "0": "0", "false": "0"}.get((before or "").strip().lower())
    if before is not None and as_tf_reads != flag:
        return (f"note: the run was stored with TensorFlow's oneDNN rewrite {'on' if stored else 'off'}: replaying "
                f"with TF_ENABLE_ONEDNN_OPTS={flag} instead of this shell's {before}")
    return None


def compare(rows: list[dict[str, Any]], result: Any) -> list[tuple[str, str, Any, Any, bool]]:
    """(check, field, stored, replayed, equal) for every stored check and field, plus the
    status and any check the replay declares that is not stored."""
    out: list[tuple[str, str, Any, Any, bool]] = []
    stored_status = rows[0]["status"]
    if stored_status != result.status.value:
        out.append(("", "status", stored_status, result.status.value, False))
    if result.error and stored_status == "ok":
        out.append(("", "error", rows[0]["error"], result.error, False))
    replayed = {c.check: c for c in result.checks}
    for row in rows:
        c = replayed.get(row["check"])
        for f in FIELDS:
            value = getattr(c, f) if c is not None else None
            out.append((row["check"], f, row[f], value, same(row[f], value)))
    for name in sorted(set(replayed) - {r["check"] for r in rows}):
        out.append((name, "declared", None, "new check", False))
    return out


def _fmt(v: Any) -> str:
    return "null" if v is None else repr(v)


def trace_base(directory: Path, out: str | None) -> Path:
    """The directory the traces go under: ``out``, or ``<directory>_traces``; never inside the
    results directory (its Parquet readers would read a trace as a part file). Not created."""
    base = directory if directory.name not in ("", "..") else directory.resolve()
    target = Path(out) if out else base.parent / f"{base.name}_traces"
    if target.resolve().is_relative_to(directory.resolve()):
        raise ReplayError(f"out={target}: inside the results directory {directory}; write the trace elsewhere")
    return target


def _mkdir(target: Path) -> Path:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReplayError(f"out={target}: cannot create it: {exc.strerror or exc}") from exc
    return target


def stored_runs(directory: Path) -> Any:
    """The directory's stored (run, check) rows, the columns a set of runs and the run labels
    are chosen by; only the runs its current definition plans (``_plan.json``) when it has one."""
    import warnings

    from harness.analysis.frame import AXES
    from harness.store import load_results, read_plan

    columns = ["run_id", "check", "status", "worst_margin", *AXES, "variant"]
    try:
        with warnings.catch_warnings():  # a damaged part file: its runs are not candidates (the commands that
            warnings.simplefilter("ignore")  # write say so); replay reads only the runs it is given
            df = load_results(directory, columns=columns)
    except Exception as exc:  # unreadable directory
        raise ReplayError(f"{directory}: cannot read its results: {type(exc).__name__}: {exc}") from exc
    plan = read_plan(directory)
    return df[df["run_id"].isin(plan)] if plan is not None and df["run_id"].isin(plan).any() else df


def worst_of_cells(df: Any, check: str | None = None) -> Any:
    """The worst run of each cell of a results frame: per scenario, check and configuration
    (every axis that varies but the seed, see analysis.frame.factor_axes), the completed run
    with the lowest worst_margin (NaN/Inf, -inf, first; a run that evaluated nothing, NaN,
    last; then the lowest seed). One row per cell: the cell's keys, run_id, seed, worst_margin."""
    from harness.analysis.frame import factor_axes, ok_mask, with_variant

    import pandas as pd

    df = with_variant(df[ok_mask(df) & df["check"].fillna("").ne("")])
    if check is not None:
        df = df[df["check"] == check]
    out = []
    for _, runs in df.groupby("scenario", sort=True):  # each scenario's own axes (another's null batch size is none)
        keys = ["scenario", "check", *[a for a in factor_axes(runs) if a != "scenario"]]
        ordered = runs.sort_values(["worst_margin", "seed", "run_id"], na_position="last", kind="stable")
        cells = ordered.drop_duplicates(keys).sort_values(keys, na_position="last", kind="stable")
        out.append(cells[[*keys, "run_id", "seed", "worst_margin"]])
    columns = list(dict.fromkeys(c for frame in out for c in frame.columns))
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=["scenario", "check", "run_id"])


def _choose(directory: Path, opts: dict[str, str], runs: Any,
            where: dict[str, Path]) -> tuple[list[str], str | None]:
    """The run ids (given or prefixes, each resolved) to replay, and a line saying how they were chosen."""
    if "worst" not in opts:
        ids = [getattr(find_part(directory, r, where), "run_id") for r in opts["run_id"].split(",")]
        return list(dict.fromkeys(ids)), None
    if runs is None or runs.empty:
        raise ReplayError(f"worst=cell: no stored runs in {directory}")
    check = opts.get("check")
    names = sorted(set(runs["check"].dropna()) - {""})
    if check is not None and check not in names:
        import difflib

        close = difflib.get_close_matches(check, names, n=1)
        hint = f"did you mean {close[0]}?" if close else f"checks: {', '.join(names[:10])}" + \
            (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise ReplayError(f"check={check}: no such check in {directory} ({hint})")
    cells = worst_of_cells(runs, check)
    if cells.empty:
        raise ReplayError(f"worst=cell: no completed runs in {directory}{f' with check {check}' if check else ''}")
    ids = list(dict.fromkeys(cells["run_id"]))
    keys = [c for c in cells.columns if c not in ("run_id", "seed", "worst_margin")]
    return ids, (f"worst=cell: {len(ids)} run(s), the worst (lowest worst_margin) of each of {len(cells)} cell(s) "
                 f"({', '.join(keys)}; seeds pooled)")


def _plan(directory: Path, opts: dict[str, str]) -> tuple[list[Any], Any, str | None, str | None, dict[str, Any]]:
    """Every run found, read and rebuilt before any is replayed: [(rows, spec)]; the stored runs
    (for worst= and the run labels; None when neither needs them); the line saying how the runs
    were chosen; the oneDNN note; the sweep's _sweep.yaml."""
    from harness.store import read_sweep_doc

    where = _run_files(directory)  # a bad path or an empty directory says so first
    runs = stored_runs(directory) if "worst" in opts else None
    ids, chose = _choose(directory, opts, runs, where)
    rows = [read_rows(find_part(directory, r, where)) for r in ids]
    if opts.get("trace") and runs is None:
        runs = stored_runs(directory)
    note = match_onednn(rows[0][0].get("onednn"))  # before rebuild_spec: it imports the scenario's module, which
    doc = read_sweep_doc(directory)  # may import TF
    from harness.scenarios.base import counting_interrupts

    with counting_interrupts():  # a KeyboardInterrupt the scenario's code raises is bad data, Ctrl-C is not
        specs = [rebuild_spec(r[0], doc, opts.get("target")) for r in rows]
    return list(zip(rows, specs)), runs, chose, note, doc


def _labels(runs: Any, planned: list[Any]) -> dict[str, str]:
    """Each planned run's TensorBoard run label (trace.run_label), naming the axes the stored runs
    of its scenario vary."""
    import pandas as pd

    from harness.analysis.frame import factor_axes, with_variant
    from harness.trace import run_label

    per_run = with_variant(runs.drop_duplicates("run_id")) if runs is not None and len(runs) else None
    varying = {} if per_run is None else {s: factor_axes(g) for s, g in per_run.groupby("scenario", sort=False)}
    own = with_variant(pd.DataFrame([rows[0] for rows, _ in planned]))  # the runs' own stored rows
    return {spec.run_id: run_label(r, varying.get(r["scenario"], ()))
            for (_, spec), r in zip(planned, own.to_dict("records"))}


def _tensorboard_hint(root: Path) -> str:
    import importlib.util
    import shlex

    line = f"curves: tensorboard --logdir {shlex.quote(str(root))}"
    if importlib.util.find_spec("tensorboard") is None:
        line += "   (TensorBoard is not installed here: pip install tensorboard)"
    return line


def replay(directory: Path, opts: dict[str, str]) -> int:
    from rich.console import Console

    planned, runs, chose, note, doc = _plan(directory, opts)
    threads = _threads(doc, opts)
    single = len(planned) == 1 and "worst" not in opts
    outs: dict[str, Path] = {}
    labels: dict[str, str] = {}
    root = None
    if opts.get("trace"):
        base = trace_base(directory, opts.get("out"))
        outs = {spec.run_id: (base if single and opts.get("out") else base / spec.run_id) for _, spec in planned}
        labels = _labels(runs, planned)
        root = base / TENSORBOARD
        for d in outs.values():
            _mkdir(d)
    console = Console()
    if not console.is_terminal:  # keep the values whole in logs and pipes
        console = Console(width=max(console.width, 110))
    if chose:
        console.print(chose, highlight=False, soft_wrap=True)
    if note:
        console.print(note, style="yellow", highlight=False)
    from harness.engine import init_worker
    from harness.engine.runtime import startup_notices_dropped

    with startup_notices_dropped():  # TensorFlow's import notices (the header says what runs where)
        init_worker(threads)
    differ = 0
    for rows, spec in planned:
        events = root / labels[spec.run_id] if root is not None else None
        differ += not _replay_one(console, rows, spec, threads, outs.get(spec.run_id), events, full=single)
    if not single:
        console.print(f"{len(planned)} run(s) replayed: {len(planned) - differ} match, {differ} differ",
                      style="red bold" if differ else "green bold", highlight=False)
    if root is not None:
        console.print(_tensorboard_hint(root), highlight=False, soft_wrap=True)
    return EXIT_MISMATCH if differ else EXIT_MATCH


def _replay_one(console: Any, rows: list[dict[str, Any]], spec: Any, threads: int, out: Path | None,
                events: Path | None, *, full: bool) -> bool:
    """Replay one run, print the comparison (``full``: every value; else the differing ones) and
    write its trace; True if every value matches."""
    from rich.table import Table

    from harness.engine import execute
    from harness.engine.runtime import onednn_enabled

    stored_onednn = rows[0].get("onednn")
    console.print(f"replay {spec.run_id}: {spec.scenario} ({spec.target}) data_size={spec.data_size} "
                  f"batch_size={spec.batch_size} steps={spec.steps} seed={spec.seed} precision={spec.precision} "
                  f"clip_value={spec.clip_value}; stored by {rows[0]['worker']}; here with {threads} thread(s)",
                  highlight=False)
    if rows[0]["status"] in ("crashed", "timeout"):
        console.print(f"note: this run was stored as {rows[0]['status']}; replaying it in-process may crash or "
                      "hang this process", style="yellow", highlight=False)
    here = onednn_enabled()
    if stored_onednn is not None and here is not None and here != stored_onednn:
        console.print(f"note: the run was stored with TensorFlow's oneDNN rewrite {'on' if stored_onednn else 'off'}, "
                      f"this process has it {'on' if here else 'off'} (TensorFlow was imported before the replay, or "
                      "cannot use oneDNN here): its kernels can give other values", style="yellow", highlight=False)
    t0 = time.perf_counter()
    traced: list[Any] = []  # (series, checks), when --trace
    result = execute(spec, on_series=(lambda *a: traced.append(a)) if out is not None else None)
    diffs = compare(rows, result)
    bad = [d for d in diffs if not d[4]]
    if full or bad:
        table = Table(title=f"stored vs replayed ({time.perf_counter() - t0:.1f}s)")
        for col in ("check", "value", "stored", "replayed", ""):
            table.add_column(col, justify="right" if col in ("stored", "replayed") else "left")
        for check, field, a, b, ok in (diffs if full else bad):
            table.add_row(check, field, _fmt(a), _fmt(b), "[green]=[/]" if ok else "[red bold]DIFFERS[/]")
        console.print(table)
    written = _write_trace(out, spec, result, traced, verified=not bad, events=events) if out is not None else []
    if bad:
        console.print(f"[red bold]mismatch[/]: {len(bad)} of {len(diffs)} values differ "
                      f"({', '.join(sorted({f'{c}.{f}' if c else f for c, f, *_ in bad}))})", highlight=False)
    else:
        console.print(f"[green bold]match[/]: all {len(diffs)} values of {len(rows)} check(s) are identical",
                      highlight=False)
    if not full and len(written) > 1:  # one of a set: the trace's directory, and its event file
        from harness.trace import FILES

        written = [f"{written[0]} {out}{os.sep}", *written[len(FILES) + 1:]]
    for line in written:
        console.print(line, highlight=False, soft_wrap=True, style="yellow" if line.startswith("no trace") else None)
    return not bad


def _write_trace(out: Path, spec: Any, result: Any, traced: list[Any], *, verified: bool,
                 events: Path | None = None) -> list[str]:
    """Write the --trace files (and, with ``events``, the TensorBoard event file into that run
    directory); the lines to print (a heading, then one path a line)."""
    from harness.trace import clear_stale_runs, write_trace

    if not traced or result.status.value != "ok":
        return [f"no trace written: the replay ended with status {result.status.value}"
                + (f" ({result.error})" if result.error else "")]
    series, checks = traced[0]
    try:
        if events is not None:
            clear_stale_runs(events.parent, events.name)
        paths = write_trace(out, spec, result, series, checks, verified=verified, events=events)
    except OSError as exc:
        raise ReplayError(f"out={out}: cannot write the trace: {exc.strerror or exc}") from exc
    n = len(series.numerics)
    n_final = sum(c.when == "final" for c in checks)
    what = (f"{n} steps, {len(checks) - n_final} step check(s), {n_final} final check(s)" if n else
            f"0 steps: no per-step values, the final value of {n_final} check(s)")
    return [f"trace ({what})" + ("" if verified else "; of this replay, which DIFFERS from the stored run") + ":",
            *map(str, paths)]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(USAGE + (__doc__ or "").split("\n\n", 1)[1], end="")
        return EXIT_MATCH if argv else EXIT_BAD
    try:
        directory, opts = _args(argv)
        return replay(directory, opts)
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD

