"""The figures in the order the bench measures and prints them.

Each module declares ``ONLY`` (the ``--only`` numbers that select it) and ``measure(opts, want) ->
list[Figure]``; a module whose figures time loops in fresh processes declares its ``PAIRS`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from bench import detectors, flat, loading, overhead, report, scale, seed_loop, sweeps, warm

MODULES: tuple[ModuleType, ...] = (seed_loop, overhead, flat, sweeps, report, detectors, loading, warm, scale)

ONLY: tuple[str, ...] = tuple(n for m in MODULES for n in m.ONLY)

PAIRS: dict[str, Callable[[int], list[Callable[[], float]]]] = {
    name: make for m in MODULES for name, make in getattr(m, "PAIRS", {}).items()}
