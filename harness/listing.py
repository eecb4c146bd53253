"""What there is to run: ``python -m harness list`` (sweeps, scenarios, their parameters and
checks) and ``python -m harness sweep=NAME --dry-run`` (how many runs, over which grid).
Neither starts Ray or imports TensorFlow, and neither writes anything."""

from __future__ import annotations

import contextlib
import importlib.resources
import inspect
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from harness import axes
from harness.config import SweepConfig
from harness.grid import RunSpec


def config_files(group: str, config_dir: str | None = None) -> dict[str, Any]:
    """The YAML files of a config group (sweep, scenario, adaptive, ...), by name: the shipped
    ones, then those of ``config_dir/group`` (which win on a name clash)."""
    files: dict[str, Any] = {p.name[:-5]: p for p in (importlib.resources.files("harness.conf") / group).iterdir()
                             if p.name.endswith(".yaml")}
    if config_dir and (Path(config_dir) / group).is_dir():
        files.update({p.stem: p for p in (Path(config_dir) / group).glob("*.yaml")})
    return dict(sorted(files.items()))


def shipped_files() -> dict[str, Any]:
    """The shipped config files (harness/conf), by path relative to the config root."""
    root = importlib.resources.files("harness.conf")
    out: dict[str, Any] = {}
    todo = [("", root)]
    while todo:
        prefix, node = todo.pop()
        for child in node.iterdir():
            if child.is_dir() and not child.name.startswith(("_", ".")):
                todo.append((f"{prefix}{child.name}/", child))
            elif child.name.endswith(".yaml"):
                out[f"{prefix}{child.name}"] = child
    return out


def shadowed(config_dir: str) -> list[tuple[str, Path]]:
    """(shipped relative path, the user's file) for each file of ``config_dir`` that takes the place
    of a shipped one of the same group and name."""
    user = Path(config_dir)
    return [(rel, user / rel) for rel in sorted(shipped_files()) if (user / rel).is_file()]


@contextlib.contextmanager
def overlay(config_dir: str) -> Iterator[Path]:
    """A temporary config root: the shipped files, then the YAML files of ``config_dir`` laid over
    them (the user's file wins on a name clash), for Hydra to compose from."""
    import shutil
    import tempfile

    user = Path(config_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="harness-conf-") as tmp:
        root = Path(tmp)
        for rel, src in shipped_files().items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(src.read_bytes())
        for src in sorted(user.rglob("*.yaml")) if user.is_dir() else []:
            rel = src.relative_to(user)
            if any(part.startswith((".", "_")) for part in rel.parts[:-1]):
                continue
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, root / rel)
        yield root


def _users(path: Any, config_dir: str | None) -> bool:
    """Is ``path`` a file of the user's ``config_dir`` (not a shipped one)?"""
    return bool(config_dir) and Path(str(path)).resolve().is_relative_to(Path(str(config_dir)).resolve())


def _source(path: Any, rel: str, shipped: dict[str, Any], config_dir: str | None) -> str:
    """Where a listed config comes from: built-in, the user's file, or the user's file in place of a built-in."""
    if not _users(path, config_dir):
        return "built-in"
    return f"{path}, in place of the built-in" if rel in shipped else str(path)


def _first_comment(text: str) -> str:
    """The first sentence of the file's leading comment block (which may wrap over several lines)."""
    lines = []
    for ln in text.splitlines():
        if not ln.startswith("#"):
            if lines:
                break
            continue
        if "@package" not in ln:
            lines.append(ln.lstrip("# ").strip())
    block = " ".join(x for x in lines if x)
    end = next((i + 1 for i, ch in enumerate(block) if ch == "." and (i + 1 == len(block) or block[i + 1] == " ")),
               len(block))
    return block[:end]


def _describe_scenario(body: dict[str, Any]) -> list[str]:
    from harness.scenarios.base import declared_checks, instantiate, load_class

    target = body.get("_target_", "?")
    params = {k: v for k, v in body.items() if not k.startswith("_")}
    lines = [f"    class: {target}"]
    try:
        cls = load_class(target)
        sig = inspect.signature(cls.__init__)
        names = [n for n in sig.parameters if n != "self" and sig.parameters[n].kind.name != "VAR_KEYWORD"]
        lines.append("    parameters: " + (", ".join(f"{n}={params.get(n, sig.parameters[n].default)!r}"
                                                    for n in names) or "none"))
        for c in declared_checks(instantiate(target, params)):
            sched = f", every {c.every} after {c.after}" if c.every > 1 or c.after else ""
            lines.append(f"    check {c.name}: value {c.op} {c.bound:g} ({c.when}, {c.compare}{sched})")
    except Exception as exc:  # a broken scenario is listed with its error, not a traceback
        lines.append(f"    cannot load: {type(exc).__name__}: {exc}")
    return lines


def main(argv: list[str]) -> int:
    config_dir = None
    if argv[:1] in (["--config-dir"], ["-cd"]) and len(argv) > 1:
        config_dir, argv = argv[1], argv[2:]
    if argv:
        print(f"error: {argv[0]}: unknown argument (usage: python -m harness list [--config-dir DIR])",
              file=sys.stderr)
        return 2
    shipped = shipped_files()
    print("sweeps (python -m harness sweep=NAME):")
    sweeps = config_files("sweep", config_dir)
    for name, path in sweeps.items():
        print(f"  {name:<18} {_first_comment(path.read_text())}  [{_source(path, f'sweep/{name}.yaml', shipped, config_dir)}]")
    print("\nscenarios (sweep.scenario=[NAME,...]; parameters: scenarios.NAME.PARAM=VALUE):")
    from harness.scenarios.base import counting_interrupts

    with counting_interrupts():  # a scenario that raises SystemExit/KeyboardInterrupt is listed as broken
        for name, path in config_files("scenario", config_dir).items():
            text = path.read_text()
            print(f"  {name}: {_first_comment(text)}  [{_source(path, f'scenario/{name}.yaml', shipped, config_dir)}]")
            print("\n".join(_describe_scenario(yaml.safe_load(text) or {})))
        for sweep, path in sweeps.items():  # scenarios a sweep file defines itself (scenarios: {NAME: {...}})
            if not _users(path, config_dir):
                continue  # the shipped sweeps define none
            doc = yaml.safe_load(path.read_text()) or {}
            inline = doc.get("scenarios") if isinstance(doc, dict) else None
            for name, body in (inline or {}).items() if isinstance(inline, dict) else ():
                if isinstance(body, dict) and "_target_" in body:
                    print(f"  {name}: defined in sweep {sweep}  [{path}]")
                    print("\n".join(_describe_scenario(body)))
    print("\nadaptive seeds (adaptive=NAME): " + ", ".join(config_files("adaptive", config_dir)))
    return 0


def print_plan(cfg: SweepConfig, specs: list[RunSpec]) -> None:
    """The runs a command would start: their number and the grid, per scenario."""
    cells = {(s.variant, *(s.axis(a) for a in axes.NAMES if a != "seed")) for s in specs}
    seeds = len(cfg.axes.seed)
    more = ""
    if cfg.adaptive.adaptive:
        more = (f"; adaptive={cfg.adaptive.rule}: each cell starts with {seeds} seeds and may grow to "
                f"{cfg.adaptive.max_seeds} ({len(cells) * cfg.adaptive.max_seeds:,} runs at most)")
    print(f"sweep {cfg.name}: {len(specs):,} runs = {len(cells):,} configuration{'s' if len(cells) != 1 else ''} x {seeds} seed{'s' if seeds != 1 else ''}{more}")
    for scenario, n in Counter(s.scenario for s in specs).items():
        mine = [s for s in specs if s.scenario == scenario]

        def values(attr: str) -> str:
            vs = sorted({s.axis(attr) for s in mine}, key=lambda v: (v is None, str(v) if v is None else v))
            return ", ".join("none" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in vs)

        variants = sorted({s.variant for s in mine if s.variant})
        # the axes in the grid's order (epochs resolved into steps; a later axis where the sweep sets it)
        shown = [a.name for a in axes.AXES if a.name not in ("scenario", "seed", "epochs")
                 and (a.hashed_unset or any(s.axis(a.name) is not None for s in mine))]
        print(f"  {scenario}: {n:,} runs; " + "; ".join(f"{a} {values(a)}" for a in shown)
              + (f"; variants {'; '.join(variants)}" if variants else ""))
    directory = Path(cfg.results_root) / cfg.name
    for line in cost_lines(cfg, specs, directory):
        print(line)
    print(f"results would go to {directory}/ (nothing was run or written)")


LONG_RUN_STEPS = 10_000  # runs of more steps are counted out loud by -n


def cost_lines(cfg: SweepConfig, specs: list[RunSpec], directory: Path) -> list[str]:
    """What ``-n`` says about the cost: how many runs are stored already, the longest runs, and an
    estimate of the time the rest take from stored runs of the same configuration (their wall time
    per step), on the actors this machine fits."""
    import math
    import os
    import warnings

    import numpy as np

    from harness.store import load_results, part_files

    stored = None
    if part_files(directory):
        with warnings.catch_warnings():  # -n changes nothing and only counts: a damaged file is a resume's
            warnings.simplefilter("ignore")
            stored = load_results(directory, columns=["run_id", "scenario", "params", "precision", "clip_value",
                                                      "batch_size", "steps", "data_size", "wall_s", "status"])
    done = set() if stored is None or cfg.rerun == "all" else set(stored["run_id"]) & {s.run_id for s in specs}
    if cfg.rerun == "incomplete" and stored is not None:  # runs stored as error, crashed or timeout run again
        done -= set(stored.loc[stored["status"] != "ok", "run_id"])
    todo = [s for s in specs if s.run_id not in done]
    rerun = {"all": " (sweep.rerun=all: every run again)", "incomplete": " (sweep.rerun=incomplete: those that "
             "did not complete again)"}.get(cfg.rerun, "")
    out = [f"{len(done):,} of the {len(specs):,} runs are stored already, {len(todo):,} to run{rerun}"]
    long = [s for s in todo if s.steps > LONG_RUN_STEPS]
    if long:
        out.append(f"{len(long):,} of them train more than {LONG_RUN_STEPS:,} steps (the longest "
                   f"{max(s.steps for s in long):,}; {sum(s.steps for s in todo):,} steps in all)")
    if not todo or stored is None:
        return out + ([] if not todo else ["no stored run to estimate the time from: run a few seeds first "
                                           "(e.g. sweep.seed=[0]) and -n estimates the rest"])
    ok = stored[stored["status"] == "ok"].drop_duplicates("run_id")
    # the time of a training run goes with its steps; of one that does not train, with its rows
    ok = ok.assign(rows=np.where(ok["steps"].fillna(0) > 0, 0, ok["data_size"]))
    per_step: dict[tuple, float] = {}
    for key, g in ok.groupby(["scenario", "params", "precision", "clip_value", "batch_size", "rows"], dropna=False):
        per_step[tuple(None if isinstance(v, float) and math.isnan(v) else v for v in key)] = \
            float(np.median(g["wall_s"] / np.maximum(g["steps"].fillna(0), 1)))
    import json

    known, unknown = 0.0, 0
    for s in todo:
        key = (s.scenario, json.dumps(dict(s.params), sort_keys=True), s.precision, s.clip_value, s.batch_size,
               0 if s.steps > 0 else s.data_size)
        rate = per_step.get(key)
        if rate is None:
            unknown += 1
        else:
            known += rate * max(s.steps, 1)
    actors = max(1, int((os.cpu_count() or 1) // max(cfg.ray.num_cpus_per_actor, 1e-9)))
    if cfg.ray.num_actors:
        actors = min(actors, cfg.ray.num_actors)
    if known:
        out.append(f"about {_duration(known / actors)} of runs on {actors} actor(s) for the {len(todo) - unknown:,} "
                   f"runs whose configuration has stored runs (their wall time per step), Ray's start aside"
                   + (f"; {unknown:,} runs have none to estimate from" if unknown else ""))
    else:
        out.append(f"none of the {len(todo):,} runs to do has a stored run of its configuration to estimate the "
                   "time from")
    return out


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
