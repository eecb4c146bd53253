"""Reusing a traced training loop across the runs of a worker that share a structure.

Tracing the loop and instantiating it in TF's runtime cost about 0.5 s per run, more
than the whole training of a short run. A scenario with the class attribute
``reuse_trace = True`` promises that its compiled code reads a run only through

  * the tensors build() returns (the loop takes them as arguments),
  * the tf.Variables build() creates (model, optimizer, seed generators, ...),
  * the batch and the step,

plus Python values fixed by its parameters, the precision, the clip value and the batch
size (the structure; the cache key adds the data's dtypes and trailing shapes). It uses
no stateful TF random ops, does not read ctx.seed, ctx.steps or ctx.data_size inside
train_step, and evaluate()/extras() do not read Python attributes that train_step sets
while it is traced (a reused run never traces). Then each run still builds its scenario afresh
(seeded model initialisation, data), and the first run of a structure traces the loop;
a later run copies its freshly built variables into the traced run's variables, runs the
traced loop on its own data and seed, and copies the trained values back, so evaluate()
and extras() see them on the run's own scenario. The results are bit-identical to a
run traced on its own (tested for the built-in scenarios).

Violations that can be detected are errors (ScenarioReuseError): a loop that captures a
tensor which is not one of those variables (e.g. a statistic computed in build()), or
that uses stateful random ops.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from harness.checks import Check
from harness.engine.loop import CompiledLoop, LoopOutput, compile_loop

log = logging.getLogger(__name__)
CACHE_SIZE = 8  # structures kept per worker; an entry holds one model's variables


class ScenarioReuseError(TypeError):
    """A scenario declared reuse_trace = True but its compiled loop depends on something else."""


@dataclass
class _Entry:
    loop: CompiledLoop
    variables: list[Any]


_cache: OrderedDict[Hashable, _Entry] = OrderedDict()
_traces = 0


def clear() -> None:
    _cache.clear()


def cached_structures() -> int:
    return len(_cache)


def traces() -> int:
    """How many loops this worker has traced through train_reusing."""
    return _traces


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


def _signature(variables: Sequence[Any]) -> tuple:
    return tuple((v.name, v.dtype.name, str(v.shape)) for v in variables)


def _stateful_random_ops(loop: CompiledLoop) -> list[str]:
    """Stateful random ops in the traced loop: their seed is fixed when traced and their
    state lives in the kernel, so a reused trace would replay the first run's stream."""
    return sorted({op.type for op in loop.operations()
                   if op.op_def.is_stateful and ("Random" in op.type or op.type.startswith("Stateful")
                                                 or op.type == "Multinomial")})


def _check_promise(scenario: Any, loop: CompiledLoop, variables: Sequence[Any]) -> None:
    """Raise ScenarioReuseError for what can be detected of a broken reuse_trace promise."""
    stateful = _stateful_random_ops(loop)
    if stateful:
        raise ScenarioReuseError(
            f"{type(scenario).__name__} sets reuse_trace = True, but its compiled loop uses stateful random ops "
            f"({', '.join(stateful)}); use stateless ops seeded from a variable (e.g. keras.random with a "
            f"SeedGenerator, as Keras layers do) or remove reuse_trace")
    handles = {id(v.handle) for v in variables}
    foreign = [t for t in loop.fn.captured_inputs if id(t) not in handles]
    if foreign:
        t = foreign[0]
        raise ScenarioReuseError(
            f"{type(scenario).__name__} sets reuse_trace = True, but its compiled loop captures "
            f"{len(foreign)} tensor(s) that are not variables created in build() (e.g. {t.dtype.name} of shape "
            f"{list(t.shape)}); keep per-run values in tf.Variables or in the data build() returns, "
            f"or remove reuse_trace")


def _copy(source: Sequence[Any], target: Sequence[Any]) -> None:
    for s, t in zip(source, target):
        t.assign(s)


def train_reusing(key: Hashable, scenario: Any, variables: list[Any], data: Sequence[Any], checks: Sequence[Check],
                  *, steps: int, batch_size: int, seed: int) -> LoopOutput:
    """Train like loop.train, reusing the loop traced for an earlier run with ``key``.

    ``variables``: the variables the scenario's build() created for this run, in creation
    order (see recording_variables)."""
    global _traces
    entry = _cache.get(key)
    if entry is not None and _signature(entry.variables) == _signature(variables):
        _cache.move_to_end(key)
        _copy(variables, entry.variables)
        out = entry.loop.run(data, steps=steps, seed=seed)
        _copy(entry.variables, variables)
        return out
    if entry is not None:
        log.warning("%s: the variables built for this run differ from the traced run's (names, dtypes or shapes); "
                    "tracing again", type(scenario).__name__)
    loop = compile_loop(scenario, data, checks, batch_size=batch_size)
    _traces += 1
    _check_promise(scenario, loop, variables)
    _cache[key] = _Entry(loop, list(variables))
    _cache.move_to_end(key)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return loop.run(data, steps=steps, seed=seed)
