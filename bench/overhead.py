"""Figure 2: the instrumentation's overhead, the same compiled loop with its checks and without."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bench.common import Figure
from bench.loops import compiled, measure_pair

ONLY = ("2",)

PAIRS: dict[str, Callable[[int], list[Callable[[], float]]]] = {
    "checks": lambda steps: [compiled(100_000, steps, True), compiled(100_000, steps, False)],
}


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    p = measure_pair("checks", opts.processes, opts.repeats, opts.sample_steps)
    over = p.ratio - 1
    return [Figure("2", "instrumentation overhead (checks vs none)", over * 100, "% slower", "<= 10%", over <= 0.10,
                   f"with checks {p.a * 1e6:.0f} us/step, without {p.b * 1e6:.0f} us/step; {p.spread()}")]
