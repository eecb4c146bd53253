"""activation_bounds — "a clipped sigmoid stays within its bounds" (seed: assertions-fail-with-more-data, example 3).

A stack of ``layers`` Dense(``units``) layers, each followed by the seed's custom
activation ``clip(sigmoid(h), threshold, 1 - threshold)``, is run forward over all
``data_size`` input rows x ~ N(0, input_scale^2) (``input_dim`` features). The
kernels keep their seeded Glorot initialisation times ``weight_scale``: a larger
input or weight scale saturates the sigmoid, so outputs land on the clip values.
Checks: ``output_min`` (min >= expected_min) and ``output_max`` (max <= expected_max),
expected bounds defaulting to the clip thresholds, as in the seed.

Precision: the layers and the activation compute in the run's compute dtype, so the
clip thresholds themselves are rounded to it (float32(0.01) < 0.01, float16(0.99) >
0.99, bfloat16(0.99) < 0.99). The output min/max stay in that dtype; ``compare``
chooses how they meet the bounds: "native" as the seed's ``output_min >= expected_min``
does in TF (the bound rounded to the output's dtype), "exact" in float64 against the
bound as declared. With ``activation_float32`` the last activation runs in float32
(Keras' mixed-precision advice for output layers). Extra columns: ``activation_dtype``,
``compare_dtype``, ``saturated_fraction`` (output elements on a clip value),
``nonfinite_outputs``.

The seed does not train, so neither does this scenario (``trains = False``): the
forward pass runs once after build, in chunks of ``chunk`` rows to bound memory;
steps is recorded as 0; batch_size, clip_value and the schedule do not affect it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from harness import checks
from harness.checks import Check, Compare


class ActivationBounds:
    autograph = False  # no Python control flow on tensors: skip AutoGraph's conversion (faster tracing)
    trains = False
    float32_params = {"activation_float32": True}  # the last activation in float32 instead of the compute dtype
    reuse_trace = True  # evaluate() reads the run only through the tensors and variables build() leaves

    def __init__(self, threshold: float = 0.01, expected_min: float | None = None,
                 expected_max: float | None = None, input_dim: int = 10, units: int = 64, layers: int = 3,
                 input_scale: float = 1.0, weight_scale: float = 1.0, activation_float32: bool = False,
                 compare: str = "native", chunk: int = 65536) -> None:
        if not 0 <= threshold < 0.5:
            raise ValueError(f"threshold={threshold} must be in [0, 0.5)")
        self.threshold = float(threshold)
        self.expected_min = float(threshold if expected_min is None else expected_min)
        self.expected_max = float(1.0 - threshold if expected_max is None else expected_max)
        self.input_dim, self.units, self.n_layers = int(input_dim), int(units), int(layers)
        if min(self.input_dim, self.units, self.n_layers, int(chunk)) < 1:
            raise ValueError("input_dim, units, layers and chunk must be >= 1")
        self.input_scale = float(input_scale)
        self.weight_scale = float(weight_scale)
        self.activation_float32 = bool(activation_float32)
        self.compare = cast(Compare, compare)
        self.chunk = int(chunk)

    def checks(self) -> Sequence[Check]:
        return [checks.above("output_min", "out_min", self.expected_min, inclusive=True, when="final",
                             compare=self.compare),
                checks.below("output_max", "out_max", self.expected_max, inclusive=True, when="final",
                             compare=self.compare)]

    def build(self, ctx: Any) -> tuple[Any, ...]:
        import keras
        import tensorflow as tf

        self.x = self.input_scale * tf.random.stateless_normal([ctx.data_size, self.input_dim], seed=ctx.data_seed(0))
        self.dense = [keras.layers.Dense(self.units, dtype=ctx.policy) for _ in range(self.n_layers)]
        width = self.input_dim
        for layer in self.dense:  # seeded Glorot kernels (the engine seeds Keras), then scaled
            layer.build((None, width))
            layer.kernel.assign(layer.kernel * self.weight_scale)
            width = self.units
        self.activation_dtype = "float32" if self.activation_float32 else ctx.compute_dtype
        self._nonfinite = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._saturated = tf.Variable(0, dtype=tf.int64, trainable=False)
        return (self.x,)


    def _activation(self, h: Any, dtype: Any) -> Any:
        """The seed's custom_activation, computed in ``dtype``."""
        import tensorflow as tf

        return tf.clip_by_value(tf.sigmoid(tf.cast(h, dtype)), self.threshold, 1.0 - self.threshold)

    def forward(self, x: Any) -> Any:
        import tensorflow as tf

        h = x
        for i, layer in enumerate(self.dense):
            last = i == len(self.dense) - 1
            h = self._activation(layer(h), self.activation_dtype if last else tf.as_dtype(layer.compute_dtype))
        return h

    def evaluate(self) -> Mapping[str, Any]:
        import tensorflow as tf

        n = tf.shape(self.x, out_type=tf.int64)[0]
        dt = tf.as_dtype(self.activation_dtype)
        lo_clip, hi_clip = tf.cast(self.threshold, dt), tf.cast(1.0 - self.threshold, dt)
        inf = tf.constant(float("inf"), dt)

        def body(start: Any, lo: Any, hi: Any, bad: Any, sat: Any) -> tuple:
            out = self.forward(self.x[start:start + self.chunk])
            finite = tf.math.is_finite(out)
            lo = tf.minimum(lo, tf.reduce_min(tf.where(finite, out, inf)))  # min/max are exact in any dtype
            hi = tf.maximum(hi, tf.reduce_max(tf.where(finite, out, -inf)))
            bad += tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64))
            sat += tf.reduce_sum(tf.cast(tf.logical_or(out <= lo_clip, out >= hi_clip), tf.int64))
            return start + self.chunk, lo, hi, bad, sat

        zero = tf.constant(0, tf.int64)
        _, lo, hi, bad, sat = tf.while_loop(lambda s, *_: s < n, body, (zero, inf, -inf, zero, zero))
        self._nonfinite.assign(bad)
        self._saturated.assign(sat)
        nan = tf.constant(float("nan"), dt)  # a non-finite output never passes
        return {"out_min": tf.where(bad > 0, nan, lo), "out_max": tf.where(bad > 0, nan, hi)}

    def extra_columns(self) -> dict[str, str]:
        return {"activation_dtype": "string", "compare_dtype": "string", "saturated_fraction": "float64",
                "nonfinite_outputs": "int64"}

    def extras(self) -> dict[str, Any]:
        total = int(self.x.shape[0]) * self.units
        return {"activation_dtype": self.activation_dtype,
                "compare_dtype": self.activation_dtype if self.compare == "native" else "float64",
                "saturated_fraction": int(self._saturated.numpy()) / total,
                "nonfinite_outputs": int(self._nonfinite.numpy())}
