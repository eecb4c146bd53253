"""DeepDiagnosis' motivating example, Stack Overflow question 31880720, as a harness scenario with its fix.

Source: DeepDiagnosis/ICSE2022, ``MOTIVATING EXAMPLE/31880720/demo_case/Gradient_Vanish_Case/demo.py`` (the
motivating example of "DeepDiagnosis: Automatically Diagnosing Faults and Recommending Actionable Fixes in Deep
Learning Programs", Wardat et al., ICSE 2022): ``Dense(units=50, input_dim=128)``, ``Activation('relu')``,
``Dropout(0.2)``, ``Dense(units=50)``, ``Activation('relu')``, ``Dropout(0.2)``, ``Dense(1)``,
``Activation('softmax')``, trained with binary cross-entropy on 10**4 rows of 128 ones (label True) and 10**4 rows
of 128 zeros (label False), tested on 10**2 rows of each. The optimizer and batch size are in the demo's pickled
config; the same program in the same authors' DeepLocalize benchmark (Wardat-ISU/DeepLocalize,
``Benchmark/StackOverflow/31880720/Buggy Code/31880720.py``) compiles it with ``keras.optimizers.RMSprop()``,
``loss='binary_crossentropy'``, ``metrics=['accuracy']``, which is what is ported here.

The bug: a softmax over a single unit is exp(z) / exp(z) = 1 whatever z, so the model predicts class 1 for every
row (accuracy 50%), and the gradient of the loss with respect to every weight is exactly 0: nothing trains. Its
fix (the Stack Overflow answer, and the same benchmark's ``Correct Code/31880720.py``): a sigmoid output,
``Dense(1, activation='sigmoid')``; ``fix=True`` swaps the last activation and changes nothing else.

What Keras 3 makes of it depends on the precision. Its ``binary_crossentropy`` takes the logits a softmax or sigmoid
activation leaves on its output (``_keras_logits``) and computes the loss from them: under fp32 the loss is the
sigmoid cross-entropy of the softmax's input, so the network trains (the loss falls, the gradients are those of the
fixed program) while every prediction is still 1. Under fp16 and bf16 the output is cast to float32 before the
loss, the cast tensor has no logits, and the loss is the cross-entropy of the constant 1, as in the Keras 2 program
(its log: loss 7.67, accuracy 0.5): constant, with gradients exactly 0. Keras 3 warns about the softmax over one
unit; the accuracy is 50% in every precision.

Ported with the Keras adapter as written (model, optimizer and loss; no ``dtype=`` anywhere: the harness applies
the run's precision, seed, clipping and data size). The data are generated in numpy as the program writes them:
``data_size`` training rows, half of them all ones (label 1) and half all zeros (label 0), in an order shuffled by
the run's seed; the outcome is the accuracy on the program's 200 test rows (``val_accuracy_at_least``: at least
``min_accuracy``). The detectors are evaluated every ``check_every`` = 25 steps: the tools' periods (one epoch for
DeepDiagnosis, three for AUTOTRAINER) are most or all of this 3-epoch run, and the windowed loss rules need several
periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import checks, detectors
from harness.checks import Check
from harness.scenarios.keras_adapter import KerasScenario

WIDTH = 128
TEST_ROWS = 10 ** 2  # of each class


def ones_and_zeros(n: int, seed: int | None) -> tuple[Any, Any]:
    """``n`` rows: the first half 128 ones (label 1), the rest 128 zeros (label 0), shuffled by ``seed``
    (None: in that order, as the program's test rows)."""
    import numpy as np

    ones = n - n // 2
    y = np.r_[np.ones(ones), np.zeros(n // 2)].astype("float32")
    if seed is not None:
        y = y[np.random.default_rng(seed).permutation(n)]
    return np.repeat(y[:, None], WIDTH, axis=1), y[:, None]


class SingleUnitSoftmax(KerasScenario):
    activations = True  # dead-ReLU and saturation detectors read the layers' outputs
    reuse_trace = True  # traced code reads the run only through build()'s data, held tensors and variables

    def __init__(self, fix: bool = False, min_accuracy: float = 0.9, check_every: int = 25, warmup: int = 0) -> None:
        super().__init__(fix=fix, min_accuracy=min_accuracy, check_every=check_every, warmup=warmup)

    def compile_kwargs(self) -> dict[str, Any]:
        import keras

        return {"loss": "binary_crossentropy", "metrics": ["accuracy"], "optimizer": keras.optimizers.RMSprop()}

    def model(self) -> Any:
        import keras

        L = keras.layers
        return keras.Sequential([keras.Input((WIDTH,)),
                                 L.Dense(units=50), L.Activation("relu"), L.Dropout(0.2),
                                 L.Dense(units=50), L.Activation("relu"), L.Dropout(0.2),
                                 L.Dense(1), L.Activation("sigmoid" if self.fix else "softmax")])

    def data(self, ctx: Any) -> tuple[Any, Any]:
        return ones_and_zeros(ctx.data_size, ctx.seed)

    def build(self, ctx: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        data = super().build(ctx)
        x, y = ones_and_zeros(2 * TEST_ROWS, None)
        self._val = (tf.constant(x), tf.constant(y))  # the program's X_test, Y_test
        return data

    def evaluate(self) -> dict[str, Any]:
        out = dict(super().evaluate())
        x, y = self._val
        out["val_accuracy"] = _accuracy(y, self.keras_model(x, training=False))
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
