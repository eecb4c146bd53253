"""train_inference — inference against the training-time reference (seed: assertion-error-inferring-loss).

Regression data: raw features x ~ feature_loc + feature_scale * N(0, 1) (``data_size`` rows),
y = z . w / sqrt(features) + N(0, noise_std^2) with z the truly standardized features.
The training pipeline standardizes x with statistics of the training data (float32,
once, over all rows) and trains Dense(hidden, relu) -> Dropout(dropout) -> Dense(1) with
Adam through ctx.minimize (so loss scaling, clipping and the run-level numerics apply).

After training, ``inference_size`` fresh rows go through the inference pipeline under
each mismatch listed in ``modes`` (``none`` is the control), all on the same trained
model, so a mismatch and its control are paired and training is not repeated per mode:

- ``preprocessing``: the inference inputs are not standardized;
- ``dropout``: the model is called with training=True (dropout left active);
- ``shape``: the prediction is reshaped to (m, 1, 1) against labels (m, 1), so the
  squared error silently broadcasts to (m, m, 1) instead of raising.

Each mode declares the same four checks under its own name, ``<mode>.<check>`` (e.g.
``dropout.inference_deterministic``), so each check's power against each mismatch is
measured (all four pass in the control at enough data):

- ``input_stats_match``: max over features of |mean| and |std| differences between
  the inference inputs and the training inputs as the model saw them < ``stats_tol``;
- ``inference_deterministic``: two predictions of the same inputs are identical;
- ``shapes_match``: the prediction used in the loss has the labels' shape;
- ``loss_matches_training``: |inference loss / reference loss - 1| < ``loss_rtol``, the
  reference being the eval-mode loss on the first ``reference_size`` training rows.

The model computes in the compute dtype; preprocessing, losses and the prediction
difference are float32 (column ``loss_dtype``). Extra columns: ``reference_loss``,
``inference_loss_<mode>`` and, with the shape mode, ``broadcast_loss_shape`` (e.g. "(1000, 1000, 1)").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import checks
from harness.checks import Check

MODES = ("none", "preprocessing", "dropout", "shape")


class TrainInference:
    autograph = False  # no Python control flow on tensors: skip AutoGraph's conversion (faster tracing)
    reuse_trace = True  # traced code reads the run only through build()'s data, held tensors and variables

    def __init__(self, modes: Sequence[str] = MODES, features: int = 5, hidden: int = 32, dropout: float = 0.5,
                 learning_rate: float = 0.01, noise_std: float = 0.1, feature_loc: float = 5.0,
                 feature_scale: float = 3.0, inference_size: int = 1000, reference_size: int = 10000,
                 stats_tol: float = 0.5, loss_rtol: float = 0.5) -> None:
        self.modes = (modes,) if isinstance(modes, str) else tuple(modes)
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes or len(set(self.modes)) != len(self.modes):
            raise ValueError(f"modes={list(self.modes)!r}: give distinct modes among {', '.join(MODES)}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        self.features, self.hidden = int(features), int(hidden)
        self.dropout, self.learning_rate, self.noise_std = float(dropout), float(learning_rate), float(noise_std)
        self.feature_loc, self.feature_scale = float(feature_loc), float(feature_scale)
        self.inference_size, self.reference_size = int(inference_size), int(reference_size)
        self.stats_tol, self.loss_rtol = float(stats_tol), float(loss_rtol)

    def checks(self) -> Sequence[Check]:
        out: list[Check] = []
        for m in self.modes:
            out += [
                checks.below(f"{m}.input_stats_match", f"{m}.stats_diff", self.stats_tol, when="final"),
                checks.below(f"{m}.inference_deterministic", f"{m}.pred_diff", 0.0, inclusive=True, when="final"),
                checks.equal_shape(f"{m}.shapes_match", f"{m}.pred", f"{m}.labels", when="final"),
                checks.near(f"{m}.loss_matches_training", f"{m}.loss_ratio", 1.0, self.loss_rtol, when="final"),
            ]
        return out

    def _data(self, ctx: Any, n: int, k: int) -> tuple[Any, Any]:
        """Raw features and labels of ``n`` rows from data streams k, k + 1 (the teacher is stream 0)."""
        import tensorflow as tf

        z = tf.random.stateless_normal([n, self.features], seed=ctx.data_seed(k))
        noise = tf.random.stateless_normal([n, 1], seed=ctx.data_seed(k + 1), stddev=self.noise_std)
        y = tf.matmul(z, self.teacher) / self.features ** 0.5 + noise
        return self.feature_loc + self.feature_scale * z, y

    def build(self, ctx: Any) -> tuple[Any, Any]:
        import keras
        import tensorflow as tf

        self.ctx = ctx
        self.teacher = tf.random.stateless_normal([self.features, 1], seed=ctx.data_seed(0))
        x_raw, y = self._data(ctx, ctx.data_size, 1)
        self.mu, self.sigma = tf.reduce_mean(x_raw, axis=0), tf.math.reduce_std(x_raw, axis=0)
        x = self._standardize(x_raw)
        self.train_mean, self.train_std = tf.reduce_mean(x, axis=0), tf.math.reduce_std(x, axis=0)
        self.x_ref, self.y_ref = x[: self.reference_size], y[: self.reference_size]
        self.x_inf_raw, self.y_inf = self._data(ctx, self.inference_size, 3)
        self.model = keras.Sequential([
            keras.Input((self.features,)),
            keras.layers.Dense(self.hidden, activation="relu", dtype=ctx.policy),
            keras.layers.Dropout(self.dropout, dtype=ctx.policy),
            keras.layers.Dense(1, dtype=ctx.policy),
        ])
        ctx.optimizer(keras.optimizers.Adam, self.model.trainable_variables, learning_rate=self.learning_rate)
        self._losses = tf.Variable(tf.zeros([1 + len(self.modes)]), trainable=False)
        # the shape mode's squared error: labels (m, 1) against a prediction reshaped to (m, 1, 1).
        # Static, so known here: evaluate() is traced once per structure and sets nothing per run.
        error_shape = tf.broadcast_static_shape(self.y_inf.shape, tf.TensorShape([self.inference_size, 1, 1]))
        self.loss_shape = str(tuple(error_shape))
        return x, y

    def _standardize(self, x_raw: Any) -> Any:
        return (x_raw - self.mu) / self.sigma

    def _mse(self, y: Any, pred: Any) -> Any:
        import tensorflow as tf

        return tf.reduce_mean(tf.square(y - tf.cast(pred, tf.float32)))

    def train_step(self, batch: tuple[Any, ...], step: Any) -> Mapping[str, Any]:
        x, y = batch
        return self.ctx.minimize(lambda: self._mse(y, self.model(x, training=True)),
                                 self.model.trainable_variables)

    def _infer(self, mode: str, reference: Any) -> tuple[dict[str, Any], Any]:
        """The inference pipeline under ``mode``: its observations and its loss."""
        import tensorflow as tf

        x = self.x_inf_raw if mode == "preprocessing" else self._standardize(self.x_inf_raw)
        active = mode == "dropout"  # dropout left on at inference
        pred = tf.cast(self.model(x, training=active), tf.float32)
        again = tf.cast(self.model(x, training=active), tf.float32)
        if mode == "shape":
            pred, again = tf.reshape(pred, [-1, 1, 1]), tf.reshape(again, [-1, 1, 1])
        error = tf.square(self.y_inf - pred)  # (m, m, 1) in shape mode (self.loss_shape): broadcast, no error
        loss = tf.reduce_mean(error)
        stats_diff = tf.concat([tf.abs(tf.reduce_mean(x, axis=0) - self.train_mean),
                                tf.abs(tf.math.reduce_std(x, axis=0) - self.train_std)], axis=0)
        obs = {"stats_diff": stats_diff, "pred_diff": tf.reduce_max(tf.abs(pred - again)),
               "pred": pred, "labels": self.y_inf,
               "loss_ratio": loss / reference}
        return {f"{mode}.{k}": v for k, v in obs.items()}, loss

    def evaluate(self) -> Mapping[str, Any]:
        import tensorflow as tf

        reference = self._mse(self.y_ref, self.model(self.x_ref, training=False))
        obs: dict[str, Any] = {}
        losses = [reference]
        for mode in self.modes:
            o, loss = self._infer(mode, reference)
            obs.update(o)
            losses.append(loss)
        self._losses.assign(tf.stack(losses))
        return obs

    def extra_columns(self) -> dict[str, str]:
        out = {"loss_dtype": "string", "reference_loss": "float64", **{f"inference_loss_{m}": "float64"
                                                                         for m in self.modes}}
        return {**out, "broadcast_loss_shape": "string"} if "shape" in self.modes else out

    def extras(self) -> dict[str, Any]:
        values = [float(v) for v in self._losses.numpy()]
        out: dict[str, Any] = {"loss_dtype": "float32", "reference_loss": values[0]}
        out.update({f"inference_loss_{m}": v for m, v in zip(self.modes, values[1:])})
        if "shape" in self.modes:
            out["broadcast_loss_shape"] = self.loss_shape
        return out
