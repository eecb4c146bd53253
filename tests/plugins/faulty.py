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


class BadShapes(LossBound):
    """A plugin whose outputs have the wrong form: ``what`` picks which."""

    def __init__(self, what: str = "loss", **kw: Any) -> None:
        super().__init__(**kw)
        self.what = what

    def build(self, ctx: Any) -> tuple[Any, ...]:
        x, y = super().build(ctx)
        if self.what == "rows":
            return x, y[:-1]
        if self.what == "data":
            return x  # not a tuple
        return x, y

    def train_step(self, batch: tuple[Any, ...], step: Any) -> Any:
        out = super().train_step(batch, step)
        if self.what == "loss":
            x, _ = batch
            out["loss"] = out["loss"] * x[:, 0]  # a vector, not a scalar
        if self.what == "dict":
            return [out["loss"]]
        return out


class CapturesTensor(LossBound):
    """Promises reuse_trace but its loop reads a per-run statistic held as a plain tensor."""

    reuse_trace = True

    def build(self, ctx: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        x, y = super().build(ctx)
        self.shift = tf.reduce_mean(y)
        return x, y

    def train_step(self, batch: tuple[Any, ...], step: Any) -> Any:
        x, y = batch
        return super().train_step((x, y - self.shift), step)


class StatefulNoise(LossBound):
    """Promises reuse_trace but draws label noise with a stateful random op in train_step."""

    reuse_trace = True

    def train_step(self, batch: tuple[Any, ...], step: Any) -> Any:
        import tensorflow as tf

        x, y = batch
        return super().train_step((x, y + tf.random.normal(tf.shape(y), stddev=0.01)), step)
