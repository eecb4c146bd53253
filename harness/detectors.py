"""Training-health detectors of three published tools, as checks.

A check PASSES while training is healthy: a detector that fires makes its check fail. Every threshold is a keyword
parameter defaulting to the tool's published value, compared the way the tool compares (> or >=); NaN and Inf never
pass, so a non-finite observation fires every detector. Sources read:

    AUTOTRAINER: "AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System", Zhang et al., ICSE 2021.
        shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py (defaults: the params of AutoTrainer/demo_test.py).
    DeepDiagnosis: "DeepDiagnosis: Automatically Diagnosing Faults and Recommending Actionable Fixes in Deep Learning
        Programs", Wardat et al., ICSE 2022. DeepDiagnosis/ICSE2022, callback/callbacks.py (class mapFaluireToFix).
    TheDeepChecker: "Testing Feedforward Neural Networks Training Programs", Ben Braiek & Khomh, ACM TOSEM.
        thedeepchecker/thedeepchecker, deep_checker/hooks.py (its thresholds are in deep_checker/config/settings.yaml,
        which the index does not hold).

The tools look at one batch once per epoch (or every few epochs or iterations); here a check is evaluated in-graph on
each training step's own batch, from the engine's observations (loss, layer_grad_norm, layer_grad_zero_fraction,
layer_grad_mean_abs, weights_finite, grads_finite, opt-in layer_dead_fraction and layer_saturated_fraction; final:
loss and the compiled metrics). ``every=k``, ``after=s`` and ``judge`` set the schedule: k is the user's choice, not
the tool's. A missing observation raises a KeyError naming it. AUTOTRAINER reports a gradient or ReLU problem only
while the model also fails to converge; each detector here is one symptom (pair it with autotrainer_not_converged).

Rules that compare a step with earlier ones are windowed checks (``Check.statistic``): TheDeepChecker's stagnating
loss and DeepDiagnosis' unchanged loss. Not implemented: AUTOTRAINER unstable loss and slow convergence (accuracy
history), DeepDiagnosis "accuracy not increasing" and unchanged weights and gradients, TheDeepChecker's windowed
growth/decay-rate rules for gradients, weights and loss (divergence, fluctuation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.checks import Check, Judge, On


# Rules about gradients, updates and weights judge only the steps whose update was applied: under fp16,
# dynamic loss scaling skips a step whose scaled gradients overflowed (no update, by design; the run's
# skipped_steps counts it), and those gradients are inf, which every gradient rule would take for a fault.
# Rules about the loss and the activations (the forward pass) judge every step.
APPLIED: On = "applied"


def _get(obs: Mapping[str, Any], key: str, name: str) -> Any:
    if key not in obs:
        raise KeyError(f"check {name}: observation {key!r} not returned (returned: {', '.join(sorted(obs))})")
    return obs[key]


def _nan_unless(ok: Any, value: Any) -> Any:
    import tensorflow as tf

    return tf.where(ok, value, tf.constant(float("nan"), value.dtype))


def _worst_fraction(key: str, name: str) -> Callable[[Mapping[str, Any]], Any]:
    """The largest per-layer fraction; 0 without such a layer (nothing to flag); NaN if any element is not finite."""

    def observe(obs: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        x = tf.reshape(tf.convert_to_tensor(_get(obs, key, name)), [-1])
        worst = tf.where(tf.size(x) > 0, tf.reduce_max(x), tf.zeros([], x.dtype))
        return _nan_unless(tf.reduce_all(tf.math.is_finite(x)), worst)

    return observe


def _first_last(obs: Mapping[str, Any], name: str) -> tuple[Any, Any, Any, Any]:
    """(first, last, first / last, all finite) of layer_grad_norm in its own dtype, as the tool's numpy arithmetic
    on float32 gradients. x / 0 (or an overflowing quotient) becomes the dtype's largest finite value and 0 / 0
    becomes 0, where numpy gives inf and NaN (NaN > t and NaN < t are False: the tool flags neither)."""
    import tensorflow as tf

    n = tf.reshape(tf.convert_to_tensor(_get(obs, "layer_grad_norm", name)), [-1])
    first, last = n[0], n[-1]
    r = first / last
    r = tf.where(tf.math.is_nan(r), tf.zeros([], n.dtype), tf.minimum(r, tf.constant(n.dtype.max, n.dtype)))
    return first, last, r, tf.reduce_all(tf.math.is_finite(n))


def _flag(name: str, key: str, every: int, after: int, judge: Judge, on: On = "all") -> Check:
    """Passes while a boolean observation is True (value 1 >= 1)."""
    return Check(name, key, 1.0, ">=", every=every, after=after, judge=judge, on=on)


def _finite(name: str, key: str, every: int, after: int, judge: Judge) -> Check:
    """Passes while every element is finite (the value counts the non-finite ones): judges every step."""

    def count(x: Any) -> Any:
        import tensorflow as tf

        return tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)), tf.float64))

    return Check(name, key, 0.0, "<=", transform=count, every=every, after=after, judge=judge)


# ---------------------------------------------------------------------------------------------------- AUTOTRAINER


def autotrainer_exploding_gradient(*, ratio: float = 70.0, every: int = 1, after: int = 0,
                                   judge: Judge = "any") -> Check:
    """AUTOTRAINER (Zhang et al., ICSE 2021) exploding gradient: fires when first / last layer gradient norm > 70.

    Source: shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py, gradient_message_summary and gradient_issue:
    ``gra_rate = norm_kernel[0] / norm_kernel[-1]`` (L2 norm of the first layer's kernel gradient over the last
    layer's), ``explode_gradient`` when ``gra_rate > threshold_high`` (beta_3 = 70, strict), on one batch per check
    (every 3 epochs). Here: per step on the batch, from layer_grad_norm (kernel and bias together, unscaled, before
    clipping), divided and compared in its dtype as the tool's float32 numpy does. Passes while ratio <= 70. A
    non-finite norm in any layer fires (the tool: nan_gradient); a last norm of 0 fires when the first is > 0 (numpy:
    inf > 70) and passes when the first is 0 too (numpy: NaN > 70 is False).

    Steps judged: applied steps only (a step fp16 loss scaling skipped is not judged).
    """
    name = "autotrainer.exploding_gradient"

    def observe(obs: Mapping[str, Any]) -> Any:
        _, _, r, ok = _first_last(obs, name)
        return _nan_unless(ok, r)

    return Check(name, observe, float(ratio), "<=", every=every, after=after, judge=judge, on=APPLIED)


def autotrainer_vanishing_gradient(*, ratio: float = 1e-3, first_norm: float = 1e-4, every: int = 1,
                                   after: int = 0, judge: Judge = "any") -> Check:
    """AUTOTRAINER (Zhang et al., ICSE 2021) vanishing gradient: fires when first / last layer gradient norm < 1e-3
    AND the first layer's gradient norm < 1e-4.

    Source: shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py, gradient_issue: ``gra_rate < threshold_low and
    norm_kernel[0] < threshold_low_1`` (beta_1 = 1e-3, beta_2 = 1e-4, both strict), kernel-gradient norms on one batch
    every 3 epochs. Here: per step from layer_grad_norm (kernel and bias together), in its dtype as the tool's float32
    numpy (thresholds rounded to it). The value is the ratio where the norm condition holds (first < 1e-4, last > 0),
    else the ratio raised to at least 1e-3, so ``value >= 1e-3`` passes exactly when the two-part condition is false.
    A last norm of 0 never fires (numpy: inf or NaN < 1e-3 is False); a non-finite norm fires.

    Steps judged: applied steps only (a step fp16 loss scaling skipped is not judged).
    """
    name = "autotrainer.vanishing_gradient"

    def observe(obs: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        first, last, r, ok = _first_last(obs, name)
        gate = tf.logical_and(first < tf.cast(first_norm, first.dtype), last > 0)
        return _nan_unless(ok, tf.where(gate, r, tf.maximum(r, tf.cast(ratio, r.dtype))))

    return Check(name, observe, float(ratio), ">=", every=every, after=after, judge=judge, on=APPLIED)


def autotrainer_dying_relu(*, zero_fraction: float = 0.7, sizes: str | None = "layer_grad_size", every: int = 1,
                           after: int = 0,
                           judge: Judge = "any") -> Check:
    """AUTOTRAINER (Zhang et al., ICSE 2021) dying ReLU: fires when the fraction of gradient elements exactly 0 is
    >= 0.7.

    Source: shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py, gradient_zero_radio and gradient_issue:
    ``total_ratio >= threshold_die_1`` (gamma = 0.7, inclusive), total_ratio pooling every gradient array of every
    layer (kernels and biases; a per-layer maximum is commented out). Here: per step from layer_grad_zero_fraction.
    The fractions are pooled by ``sizes``, the observation of per-layer gradient element counts (the Keras adapter's
    layer_grad_size), which gives exactly the tool's pooled ratio; without that observation (or sizes=None) the
    value is the unweighted mean of the per-layer fractions. Averaged in
    float64, compared in the fractions' dtype. Passes while the value < 0.7.

    Steps judged: applied steps only (a step fp16 loss scaling skipped is not judged).
    """
    name = "autotrainer.dying_relu"

    def observe(obs: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        f = tf.reshape(tf.convert_to_tensor(_get(obs, "layer_grad_zero_fraction", name)), [-1])
        f64 = tf.cast(f, tf.float64)
        if sizes is None or sizes not in obs:
            pooled = tf.reduce_mean(f64)
        else:
            s = tf.cast(tf.reshape(_get(obs, sizes, name), [-1]), tf.float64)
            pooled = tf.reduce_sum(f64 * s) / tf.reduce_sum(s)
        return _nan_unless(tf.reduce_all(tf.math.is_finite(f)), tf.cast(pooled, f.dtype))

    return Check(name, observe, float(zero_fraction), "<", every=every, after=after, judge=judge, on=APPLIED)


def autotrainer_not_converged(*, accuracy: float = 0.7, metric: str = "accuracy") -> Check:
    """AUTOTRAINER (Zhang et al., ICSE 2021) not converged: fires when accuracy < 0.7.

    Source: shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py, loss_issue: ``max(test_acc) < satisfied_acc or
    max(train_acc) < satisfied_acc`` (Theta = 0.7, strict), once 30% of the epochs are done. Here: once after
    training (when="final") on the final value of ``metric`` (training data only), not the best epoch of a history.
    Passes while accuracy >= 0.7.

    Steps judged: none; once, after training (final).
    """
    return Check("autotrainer.not_converged", metric, float(accuracy), ">=", when="final")


def autotrainer_nan(*, loss_max: float = 1e5, every: int = 1, after: int = 0,
                    judge: Judge = "any") -> tuple[Check, Check, Check]:
    """AUTOTRAINER (Zhang et al., ICSE 2021) NaN loss, weight, gradient: fires on a NaN or Inf loss or a loss >= 1e5,
    and on any non-finite weight or gradient.

    Source: shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py: loss_issue ``has_NaN(test_loss) or
    has_NaN(train_loss) or test_loss[-1] >= 1e+5`` (nan_loss, inclusive), weights_issue (nan_weight), gradient_issue
    (nan_gradient). Here: per step on the batch loss (the tool applies 1e5 to the last validation loss),
    weights_finite and grads_finite. The loss check passes while loss < 1e5.

    Steps judged: nan_loss every step; nan_weight and nan_gradient applied steps only (a step fp16 loss scaling
    skipped has inf gradients by design).
    """
    return (Check("autotrainer.nan_loss", "loss", float(loss_max), "<", every=every, after=after, judge=judge),
            _flag("autotrainer.nan_weight", "weights_finite", every, after, judge, APPLIED),
            _flag("autotrainer.nan_gradient", "grads_finite", every, after, judge, APPLIED))


# -------------------------------------------------------------------------------------------------- DeepDiagnosis


def deepdiagnosis_dead_relu(*, fraction: float = 0.7, every: int = 1, after: int = 0,
                            judge: Judge = "last") -> Check:
    """DeepDiagnosis (Wardat et al., ICSE 2022) dead node: fires when a ReLU layer has >= 70% of its outputs <= 0.

    Source: DeepDiagnosis/ICSE2022, callback/callbacks.py, identifyDead: share of outputs ``<= 0.0`` ``>=
    threshold_layer_1`` (0.7, inclusive), on a relu/exponential Activation layer's output for the first batch, only
    at the last epoch (``batch == self.epoch - 1``). Here: per step from layer_dead_fraction (every ReLU-activated
    layer, Dense(activation="relu") too), judged by the worst layer; judge="last" by default, as the tool decides at
    the end. Passes while every layer's fraction < 0.7.

    Steps judged: every step (the forward pass).
    """
    name = "deepdiagnosis.dead_relu"
    return Check(name, _worst_fraction("layer_dead_fraction", name), float(fraction), "<", every=every, after=after,
                 judge=judge)


def deepdiagnosis_saturated_activation(*, fraction: float = 0.5, every: int = 1, after: int = 0,
                                       judge: Judge = "any") -> Check:
    """DeepDiagnosis (Wardat et al., ICSE 2022) saturated activation: fires when > 50% of a sigmoid/tanh layer's
    pre-activations lie beyond +-5.

    Source: DeepDiagnosis/ICSE2022, callback/callbacks.py, identifySaturated: share of a sigmoid/tanh Activation
    layer's inputs with ``x <= -5`` or ``x >= 5`` (min/max_threshold_sigmoid/tanh) ``> threshold_layer`` (0.5,
    strict), every N = 5 epochs on the first batch. Here: per step from layer_saturated_fraction, which counts
    |z| > 5 (exactly +-5 is not counted), judged by the worst layer. Passes while every fraction <= 0.5.

    Steps judged: every step (the forward pass).
    """
    name = "deepdiagnosis.saturated_activation"
    return Check(name, _worst_fraction("layer_saturated_fraction", name), float(fraction), "<=", every=every,
                 after=after, judge=judge)


def deepdiagnosis_vanishing_gradient(*, mean_abs: float = 1e-7, every: int = 1, after: int = 0,
                                     judge: Judge = "any") -> Check:
    """DeepDiagnosis (Wardat et al., ICSE 2022) vanishing gradient: fires when a layer's mean |gradient| < 1e-7.

    Source: DeepDiagnosis/ICSE2022, callback/callbacks.py, identifyVanishingGradient: ``np.absolute(g).mean() <
    threshold_VG`` (1e-7, strict) on each Dense layer's kernel gradient (the tool's "delta weights" are gradients
    from get_weight_grad, not weight updates), each epoch on the first batch. Here: per step from
    layer_grad_mean_abs (every layer with weights, kernel and bias together), judged by the smallest. Passes while
    every layer's mean |g| >= 1e-7.

    Steps judged: applied steps only (a step fp16 loss scaling skipped is not judged).
    """
    return Check("deepdiagnosis.vanishing_gradient", "layer_grad_mean_abs", float(mean_abs), ">=", every=every,
                 after=after, judge=judge, on=APPLIED)


def deepdiagnosis_numerical_error(*, every: int = 1, after: int = 0,
                                  judge: Judge = "any") -> tuple[Check, Check, Check]:
    """DeepDiagnosis (Wardat et al., ICSE 2022) invalid loss and numerical errors in weights and gradients: fires on
    a NaN or Inf loss, weight or gradient. Threshold: none (any non-finite value).

    Source: DeepDiagnosis/ICSE2022, callback/callbacks.py: ``np.isnan(loss) or np.isinf(loss)`` on the epoch loss;
    identifyNumerical (NaN, Inf *or exactly 0*) on the mean of each layer's kernel weights and of each Dense kernel
    gradient. Here: per step on the batch loss, weights_finite and grads_finite (any element: the tool tests the
    mean, which an overflowing sum also flags); the tool's "mean exactly 0" case is not reproduced.

    Steps judged: invalid_loss every step; the weights and gradients rules applied steps only (a step fp16 loss
    scaling skipped has inf gradients by design).
    """
    return (_finite("deepdiagnosis.invalid_loss", "loss", every, after, judge),
            _flag("deepdiagnosis.numerical_error_weights", "weights_finite", every, after, judge, APPLIED),
            _flag("deepdiagnosis.numerical_error_gradients", "grads_finite", every, after, judge, APPLIED))


def deepdiagnosis_loss_unchanged(*, window: int = 5, every: int = 1, after: int = 0, judge: Judge = "any") -> Check:
    """DeepDiagnosis (Wardat et al., ICSE 2022) "model does not learn": fires when the loss is the same on each of
    ``window`` = 5 consecutive batches. Threshold: none (an exact tie; the window of 5 batches is a parameter).

    Source: DeepDiagnosis/ICSE2022, callback/callbacks.py, class DeepLocalize.on_batch_end: every N = 5 batches,
    ``meanResult(self.lossList[-N:])`` (the mean of the last 5 batch losses equals their maximum, i.e. all equal),
    then the list is cleared: non-overlapping blocks of 5 batches. Here: statistic "range" (max - min) of each
    block of ``window`` step losses, or of period means of ``every`` steps when every > 1 (the bundles pass their
    ``every``: on the circles example a block is 5 means of 19 steps, not 5 batches; the periods end at steps
    after + k*every and the first also holds the steps before); passes while max - min > 0. "All equal" is tested exactly (the tool's mean == max can also hold for values one
    rounding apart). A block with a NaN or Inf loss fires.

    Steps judged: every step (the loss).
    """
    return Check("deepdiagnosis.loss_unchanged", "loss", 0.0, ">", every=every, after=after, judge=judge,
                 statistic="range", window=window)


# ------------------------------------------------------------------------------------------------- TheDeepChecker


def thedeepchecker_loss_stagnating(*, window: int = 5, min_decrease: float = 0.05, every: int = 1, after: int = 0,
                                   judge: Judge = "any") -> Check:
    """TheDeepChecker (Ben Braiek & Khomh, TOSEM) stagnating loss: fires when, over the last ``window`` = 5 period
    losses, no relative decrease reaches ``min_decrease`` = 5%.

    Source: thedeepchecker/thedeepchecker, deep_checker/hooks.py, OverfitLossHook: every ``period`` iterations the
    mean of the losses since the last check is appended to a list, then check_loss_curve fires "stagnated_loss" when
    ``((losses[-i-1] - losses[-i]) / losses[-i-1] < non_dec.decr_percentage).all()`` for i in 1..window_size-1.
    The values window_size = 5 and decr_percentage = 0.05 are those of the same group's PyTorch port
    (rached1997/RLDebugger, the loss checker's ``non_dec`` config): the TF tool's own values, source not found in the index
    (deep_checker/config/settings.yaml is not stored).
    Here: statistic "max_relative_decrease" over period means of ``every`` steps (the tool's period), judged at
    each period once ``window`` periods exist; passes while the largest decrease >= 5%. A window holding a NaN or
    Inf loss fires. Note the tool runs it on a one-batch overfitting test, where the loss must keep falling; on a
    normal run it also fires once the loss has converged.

    Steps judged: every step (the loss).
    """
    return Check("thedeepchecker.loss_stagnating", "loss", float(min_decrease), ">=", every=every, after=after,
                 judge=judge, statistic="max_relative_decrease", window=window)



def thedeepchecker_exploding_gradient(*, mean_abs: float = 1e6, every: int = 1, after: int = 0,
                                      judge: Judge = "any") -> Check:
    """TheDeepChecker (Ben Braiek & Khomh, TOSEM) exploding gradient: fires when a layer's mean |gradient| > 1e6.

    Source: thedeepchecker/thedeepchecker, deep_checker/hooks.py, OverfitGradientHook.check_exploding_gradient:
    ``gradient_reductions[-1] > config.explod.mav_max_thresh`` (strict), the reduction being ``np.mean(np.abs(g))``
    of each weight's gradient, at ``iter_count >= start and iter_count % period == 0`` (after and every here).
    Threshold 1e6: as described in the paper; source not found in the index (deep_checker/config/settings.yaml is
    not stored). Here: per step from layer_grad_mean_abs (kernel and bias together), judged by the largest. Passes
    while every layer's mean |g| <= 1e6.

    Steps judged: applied steps only (a step fp16 loss scaling skipped is not judged).
    """
    return Check("thedeepchecker.exploding_gradient", "layer_grad_mean_abs", float(mean_abs), "<=", every=every,
                 after=after, judge=judge, on=APPLIED)


def thedeepchecker_vanishing_gradient(*, mean_abs: float = 1e-6, every: int = 1, after: int = 0,
                                      judge: Judge = "any") -> Check:
    """TheDeepChecker (Ben Braiek & Khomh, TOSEM) vanishing gradient: fires when a layer's mean |gradient| < 1e-6.

    Source: thedeepchecker/thedeepchecker, deep_checker/hooks.py, OverfitGradientHook.check_vanishing_gradient:
    ``gradient_reductions[-1] < config.vanish.mav_min_thresh`` (strict) on ``np.mean(np.abs(g))`` of each weight's
    gradient, at ``iter_count >= start and iter_count % period == 0``. Threshold 1e-6: as described in the paper;
    source not found in the index (deep_checker/config/settings.yaml is not stored). Here: per step from
    layer_grad_mean_abs, judged by the smallest. Passes while every layer's mean |g| >= 1e-6.

    Steps judged: applied steps only (a step fp16 loss scaling skipped is not judged).
    """
    return Check("thedeepchecker.vanishing_gradient", "layer_grad_mean_abs", float(mean_abs), ">=", every=every,
                 after=after, judge=judge, on=APPLIED)


def thedeepchecker_numerical_instability(*, every: int = 1, after: int = 0,
                                         judge: Judge = "any") -> tuple[Check, Check, Check]:
    """TheDeepChecker (Ben Braiek & Khomh, TOSEM) numerical instability of loss, weights and gradients: fires on any
    NaN or Inf. Threshold: none (any non-finite value).

    Source: thedeepchecker/thedeepchecker, deep_checker/hooks.py: OverfitLossHook.check_numerical_instabilities
    (np.isnan / np.isinf of the loss), OverfitWeightHook and OverfitGradientHook.check_numerical_instabilities
    (``np.isinf(a).any()``, ``np.isnan(a).any()`` of each weight and its gradient), every iteration. Here: per step
    on loss, weights_finite and grads_finite.

    Steps judged: numerical_loss every step; the weights and gradients rules applied steps only (a step fp16 loss
    scaling skipped has inf gradients by design).
    """
    return (_finite("thedeepchecker.numerical_loss", "loss", every, after, judge),
            _flag("thedeepchecker.numerical_weights", "weights_finite", every, after, judge, APPLIED),
            _flag("thedeepchecker.numerical_gradients", "grads_finite", every, after, judge, APPLIED))


# -------------------------------------------------------------------------------------------------------- bundles

DETECTORS: tuple[Callable[..., Check | tuple[Check, ...]], ...] = (
    autotrainer_exploding_gradient, autotrainer_vanishing_gradient, autotrainer_dying_relu, autotrainer_not_converged,
    autotrainer_nan, deepdiagnosis_dead_relu, deepdiagnosis_saturated_activation, deepdiagnosis_vanishing_gradient,
    deepdiagnosis_numerical_error, deepdiagnosis_loss_unchanged, thedeepchecker_exploding_gradient,
    thedeepchecker_vanishing_gradient, thedeepchecker_numerical_instability, thedeepchecker_loss_stagnating)


def autotrainer(*, every: int = 1, after: int = 0, metric: str | None = "accuracy") -> list[Check]:
    """AUTOTRAINER's detectors with its defaults; ``metric=None`` leaves out not_converged (a final check that needs
    that compiled metric)."""
    s = dict(every=every, after=after)
    out = [autotrainer_exploding_gradient(**s), autotrainer_vanishing_gradient(**s), autotrainer_dying_relu(**s),
           *autotrainer_nan(**s)]
    return out + ([autotrainer_not_converged(metric=metric)] if metric is not None else [])


def deepdiagnosis(*, every: int = 1, after: int = 0, activations: bool = True) -> list[Check]:
    """DeepDiagnosis's detectors with its defaults; ``activations=False`` leaves out dead ReLU and saturation, which
    need the engine's opt-in activation observations."""
    s = dict(every=every, after=after)
    acts = [deepdiagnosis_dead_relu(**s), deepdiagnosis_saturated_activation(**s)] if activations else []
    return [*acts, deepdiagnosis_vanishing_gradient(**s), *deepdiagnosis_numerical_error(**s),
            deepdiagnosis_loss_unchanged(**s)]


def thedeepchecker(*, every: int = 1, after: int = 0) -> list[Check]:
    """TheDeepChecker's gradient, numerical and loss detectors with their defaults."""
    s = dict(every=every, after=after)
    return [thedeepchecker_exploding_gradient(**s), thedeepchecker_vanishing_gradient(**s),
            *thedeepchecker_numerical_instability(**s), thedeepchecker_loss_stagnating(**s)]


def all_detectors(*, every: int = 1, after: int = 0, activations: bool = True,
                  metric: str | None = "accuracy") -> list[Check]:
    """The three bundles together; names are unique (``<tool>.<detector>``)."""
    return [*autotrainer(every=every, after=after, metric=metric),
            *deepdiagnosis(every=every, after=after, activations=activations),
            *thedeepchecker(every=every, after=after)]
