"""Test-only scenarios: loss_bound that misbehaves on chosen seeds (no fault switches in production code)."""

from __future__ import annotations

import os
import time
from typing import Any

from harness.scenarios.loss_bound import LossBound


class Faulty(LossBound):
    """mode: crash (the worker process exits), raise, hang, nan (NaN labels) on seeds in ``on_seeds``."""

    def __init__(self, mode: str = "raise", on_seeds: tuple[int, ...] = (1,), **kw: Any) -> None:
        super().__init__(**kw)
        self.mode = mode
        self.on_seeds = tuple(on_seeds)

    def build(self, ctx: Any) -> tuple[Any, Any]:
        x, y = super().build(ctx)
        if ctx.seed in self.on_seeds:
            if self.mode == "crash":
                os._exit(17)
            if self.mode == "raise":
                raise ValueError(f"injected failure for seed {ctx.seed}")
            if self.mode == "hang":
                time.sleep(3600)
            if self.mode == "nan":
                import tensorflow as tf

                y = tf.fill(tf.shape(y), float("nan"))
        return x, y


class NoTrainStep:
    """A plugin that forgets train_step."""

    def checks(self) -> list[Any]:
        return []

    def build(self, ctx: Any) -> tuple[Any, ...]:
        return ()
