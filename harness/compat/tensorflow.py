"""TensorFlow's private names the harness reaches, each with its public fallback (docs/engine.md,
"Private reaches")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from harness.compat import fallback

ONEDNN = "tensorflow.python.util._pywrap_util_port.IsMklEnabled"
OP_DEF = "tensorflow.python.framework.op_def_registry.get"
OP_CALLBACKS = "tensorflow.python.framework.op_callbacks"
NESTED_GRAPHS = "tensorflow.Graph._functions"


def onednn_enabled() -> bool | None:
    """Whether TensorFlow's oneDNN rewrite is on in this process, as TF's own tests ask it
    (test_util.IsMklEnabled); TF has no public call for it. Fallback: False when
    TF_ENABLE_ONEDNN_OPTS turns it off (TF reads that variable), else None (cannot tell)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError, TypeError) as exc:
        fallback(ONEDNN, f"{type(exc).__name__}: {exc}")
    return False if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false") else None


def _op_def_lookup() -> Callable[[str], Any] | None:
    try:
        from tensorflow.python.framework import op_def_registry

        return op_def_registry.get
    except (ImportError, AttributeError) as exc:
        fallback(OP_DEF, f"{type(exc).__name__}: {exc}")
        return None


def is_stateful(op_type: str) -> bool:
    """Whether ops of this type are stateful (their OpDef's is_stateful), looked up by name in TF's
    op registry. Fallback, by the naming TF keeps for its random ops: a name with ``Random`` or
    ``Multinomial`` in it or starting with ``Stateful``, and not starting with ``Stateless``. The two
    disagree on a few ops (tests/test_compat.py lists them); the fallback errs towards stateful."""
    get = _op_def_lookup()
    if get is not None:
        try:
            op_def = get(op_type)
            return bool(op_def is not None and op_def.is_stateful)
        except (AttributeError, TypeError) as exc:
            fallback(OP_DEF, f"{type(exc).__name__}: {exc}")
    return (("Random" in op_type or "Multinomial" in op_type or "TruncatedNormal" in op_type
             or op_type.startswith("Stateful")) and not op_type.startswith("Stateless"))


def _op_callbacks() -> Any | None:
    try:
        from tensorflow.python.framework import op_callbacks

        if not (callable(op_callbacks.add_op_callback) and callable(op_callbacks.remove_op_callback)):
            raise AttributeError("add_op_callback/remove_op_callback are not functions")
        return op_callbacks
    except (ImportError, AttributeError) as exc:
        fallback(OP_CALLBACKS, f"{type(exc).__name__}: {exc}")
        return None


def can_watch_eager_ops() -> bool:
    """Whether watching_eager_ops() can see the ops executed eagerly (else its fallback ran: the
    engine then starts every run in a fresh session, which resets what it could not watch)."""
    return _op_callbacks() is not None


@contextmanager
def watching_eager_ops() -> Iterator[list[str] | None]:
    """The types of the ops executed eagerly inside the block, in order, through TF's op callbacks
    (what tf.debugging.enable_check_numerics is built on; TF exports no call to register one).
    Yields None when they are unavailable (the fallback: nothing is watched)."""
    callbacks = _op_callbacks()
    if callbacks is None:
        yield None
        return
    seen: list[str] = []

    def callback(op_type: Any, inputs: Any, attrs: Any, outputs: Any, op_name: Any = None,
                 graph: Any = None) -> None:
        if graph is None:  # eager; ops being added to a graph (tracing) are called with their graph
            seen.append(op_type.decode() if isinstance(op_type, bytes) else str(op_type))

    callbacks.add_op_callback(callback)
    try:
        yield seen
    finally:
        callbacks.remove_op_callback(callback)


def _nested_graphs(graph: Any) -> list[Any] | None:
    """The graphs of the functions ``graph`` calls (a while loop's body and condition, ...), as TF
    keeps them; None when it keeps them elsewhere (the fallback was logged)."""
    try:
        functions = graph._functions
        return [f.graph for f in functions.values() if hasattr(f, "graph")]
    except (AttributeError, TypeError) as exc:
        fallback(NESTED_GRAPHS, f"{type(exc).__name__}: {exc}")
        return None


def operations(fn: Any) -> list[Any]:
    """Every op (tf.Operation) of a concrete function: its graph's and those of the functions it calls.
    Fallback: its graph's ops only (op_types() stays complete without the reach)."""
    nested = _nested_graphs(fn.graph)
    return [op for g in [fn.graph, *(nested or [])] for op in g.get_operations()]


def op_types(fn: Any) -> list[str]:
    """The type of every op of a concrete function, those of the functions it calls included.
    Fallback: read off the function's GraphDef (tf.Graph.as_graph_def: its nodes and its function
    library), which serialises the whole graph."""
    nested = _nested_graphs(fn.graph)
    if nested is not None:
        return [op.type for g in [fn.graph, *nested] for op in g.get_operations()]
    graph_def = fn.graph.as_graph_def()
    return [n.op for n in graph_def.node] + [n.op for f in graph_def.library.function for n in f.node_def]
