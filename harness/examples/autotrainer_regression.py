"""AUTOTRAINER's "gradient explode" regression program as a harness scenario, with its fix as a control.

Source: shiningrain/AUTOTRAINER, ``DL_tools/code/L-code/gradient_explode/case-17-gradient_explode/case_17.py``
(a subject of the ICSE'21 benchmark, labelled gradient explode; its first line: "mlp with unscaled data for the
regression problem"): ``make_regression(n_samples=1000, n_features=20, noise=0.1, random_state=1)`` split 500/500
into training and test rows, ``Dense(25, input_dim=20, activation='sigmoid', kernel_initializer='he_uniform')``
then ``Dense(1, activation='linear')``, ``SGD(lr=0.01, momentum=0.9)``, ``loss='mean_squared_error'``, 500 epochs at
Keras' default batch of 32. The target is left unscaled (a standard deviation of about 150): the squared error and
its gradients are huge, and the run diverges.

Ported with the Keras adapter as written (model, optimizer and loss; no ``dtype=`` anywhere: the harness applies
the run's precision, seed, clipping and data size); the data are the training rows (``data_size`` of them), the
test rows as many again from the same draw. ``make_regression`` is scikit-learn's generator re-implemented in numpy
(standard normal inputs, 10 informative features with coefficients 100 * U(0, 1), Gaussian noise, features
shuffled), seeded by the run's seed, so the example needs no scikit-learn.

``fix=True`` is the fix for this program: scale the target (standardize it with the training rows' mean and
standard deviation, as scikit-learn's StandardScaler would), so that the same model, optimizer and loss train on
a target of unit scale. The outcome is the coefficient of determination on the test rows, R^2 = 1 - MSE / Var(y),
which does not depend on the target's scale, so buggy and fixed runs are judged by the same check
(``val_r2_at_least``: R^2 >= ``min_r2``, 0.99 by default: the noise is 0.1 against a target of standard deviation
about 150, and the fixed program explains more than 99% of the variance; a NaN R^2 fails). The detectors are
evaluated every ``check_every`` = 47 steps, AUTOTRAINER's period of 3 epochs of 500 rows at batch 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import checks, detectors
from harness.checks import Check
from harness.scenarios.keras_adapter import KerasScenario

N_FEATURES = 20
N_INFORMATIVE = 10


def make_regression(n: int, noise: float, seed: int) -> tuple[Any, Any]:
    """scikit-learn's ``make_regression(n_samples=n, n_features=20, n_informative=10, noise=noise)`` in numpy:
    X standard normal, y = X @ w + noise * N(0, 1) with w_i = 100 * U(0, 1) for 10 features and 0 for the others
    (features shuffled), seeded by ``seed``. Returns float64 (x of shape (n, 20), y of shape (n, 1))."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_FEATURES))
    w = np.zeros(N_FEATURES)
    w[:N_INFORMATIVE] = 100.0 * rng.uniform(size=N_INFORMATIVE)
    y = x @ w + noise * rng.standard_normal(n)
    x = x[:, rng.permutation(N_FEATURES)]
    return x, y[:, None]


class RegressionExplode(KerasScenario):
    activations = True  # dead-ReLU and saturation detectors read the layers' outputs
    reuse_trace = True  # traced code reads the run only through build()'s data, held tensors and variables

    def __init__(self, fix: bool = False, learning_rate: float = 0.01, momentum: float = 0.9, hidden: int = 25,
                 noise: float = 0.1, min_r2: float = 0.99, check_every: int = 47, warmup: int = 0) -> None:
        super().__init__(fix=fix, learning_rate=learning_rate, momentum=momentum, hidden=hidden, noise=noise,
                         min_r2=min_r2, check_every=check_every, warmup=warmup)

    def compile_kwargs(self) -> dict[str, Any]:
        import keras

        return {"loss": "mean_squared_error",
                "optimizer": keras.optimizers.SGD(learning_rate=self.learning_rate, momentum=self.momentum)}

    def model(self) -> Any:
        import keras

        return keras.Sequential([keras.Input((N_FEATURES,)),
                                 keras.layers.Dense(self.hidden, activation="sigmoid",
                                                    kernel_initializer="he_uniform"),
                                 keras.layers.Dense(1, activation="linear")])

    def _rows(self, ctx: Any) -> tuple[Any, Any, Any, Any]:
        """Training and test rows of one draw (the program splits one make_regression 50/50); with ``fix``, the
        target standardized by the training rows' mean and standard deviation."""
        n = ctx.data_size
        x, y = make_regression(2 * n, self.noise, ctx.seed)
        if self.fix:
            mean, std = y[:n].mean(), y[:n].std()
            y = (y - mean) / (std if std > 0 else 1.0)
        return (x[:n].astype("float32"), y[:n].astype("float32"), x[n:].astype("float32"), y[n:].astype("float32"))

    def data(self, ctx: Any) -> tuple[Any, Any]:
        x, y, _, _ = self._rows(ctx)
        return x, y

    def build(self, ctx: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        data = super().build(ctx)
        _, _, xv, yv = self._rows(ctx)
        self._val = (tf.constant(xv), tf.constant(yv))  # the test rows of the same draw
        return data

    def evaluate(self) -> dict[str, Any]:
        out = dict(super().evaluate())
        x, y = self._val
        out["val_r2"] = _r2(y, self.keras_model(x, training=False))
        return out

    def checks(self) -> Sequence[Check]:
        schedule = {"every": self.check_every, "after": self.warmup}
        return [checks.above("val_r2_at_least", "val_r2", self.min_r2, inclusive=True, when="final"),
                checks.finite("loss_finite", "loss"),
                *detectors.all_detectors(**schedule, metric=None)]  # no accuracy in a regression: no not_converged


def _r2(y: Any, y_pred: Any) -> Any:
    """1 - sum of squared errors / total sum of squares, in float64 (NaN when the predictions are not finite)."""
    import tensorflow as tf

    y = tf.cast(y, tf.float64)
    err = tf.reduce_sum(tf.square(y - tf.cast(y_pred, tf.float64)))
    return 1.0 - err / tf.reduce_sum(tf.square(y - tf.reduce_mean(y)))
