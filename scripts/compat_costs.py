"""What each private reach of harness.compat into TensorFlow, Keras and Python buys, measured against
its public fallback on this machine (docs/engine.md, "Private reaches").

    python scripts/compat_costs.py                 # print the table
    python scripts/compat_costs.py --docs          # also rewrite the table in docs/engine.md
    python scripts/compat_costs.py --repeats 9     # processes per variant for the start and exit figures

Each figure is a median: of fresh processes (TensorFlow and Keras imported with and without IPython
hidden; a driver's exit with and without exit_now), interleaved variant by variant so a load on the
machine falls on both; or of the later runs of one structure in this process (loss_bound, 20 steps,
which reuse its trace) with the reach and with its fallback forced by removing the private name.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from markers import write_block  # noqa: E402

DOCS = ROOT / "docs" / "engine.md"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
       "TF_CPP_MIN_LOG_LEVEL": "3"}

IMPORT_CHILD = """
import gc, sys, time
from harness.compat.keras import importing_without
names = tuple(n for n in sys.argv[1].split(",") if n)
t = time.perf_counter()
gc.disable()
with importing_without(names):
    import tensorflow, keras
gc.freeze()
gc.enable()
print(time.perf_counter() - t)
"""

# a driver at its end: what `python -m harness` holds after a sweep (its CLI, Ray, pandas, pyarrow's datasets)
EXIT_CHILD = """
import sys, time
import harness.cli, harness.runner, harness.store, ray, pandas, pyarrow.dataset
from harness.compat.python import exit_now
print(time.time(), flush=True)
exit_now(0) if sys.argv[1] == "reach" else sys.exit(0)
"""


def _import_seconds(hidden: str) -> float:
    out = subprocess.run([sys.executable, "-c", IMPORT_CHILD, hidden], capture_output=True, text=True, env=ENV,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _exit_seconds(way: str) -> float:
    proc = subprocess.Popen([sys.executable, "-c", EXIT_CHILD, way], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    started = float(proc.stdout.readline())
    proc.wait()
    return time.time() - started


def _interleaved(measure: Callable[[str], float], variants: list[str], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeats):
        for v in variants:
            samples[v].append(measure(v))
    return {v: statistics.median(s) for v, s in samples.items()}


def _run_ms(runs: int) -> float:
    """Median wall time of runs 2..runs of one loss_bound structure in this process (run 1 traces)."""
    from harness.engine import execute, reuse
    from harness.grid import RunSpec, make_run_id

    reuse.clear()
    walls = []
    for seed in range(runs):
        spec = RunSpec(sweep="costs", scenario="loss_bound", target="harness.scenarios.loss_bound.LossBound",
                       params={"bound": 1.0}, data_size=1000, batch_size=32, steps=20, epochs=None, seed=seed,
                       precision="fp32", clip_value=None)
        spec = dataclasses.replace(spec, run_id=make_run_id(spec))
        t = time.perf_counter()
        r = execute(spec)
        walls.append(time.perf_counter() - t)
        if r.error:
            raise SystemExit(f"loss_bound failed: {r.error}")
    return 1000 * statistics.median(walls[1:])


class _Removed:
    """Remove ``module.name`` for the block (and put it back), as a release that moved it would."""

    def __init__(self, module: Any, name: str, sys_module: str | None = None) -> None:
        self.module, self.name, self.sys_module = module, name, sys_module

    def __enter__(self) -> None:
        self.saved = getattr(self.module, self.name)
        delattr(self.module, self.name)
        if self.sys_module:
            self.saved_sys = sys.modules[self.sys_module]
            sys.modules[self.sys_module] = None  # type: ignore[assignment]

    def __exit__(self, *exc: Any) -> None:
        setattr(self.module, self.name, self.saved)
        if self.sys_module:
            sys.modules[self.sys_module] = self.saved_sys


def _in_process(runs: int) -> dict[str, Any]:
    import keras.src.backend.common as common
    from tensorflow.python.framework import op_callbacks

    import tensorflow as tf
    from harness.compat import tensorflow as compat_tf
    from harness.engine import init_worker
    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.scenarios.loss_bound import LossBound

    init_worker(2)
    out: dict[str, Any] = {"reach_ms": _run_ms(runs)}
    with _Removed(common, "global_state", "keras.src.backend.common.global_state"):
        out["keras_fallback_ms"] = _run_ms(runs)
    with _Removed(op_callbacks, "add_op_callback"):
        out["callbacks_fallback_ms"] = _run_ms(runs)
    spec_kw = dict(sweep="costs", scenario="loss_bound", target="harness.scenarios.loss_bound.LossBound",
                   params={"bound": 1.0}, data_size=1000, batch_size=32, steps=20, epochs=None, seed=0,
                   precision="fp32", clip_value=None)
    from harness.grid import RunSpec

    scenario = LossBound()
    data = scenario.build(RunContext(RunSpec(**spec_kw)))
    fn = compile_loop(scenario, data, scenario.checks(), batch_size=32).variants[1]

    def per_call_ms(call: Callable[[], Any]) -> float:
        samples = []
        for _ in range(20):
            t = time.perf_counter()
            call()
            samples.append(time.perf_counter() - t)
        return 1000 * statistics.median(samples)

    out["op_types_ms"] = per_call_ms(lambda: compat_tf.op_types(fn))
    graph = fn.graph
    saved = graph._functions
    del graph._functions
    try:
        out["op_types_fallback_ms"] = per_call_ms(lambda: compat_tf.op_types(fn))
    finally:
        graph._functions = saved
    from tensorflow.python.framework import op_def_registry

    named = [t for t in dir(tf.raw_ops) if not t.startswith("_")
             and ("Random" in t or "Multinomial" in t or t.startswith("Stateful"))]
    registry = {t: compat_tf.is_stateful(t) for t in named}
    with _Removed(op_def_registry, "get"):
        by_name = {t: compat_tf.is_stateful(t) for t in named}
    out["ops_named_random"] = len(named)
    out["ops_disagreeing"] = sorted(t for t in named if registry[t] != by_name[t])
    return out


def measure(repeats: int, runs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    imports = _interleaved(_import_seconds, ["", "IPython", "IPython,pandas,matplotlib"], repeats)
    figures["import_s"], figures["import_hidden_s"], figures["import_all_hidden_s"] = imports.values()
    exits = _interleaved(_exit_seconds, ["reach", "fallback"], repeats)
    figures["exit_s"], figures["exit_fallback_s"] = exits["reach"], exits["fallback"]
    figures.update(_in_process(runs))
    return figures


def versions() -> str:
    return ", ".join(f"{p} {metadata.version(p)}" for p in ("tensorflow", "keras")) + f", Python {sys.version.split()[0]}"


def tested(dependency: str) -> str:
    """The version the figures were measured on (the suite's tests of the reach ran there too) and the
    range pyproject.toml allows."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if dependency == "python":
        return f"CPython {sys.version.split()[0]} (allowed: {project['requires-python']})"
    allowed = next(re.sub(r"^[A-Za-z_\[\]-]+", "", d) for d in project["dependencies"]
                   if re.match(rf"{dependency}(\[|[<>=]|$)", d))
    return f"{dependency} {metadata.version(dependency)} (allowed: {allowed})"


def table(f: dict[str, Any]) -> str:
    ms = "{:.1f} ms".format
    s = "{:.2f} s".format
    rows = [
        ("`compat.keras.reset_state`: `keras.src.backend.common.global_state`, `keras.src.utils.rng_utils`",
         "a run that reuses its structure's trace keeps TF's kernel caches (clear_session would drop them)",
         f"a reused loss_bound run: {ms(f['reach_ms'])}; with the fallback {ms(f['keras_fallback_ms'])}",
         "`keras.backend.clear_session()` + `keras.utils.set_random_seed`: a fresh session per run", tested("keras")),
        ("`compat.tensorflow.watching_eager_ops`: `tensorflow.python.framework.op_callbacks`",
         "a structure's first build() is checked for stateful random ops, so its later runs may keep the session",
         f"as above: with the fallback {ms(f['callbacks_fallback_ms'])}",
         "nothing watched; every run starts a fresh session", tested("tensorflow")),
        ("`compat.tensorflow.is_stateful`: `op_def_registry.get`",
         "which ops keep RNG state in their kernel, exactly (the reuse_trace promise's check)",
         f"of {f['ops_named_random']} ops named like random ops, the fallback disagrees on "
         f"{len(f['ops_disagreeing'])}: {', '.join(f['ops_disagreeing']) or 'none'}",
         "TF's naming: `Random`/`Multinomial` in the name or `Stateful...`, not `Stateless...`", tested("tensorflow")),
        ("`compat.tensorflow.operations`, `op_types`: `Graph._functions`",
         "the ops of a traced loop's body as `tf.Operation`s (tests inspect them); op types without serialising",
         f"op types of a loss_bound loop: {ms(f['op_types_ms'])}; with the fallback {ms(f['op_types_fallback_ms'])}",
         "op types from `Graph.as_graph_def()`; `operations` gives the top graph's ops only", tested("tensorflow")),
        ("`compat.tensorflow.onednn_enabled`: `_pywrap_util_port.IsMklEnabled`",
         "every run records whether oneDNN's kernels ran (the `onednn` column)",
         "no time: a record",
         "`False` when `TF_ENABLE_ONEDNN_OPTS=0`, else unknown (null)", tested("tensorflow")),
        ("`compat.python.exit_now`: `threading._shutdown`, `atexit._run_exitfuncs`",
         "a command's exit skips the teardown of every module",
         f"a driver's exit: {s(f['exit_s'])}; with the fallback {s(f['exit_fallback_s'])}",
         "`sys.exit(code)`", tested("python")),
        ("`compat.keras.importing_without(('IPython',))`: `sys.modules[name] = None` (public; Keras' optional import)",
         "an actor's TensorFlow and Keras import skips IPython, which Keras uses only in a running IPython shell",
         f"TF and Keras imported: {s(f['import_hidden_s'])}; nothing hidden {s(f['import_s'])} (pandas and "
         f"matplotlib hidden too, as before: {s(f['import_all_hidden_s'])})",
         "(not private: nothing to fall back from)", tested("keras")),
    ]
    lines = ["| reach | what it buys | measured | fallback | tested on |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per variant (imports, exits)")
    ap.add_argument("--runs", type=int, default=20, help="runs of the structure per in-process variant")
    ap.add_argument("--docs", action="store_true", help=f"also rewrite the table in {DOCS.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    for key, value, least in (("--repeats", args.repeats, 1), ("--runs", args.runs, 2)):
        if value < least:
            print(f"error: {key} must be >= {least}, got {value}", file=sys.stderr)
            return 2
    figures = measure(args.repeats, args.runs)
    body = table(figures)
    print(body)
    print(json.dumps(figures), file=sys.stderr)
    if args.docs:
        command = " ".join(["python scripts/compat_costs.py", *(a for a in (argv or sys.argv[1:]) if a != "--docs")])
        write_block(DOCS, "compat_costs", f"Produced by `{command} --docs` on {datetime.date.today()} "
                    f"({os.cpu_count()} CPUs; {versions()}; medians, see the script's docstring):\n\n{body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
