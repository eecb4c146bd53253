"""One sweep end to end: grid -> skip stored runs -> dispatch on Ray -> batched part files.

Used by the CLI and usable from Python: ``run_sweep(sweep_config_from_dict(...))``.
"""

from __future__ import annotations

import json
import platform
import shlex
import time
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from harness import __version__
from harness.analysis.frame import failed_mask, nonfinite_mask
from harness.config import SweepConfig
from harness.dispatch import ClusterInfo, dispatch
from harness.grid import RunSpec, expand
from harness.plan import Outcome, Planner, StopReason, cell_key
from harness.progress import SweepProgress
from harness.summary import print_bounds, print_summary
from harness.records import RunResult, Status, result_rows, sweep_schema
from harness.raysession import wait_stopped
from harness.scheduler import RunQueue
from harness.scenarios.base import load_class, sweep_extra_columns
from harness.store import (PartBuffer, StoreError, check_writable, compact, load_results, make_sweep_dir, part_files,
                           remove_if_empty, remove_stale_temporaries, stored_run_ids, sweep_dir, write_plan,
                           write_text)


@dataclass(frozen=True)
class SweepOutcome:
    path: str
    total: int
    skipped: int
    completed: int  # runs of this invocation with status ok
    incomplete: int  # runs of this invocation that errored, crashed or timed out
    stored_incomplete: int = 0  # runs of the sweep, as stored now, that errored, crashed or timed out
    missing: int = 0  # runs of the sweep's plan whose rows cannot be loaded now (a part file damaged meanwhile)


def preflight(cfg: SweepConfig) -> list[RunSpec]:
    """Everything that can be checked before Ray starts: the grid, the scenario classes, the
    results directory (created here, so a root where it cannot be made fails now; run_sweep
    removes it again if the sweep ends having written nothing). Raises on the first problem."""
    specs = expand(cfg)  # constructs every distinct (scenario, params) and reads its checks, no TF
    sweep_extra_columns(specs)  # the columns the scenarios declare agree (ScenarioError otherwise)
    check_writable(sweep_dir(cfg.results_root, cfg.name))
    make_sweep_dir(sweep_dir(cfg.results_root, cfg.name))
    return specs


def trial_specs(specs: list[RunSpec]) -> list[RunSpec]:
    """For each scenario not built into the harness, a 2-step run of its smallest configuration:
    it runs before the sweep so that a broken plugin stops the sweep with one clear error."""
    smallest: dict[str, RunSpec] = {}
    for s in specs:
        if s.target.startswith("harness."):
            continue
        if s.target not in smallest or s.data_size < smallest[s.target].data_size:
            smallest[s.target] = s
    return [replace(s, steps=min(s.steps, 2), run_id=f"trial-{s.run_id}") for s in smallest.values()]


def float32_fixes(specs: list[RunSpec]) -> dict[str, dict[str, Any]]:
    """Each scenario's ``float32_params`` (the parameters that compute it in float32), loading each
    class once; scenarios without them are left out."""
    targets = {s.scenario: s.target for s in specs}
    fixes = {name: dict(getattr(load_class(target), "float32_params", {}) or {}) for name, target in targets.items()}
    return {k: v for k, v in fixes.items() if v}


def _installed(*names: str) -> dict[str, str]:
    """The driver's installed versions of ``names`` (package metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def scenario_definitions(specs: list[RunSpec]) -> dict[str, list[str]]:
    """Per scenario, the digests of its definition (declared checks and code) its runs carry."""
    out: dict[str, set[str]] = {}
    for s in specs:
        out.setdefault(s.scenario, set()).add(s.definition)
    return {k: sorted(v) for k, v in out.items()}


def _sweep_yaml(cfg: SweepConfig, resolved: dict[str, Any] | None, total: int, command: list[str] | None,
                fixes: dict[str, dict[str, Any]] | None = None, definitions: dict[str, list[str]] | None = None) -> str:
    import shlex

    import pyarrow

    doc = {
        "sweep": cfg.name,
        "command": None if command is None else shlex.join(["python", "-m", "harness", *command]),
        "runs": total,
        "float32_params": fixes or {},  # the report names them where fp16 overflows (harness.summary.overflow_hints)
        "config": resolved if resolved is not None else asdict(cfg),
        "versions": {"harness": __version__, "python": platform.python_version(), "pyarrow": pyarrow.__version__,
                     **_installed("tensorflow", "keras", "ray")},
        "definitions": definitions or {},  # each scenario's code digests (harness compare names a change)
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def _starting_line(ray: Any) -> str:
    """What the seconds before the first run are spent on: joining a warm pool that fits this sweep,
    connecting to the cluster it names, or starting a local Ray whose actors each import TensorFlow.
    (A pool busy with another sweep is only known once its lock is tried: the next line then says
    it runs cold.)"""
    from harness import pool as warm_pool

    if ray.address is not None:
        return f"connecting to Ray at {ray.address} and starting the actors (each imports TensorFlow) ..."
    if warm_pool.usable(ray)[0] is not None:
        return "joining the warm pool ..."
    return "starting Ray and the actors (each imports TensorFlow) ..."


def outcome_of(result: RunResult) -> Outcome:
    """What the adaptive stopping rule needs of a finished run."""
    return Outcome(result.status is Status.OK,
                   {c.check: (not c.passed, c.n_nonfinite > 0) for c in result.checks})


def stored_outcomes(directory: Path, run_ids: set[str]) -> dict[str, Outcome]:
    """Outcomes of the runs of ``run_ids`` already stored under ``directory``."""
    if not run_ids or not directory.is_dir():
        return {}
    df = load_results(directory, quarantine=True)
    df = df[df["run_id"].isin(run_ids)]
    df = df.assign(_failed=failed_mask(df).to_numpy(), _nonfinite=nonfinite_mask(df).to_numpy())
    out: dict[str, Outcome] = {}
    for run_id, rows in df.groupby("run_id", sort=False):
        ok = bool((rows["status"] == "ok").all())
        checks = dict(zip(rows["check"], zip(rows["_failed"], rows["_nonfinite"]))) if ok else {}
        out[str(run_id)] = Outcome(ok, checks)
    return out


def _compact_if_many(directory: Path, limit: int | None, console: Console) -> None:
    """Compact the sweep's part files when there are more than ``limit``; a failure only leaves
    them as they are (every run is stored either way)."""
    if limit is None or len(part_files(directory)) <= limit:
        return
    import warnings

    try:
        with warnings.catch_warnings():  # the load that follows names any part file it cannot use
            warnings.simplefilter("ignore")
            c = compact(directory)
    except StoreError as exc:
        console.print(f"note: part files not compacted ({exc}); every run is stored", style="yellow",
                      highlight=False)
        return
    if c.replaced:
        console.print(f"compacted {c.replaced} part files into {c.written}", highlight=False)
    if c.quarantined:
        console.print(f"note: {c.quarantined} unreadable part file(s) moved to {directory / '_quarantine'}; "
                      "a rerun recomputes their runs", style="yellow", highlight=False)


def _cells_json(planner: Planner) -> str:
    return json.dumps({"rule": asdict(planner.rule), "cells": planner.summary()}, indent=1, default=str)


def run_sweep(cfg: SweepConfig, *, resolved: dict[str, Any] | None = None, console: Console | None = None,
              specs: list[RunSpec] | None = None, command: list[str] | None = None) -> SweepOutcome:
    """Run every run of ``cfg`` not already stored; write them as they finish (batched: see
    harness.store.PartBuffer), and compact the part files at the end if there are many. With adaptive
    seeds (cfg.adaptive), each cell's next round is planned as its runs finish
    (harness.plan) and the cells' rounds and stop reasons go to ``_cells.json``."""
    if console is None:  # a log or a pipe: do not squeeze the tables into 80 columns
        console = Console()
        console = console if console.is_terminal else Console(width=140)
    specs = specs if specs is not None else preflight(cfg)
    directory = sweep_dir(cfg.results_root, cfg.name)
    try:
        return _run(cfg, specs, directory, resolved, console, command)
    finally:  # a sweep that wrote nothing (Ray unavailable, disk full at start, ...) leaves nothing
        remove_if_empty(directory)
        wait_stopped()  # Ray shuts down while the summary is made; the sweep returns with it stopped


def _run(cfg: SweepConfig, specs: list[RunSpec], directory: Path, resolved: dict[str, Any] | None,
         console: Console, command: list[str] | None) -> SweepOutcome:
    remove_stale_temporaries(directory)
    fixes = float32_fixes(specs)
    # a run counts as stored only if its rows load; a damaged part file is moved aside (named in one line)
    done = set() if cfg.rerun == "all" else stored_run_ids(directory, complete_only=cfg.rerun == "incomplete",
                                                           quarantine=True)
    planner = Planner(specs, cfg.adaptive, cfg.axes.seed) if cfg.adaptive.adaptive else None
    if planner is not None:
        todo = planner.start(stored_outcomes(directory, done))
        specs = planner.specs()
    else:
        todo = [s for s in specs if s.run_id not in done]
    skipped = len(specs) - len(todo)
    t0 = time.monotonic()
    # adaptive: the runs planned so far; later rounds add seeds where a cell needs them, up to max_seeds a cell
    more = (f" (adaptive: {cfg.adaptive.rule}: more rounds where a cell needs them, up to "
            f"{cfg.adaptive.max_seeds} seeds a cell, at most {len(planner.cells) * cfg.adaptive.max_seeds:,} runs)"
            if planner else "")
    console.print(f"sweep [bold]{cfg.name}[/]: {len(specs)} runs{' planned so far' if planner else ''}, "
                  f"{skipped} already stored, {len(todo)} to run"
                  f"{more} -> {directory}", highlight=False)
    completed = incomplete = 0
    if not todo:
        write_text(directory / "_sweep.yaml", _sweep_yaml(cfg, resolved, len(specs), command, fixes,
                                                          scenario_definitions(specs)))
        write_plan(directory, (s.run_id for s in specs))
    else:
        plan_written = [0.0]  # when the plan was last written (adaptive rounds extend it)

        def ready(info: ClusterInfo) -> None:
            # written once Ray is up: a sweep that cannot start or join Ray writes nothing
            write_text(directory / "_sweep.yaml", _sweep_yaml(cfg, resolved, len(specs), command, fixes,
                                                          scenario_definitions(specs)))
            write_plan(directory, (s.run_id for s in (planner.specs() if planner is not None else specs)))
            plan_written[0] = time.monotonic()
            where = ("warm pool" if info.warm else "embedded local Ray" if info.embedded
                     else f"Ray at {info.address}")
            if info.note:
                console.print(info.note, highlight=False)
            console.print(f"{where}: {info.cpus:g} CPU, {info.gpus:g} GPU, {info.num_actors} "
                          f"actor{'s' if info.num_actors != 1 else ''}", highlight=False)
            progress.started()

        schema = sweep_schema(sweep_extra_columns(specs))  # every part file has every column of the sweep
        if not console.is_terminal:  # a log has no bar saying "starting": say what the next seconds are
            console.print(_starting_line(cfg.ray), highlight=False)
        queue = RunQueue(todo)
        runs = dispatch(queue, cfg.ray, timeout_s=cfg.timeout_s, retries=cfg.retries, on_ready=ready,
                        trials=trial_specs(todo))
        # leaving the block (the end, Ctrl-C, SIGTERM, an error) writes the buffered runs first, then shuts Ray down
        try:
            with SweepProgress(console, total=len(todo), skipped=skipped) as progress, closing(runs), \
                    PartBuffer(directory, cfg.store.flush_runs, cfg.store.flush_seconds, schema) as parts:
                for spec, result in runs:  # closing: an error here (e.g. disk full) still shuts Ray down
                    parts.add(spec.run_id, result_rows(spec, result, __version__))
                    if planner is not None:
                        nxt = planner.finished(spec, outcome_of(result))
                        queue.extend(nxt)
                        progress.grow(len(nxt))
                        if nxt and time.monotonic() - plan_written[0] > 5:  # at most every 5 s; and at the end
                            write_plan(directory, (s.run_id for s in planner.specs()))
                            plan_written[0] = time.monotonic()
                        if nxt or planner.cells[cell_key(spec)].reason is not StopReason.RUNNING:
                            write_text(directory / "_cells.json", _cells_json(planner))
                    progress.finished(spec, result)
                    completed += result.status is Status.OK
                    incomplete += result.status is not Status.OK
        finally:  # the rounds planned, also when interrupted: their stored runs are of this definition
            if planner is not None and plan_written[0]:  # (only once Ray was up: else nothing is written)
                try:
                    write_plan(directory, (s.run_id for s in planner.specs()))
                except StoreError:
                    pass  # the error that stops the sweep is the one to report
    if planner is not None:
        write_text(directory / "_cells.json", _cells_json(planner))
        specs = planner.specs()
        write_plan(directory, (s.run_id for s in specs))
    _compact_if_many(directory, cfg.store.compact_files, console)
    df = load_results(directory, quarantine=True)
    planned = {s.run_id for s in specs}
    other = df.loc[~df["run_id"].isin(planned), "run_id"].nunique()
    df = df[df["run_id"].isin(planned)]
    if other:  # runs an earlier definition of the sweep left (edited checks or code, another grid)
        console.print(f"left out {other:,} stored run(s) of other definitions of this sweep (an edited check or "
                      f"scenario, another grid); python -m harness report {shlex.quote(str(directory))} --all-runs "
                      "includes them",
                      highlight=False)
    print_summary(console, df, str(directory), time.monotonic() - t0, completed + incomplete, skipped, fixes)
    if cfg.adaptive.rule == "bound":  # the question the sweep ran for, answered where the user looks
        print_bounds(console, df, cfg.adaptive.target, cfg.adaptive.confidence)
    missing = len(planned) - int(df["run_id"].nunique())
    if missing:  # never an exit 0 over runs that are not stored
        console.print(f"[bold red]{missing} of the sweep's {len(planned)} runs are not stored[/] (a part file could "
                      "not be loaded: see the warnings above); rerun the same command to compute them",
                      highlight=False)
    stored_incomplete = int(df.loc[df["status"] != "ok", "run_id"].nunique())
    return SweepOutcome(str(directory), len(specs), skipped, completed, incomplete, stored_incomplete, missing)

