"""Test-only Keras program fed with pandas: its data are a DataFrame of mixed dtypes and a Series, and
its model is warm-started with ``model.fit`` on them, as a notebook program would."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness import checks
from harness.scenarios.keras_adapter import KerasScenario


class FrameFit(KerasScenario):
    compile_args = {"loss": "binary_crossentropy", "metrics": ["accuracy"], "optimizer": "sgd"}

    def data(self, ctx: Any) -> tuple[Any, Any]:
        import pandas as pd

        rng = np.random.default_rng(ctx.seed)
        n = ctx.data_size
        x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(-3, 4, size=n),
                          "c": rng.normal(size=n).astype("float32")})
        y = pd.Series((x["a"] + x["b"] > 0).astype("float32"))
        self.frames = (x, y)
        return x, y

    def model(self) -> Any:
        import keras

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer="sgd")
        model.fit(*self.frames, epochs=2, batch_size=16, shuffle=False, verbose=0)
        return model

    def checks(self) -> list:
        return [checks.below("loss_below", "loss", 10.0), checks.above("accuracy", "accuracy", 0.0, when="final")]
