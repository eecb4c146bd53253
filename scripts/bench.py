#!/usr/bin/env python
"""Benchmarks: the harness against the naive ways of doing the same work, side by side.

    python scripts/bench.py                 # all nine figures, table + results/bench/<stamp>.json
    python scripts/bench.py --only 1 2      # some of them
    python scripts/bench.py --readme        # also rewrite the table in docs/benchmarks.md

Every figure is a ratio measured in this one invocation against its baseline
(medians over repeats, baseline and harness interleaved), never a stored number.
Figures 1, 2 and 3a are measured in --processes fresh processes each (see Pair).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # tests/synthetic.py: the synthetic results the analysis benches read
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from markers import read_block, write_block  # noqa: E402


@dataclass
class Figure:
    """One measured figure; ``measured`` and ``met`` may arrive as numpy scalars."""

    key: str
    name: str
    measured: float
    unit: str
    target: str
    met: bool
    detail: str


def median_interleaved(fns: list[Callable[[], float]], repeats: int) -> list[float]:
    """Run each fn ``repeats`` times, interleaved (a b a b ...), return the median of each."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            samples[i].append(fn())
    return [statistics.median(s) for s in samples]


@dataclass
class Pair:
    """A side-by-side timing measured in several fresh processes: each process times both
    sides interleaved and keeps the medians; the figure is the process with the median
    ratio. One process can sit in a slow or fast state for its whole life (where its
    threads and memory landed; pyperf spawns many worker processes for this reason),
    which no number of samples inside it averages out."""

    a: float  # that process's median seconds per step of side a
    b: float
    lo: float  # smallest and largest per-process ratio
    hi: float
    processes: int
    more: tuple[float, ...] = ()  # that process's medians of any further sides the pair times

    @property
    def ratio(self) -> float:
        return self.a / self.b

    def spread(self) -> str:
        return f"the median of {self.processes} processes, whose ratios span [{self.lo:.3g}, {self.hi:.3g}]"


def actor_env() -> dict[str, str]:
    """What an embedded Ray's actor has in its environment beyond the driver's by default: the allocator
    ray.malloc=auto preloads (jemalloc on Linux), if any. The pairs' processes start with it, so that a
    step is timed as an actor runs it."""
    from harness.config import malloc_library
    from harness.dispatch import preload_value

    library = malloc_library("auto")
    return {"LD_PRELOAD": preload_value(library)} if library else {}


def measure_pair(name: str, processes: int, repeats: int, steps: int) -> Pair:
    """Time the pair ``name`` (see PAIRS) in ``processes`` fresh processes, one after another, each
    started as an actor is (actor_env)."""
    return measure_pairs(name, processes, repeats, steps, [actor_env()])[0]


def measure_pairs(name: str, processes: int, repeats: int, steps: int,
                  envs: list[dict[str, str | None]]) -> list[Pair]:
    """One Pair per environment in ``envs`` (each added to this one's; a None value unsets the variable),
    their processes interleaved (a process of each in turn, ``processes`` rounds) so that a change of the
    machine's speed during the measurement falls on all of them alike."""
    medians: list[list[tuple[float, ...]]] = [[] for _ in envs]
    for _ in range(processes):
        for i, env in enumerate(envs):
            out = subprocess.run([sys.executable, __file__, "--pair", name, "--repeats", str(repeats),
                                  "--sample-steps", str(steps)], check=True, capture_output=True, text=True,
                                 env={k: v for k, v in {**os.environ, **env}.items() if v is not None})
            medians[i].append(tuple(json.loads(out.stdout.strip().splitlines()[-1])))
    pairs = []
    for m in medians:
        m.sort(key=lambda ab: ab[0] / ab[1])
        (a, b, *more), lo, hi = m[(len(m) - 1) // 2], m[0], m[-1]
        pairs.append(Pair(a, b, lo[0] / lo[1], hi[0] / hi[1], processes, tuple(more)))
    return pairs


# ------------------------------------------------------------------ 1 + 2 + 3a: loops in-process

def _spec(**kw: Any) -> Any:
    from dataclasses import replace

    from harness.grid import RunSpec, make_run_id

    base: dict[str, Any] = dict(sweep="bench", scenario="loss_bound", target="harness.scenarios.loss_bound.LossBound",
                                params={"bound": 1.0}, data_size=100_000, batch_size=32, steps=1000, epochs=None,
                                seed=0, precision="fp32", clip_value=10.0)
    base.update(kw)
    s = RunSpec(**base)
    return replace(s, run_id=make_run_id(s))


def _hot(loop: Any, data: Any, steps: int) -> None:
    """Bring ``loop`` to the steady state of a structure that many runs of a worker reuse: hot, so
    that a run of ``steps`` steps runs its unrolled variant (harness.engine.loop.CompiledLoop),
    traced and warmed here."""
    loop.unroll_after = 0.0
    loop.run(data, steps=steps, seed=0)


def _compiled(data_size: int, steps: int, with_checks: bool = True, unroll: int | None = None) -> Callable[[], float]:
    """Seconds per step of the harness's compiled loop at steady state (traced once, hot, timed per call);
    ``unroll=1``: the loop of single steps, which a loop is until it is hot."""
    import tensorflow as tf

    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.scenarios.loss_bound import LossBound

    seed_everything(0)
    spec = _spec(data_size=data_size, steps=steps)
    scenario = LossBound()
    data = scenario.build(RunContext(spec))
    if with_checks:
        checks, sc = scenario.checks(), scenario
    else:  # same loop, same forward pass of the assertion, no checks folded in
        class NoChecks:
            def train_step(self, batch: Any, step: Any) -> Any:
                out = scenario.train_step(batch, step)
                out["loss"] = out["loss"] + 0.0 * tf.stop_gradient(out.pop("post_loss"))
                return out
        checks, sc = [], NoChecks()
    loop = compile_loop(sc, data, checks, batch_size=32, unroll=unroll)
    _hot(loop, data, steps)

    def run() -> float:
        return loop.run(data, steps=steps, seed=0).train_s / steps
    return run


def _seed_loop(data_size: int, steps: int) -> Callable[[], float]:
    """Seconds per step of the seed document's loop as written: eager, a full shuffle of
    the index every step, a host sync (.numpy()) per step for the assertion."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    x_train = tf.random.normal(shape=(data_size, 1))
    y_train = x_train * 2 + tf.random.normal(shape=(data_size, 1), stddev=0.1)

    def custom_loss(y_true: Any, y_pred: Any) -> Any:
        return tf.reduce_mean(tf.square(y_true - y_pred))

    def training_step(x: Any, y: Any, clip_value: float) -> None:
        with tf.GradientTape() as tape:
            loss = custom_loss(y, model(x))
        gradients = tape.gradient(loss, model.trainable_variables)
        clipped = [tf.clip_by_value(g, -clip_value, clip_value) for g in gradients]
        optimizer.apply_gradients(zip(clipped, model.trainable_variables))

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            indices = tf.random.shuffle(tf.range(x_train.shape[0]))[:32]
            x_batch, y_batch = tf.gather(x_train, indices), tf.gather(y_train, indices)
            training_step(x_batch, y_batch, 10.0)
            current_loss = custom_loss(y_batch, model(x_batch)).numpy()
            _ = current_loss < 1.0
        return (time.perf_counter() - t0) / steps
    run()  # warm
    return run


def _keras_step(steps: int, mode: str) -> Callable[[], float]:
    """Seconds per step of the AUTOTRAINER circle program through the Keras adapter, with every
    published detector evaluated every step (18 checks), mode:
    "one_pass": the adapter's per-layer observations from the step's own forward and backward pass;
    "two_pass": the same observations from a second forward and backward pass after the step (what a
    callback-style detector does: a probe model and another tape);
    "none": no detectors, no per-layer observations (a finite-loss check only)."""
    import tensorflow as tf

    from harness import checks
    from harness.engine.context import RunContext, _flat, _group_stats
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.examples.autotrainer_circles import Circles
    from harness.scenarios.keras_adapter import _activation_stats, _metrics

    class TwoPass(Circles):
        def train_step(self, batch: Any, step: Any) -> Any:
            x, y = batch
            model, variables = self.keras_model, self.keras_model.trainable_variables
            obs = dict(self.ctx.minimize(lambda: model.compute_loss(x=x, y=y, y_pred=model(x, training=True)),
                                         variables))
            with tf.GradientTape() as tape:  # the second pass
                outs = self.probe(x, training=True)
                again = model.compute_loss(x=x, y=y, y_pred=outs[-1], training=True)
            grads = tape.gradient(again, variables)
            flat, now = _flat(grads), _flat(variables)
            obs.update(_group_stats(flat, now, now, grads, variables, self.groups))
            obs.update(_activation_stats(outs, self._relu, self._sat))
            obs.update(_metrics(model, x, y, outs[-1]))
            return obs

    seed_everything(0)
    spec = _spec(scenario="circles", target="harness.examples.autotrainer_circles.Circles", params={},
                 data_size=800, batch_size=128, steps=steps, clip_value=None)
    scenario = (TwoPass if mode == "two_pass" else Circles)(check_every=1)
    if mode == "none":
        scenario.activations, scenario.layer_stats = False, False
    data = scenario.build(RunContext(spec))
    chosen = [c for c in scenario.checks() if c.when == "step"] if mode != "none" else [checks.finite("f", "loss")]
    loop = compile_loop(scenario, data, chosen, batch_size=128)
    _hot(loop, data, steps)

    def run() -> float:
        return loop.run(data, steps=steps, seed=0).train_s / steps
    return run


PAIRS: dict[str, Callable[[int], list[Callable[[], float]]]] = {
    "detectors": lambda steps: [_keras_step(steps, "one_pass"), _keras_step(steps, "two_pass"),
                                _keras_step(steps, "none")],
    "seed": lambda steps: [_seed_loop(100_000, 100), _compiled(100_000, steps), _compiled(100_000, steps, unroll=1)],
    "checks": lambda steps: [_compiled(100_000, steps, True), _compiled(100_000, steps, False)],
    "flat": lambda steps: [_compiled(10_000_000, steps), _compiled(1_000, steps)],
}


def fig_detectors(processes: int, repeats: int, steps: int) -> Figure:
    """The per-layer detectors' cost: one pass (the adapter) against a second pass (a probe model and
    another tape after the step), both against no detectors, all three interleaved in each process."""
    runs = []
    for _ in range(processes):
        out = subprocess.run([sys.executable, __file__, "--pair", "detectors", "--repeats", str(repeats),
                              "--sample-steps", str(steps)], check=True, capture_output=True, text=True,
                             env={**os.environ, **actor_env()})
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: (r[0] - r[2]) / (r[1] - r[2]))
    one, two, none = runs[(len(runs) - 1) // 2]
    share = (one - none) / (two - none)  # the one-pass extra cost as a share of the two-pass extra cost
    spread = [f"{(r[0] - r[2]) / (r[1] - r[2]):.2f}" for r in runs]
    return Figure("8", "detectors' extra cost per step: one pass / a second pass", share, "ratio", "< 1",
                  share < 1, f"no detectors {none * 1e6:.0f} us/step; 18 detectors from the step's own pass "
                  f"{one * 1e6:.0f} us/step, from a second forward and backward pass {two * 1e6:.0f} us/step; "
                  f"median of {processes} processes (ratios {', '.join(spread)})")


def fig_seed_loop(processes: int, repeats: int, steps: int) -> Figure:
    """The default configuration: both sides in processes started as an embedded Ray's actors are (the
    allocator ray.malloc=auto preloads, see actor_env), the harness's loop hot (a structure many runs
    reuse; the loop of single steps it starts as is timed beside it in the same processes). Besides, in
    processes interleaved with those: both sides with the system's allocator (ray.malloc=system, and
    the seed's loop as a plain `python` runs it); and with TensorFlow's oneDNN rewrite off
    (TF_ENABLE_ONEDNN_OPTS=0), which runs the step's three tiny matmuls on Eigen's kernels instead
    (other numbers in bf16, see docs/engine.md)."""
    base = actor_env()
    variants: dict[str, dict[str, str | None]] = {"default": base}
    if base:
        variants["ray.malloc=system"] = {"LD_PRELOAD": os.environ.get("LD_PRELOAD")}  # as this process has it
    variants["TF_ENABLE_ONEDNN_OPTS=0"] = {**base, "TF_ENABLE_ONEDNN_OPTS": "0"}
    pairs = dict(zip(variants, measure_pairs("seed", processes, repeats, steps, list(variants.values()))))
    p = pairs.pop("default")
    allocator = (f"preloaded {Path(base['LD_PRELOAD'].split()[0]).name}" if base
                 else "the system's allocator (no jemalloc found)")
    detail = (f"seed loop {p.a * 1e3:.2f} ms/step, harness {p.b * 1e6:.0f} us/step (a hot loop, unrolled; "
              f"the loop of single steps in the same processes {p.more[0] * 1e6:.0f} us/step, "
              f"{p.a / p.more[0]:.0f}x), both with {allocator} as an actor; {p.spread()}")
    for name, q in pairs.items():
        detail += (f"; with {name} (both sides, processes interleaved with the above): {q.ratio:.0f}x, seed loop "
                   f"{q.a * 1e3:.2f} ms/step, harness {q.b * 1e6:.0f} us/step; {q.spread()}")
    return Figure("1", "per-step speed vs the seed's loop (1e5 rows)", p.ratio, "x faster", ">= 200x", p.ratio >= 200,
                  detail)


def fig_overhead(processes: int, repeats: int, steps: int) -> Figure:
    p = measure_pair("checks", processes, repeats, steps)
    over = p.ratio - 1
    return Figure("2", "instrumentation overhead (checks vs none)", over * 100, "% slower", "<= 10%", over <= 0.10,
                  f"with checks {p.a * 1e6:.0f} us/step, without {p.b * 1e6:.0f} us/step; {p.spread()}")


def fig_flat(processes: int, repeats: int, steps: int) -> Figure:
    p = measure_pair("flat", processes, repeats, steps)
    return Figure("3a", "time per step, 1e7 rows vs 1e3 rows", p.ratio, "ratio", "<= 1.2", p.ratio <= 1.2,
                  f"1e3: {p.b * 1e6:.0f} us/step, 1e7: {p.a * 1e6:.0f} us/step; {p.spread()}")


# ------------------------------------------------------------------ 3b: actor memory (subprocesses)

MEM_PROBE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    from dataclasses import replace
    from harness.engine import init_worker, execute
    from harness.grid import RunSpec, make_run_id

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

    def run(n):
        s = RunSpec(sweep="b", scenario="loss_bound", target="harness.scenarios.loss_bound.LossBound",
                    params={{}}, data_size=n, batch_size=32, steps=500, epochs=None, seed=0, precision="fp32",
                    clip_value=None)
        r = execute(replace(s, run_id=make_run_id(s)))
        assert r.status.value == "ok", r.error

    init_worker(1)
    run(1000)  # an actor after its first run: TF, Keras and the tracing machinery are loaded
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
    base = status("VmRSS")
    run(int(sys.argv[1]))
    print(json.dumps({{"base": base, "peak": status("VmHWM")}}))
""")


def fig_memory() -> Figure:
    n = 10_000_000
    out = subprocess.run([sys.executable, "-c", MEM_PROBE.format(root=str(ROOT)), str(n)], capture_output=True,
                         text=True, check=True, env={**os.environ, **actor_env()})  # as an actor runs
    m = json.loads(out.stdout.strip().splitlines()[-1])
    tf_baseline, peak = m["base"], m["peak"]
    data_bytes = n * 2 * 4  # x and y, float32
    ratio = (peak - tf_baseline) / data_bytes
    allocator = actor_env().get("LD_PRELOAD", "").split()[0:1]
    return Figure("3b", "actor peak memory at 1e7 rows, above TF's baseline", ratio, "x data size", "<= 3x",
                  ratio <= 3, f"actor RSS after a first run (TF baseline) {tf_baseline / 2**20:.0f} MiB, peak during "
                  f"the 1e7-row run {peak / 2**20:.0f} MiB, data {data_bytes / 2**20:.0f} MiB; "
                  f"{'preloaded ' + Path(allocator[0]).name if allocator else 'the system allocator'}, as an actor")


# ------------------------------------------------------------------ 4 + 5 + 6: sweeps

SWEEP48 = ["sweep=smoke", "sweep.scenario=[loss_bound]", "sweep.name=bench48", "sweep.data_size=[1000,100000]", "sweep.batch_size=[32]",
           "sweep.precision=[fp32,fp16,bf16]", "sweep.seed=[0,1,2,3]", "sweep.clip_value=[null,1.0]"]


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds of ``python -m harness ARGS`` in ``cwd``, with ``env`` added to this environment."""
    return _timed([sys.executable, "-m", "harness", *args], {**os.environ, **(env or {})}, cwd)


PER_PROCESS = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from harness.engine import init_worker, execute
    from harness.grid import RunSpec
    from harness.records import result_rows
    from harness.store import write_part
    from pathlib import Path
    import json
    init_worker(2)
    spec = RunSpec(**json.loads(sys.argv[1]))
    write_part(Path(sys.argv[2]), spec.run_id, result_rows(spec, execute(spec), "bench"))
""")


@dataclass(frozen=True)
class Sweep48:
    """One cold 48-run sweep, as figure 4 splits it (see fig_sweeps)."""

    wall: float
    lower: float  # sum(train_s) / actors
    in_runs: float  # sum(wall_s) / actors: training plus each run's build, trace, copies
    actors: int
    split: str  # HARNESS_TIMELINE's phases outside the runs

    @property
    def ratio(self) -> float:
        return self.wall / self.lower


def _sweep48(args: list[str], root: Path) -> Sweep48:
    from harness import load_results, timeline

    marks = root / "timeline.txt"
    wall = _cli([*args, f"store.root={root}"], root, {timeline.ENV: str(marks)})
    phases = timeline.phases(timeline.read(marks))
    df = load_results(root / "bench48").drop_duplicates("run_id")
    actors = df["worker"].nunique()
    return Sweep48(wall, df["train_s"].sum() / actors, df["wall_s"].sum() / actors, actors,
                   ", ".join(f"{k} {v:.1f}s" for k, v in phases.items() if k != "runs"))


def fig_sweeps(steps: int, per_process_runs: int, want: set[str], repeats: int = 3) -> list[Figure]:
    """Figure 4 is the median, over ``repeats`` cold sweeps one after another, of wall / lower bound (a
    single sweep's ratio moved by 0.1 between runs on this machine: Ray's start alone varies by a
    second); every repeat's ratio is in the detail. Figures 5 and 6 compare against the sweep of the
    median ratio."""
    from dataclasses import asdict as dc_asdict

    from harness.cli import compose_config
    from harness.config import sweep_config_from_dict
    from harness.grid import expand

    args = [*SWEEP48, f"sweep.steps=[{steps}]"]
    figs = []
    with tempfile.TemporaryDirectory() as tmp:
        roots = [Path(tmp) / f"sweep{i}" for i in range(max(1, repeats))]
        sweeps = []
        for r in roots:
            r.mkdir()
            sweeps.append(_sweep48(args, r))
        order = sorted(range(len(sweeps)), key=lambda i: sweeps[i].ratio)
        mid = order[len(order) // 2]  # the median (main() asks for an odd count)
        m, root = sweeps[mid], roots[mid]
        eff, wall = m.ratio, m.wall
        # wall = fixed + lower * (1 + per_run / lower): the run length from which the ratio is <= 1.3
        fixed, per_run = m.wall - m.in_runs, m.in_runs - m.lower
        break_even = steps * (fixed + per_run) / (0.3 * m.lower)
        every = ", ".join(f"{sweeps[i].ratio:.2f}" for i in order)
        figs.append(Figure("4", f"48-run sweep wall vs sum(train_s)/actors ({steps} steps/run)", eff, "ratio",
                           "<= 1.3", eff <= 1.3,
                           f"median of {len(sweeps)} cold sweeps ({every}); that sweep: wall {wall:.1f}s (Ray start "
                           f"included), {m.actors} actors, lower bound {m.lower:.1f}s; per actor {per_run:.1f}s in "
                           f"runs outside training (build, trace, copies), {fixed:.1f}s outside runs (HARNESS_TIMELINE: "
                           f"{m.split}; Ray's shutdown runs during the end); <= 1.3 from about {break_even:,.0f} "
                           f"steps/run"))
        if "6" in want:
            resume = _cli([*args, f"store.root={root}"], root)
            figs.append(Figure("6", "resume of the finished sweep vs the original", resume / wall * 100,
                               "% of original", "<= 5%", resume / wall <= 0.05,
                               f"rerun {resume:.2f}s, original {wall:.1f}s"))
        if "5" in want:
            specs = expand(sweep_config_from_dict(compose_config([*args, f"store.root={root}"])))
            n = min(len(specs), max(1, per_process_runs))
            picked = sorted(random.Random(0).sample(range(len(specs)), n))  # a fixed random sample, grid order
            chosen = [specs[i] for i in picked]
            out = root / "per_process"
            t0 = time.perf_counter()
            for s in chosen:  # one new Python process per run, one at a time, as Hydra's basic launcher does
                subprocess.run([sys.executable, "-c", PER_PROCESS.format(root=str(ROOT)),
                                json.dumps({**dc_asdict(s), "params": dict(s.params)}), str(out)], check=True,
                               capture_output=True)
            per_proc = (time.perf_counter() - t0) / len(chosen) * len(specs)
            vs = per_proc / wall
            note = "" if len(chosen) >= len(specs) else \
                f" (timed a fixed random {len(chosen)} of the {len(specs)} runs, scaled to {len(specs)})"
            figs.append(Figure("5", "vs one new process per run (basic launcher)", vs, "x faster", ">= 3x", vs >= 3,
                               f"process per run {per_proc:.1f}s{note}, harness {wall:.1f}s (the median sweep of "
                               f"figure 4)"))
    return sorted(figs, key=lambda f: f.key)


# ------------------------------------------------------------------ 7: report on 1e6 rows

def fig_report(rows: int) -> Figure:
    """A seed_article-shaped frame (2 checks per run, NaN runs, errored runs) of ``rows`` rows."""
    import numpy as np

    from synthetic import synthetic_results, write_results

    def rate(d: Any) -> Any:
        return np.where(d.precision == "fp16", 3e-5, np.where(d.precision == "bf16", 1e-5, 2e-6)) * \
            np.where(d.check == "out_min", 0.5, 1)

    per_seed = 2 * 23 * 3 * 3  # checks x (data, batch) pairs x precisions x clip values
    df = synthetic_results(checks={"loss_below": ("below", 1.0), "out_min": ("above", 0.0)},
                           data_sizes=(100, 1000, 10000, 100000, 1000000), batch_sizes=(16, 32, 64, 128, 256),
                           precisions=("fp32", "fp16", "bf16"), clip_values=(None, 1.0, 10.0),
                           seeds=range(-(-rows // per_seed)), steps=None, epochs=1, eval_rate=rate,
                           nonfinite_rate=0.0005, error_rate=0.001, sweep="bench_report")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big"
        write_results(df, str(path), parts=40)
        rows = len(df)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.report", str(path), "--out", str(Path(tmp) / "rep")],
                       check=True, capture_output=True)
        took = time.perf_counter() - t0
    return Figure("7", f"report on a {rows:,}-row results frame", took, "s", "<= 30 s", took <= 30,
                  "python -m harness.report, process start included")


# ------------------------------------------------------------------ 9: loading results

def _loading_rows(runs: int) -> Any:
    """``runs`` runs x 3 checks of realistic rows: the core columns of a seed_article-like grid
    (statuses, NaN runs, run-level numerics, 16-hex run_ids) plus two scenario extras."""
    import hashlib

    import numpy as np
    import pyarrow as pa

    from synthetic import synthetic_results
    from harness.records import CORE_SCHEMA

    per_seed = 4 * 3 * 3 * 2  # data sizes x batch sizes x precisions x clip values
    df = synthetic_results(checks={"loss_below": ("below", 1.0), "out_min": ("above", 0.0), "grad_ok": ("below", 1e3)},
                           data_sizes=(1000, 10_000, 100_000, 1_000_000), batch_sizes=(32, 64, 128),
                           precisions=("fp32", "fp16", "bf16"), clip_values=(None, 1.0),
                           seeds=range(-(-runs // per_seed)), steps=1000, eval_rate=1e-4, nonfinite_rate=0.001,
                           error_rate=0.002, sweep="bench_load")
    df = df.iloc[: runs * 3].reset_index(drop=True)
    rng = np.random.default_rng(0)
    ids = {r: hashlib.sha256(r.encode()).hexdigest()[:16] for r in df["run_id"].unique()}
    df["run_id"] = df["run_id"].map(ids)
    per_run = np.repeat(rng.gamma(4.0, 2.0, runs), 3)
    df["wall_s"], df["train_s"] = per_run + 3.0, per_run
    df["worker"] = [f"node{i % 4}:{4000 + i % 16}:cpu:node=ab12cd34" for i in np.repeat(np.arange(runs), 3)]
    df["compute_dtype"] = df["precision"].map({"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"})
    df["final_loss"] = np.repeat(rng.lognormal(-2, 1, runs), 3)
    df["harness_version"], df["tf_version"] = "0.1.0", "2.16.1"
    table = pa.Table.from_pandas(df, schema=CORE_SCHEMA, preserve_index=False).replace_schema_metadata(None)  # as
    # result_rows writes them: no pandas metadata (which would make pandas.read_parquet restore extension dtypes)
    table = table.append_column(pa.field("grad_norm_max", pa.float64()),
                                pa.array(np.repeat(rng.lognormal(0, 1, runs), 3)))
    return table.append_column(pa.field("clip_active_steps", pa.int64()),
                               pa.array(np.repeat(rng.integers(0, 50, runs), 3)))


def _write_layouts(table: Any, directory: Path, per_run: bool, batch: int = 256) -> None:
    """The rows as a sweep stores them: batched part files of ``batch`` runs (store.write_batch, as
    PartBuffer writes them), or one part file per run (store.write_part, as earlier versions did)."""
    from harness.store import write_batch, write_part

    rows_per_run = 3
    step = rows_per_run * (1 if per_run else batch)
    for i in range(0, table.num_rows, step):
        chunk = table.slice(i, step)
        if per_run:
            write_part(directory, chunk.column("run_id")[0].as_py(), chunk)
        else:
            write_batch(directory, [chunk])


def fig_loading(repeats: int, big_runs: int = 100_000) -> list[Figure]:
    """load_results against pandas.read_parquet of the same directory (2,000 runs, batched as a
    sweep writes them now and one file per run as earlier versions did), and a 100,000-run sweep."""
    import warnings

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.store import compact, load_results, part_files, stored_run_ids

    def timer(fn: Callable[[], Any]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return run

    def alternating(fns: list[Callable[[], float]], repeats: int) -> list[float]:
        """median_interleaved, the order reversed every other repeat: no side always runs first
        (right after the other's memory was freed)."""
        samples: list[list[float]] = [[] for _ in fns]
        for r in range(repeats):
            for i in (range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))):
                samples[i].append(fns[i]())
        return [statistics.median(x) for x in samples]

    def per_file(d: Path) -> Any:  # the previous load_results: one pq.read_table per part file
        return pa.concat_tables([pq.read_table(p) for p in part_files(d)], promote_options="permissive").to_pandas()

    figs = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("error")  # a load that warns (a file skipped) is not a fair load
        root = Path(tmp)
        small = _loading_rows(2000)
        for key, per_run, what in (("9a", False, "batched part files, as a sweep writes them"),
                                   ("9b", True, "one part file per run, as earlier versions wrote them")):
            d = root / key
            _write_layouts(small, d, per_run)
            assert len(load_results(d)) == len(pd.read_parquet(d)) == small.num_rows
            t0 = time.perf_counter()
            pd.read_parquet(d)
            loops = max(1, round(0.5 / (time.perf_counter() - t0)))  # a sample of about 0.5 s: ms loads are noisy
            ours, theirs = alternating([timer(lambda: [load_results(d) for _ in range(loops)]),
                                        timer(lambda: [pd.read_parquet(d) for _ in range(loops)])], repeats)
            ours, theirs = ours / loops, theirs / loops
            extra = ""
            if per_run:
                previous = alternating([timer(lambda: per_file(d))], 1)[0]
                resume = alternating([timer(lambda: stored_run_ids(d))], repeats)[0]
                extra = f"; the previous per-file read {previous:.2f}s; resume index {resume:.2f}s"
            ratio = ours / theirs
            figs.append(Figure(key, f"load_results of a 2,000-run sweep vs pandas.read_parquet ({what})", ratio,
                               "x pandas", "<= 1.0x", ratio <= 1.0,
                               f"{len(part_files(d))} part files, {small.num_rows:,} rows; load_results {ours:.3f}s, "
                               f"pandas.read_parquet {theirs:.3f}s; median of {repeats} samples of {loops} load(s), "
                               f"interleaved, order alternating{extra}"))
        big = root / "9c"
        _write_layouts(_loading_rows(big_runs), big, per_run=False)
        files = len(part_files(big))
        ours, theirs, resume, complete = alternating(
            [timer(lambda: load_results(big)), timer(lambda: pd.read_parquet(big)), timer(lambda: stored_run_ids(big)),
             timer(lambda: stored_run_ids(big, complete_only=True))], repeats)
        assert len(stored_run_ids(big)) == big_runs
        t0 = time.perf_counter()
        compact(big)
        compaction = time.perf_counter() - t0
        compacted, resume_compacted = alternating([timer(lambda: load_results(big)),
                                                   timer(lambda: stored_run_ids(big))], repeats)
        figs.append(Figure("9c", f"load_results of a {big_runs:,}-run sweep", ours, "s", "<= 10 s", ours <= 10,
                           f"{files} batched part files, {3 * big_runs:,} rows; pandas.read_parquet {theirs:.2f}s; "
                           f"resume index (stored_run_ids) {resume:.2f}s, complete_only {complete:.2f}s; compacted "
                           f"in {compaction:.1f}s into {len(part_files(big))} file(s): load_results {compacted:.2f}s, "
                           f"resume index {resume_compacted:.2f}s; median of {repeats}, interleaved, order alternating"))
    return figs


# ------------------------------------------------------------------ main

def table(figs: list[Figure]) -> str:
    lines = ["| # | figure | measured | target | met | detail |", "|---|---|---|---|---|---|"]
    for f in figs:
        lines.append(f"| {f.key} | {f.name} | {f.measured:.3g} {f.unit} | {f.target} | {'yes' if f.met else 'no'} "
                     f"| {f.detail} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ 10: warm start

SETTLE_S = 3.0


def fig_warm(repeats: int) -> Figure:
    """The smoke sweep (24 runs) on a warm pool against a cold start: wall time of the whole command,
    Python start included, each into a fresh results root (every run computed), each after SETTLE_S
    of quiet (ray.shutdown does not wait for Ray's processes to exit: a sweep timed right after a
    cold one shares the CPUs with their exit); medians. The cold sweeps run with no pool up, half
    before the pool starts and half after it stops, the warm ones between: a second Ray on the
    machine starts seconds slower (its dashboard agent retries the HTTP port the first one holds,
    with backoff, and ray.init cannot give it another), which a user's first cold sweep does not
    pay. The first sweep on a new pool is reported apart: its actors trace the smoke sweep's loops
    once, as a cold sweep's do."""
    from harness import timeline

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "HARNESS_POOL_DIR": str(root / "pool")}
        harness = [sys.executable, "-m", "harness"]

        phases: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}

        def sweep(kind: str, i: int) -> float:
            time.sleep(SETTLE_S)
            extra = ["ray.warm=false"] if kind == "cold" else []
            marks = root / f"{kind}-{i}.timeline"
            wall = _timed([*harness, "sweep=smoke", f"store.root={root / kind / str(i)}", *extra],
                          {**env, timeline.ENV: str(marks)}, root)
            if i >= 0:
                phases[kind].append(timeline.phases(timeline.read(marks)))
            return wall

        before = (repeats + 1) // 2
        cold = [sweep("cold", i) for i in range(before)]
        up = _timed([*harness, "up", "--idle-minutes", "30"], env, root)
        try:
            first = sweep("warm", -1)
            warm = [sweep("warm", i) for i in range(repeats)]
        finally:
            subprocess.run([*harness, "down"], env=env, capture_output=True)
        cold += [sweep("cold", i) for i in range(before, repeats)]
    c, w = statistics.median(cold), statistics.median(warm)

    def split(kind: str) -> str:  # median seconds per phase (HARNESS_TIMELINE), Ray's background shutdown left out
        names = [k for k in phases[kind][0] if k != "Ray shutdown"]
        return ", ".join(f"{k} {statistics.median(p.get(k, 0.0) for p in phases[kind]):.2f}s" for k in names)
    return Figure("10", "smoke sweep (24 runs): warm pool vs cold start", c / w, "x faster", "<= 3 s warm, >= 4x",
                  w <= 3.0 and c / w >= 4,
                  f"warm {w:.1f}s, cold {c:.1f}s (medians of {repeats}, {SETTLE_S:g} s apart; cold ones with no pool up, "
                  f"{before} before it started, {repeats - before} after it stopped); the first sweep on a new "
                  f"pool {first:.1f}s; python -m harness up {up:.1f}s once; warm: {split('warm')} (after Python's "
                  f"own start); cold: {split('cold')}")


# ------------------------------------------------------------------ 11: many trivial runs

SCALE_ARGS = ["sweep=smoke", "sweep.name=scale", "sweep.scenario=[normalization]", "sweep.data_size=[100]",
              "sweep.precision=[fp32]"]


def _proc_sample(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, resident bytes) of one process, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    rss = next((int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmRSS:")), 0)
    return (int(stat[11]) + int(stat[12])) / ticks, float(rss)  # utime + stime of this process alone


def _watched(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS bytes) of the command's own process (the driver, not its Ray workers),
    sampled every 0.2 s from /proc."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = cpu = 0.0
    while proc.poll() is None:
        got = _proc_sample(proc.pid)
        if got is not None:
            cpu, peak = got[0], max(peak, got[1])
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.read().strip()[-400:]}")
    return wall, cpu, peak


def _slope(ns: list[int], ys: list[float]) -> float:
    """Log-log slope of a cost against the number of runs (1: linear, 0: flat)."""
    import numpy as np

    ok = [(n, y) for n, y in zip(ns, ys) if y > 0]
    if len(ok) < 2:
        return float("nan")
    x, y = np.log10([n for n, _ in ok]), np.log10([y for _, y in ok])
    return float(np.polyfit(x, y, 1)[0])


def fig_scale(sizes: list[int]) -> Figure:
    """Sweeps of N trivial runs (normalization at 100 rows, fp32: microseconds of arithmetic) for each N
    of ``sizes``: runs per second (Ray start included), the engine's time per run (median wall_s), the
    driver's CPU per run and peak memory, the store's size, and the time to load, report and resume;
    and how each grows with N (log-log slope over ``sizes``)."""
    from harness import load_results

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in sizes:
            store = root / f"n{n}"
            cmd = [sys.executable, "-m", "harness", *SCALE_ARGS, f"sweep.seed=range(0,{n})", f"store.root={store}"]
            wall, cpu, peak = _watched(cmd, root)
            out = store / "scale"
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
            t0 = time.perf_counter()
            df = load_results(out)
            load = time.perf_counter() - t0
            engine = float(df.drop_duplicates("run_id")["wall_s"].median())
            assert df["run_id"].nunique() == n, (n, df["run_id"].nunique())
            del df
            report = _timed([sys.executable, "-m", "harness.report", str(out), "--out", str(root / f"rep{n}")],
                            dict(os.environ), root)
            resume = _timed(cmd, dict(os.environ), root)
            rows.append(dict(n=n, wall=wall, cpu=cpu, peak=peak, size=size, load=load, engine=engine, report=report,
                             resume=resume))
            print(f"  scale {n:,} runs: {rows[-1]}", file=sys.stderr)
    big = rows[-1]
    ns = [r["n"] for r in rows]
    slopes = {k: _slope(ns, [r[k] for r in rows]) for k in ("wall", "cpu", "peak", "size", "load", "report", "resume")}
    rate = big["n"] / big["wall"]
    cpu_ms, engine_ms = big["cpu"] / big["n"] * 1e3, big["engine"] * 1e3
    resume_pct = big["resume"] / big["wall"] * 100
    met = rate >= 50 and engine_ms <= 20 and cpu_ms <= 5 and big["peak"] <= 2**30 and resume_pct <= 5
    growth = ", ".join(f"{k} {v:.2f}" for k, v in slopes.items())
    return Figure("11", f"{big['n']:,} trivial runs (normalization, 100 rows)", rate, "runs/s",
                  ">= 50 runs/s, engine <= 20 ms/run, driver <= 5 ms/run, <= 1 GiB, resume <= 5%", met,
                  f"wall {big['wall']:.0f}s; engine {engine_ms:.1f} ms/run (median wall_s); driver CPU "
                  f"{cpu_ms:.2f} ms/run, peak {big['peak'] / 2**20:.0f} MiB; store {big['size'] / 2**20:.1f} MiB; "
                  f"load {big['load']:.1f}s, report {big['report']:.1f}s, resume {big['resume']:.1f}s "
                  f"({resume_pct:.1f}%); log-log slope over {', '.join(f'{n:,}' for n in ns)} runs: {growth}")


# ------------------------------------------------------------------ the table

def _key_order(key: str) -> tuple[int, str]:
    digits = "".join(ch for ch in key if ch.isdigit())
    return int(digits or 0), key


def update_readme(figs: list[Figure], command: str) -> None:
    """Rewrite docs/benchmarks.md's table: the figures measured now replace their rows, the others keep
    theirs, and each row's provenance (the command, date and CPU count that measured it) is listed."""
    path = ROOT / "docs" / "benchmarks.md"
    old = read_block(path, "bench")
    rows = {ln.split("|")[1].strip(): ln for ln in old.splitlines()
            if ln.startswith("| ") and not ln.startswith("| # ") and ln.count("|") >= 7}
    origin: dict[str, str] = {}
    for ln in old.splitlines():
        if ln.startswith("- figure"):  # "- figures 1, 2: `cmd` on DATE (N CPUs)"
            keys, _, how = ln[2:].partition(": ")
            for k in keys.split(" ", 1)[1].split(", "):
                origin[k] = how
        elif ln.startswith("Produced by `"):  # the single-command form of earlier tables
            how = ln[len("Produced by "):].rstrip(":")
            origin.update({k: how for k in rows})
    new_rows = table(figs).splitlines()[2:]
    now = f"`{command}` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPUs)"
    for f, ln in zip(figs, new_rows):
        rows[f.key], origin[f.key] = ln, now
    keys = sorted(rows, key=_key_order)
    by_how: dict[str, list[str]] = {}
    for k in keys:
        by_how.setdefault(origin.get(k, "unknown"), []).append(k)
    provenance = "\n".join(f"- figure{'s' if len(ks) > 1 else ''} {', '.join(ks)}: {how}" for how, ks in by_how.items())
    md = "\n".join([*table([]).splitlines(), *(rows[k] for k in keys)])
    write_block(path, "bench", f"Each row was measured by the command listed for it:\n\n{provenance}\n\n{md}")


def compile_package() -> None:
    """Python writes a module's bytecode cache as it first imports it, unless PYTHONDONTWRITEBYTECODE is
    set (it is on the machine of docs/benchmarks.md): then every process the bench starts compiles the
    harness's modules from source again, which a user's sweeps do only once. So the bench writes the
    caches first, as a first import would (compileall; the sources are unchanged)."""
    import compileall

    compileall.compile_dir(ROOT / "harness", quiet=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=[], help="figure numbers to run (1 2 ... 11)")
    ap.add_argument("--processes", type=int, default=3,
                    help="fresh processes in which figures 1, 2, 3a are each measured (median of their ratios)")
    ap.add_argument("--repeats", type=int, default=9,
                    help="interleaved samples of each side per process for figures 1, 2, 3a")
    ap.add_argument("--steps", type=int, default=25000, help="steps per run of the 48-run sweep")
    ap.add_argument("--sample-steps", type=int, default=5000, help="steps per timed sample of figures 1, 2, 3a")
    ap.add_argument("--sweep-repeats", type=int, default=3,
                    help="cold 48-run sweeps of figure 4, one after another, an odd number (the median ratio is the figure)")
    ap.add_argument("--per-process-runs", type=int, default=24,
                    help="how many of the 48 runs to time as processes (a fixed random sample; 48 for all)")
    ap.add_argument("--report-rows", type=int, default=1_000_000)
    ap.add_argument("--load-repeats", type=int, default=3, help="interleaved samples of each side for figure 9")
    ap.add_argument("--load-runs", type=int, default=100_000, help="runs of figure 9's large sweep")
    ap.add_argument("--warm-repeats", type=int, default=3, help="cold and warm smoke sweeps of figure 10, each")
    ap.add_argument("--scale-runs", default="1000,10000,100000",
                    help="figure 11's sweep sizes (comma-separated; the growth is fitted over them)")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"))
    ap.add_argument("--readme", action="store_true", help="rewrite the table between the bench markers of docs/benchmarks.md")
    ap.add_argument("--pair", choices=sorted(PAIRS), help=argparse.SUPPRESS)  # a child of measure_pair
    a = ap.parse_args()
    if a.sweep_repeats < 1 or a.sweep_repeats % 2 == 0:
        ap.error(f"--sweep-repeats: an odd number of sweeps (the median is one of them), got {a.sweep_repeats}")
    if a.pair:
        from harness.engine import init_worker

        init_worker(1)  # as in an actor with one CPU
        print(json.dumps(median_interleaved(PAIRS[a.pair](a.sample_steps), a.repeats)))
        return 0
    want = set(a.only) or {str(i) for i in range(1, 12)}
    compile_package()
    t0 = time.perf_counter()
    figs: list[Figure] = []
    if "1" in want:
        figs.append(fig_seed_loop(a.processes, a.repeats, a.sample_steps))
    if "2" in want:
        figs.append(fig_overhead(a.processes, a.repeats, a.sample_steps))
    if "3" in want:
        figs += [fig_flat(a.processes, a.repeats, a.sample_steps), fig_memory()]
    if want & {"4", "5", "6"}:
        figs += [f for f in fig_sweeps(a.steps, a.per_process_runs, want, a.sweep_repeats) if f.key in want]
    if "7" in want:
        figs.append(fig_report(a.report_rows))
    if "8" in want:
        figs.append(fig_detectors(a.processes, a.repeats, min(a.sample_steps, 2000)))
    if "9" in want:
        figs += fig_loading(a.load_repeats, a.load_runs)
    if "10" in want:
        figs.append(fig_warm(a.warm_repeats))
    if "11" in want:
        figs.append(fig_scale([int(n) for n in a.scale_runs.split(",")]))
    md = table(figs)
    print(md)
    print(f"\nbench took {time.perf_counter() - t0:.0f}s")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    doc = {"figures": [asdict(f) for f in figs], "argv": sys.argv[1:], "cpus": os.cpu_count()}
    (out / f"bench-{stamp}.json").write_text(json.dumps(doc, indent=2, default=lambda o: o.item()))
    if a.readme:
        update_readme(figs, " ".join(["python scripts/bench.py", *(a for a in sys.argv[1:] if a != "--readme")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
