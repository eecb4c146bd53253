"""Reusing traced code across the runs of a worker that share a structure.

Tracing a scenario's training loop and final evaluation and instantiating them in TF's
runtime cost 0.1 to several seconds per run, far more than the arithmetic of a short run
(normalization at 100 rows computes for microseconds). A scenario with the class attribute
``reuse_trace = True`` promises that its compiled code (train_step and evaluate) reads a run only through

  * the tensors build() returns (the loop takes them as arguments),
  * the tensors build() leaves in the scenario's attributes, directly or in lists, tuples
    and dicts (the final evaluation takes them as arguments, see harness.engine.held),
  * the tf.Variables build() creates (model, optimizer, seed generators, ...),
  * the batch and the step,

plus Python values fixed by its parameters, the precision, the clip value and the batch
size (the structure; the cache key adds the data's dtypes and trailing shapes). It uses
no stateful TF random ops, in its compiled code or in build(); it does not read ctx.seed,
ctx.steps or ctx.data_size in train_step or evaluate(), and extras() does not read Python
attributes that train_step or evaluate() set while they are traced (a reused run traces
nothing on its own scenario; once a structure is hot, its loop is traced once more, unrolled,
on the structure's template, so train_step's Python runs several more times then: it must do
the same each time it is traced). Then each run still builds its scenario afresh (seeded model initialisation,
data), and the first run of a structure traces the loop and the final evaluation; a later
run copies its freshly built variables into the traced run's variables, runs the traced
loop on its own data and seed and the traced evaluation on the tensors its scenario holds,
and copies the results back, so extras() sees them on the run's own scenario. Only the
first run of a structure starts in a fresh Keras/TF session (runtime.begin_run). The
results are bit-identical to a run traced on its own (tested for the built-in scenarios).

Violations that can be detected are errors (ScenarioReuseError): traced code that
captures a tensor which is not one of those variables (e.g. a statistic computed in
build() held inside a Keras layer), or that uses stateful random ops, and a build() that
runs stateful random ops (watched on a structure's first run).
"""

from __future__ import annotations

import copy
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from harness.checks import Check, CheckState
from harness.compat import tensorflow as compat_tf
from harness.engine.held import Held, LayoutMismatch, held_tensors, replace_held
from harness.engine.loop import CompiledFinal, CompiledLoop, LoopOutput, compile_final, compile_loop

log = logging.getLogger(__name__)
CACHE_SIZE = 8  # structures kept per worker; an entry holds one model's variables
FINALS_PER_STRUCTURE = 8  # final evaluations kept per structure: one per held-tensor signature (data size)


class ScenarioReuseError(TypeError):
    """A scenario declared reuse_trace = True but its compiled code depends on something else."""


@dataclass
class _Entry:
    """One structure's traced code and the variables it reads and writes (the traced run's)."""

    variables: list[Any]
    template: Any  # the traced run's scenario without its held tensors: later final evaluations trace on it
    loop: CompiledLoop | None  # None for a scenario that does not train
    finals: OrderedDict[tuple, CompiledFinal | None] = field(default_factory=OrderedDict)
    shared: list[int] = field(default_factory=list)  # variables some traced function captures: those copied


_cache: OrderedDict[Hashable, _Entry] = OrderedDict()
_traces = 0
_final_traces = 0


def clear() -> None:
    _cache.clear()


def cached_structures() -> int:
    return len(_cache)


def traces() -> int:
    """How many structures this worker has traced (each traces its loop, if it trains)."""
    return _traces


def final_traces() -> int:
    """How many final evaluations this worker has traced for reuse."""
    return _final_traces


def promised(scenario: Any) -> bool:
    """Whether the scenario's own class sets reuse_trace = True (a promise, so not inherited)."""
    return bool(vars(type(scenario)).get("reuse_trace", False))


def known(structure: tuple) -> bool:
    """Whether a loop of this structure (RunSpec.structure()) is cached, whatever its data's dtypes."""
    return any(key[:len(structure)] == structure for key in _cache if isinstance(key, tuple))


@contextmanager
def recording_variables() -> Iterator[list[Any]]:
    """Collect every tf.Variable created inside the block, in creation order."""
    import tensorflow as tf

    created: list[Any] = []

    def creator(next_creator: Callable[..., Any], **kwargs: Any) -> Any:
        v = next_creator(**kwargs)
        created.append(v)
        return v

    with tf.variable_creator_scope(creator):
        yield created


def _is_stateful_random(op_type: str) -> bool:
    """A random op whose kernel keeps its generator's state (or a stateful-RNG op): its stream
    depends on what ran before it in the process."""
    return (("Random" in op_type or op_type.startswith("Stateful") or op_type in ("Multinomial", "TruncatedNormal",
                                                                                 "ParameterizedTruncatedNormal"))
            and compat_tf.is_stateful(op_type))


def can_keep_sessions() -> bool:
    """Whether runs of a structure may keep the session: only where a structure's first build() can
    be watched for stateful random ops (watching_random_ops), which a kept session would not reset."""
    return compat_tf.can_watch_eager_ops()


@contextmanager
def watching_random_ops(active: bool = True) -> Iterator[list[str]]:
    """Collect the types of the stateful random ops executed eagerly inside the block.

    They are what a kept session (runtime.begin_run) would not reset between runs: TF clears
    their kernels' state only with its kernel caches. An op callback slows every eager op, so
    the engine watches a reuse_trace scenario's build() once per structure (``active``). Where
    TF's op callbacks are unavailable nothing is seen, and no session is kept (can_keep_sessions)."""
    seen: list[str] = []
    if not active:
        yield seen
        return
    with compat_tf.watching_eager_ops() as ops:
        try:
            yield seen
        finally:
            seen.extend(t for t in ops or () if _is_stateful_random(t))


def check_build(scenario: Any, random_ops: Sequence[str]) -> None:
    """Raise ScenarioReuseError when a reuse_trace scenario's build() ran stateful random ops."""
    if random_ops:
        raise ScenarioReuseError(
            f"{type(scenario).__name__} sets reuse_trace = True, but its build() runs stateful random ops "
            f"({', '.join(sorted(set(random_ops)))}); use stateless ops seeded from ctx.data_seed(...) "
            f"(tf.random.stateless_*), keras.random with a seed, or numpy, or remove reuse_trace")


def _signature(variables: Sequence[Any]) -> tuple:
    return tuple((v.name, v.dtype.name, str(v.shape)) for v in variables)


def _stateful_random_ops(fn: CompiledLoop | CompiledFinal) -> list[str]:
    """Stateful random ops in traced code: their seed is fixed when traced and their
    state lives in the kernel, so a reused trace would replay the first run's stream."""
    return sorted({t for t in fn.op_types() if _is_stateful_random(t)})


def _check_promise(scenario: Any, fn: CompiledLoop | CompiledFinal, variables: Sequence[Any]) -> None:
    """Raise ScenarioReuseError for what can be detected of a broken reuse_trace promise."""
    what = "compiled loop" if isinstance(fn, CompiledLoop) else "compiled final evaluation"
    stateful = _stateful_random_ops(fn)
    if stateful:
        raise ScenarioReuseError(
            f"{type(scenario).__name__} sets reuse_trace = True, but its {what} uses stateful random ops "
            f"({', '.join(stateful)}); use stateless ops seeded from a variable (e.g. keras.random with a "
            f"SeedGenerator, as Keras layers do) or remove reuse_trace")
    handles = {id(v.handle) for v in variables}
    foreign = [t for t in fn.captured_inputs if id(t) not in handles]
    if foreign:
        t = foreign[0]
        owner = _owner(scenario, t)
        if owner is not None:  # a variable made once, outside build(): every run would share its state
            where, var = owner
            key = re.search(r"\.compile_args\[('[^']+')\]", where)
            kind = where.rsplit("(", 1)[-1].rstrip(")")
            fix = (f"make it in compile_kwargs(), which runs for every run (return {{**self.compile_args, "
                   f"{key.group(1)}: ... a new {kind}(...) ...}}), not in the class-level compile_args" if key
                   else "create it in build()")
            raise ScenarioReuseError(
                f"{type(scenario).__name__} sets reuse_trace = True, but its {what} captures the variable "
                f"{var.name!r} of {where}, which was not created in build(): it was made once, so every run "
                f"would share its state. Fix: {fix}; or remove reuse_trace")
        raise ScenarioReuseError(
            f"{type(scenario).__name__} sets reuse_trace = True, but its {what} captures "
            f"{len(foreign)} tensor(s) that are not variables created in build() (e.g. {t.dtype.name} of shape "
            f"{list(t.shape)}); keep per-run values in tf.Variables, in the data build() returns or in "
            f"attributes of the scenario, or remove reuse_trace")


def _owner(scenario: Any, handle: Any, depth: int = 4) -> tuple[str, Any] | None:
    """(where, variable): the object reachable from the scenario (its attributes, its class's
    attributes, their items, a Keras object's ``variables``) that holds the variable whose handle a
    traced function captured, named as a Python path (``LeNet.compile_args['optimizer'] (Adam)``);
    None when none is found within ``depth`` steps."""
    seen: set[int] = set()
    cls = type(scenario)
    # the class's attributes first: an object made once, at class level, is what a fix must move
    todo: list[tuple[str, Any, int]] = [(f"{c.__name__}.{k}", v, 1) for c in cls.__mro__[:-1]
                                        for k, v in vars(c).items() if not k.startswith("__")]
    todo.append((f"{cls.__name__}()", scenario, 0))
    while todo:
        path, obj, d = todo.pop(0)
        if id(obj) in seen or d > depth or callable(obj) and not hasattr(obj, "variables"):
            continue
        seen.add(id(obj))
        for var in _variables_of(obj):
            if getattr(var, "handle", None) is handle:
                kind = type(obj).__name__
                return (f"{path} ({kind})" if not path.endswith(f"({kind})") else path), var
        if isinstance(obj, dict):
            todo += [(f"{path}[{k!r}]", v, d + 1) for k, v in obj.items()]
        elif isinstance(obj, (list, tuple)):
            todo += [(f"{path}[{i}]", v, d + 1) for i, v in enumerate(obj)]
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            todo += [(f"{path}.{k}", v, d + 1) for k, v in vars(obj).items() if not k.startswith("__")]
    return None


def _variables_of(obj: Any) -> list[Any]:
    """The variables an object holds as a Keras object does (``obj.variables``), or itself if it is one."""
    if hasattr(obj, "handle") and hasattr(obj, "assign"):
        return [obj]
    try:
        found = getattr(obj, "variables", None)
        return list(found) if isinstance(found, (list, tuple)) else []
    except Exception:  # a property that raises before the object is built
        return []


def _shared(entry: _Entry) -> list[int]:
    """Indices of the entry's variables that its traced functions capture (the others are never
    read or written by them, so they need no copy)."""
    fns = [f for f in (entry.loop, *entry.finals.values()) if f is not None]
    captured = {id(t) for f in fns for t in f.captured_inputs}
    return [i for i, v in enumerate(entry.variables) if id(v.handle) in captured]


def _template(scenario: Any, held: Held) -> Any:
    """A shallow copy of the traced run's scenario (its model, its variables) without the tensors
    it holds, which later runs pass in their place: the cache keeps no run's data."""
    template = copy.copy(scenario)
    replace_held(template, held.paths, [None] * len(held.paths))
    return template


def _final(entry: _Entry, scenario: Any, checks: Sequence[Check], held: Held) -> CompiledFinal | None:
    """The entry's final evaluation for tensors like ``held``, traced on the entry's template
    (so it reads the entry's variables) the first time. Raises LayoutMismatch when the template
    cannot hold them (the run holds tensors where the traced run held none)."""
    global _final_traces
    key = held.signature()
    if key in entry.finals:
        entry.finals.move_to_end(key)
        return entry.finals[key]
    final = compile_final(entry.template, checks, held)
    if final is not None:
        _final_traces += 1
        _check_promise(scenario, final, entry.variables)
    entry.finals[key] = final
    while len(entry.finals) > FINALS_PER_STRUCTURE:
        entry.finals.popitem(last=False)
    entry.shared = _shared(entry)
    return final


def _lookup(key: Hashable, scenario: Any, variables: list[Any]) -> _Entry | None:
    entry = _cache.get(key)
    if entry is None:
        return None
    if _signature(entry.variables) != _signature(variables):
        log.warning("%s: the variables built for this run differ from the traced run's (names, dtypes or shapes); "
                    "tracing again", type(scenario).__name__)
        return None
    _cache.move_to_end(key)
    return entry


def _create(key: Hashable, scenario: Any, variables: list[Any], data: Sequence[Any], checks: Sequence[Check],
            held: Held, *, trains: bool, batch_size: int | None) -> _Entry:
    """Trace a structure's loop (if it trains) on this run's scenario and cache it."""
    global _traces
    loop = None
    if trains:
        loop = compile_loop(scenario, data, checks, batch_size=int(batch_size or 0))
        _check_promise(scenario, loop, variables)
    _traces += 1
    entry = _Entry(list(variables), _template(scenario, held), loop)
    if loop is not None:
        loop.rebind(entry.template)  # a later, unrolled variant is traced on it: the cache keeps no run's tensors
    _cache[key] = entry
    _cache.move_to_end(key)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return entry


def _copy(source: Sequence[Any], target: Sequence[Any], indices: Sequence[int]) -> None:
    """target[i] = source[i], bit for bit. Two raw ops cost a third of Variable.assign, whose
    Python checks the equal signatures (dtypes, shapes) make redundant."""
    import tensorflow as tf

    for i in indices:
        s, t = source[i], target[i]
        tf.raw_ops.AssignVariableOp(resource=t.handle, value=tf.raw_ops.ReadVariableOp(resource=s.handle, dtype=s.dtype))


def run_reusing(key: Hashable, scenario: Any, variables: list[Any], data: Sequence[Any], checks: Sequence[Check],
                *, trains: bool, steps: int, batch_size: int | None, seed: int,
                mark: Callable[[str], None] = lambda phase: None) -> tuple[LoopOutput, dict[str, CheckState]]:
    """Train like loop.train (if the scenario trains) and evaluate the final checks, reusing
    the code traced for an earlier run with ``key``; returns the loop's output and the final
    checks' states. ``variables``: those the scenario's build() created for this run, in
    creation order (see recording_variables). ``mark(phase)`` is told as each phase ends
    (trace, copy, run, final)."""
    held = held_tensors(scenario)
    entry = _lookup(key, scenario, variables)
    if entry is None:
        entry = _create(key, scenario, variables, data, checks, held, trains=trains, batch_size=batch_size)
    try:
        final = _final(entry, scenario, checks, held)
    except LayoutMismatch as exc:
        raise ScenarioReuseError(f"{type(scenario).__name__} sets reuse_trace = True, but this run holds tensors in "
                                 f"attributes where the traced run held none ({exc}); keep the same attributes "
                                 f"in every run, or remove reuse_trace") from exc
    if entry.loop is not None:
        known = len(entry.loop.variants)
        entry.loop.prepare(steps)  # a hot loop's unrolled variant is traced here the first time
        if len(entry.loop.variants) > known:
            _check_promise(scenario, entry.loop, entry.variables)
            entry.shared = _shared(entry)
    mark("trace")
    own = len(entry.variables) == len(variables) and all(a is b for a, b in zip(entry.variables, variables))
    if not own:
        _copy(variables, entry.variables, entry.shared)
    mark("copy")
    out = entry.loop.run(data, steps=steps, seed=seed) if entry.loop is not None else LoopOutput({}, {}, 0.0)
    mark("run")
    states = final.run(held.tensors, step=steps) if final is not None else {}
    mark("final")
    if not own:
        _copy(entry.variables, variables, entry.shared)
    mark("copy")
    return out, states
