"""A test-only scenario whose runs wait for an event: a sweep's progress is set by the test, not by
how fast the machine is (how many runs finish before a kill, on 1 or 16 actors alike)."""

from __future__ import annotations

import os
import time
from typing import Any

from harness.scenarios.loss_bound import LossBound


class Gated(LossBound):
    """loss_bound whose runs of a seed not in ``free_seeds`` wait in ``build`` until the file
    ``gate`` exists. The 2-step trial run the harness makes of a plugin before a sweep never waits."""

    def __init__(self, gate: str = "", free_seeds: tuple[int, ...] = (0,), **kw: Any) -> None:
        super().__init__(**kw)
        self.gate = gate
        self.free_seeds = tuple(free_seeds)

    def build(self, ctx: Any) -> tuple[Any, Any]:
        if ctx.seed not in self.free_seeds and ctx.steps > 2:
            while not os.path.exists(self.gate):
                time.sleep(0.05)
        return super().build(ctx)
