"""AUTOTRAINER's dying-ReLU circle program as a harness scenario, with the detectors as checks.

Source: shiningrain/AUTOTRAINER, ``DL_tools/code/DyingReLU/circle_case.py`` (ICSE'21 subject):
``make_circles(noise=0.1)`` scaled to [-1, 1] by MinMaxScaler, three ``Dense(5, relu)`` and a
``Dense(1, sigmoid)``, ``SGD(lr=0.01, momentum=0.9)``, binary cross-entropy, batch 128, 80/20
train/validation split. Ported with the Keras adapter as written (no ``dtype=`` anywhere): the
harness applies the run's precision, seed, clipping and data size. Here the data are the
training rows (``data_size`` of them); the outcome is the validation accuracy at the end.

``make_circles`` is scikit-learn's generator re-implemented in numpy (two concentric circles,
outer radius 1, inner ``factor`` 0.8, evenly spaced angles, Gaussian noise, shuffled) so the
example needs no scikit-learn; it is seeded by the run's seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import checks, detectors
from harness.checks import Check
from harness.scenarios.keras_adapter import KerasScenario


def make_circles(n: int, noise: float, factor: float, seed: int) -> tuple[Any, Any]:
    """Two concentric circles with labels 0 (outer) and 1 (inner), scaled to [-1, 1] per feature."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    a_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    a_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x = np.vstack([np.c_[np.cos(a_out), np.sin(a_out)], factor * np.c_[np.cos(a_in), np.sin(a_in)]])
    y = np.r_[np.zeros(n_out), np.ones(n_in)]
    x = x + rng.normal(scale=noise, size=x.shape)
    order = rng.permutation(n)
    x, y = x[order], y[order]
    lo, hi = x.min(axis=0), x.max(axis=0)
    return (2 * (x - lo) / (hi - lo) - 1).astype("float32"), y.astype("float32")[:, None]


class Circles(KerasScenario):
    activations = True  # dead-ReLU and saturation detectors read the layers' outputs
    reuse_trace = True  # traced code reads the run only through build()'s data, held tensors and variables

    def __init__(self, width: int = 5, depth: int = 3, activation: str = "relu", learning_rate: float = 0.01,
                 momentum: float = 0.9, noise: float = 0.1, min_accuracy: float = 0.7, check_every: int = 19,
                 warmup: int = 0) -> None:
        super().__init__(width=width, depth=depth, activation=activation, learning_rate=learning_rate,
                         momentum=momentum, noise=noise, min_accuracy=min_accuracy, check_every=check_every,
                         warmup=warmup)

    def compile_kwargs(self) -> dict[str, Any]:
        import keras

        return {"loss": "binary_crossentropy", "metrics": ["accuracy"],
                "optimizer": keras.optimizers.SGD(learning_rate=self.learning_rate, momentum=self.momentum)}

    def model(self) -> Any:
        import keras

        inputs = keras.Input(shape=(2,))
        x = inputs
        for _ in range(self.depth):
            x = keras.layers.Dense(self.width, activation=self.activation)(x)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))

    def data(self, ctx: Any) -> tuple[Any, Any]:
        return make_circles(ctx.data_size, self.noise, 0.8, ctx.seed)

    def build(self, ctx: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        data = super().build(ctx)
        x, y = make_circles(max(200, ctx.data_size // 4), self.noise, 0.8, ctx.seed + 1_000_000)
        self._val = (tf.constant(x), tf.constant(y))  # held-out rows from the same generator
        return data

    def evaluate(self) -> dict[str, Any]:
        out = dict(super().evaluate())
        x, y = self._val
        y_pred = self.keras_model(x, training=False)
        out["val_accuracy"] = _accuracy(y, y_pred)
        return out

    def checks(self) -> Sequence[Check]:
        schedule = {"every": self.check_every, "after": self.warmup}
        return [checks.above("val_accuracy_at_least", "val_accuracy", self.min_accuracy, inclusive=True,
                             when="final"),
                checks.finite("loss_finite", "loss"),
                *detectors.all_detectors(**schedule)]


def _accuracy(y: Any, y_pred: Any) -> Any:
    import tensorflow as tf

    hit = tf.equal(tf.cast(y_pred, tf.float32) > 0.5, tf.cast(y, tf.float32) > 0.5)
    return tf.reduce_mean(tf.cast(hit, tf.float32))
