"""What there is to run: ``python -m harness list`` (sweeps, scenarios, their parameters and
checks) and ``python -m harness sweep=NAME --dry-run`` (how many runs, over which grid).
Neither starts Ray or imports TensorFlow, and neither writes anything."""

from __future__ import annotations

import importlib.resources
import inspect
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

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
    if argv[:1] == ["--config-dir"] and len(argv) > 1:
        config_dir, argv = argv[1], argv[2:]
    if argv:
        print(f"error: {argv[0]}: unknown argument (usage: python -m harness list [--config-dir DIR])",
              file=sys.stderr)
        return 2
    print("sweeps (python -m harness sweep=NAME):")
    for name, path in config_files("sweep", config_dir).items():
        print(f"  {name:<18} {_first_comment(path.read_text())}")
    print("\nscenarios (sweep.scenario=[NAME,...]; parameters: scenarios.NAME.PARAM=VALUE):")
    from harness.scenarios.base import counting_interrupts

    with counting_interrupts():  # a scenario that raises SystemExit/KeyboardInterrupt is listed as broken
        for name, path in config_files("scenario", config_dir).items():
            text = path.read_text()
            print(f"  {name}: {_first_comment(text)}")
            print("\n".join(_describe_scenario(yaml.safe_load(text) or {})))
    print("\nadaptive seeds (adaptive=NAME): " + ", ".join(config_files("adaptive", config_dir)))
    return 0


def print_plan(cfg: SweepConfig, specs: list[RunSpec]) -> None:
    """The runs a command would start: their number and the grid, per scenario."""
    cells = {(s.scenario, s.variant, s.data_size, s.batch_size, s.precision, s.clip_value, s.steps) for s in specs}
    seeds = len(cfg.axes.seed)
    more = ""
    if cfg.adaptive.adaptive:
        more = (f"; adaptive={cfg.adaptive.rule}: each cell starts with {seeds} seeds and may grow to "
                f"{cfg.adaptive.max_seeds} ({len(cells) * cfg.adaptive.max_seeds:,} runs at most)")
    print(f"sweep {cfg.name}: {len(specs):,} runs = {len(cells):,} configurations x {seeds} seeds{more}")
    for scenario, n in Counter(s.scenario for s in specs).items():
        mine = [s for s in specs if s.scenario == scenario]

        def values(attr: str) -> str:
            vs = sorted({getattr(s, attr) for s in mine}, key=lambda v: (v is None, str(v) if v is None else v))
            return ", ".join("none" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in vs)

        variants = sorted({s.variant for s in mine if s.variant})
        print(f"  {scenario}: {n:,} runs; data_size {values('data_size')}; batch_size {values('batch_size')}; "
              f"precision {values('precision')}; clip_value {values('clip_value')}; steps {values('steps')}"
              + (f"; variants {'; '.join(variants)}" if variants else ""))
    print(f"results would go to {Path(cfg.results_root) / cfg.name}/ (nothing was run or written)")
