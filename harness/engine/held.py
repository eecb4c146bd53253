"""The tensors a scenario holds, and swapping them for a traced function's arguments.

A scenario's evaluate() reads what build() left on ``self``: the data (``self.x``), tensors
derived from it, held-out rows. A tf.function that reads them captures them: as a
placeholder fed the first run's tensor or, for a tensor of at most 128 elements, as a
constant of its value. Either way the trace belongs to one run. Traced with those tensors
swapped for arguments instead, the final evaluation of a reuse_trace scenario serves every
run of its structure: each run passes the tensors its own scenario holds (harness.engine.reuse).

Held tensors are the eager tensors in the scenario's attributes, directly or inside lists,
tuples and dicts (nested), found in a fixed order: attributes by name, containers in their order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

Path = tuple[Any, ...]  # (attribute name, index or key, ...)


@dataclass(frozen=True)
class Held:
    """Where a scenario holds tensors (``paths``) and the tensors, one per path (a tensor held
    at several places appears once in ``tensors``; ``slots[i]`` is the index of path i's)."""

    paths: tuple[Path, ...]
    slots: tuple[int, ...]
    tensors: tuple[Any, ...]

    def signature(self) -> tuple:
        """What a trace taking these tensors as arguments depends on: where they are held and
        their dtypes and exact shapes (the graph a fresh trace builds sees the same static shapes)."""
        return (self.paths, self.slots, tuple((t.dtype.name, tuple(t.shape)) for t in self.tensors))

    def specs(self) -> list[Any]:
        import tensorflow as tf

        return [tf.TensorSpec(t.shape, t.dtype) for t in self.tensors]


def _is_eager_tensor(value: Any) -> bool:
    import tensorflow as tf

    return isinstance(value, tf.Tensor) and not tf.is_symbolic_tensor(value)


def _children(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        yield from value.items()
    elif isinstance(value, (list, tuple)):
        yield from enumerate(value)


def held_tensors(scenario: Any) -> Held:
    """The eager tensors ``scenario`` holds in its attributes (see the module docstring)."""
    paths: list[Path] = []
    slots: list[int] = []
    tensors: list[Any] = []
    index: dict[int, int] = {}
    visiting: set[int] = set()  # a container holding itself is walked once

    def walk(path: Path, value: Any) -> None:
        if _is_eager_tensor(value):
            if id(value) not in index:
                index[id(value)] = len(tensors)
                tensors.append(value)
            paths.append(path)
            slots.append(index[id(value)])
        elif isinstance(value, (Mapping, list, tuple)) and id(value) not in visiting:
            visiting.add(id(value))
            for key, child in _children(value):
                walk((*path, key), child)
            visiting.discard(id(value))

    attributes = getattr(scenario, "__dict__", {})  # a class with __slots__ only holds nothing found here
    for name in sorted(attributes):
        walk((name,), attributes[name])
    return Held(tuple(paths), tuple(slots), tuple(tensors))


class LayoutMismatch(LookupError):
    """The object has no container at a path where the run holds a tensor."""


def _replaced(value: Any, entries: Sequence[tuple[Path, Any]]) -> Any:
    """``value`` with the leaf at each relative path replaced (containers rebuilt, not mutated)."""
    if any(not path for path, _ in entries):
        return next(new for path, new in entries if not path)
    if not isinstance(value, (Mapping, list, tuple)):
        raise LayoutMismatch(f"{type(value).__name__} is not a container")
    groups: dict[Any, list[tuple[Path, Any]]] = {}
    for path, new in entries:
        groups.setdefault(path[0], []).append((path[1:], new))
    if isinstance(value, Mapping):
        missing = [k for k in groups if k not in value]
        if missing:
            raise LayoutMismatch(f"no key {missing[0]!r}")
        return type(value)({k: _replaced(v, groups[k]) if k in groups else v for k, v in value.items()})
    if any(not isinstance(k, int) or not 0 <= k < len(value) for k in groups):
        raise LayoutMismatch("no such index")
    items = [_replaced(v, groups[i]) if i in groups else v for i, v in enumerate(value)]
    if isinstance(value, list):
        return items
    return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)  # a namedtuple or a tuple


def replace_held(obj: Any, paths: Sequence[Path], values: Sequence[Any]) -> dict[str, Any]:
    """Set the leaf at each of ``paths`` of ``obj``'s attributes to the matching value; returns
    the attributes' previous values (for restore_held). Raises LayoutMismatch, changing nothing,
    when ``obj`` has no container at one of the paths."""
    by_name: dict[str, list[tuple[Path, Any]]] = {}
    for path, value in zip(paths, values):
        by_name.setdefault(path[0], []).append((path[1:], value))
    attributes = vars(obj)
    missing = [name for name in by_name if name not in attributes]
    if missing:
        raise LayoutMismatch(f"no attribute {missing[0]!r}")
    new = {name: _replaced(attributes[name], entries) for name, entries in by_name.items()}
    previous = {name: attributes[name] for name in new}
    for name, value in new.items():
        setattr(obj, name, value)
    return previous


def restore_held(obj: Any, previous: Mapping[str, Any]) -> None:
    for name, value in previous.items():
        setattr(obj, name, value)


@contextmanager
def holding(obj: Any, paths: Sequence[Path], values: Sequence[Any]) -> Iterator[None]:
    """``obj`` holds ``values`` at ``paths`` inside the block (e.g. a trace's arguments)."""
    previous = replace_held(obj, paths, values)
    try:
        yield
    finally:
        restore_held(obj, previous)
