"""normalization — "standardized data has mean 0 and std 1" (seed: assertions-fail-with-more-data, example 2).

Uniform data in (-low, high) = (-10, 10) with ``features`` columns and the run's data size
is generated in float32 (stateless RNG) and cast to the compute dtype, as the data a
layer under the run's precision policy sees. It is standardized once over the whole
data set (per-feature mean and std, a zero std replaced by 1), and the mean and std
of the standardized data are checked: ``mean_near_zero`` (|mean| < tol) and
``std_near_one`` (|std - 1| < tol), each judged on its worst feature.

The reductions (the standardization statistics and the verification statistics) run
in the compute dtype, as the seed's ``tf.reduce_mean``/``tf.math.reduce_std`` do on
fp16/bf16 tensors; with ``accumulate_float32`` they run in float32 on the float32-cast
values while the standardized data itself stays in the compute dtype. The extra
column ``reduce_dtype`` says which. ``compare`` is the checks' comparison: "native"
(the seed's ``tf.abs(mean - 0) < threshold``, in the reduce dtype) or "exact" (float64);
column ``compare_dtype``. ``stats_nonfinite`` counts non-finite standardization
statistics (an fp16 sum that overflows its 65504 range).

The seed computes its statistics once, so this scenario does not train
(``trains = False``): the engine runs no loop, records steps = 0 and null training
numerics; batch_size, clip_value and the steps/epochs schedule do not affect it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from harness import checks
from harness.checks import Check, Compare


class Normalization:
    autograph = False  # no Python control flow on tensors: skip AutoGraph's conversion (faster tracing)
    trains = False
    float32_params = {"accumulate_float32": True}  # what reduces in float32 instead of the compute dtype
    reuse_trace = True  # evaluate() reads the run only through the tensors and variables build() leaves

    def __init__(self, tol: float = 0.1, features: int = 5, low: float = -10.0, high: float = 10.0,
                 accumulate_float32: bool = False, compare: str = "native") -> None:
        if not low < high:
            raise ValueError(f"low={low} must be < high={high}")
        if int(features) < 1:
            raise ValueError(f"features={features} must be >= 1")
        self.tol = float(tol)
        self.features = int(features)
        self.low = float(low)
        self.high = float(high)
        self.accumulate_float32 = bool(accumulate_float32)
        self.compare = cast(Compare, compare)

    def checks(self) -> Sequence[Check]:
        return [checks.near("mean_near_zero", "mean", 0.0, self.tol, when="final",
                            compare=self.compare),
                checks.near("std_near_one", "std", 1.0, self.tol, when="final",
                            compare=self.compare)]

    def build(self, ctx: Any) -> tuple[Any, ...]:
        import tensorflow as tf

        x = tf.random.stateless_uniform([ctx.data_size, self.features], seed=ctx.data_seed(0),
                                        minval=self.low, maxval=self.high, dtype=tf.float32)
        self.x = tf.cast(x, ctx.compute_dtype)
        self.reduce_dtype = "float32" if self.accumulate_float32 else ctx.compute_dtype
        self._stats_nonfinite = tf.Variable(0, dtype=tf.int64, trainable=False)
        return (self.x,)


    def _moments(self, x: Any) -> tuple[Any, Any]:
        """Per-feature mean and std of ``x`` in the reduce dtype (the seed's two reductions)."""
        import tensorflow as tf

        xr = tf.cast(x, self.reduce_dtype)
        return tf.reduce_mean(xr, axis=0), tf.math.reduce_std(xr, axis=0)

    def evaluate(self) -> Mapping[str, Any]:
        import tensorflow as tf

        mean, std = self._moments(self.x)
        std = tf.where(tf.equal(std, 0), tf.ones_like(std), std)
        stats = tf.concat([mean, std], axis=0)
        self._stats_nonfinite.assign(tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(stats)), tf.int64)))
        z = (self.x - tf.cast(mean, self.x.dtype)) / tf.cast(std, self.x.dtype)
        z_mean, z_std = self._moments(z)
        return {"mean": z_mean, "std": z_std}

    def extra_columns(self) -> dict[str, str]:
        return {"reduce_dtype": "string", "compare_dtype": "string", "stats_nonfinite": "int64"}

    def extras(self) -> dict[str, Any]:
        return {"reduce_dtype": self.reduce_dtype,
                "compare_dtype": self.reduce_dtype if self.compare == "native" else "float64",
                "stats_nonfinite": int(self._stats_nonfinite.numpy())}
