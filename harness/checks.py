"""Instrumented assertions: declared in plain Python, evaluated and accumulated in-graph.

A check turns an observed tensor into a value, compares it with its bound and
accumulates over the run: evaluations, failures, non-finite evaluations, the
first failing step, the worst value and its signed margin (negative = violated).

NaN and Inf never pass. A naive ``assert loss < 1.0`` is False for NaN only by
luck of the comparison, and ``-inf < 1.0`` is True; here an evaluation passes
only when every element is finite *and* satisfies the comparison. A vector
observation is judged by its worst element.

Comparison semantics (``compare=``): "native" (default) compares the way TF
does when a tensor meets a Python float: the bound is rounded to the value's
dtype first (in fp16, 0.99 becomes 0.990234375). "exact" compares in float64
against the bound as declared. Margins are float64 differences to the bound as
the comparison saw it, so ``margin < 0`` (or ``<= 0`` for strict ops) is a failure.

    from harness import checks
    checks.below("loss_below", "post_loss", 1.0)        # loss < 1.0 after each step
    checks.within("output", "activations", 0.01, 0.99)  # output_min >= .01, output_max <= .99
    checks.near("mean_near_zero", "mean", 0.0, tol=0.1, when="final")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.records import CheckMeaning

Observe = str | Callable[[Mapping[str, Any]], Any]
When = Literal["step", "final"]
# (n_evaluated, n_failed, n_nonfinite, first_failure_step, worst_value, worst_margin, bound_compared,
#  value_dtype, last_failed)
CheckState = tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any]
Judge = Literal["any", "last"]
Op = Literal["<", "<=", ">", ">="]
OPS: tuple[str, ...] = ("<", "<=", ">", ">=")
# What a step check compares with its bound: its step value ("value"), or a statistic of a window of
# period means of it (see Check.statistic). Declared once; recorded in the results' ``statistic`` column.
Statistic = Literal["value", "max_relative_decrease", "range"]
STATISTICS: tuple[str, ...] = ("value", "max_relative_decrease", "range")
# Which steps a step check judges: every step ("all"), or only the steps whose update the optimizer
# applied ("applied"): under fp16, dynamic loss scaling skips a step whose scaled gradients
# overflowed, by design (the run's skipped_steps counts them), so rules about gradients, updates and
# weights judge the applied steps. Recorded in the results' ``on`` column.
On = Literal["all", "applied"]
ONS: tuple[str, ...] = ("all", "applied")


@dataclass(frozen=True)
class Check:
    """One assertion: ``value <op> bound`` where op is <, <=, > or >=.

    observe: a key of the observation dict a step returns, or a function of it.
    transform: optional function applied to the observed tensor (e.g. abs(x - t)).
    when: "step" evaluates after training steps, "final" once after training.
    every, after: the schedule of a step check: it is evaluated at steps after, after + every,
        after + 2 every, ... (every=1, after=0: every step; after=s skips a warm-up).
    judge: "any" (the run fails the check when any scheduled evaluation fails) or "last" (only
        the last scheduled evaluation decides, e.g. "the loss has fallen by the end"; the
        counts still cover every evaluation).
    on: "all" (default) judges every scheduled step; "applied" only the scheduled steps whose
        update the optimizer applied: a step that fp16's dynamic loss scaling skipped (its scaled
        gradients overflowed, so no update was made, by design) is not evaluated, and is counted
        once, in the run's ``skipped_steps``. For checks of gradients, updates and weights. The
        step's ``skipped`` observation (``RunContext.minimize``) decides; a scenario that does not
        return it has every step applied. A run that applied none of the scheduled steps (every
        step skipped: its gradients were never finite) has every scheduled step judged, so such a
        check fails there instead of passing with no evaluation.
    statistic, window: what a step check compares with its bound. "value" (default): the step's
        value at each scheduled step. Otherwise the step values are first averaged over each
        period of ``every`` steps (the period ending at step after + j*every; the first one also
        holds the steps up to ``after``), giving one point per period, and then:
        "max_relative_decrease": at each point j >= window-1, the largest relative decrease
            (m[i-1] - m[i]) / m[i-1] over the last ``window`` points ("has the loss fallen by at
            least x% in any of the last window-1 periods?", TheDeepChecker's stagnating loss);
        "range": over consecutive, non-overlapping blocks of ``window`` points, max - min of the
            block ("did the value change at all?", DeepDiagnosis' unchanged loss).
        A window holding a NaN or Inf point gives NaN (fails); so does a relative decrease whose
        previous point is exactly 0 (undefined; the tool's numpy gives NaN, which never fires
        there), and a negative point flips the sign of the decrease. The statistic is float64 and is
        compared with the bound exactly (no rounding to the value's dtype). An incomplete last
        period or block is not evaluated.
    """

    name: str
    observe: Observe
    bound: float
    op: Op
    when: When = "step"
    transform: Callable[[Any], Any] | None = None
    compare: Literal["native", "exact"] = "native"
    every: int = 1
    after: int = 0
    judge: Judge = "any"
    statistic: Statistic = "value"
    window: int = 1
    on: On = "all"

    def __post_init__(self) -> None:
        self._validate_comparison()
        self._validate_schedule()
        self._validate_statistic()
        self._validate_on()

    def _validate_comparison(self) -> None:
        """The name, and ``value <op> bound`` with its compare mode and when."""
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"check name {self.name!r} must be a non-empty string")
        if self.op not in OPS:
            raise ValueError(f"check {self.name}: op {self.op!r} is not one of < <= > >=")
        if self.when not in ("step", "final"):
            raise ValueError(f"check {self.name}: when={self.when!r} is not 'step' or 'final'")
        if self.compare not in ("native", "exact"):
            raise ValueError(f"check {self.name}: compare={self.compare!r} is not 'native' or 'exact'")
        if not isinstance(self.bound, (int, float)) or not math.isfinite(self.bound):
            raise ValueError(f"check {self.name}: bound {self.bound!r} is not a finite number")

    def _validate_schedule(self) -> None:
        """every, after and judge."""
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"check {self.name}: every={self.every!r} is not a positive integer")
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise ValueError(f"check {self.name}: after={self.after!r} is not a non-negative integer")
        if self.judge not in ("any", "last"):
            raise ValueError(f"check {self.name}: judge={self.judge!r} is not 'any' or 'last'")

    def _validate_statistic(self) -> None:
        """statistic and window, which only a windowed statistic of a step check uses."""
        if self.statistic not in STATISTICS:
            raise ValueError(f"check {self.name}: statistic={self.statistic!r} is not one of {', '.join(STATISTICS)}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"check {self.name}: window={self.window!r} is not a positive integer")
        if self.statistic == "value" and self.window != 1:
            raise ValueError(f"check {self.name}: window={self.window} needs a statistic (max_relative_decrease, range)")
        if self.statistic != "value" and (self.window < 2 or self.when != "step"):
            raise ValueError(f"check {self.name}: statistic={self.statistic} needs when='step' and window >= 2 "
                             f"(got when={self.when!r}, window={self.window})")

    def _validate_on(self) -> None:
        """on, which only a step check of its step values uses."""
        if self.on not in ONS:
            raise ValueError(f"check {self.name}: on={self.on!r} is not one of {', '.join(ONS)}")
        if self.on != "all" and (self.when != "step" or self.statistic != "value"):
            raise ValueError(f"check {self.name}: on={self.on!r} needs when='step' and statistic='value' "
                             f"(got when={self.when!r}, statistic={self.statistic!r})")

    def meaning(self) -> CheckMeaning:
        """What the check asserts, as recorded on every result row (the bound as declared)."""
        return CheckMeaning(self.name, float(self.bound), self.op, self.compare, self.when, self.every, self.after,
                            self.judge, self.statistic, self.window, self.on)

    # ------------------------------------------------------------------ in-graph
    #
    # Per step, a check only reduces its observation to one value (its worst element) and,
    # when that value alone cannot tell, a flag "every raw element was finite". The loop
    # appends both to TensorArrays; ``summarize`` turns the whole series into the run's
    # counts, first failure and worst margin at once, vectorised, after the loop.

    @property
    def upper(self) -> bool:
        """True for < and <= (the bound is a ceiling)."""
        return self.op in ("<", "<=")

    def observe_in(self, obs: Mapping[str, Any]) -> Any:
        if callable(self.observe):
            return self.observe(obs)
        if self.observe not in obs:
            raise KeyError(f"check {self.name}: observation {self.observe!r} not returned "
                           f"(returned: {', '.join(sorted(obs))})")
        return obs[self.observe]

    def step_value(self, obs: Mapping[str, Any]) -> Any:
        """The step's worst element as a float64 scalar; NaN when any raw element was not
        finite (so the evaluation fails even if a transform, e.g. a count, hid it).
        The measured dtype, needed for native comparison, is ``self.value_dtype(obs)``."""
        import tensorflow as tf

        raw = tf.convert_to_tensor(self.observe_in(obs))
        measured = raw if self.transform is None else tf.convert_to_tensor(self.transform(raw))
        if measured.shape.rank == 0:
            value = measured
        else:
            value = tf.reduce_max(measured) if self.upper else tf.reduce_min(measured)
            if measured.dtype.is_floating:
                value = tf.where(tf.reduce_all(tf.math.is_finite(measured)), value,
                                 tf.constant(float("nan"), measured.dtype))
        value = tf.cast(value, tf.float64)
        if self.transform is not None and raw.dtype.is_floating:
            value = tf.where(tf.reduce_all(tf.math.is_finite(raw)), value, tf.constant(float("nan"), tf.float64))
        return value, measured.dtype

    def summarize(self, values: Any, steps: Any, dtype: Any, skipped: Any = None) -> CheckState:
        """Counts, first failing step, worst value and margin of a series of float64 step
        values measured in ``dtype`` (the bound is rounded to it for native comparison),
        then the bound as compared and the name of the measured dtype. ``skipped`` (bool, one per
        step, or None: none skipped) marks the steps whose update was not applied, which a check
        ``on="applied"`` does not evaluate."""
        import tensorflow as tf

        x = tf.reshape(tf.cast(values, tf.float64), [-1])
        steps = tf.reshape(tf.cast(steps, tf.int64), [-1])
        if self.statistic != "value":  # a windowed statistic owns the schedule; compared exactly in float64
            x, steps = self._windowed(x, steps)
            dtype = tf.float64
        elif self.when == "step" and (self.every > 1 or self.after > 0 or (self.on == "applied" and skipped is not None)):
            x, steps = self._scheduled(x, steps, skipped)
        bound = self._bound_compared(dtype)
        failed = self._failed(x, bound)
        last_failed = tf.concat([[False], failed], 0)[-1]  # the last scheduled evaluation (False if none)
        return (*self._tally(x, steps, failed, bound), bound, tf.constant(tf.as_dtype(dtype).name), last_failed)

    def _scheduled(self, x: Any, steps: Any, skipped: Any) -> tuple[Any, Any]:
        """The values and steps of the schedule (every, after; with on="applied", the applied steps)."""
        import tensorflow as tf

        keep = tf.logical_and(steps >= self.after, tf.math.floormod(steps - self.after, self.every) == 0)
        if self.on == "applied" and skipped is not None:
            applied = tf.logical_and(keep, tf.logical_not(tf.reshape(tf.cast(skipped, tf.bool), [-1])))
            # a run that applied no scheduled update never trained there: then every scheduled step is
            # judged (its gradients were never finite, and the check fails), not none
            keep = tf.where(tf.reduce_any(applied), applied, keep)
        return tf.boolean_mask(x, keep), tf.boolean_mask(steps, keep)

    def _bound_compared(self, dtype: Any) -> Any:
        """The bound as the comparison sees it, float64: rounded to the value's dtype when native."""
        import tensorflow as tf

        bound = tf.constant(self.bound, tf.float64)
        if self.compare == "native" and tf.as_dtype(dtype).is_floating:
            bound = tf.cast(tf.cast(bound, dtype), tf.float64)  # what `tensor < 0.99` compares with
        return bound

    def _failed(self, x: Any, bound: Any) -> Any:
        """Per evaluation: True unless the value is finite and satisfies the comparison."""
        import tensorflow as tf

        cmp = {"<": tf.less, "<=": tf.less_equal, ">": tf.greater, ">=": tf.greater_equal}[self.op]
        return tf.logical_not(tf.logical_and(tf.math.is_finite(x), cmp(x, bound)))

    def _tally(self, x: Any, steps: Any, failed: Any, bound: Any) -> tuple[Any, Any, Any, Any, Any, Any]:
        """(n_evaluated, n_failed, n_nonfinite, first failing step or -1, worst value, worst margin)."""
        import tensorflow as tf

        finite = tf.math.is_finite(x)
        margins = tf.where(finite, bound - x if self.upper else x - bound, tf.constant(float("-inf"), tf.float64))
        # the first failing step, or -1: the sentinel keeps argmax defined on an empty series
        first = tf.gather(tf.concat([steps, [-1]], 0), tf.argmax(tf.cast(tf.concat([failed, [True]], 0), tf.int32)))
        i = tf.argmin(tf.concat([margins, [float("inf")]], 0))  # an empty series keeps the sentinel
        return (tf.size(x, out_type=tf.int64), tf.reduce_sum(tf.cast(failed, tf.int64)),
                tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64)), first,
                tf.concat([x, [float("nan")]], 0)[i], tf.concat([margins, [float("inf")]], 0)[i])

    def _windowed(self, x: Any, steps: Any) -> tuple[Any, Any]:
        """(statistic values, the step each is evaluated at) of a series of consecutive step values."""
        points, ends = self._period_means(x, steps)
        if self.statistic == "max_relative_decrease":
            return self._max_relative_decrease(points, ends)
        return self._range(points, ends)

    def _period_means(self, x: Any, steps: Any) -> tuple[Any, Any]:
        """(the mean of each complete period of ``every`` steps, the step each period ends at)."""
        import tensorflow as tf

        every, after = tf.constant(self.every, tf.int64), tf.constant(self.after, tf.int64)
        last = tf.reduce_max(tf.concat([[tf.constant(-1, tf.int64)], steps], 0))
        # period j ends at step after + j*every; the first also holds the steps before after
        period = tf.where(steps <= after, tf.zeros_like(steps), (steps - after + every - 1) // every)
        n_periods = tf.where(last < after, tf.constant(0, tf.int64), (last - after) // every + 1)
        keep = period < n_periods  # an incomplete last period is not evaluated
        points = tf.math.unsorted_segment_mean(tf.boolean_mask(x, keep), tf.boolean_mask(period, keep), n_periods)
        return points, after + tf.range(n_periods, dtype=tf.int64) * every

    @staticmethod
    def _finite_or_nan(frames: Any, stat: Any) -> Any:
        """``stat`` of each frame, NaN unless every point of the frame is finite."""
        import tensorflow as tf

        ok = tf.reduce_all(tf.math.is_finite(frames), axis=1)
        return tf.where(ok, stat, tf.constant(float("nan"), tf.float64))

    def _max_relative_decrease(self, points: Any, ends: Any) -> tuple[Any, Any]:
        """At each point from window-1 on, the largest relative decrease over the last ``window`` points."""
        import tensorflow as tf

        w = self.window
        prev, cur = points[:-1], points[1:]
        decrease = (prev - cur) / prev
        # each point of a window enters one of its decreases: a non-finite point makes the value NaN
        frames = tf.reshape(tf.signal.frame(decrease, w - 1, 1, axis=0), [-1, w - 1])
        value = self._finite_or_nan(frames, tf.reduce_max(tf.where(tf.math.is_finite(frames), frames, 0.0), axis=1))
        return value, ends[w - 1:][: tf.shape(value)[0]]

    def _range(self, points: Any, ends: Any) -> tuple[Any, Any]:
        """max - min of each non-overlapping block of ``window`` points, at the block's last step."""
        import tensorflow as tf

        w = self.window
        frames = tf.reshape(tf.signal.frame(points, w, w, axis=0), [-1, w])
        safe = tf.where(tf.math.is_finite(frames), frames, 0.0)
        value = self._finite_or_nan(frames, tf.reduce_max(safe, axis=1) - tf.reduce_min(safe, axis=1))
        return value, tf.gather(ends, tf.range(tf.shape(value)[0], dtype=tf.int64) * w + (w - 1))

    def evaluate(self, observations: Sequence[Mapping[str, Any]]) -> CheckState:
        """Eager convenience: summarize a list of observation dicts (steps 0, 1, ...); a step whose
        observations hold ``skipped`` True was not applied."""
        import tensorflow as tf

        pairs = [self.step_value(o) for o in observations]
        skipped = tf.stack([tf.cast(o.get("skipped", False), tf.bool) for o in observations])
        return self.summarize(tf.stack([v for v, _ in pairs]), tf.range(len(pairs), dtype=tf.int64), pairs[0][1],
                              skipped)


# ---------------------------------------------------------------------- the small API


Compare = Literal["native", "exact"]


def below(name: str, observe: Observe, bound: float, *, inclusive: bool = False, when: When = "step",
          compare: Compare = "native", every: int = 1, after: int = 0, judge: Judge = "any", on: On = "all") -> Check:
    """Passes while value < bound (<= with inclusive=True); ``on="applied"`` judges applied steps only."""
    return Check(name, observe, float(bound), "<=" if inclusive else "<", when, compare=compare, every=every,
                 after=after, judge=judge, on=on)


def above(name: str, observe: Observe, bound: float, *, inclusive: bool = False, when: When = "step",
          compare: Compare = "native", every: int = 1, after: int = 0, judge: Judge = "any", on: On = "all") -> Check:
    """Passes while value > bound (>= with inclusive=True); ``on="applied"`` judges applied steps only."""
    return Check(name, observe, float(bound), ">=" if inclusive else ">", when, compare=compare, every=every,
                 after=after, judge=judge, on=on)


def within(name: str, observe: Observe, lo: float, hi: float, *, when: When = "step",
           compare: Compare = "native") -> tuple[Check, Check]:
    """lo <= value <= hi, as two checks ``{name}_min`` and ``{name}_max``."""
    if not lo <= hi:
        raise ValueError(f"check {name}: lo={lo} > hi={hi}")
    return (above(f"{name}_min", observe, lo, inclusive=True, when=when, compare=compare),
            below(f"{name}_max", observe, hi, inclusive=True, when=when, compare=compare))


def near(name: str, observe: Observe, target: float, tol: float, *, when: When = "step",
         compare: Compare = "native") -> Check:
    """|value - target| < tol. The distance is computed in the value's dtype ("native", as
    ``tf.abs(x - target) < tol`` would) or in float64 ("exact")."""
    if not tol > 0:
        raise ValueError(f"check {name}: tol={tol} must be > 0")

    def distance(x: Any) -> Any:
        import tensorflow as tf

        if compare == "exact" or not x.dtype.is_floating:
            x = tf.cast(x, tf.float64)
        return tf.abs(x - tf.cast(target, x.dtype))

    return Check(name, observe, float(tol), "<", when, transform=distance, compare=compare)


def finite(name: str, observe: Observe, *, when: When = "step", every: int = 1, after: int = 0,
           on: On = "all") -> Check:
    """Every element finite. The value is the number of non-finite elements. ``on="applied"``:
    applied steps only (the gradients of a step fp16 loss scaling skipped are not finite, by design)."""

    def count(x: Any) -> Any:
        import tensorflow as tf

        return tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)), tf.float64))

    return Check(name, observe, 0.0, "<=", when, transform=count, every=every, after=after, on=on)


def equal_shape(name: str, a: Observe, b: Observe, *, when: When = "step") -> Check:
    """Two observations have the same shape. The value is 0 (equal) or 1 (different)."""

    def pick(obs: Mapping[str, Any], o: Observe) -> Any:
        return o(obs) if callable(o) else obs[o]

    def mismatch(obs: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        sa, sb = tf.shape(pick(obs, a), out_type=tf.int64), tf.shape(pick(obs, b), out_type=tf.int64)
        n = tf.maximum(tf.size(sa), tf.size(sb))  # pad the shorter shape with -1: ranks may differ
        pa = tf.pad(sa, [[0, n - tf.size(sa)]], constant_values=-1)
        pb = tf.pad(sb, [[0, n - tf.size(sb)]], constant_values=-1)
        return tf.cast(tf.reduce_any(tf.not_equal(pa, pb)), tf.float64)

    return Check(name, mismatch, 0.0, "<=", when)


def state_to_values(state: CheckState) -> dict[str, Any]:
    """Accumulated state (eager tensors or numpy) -> plain Python values."""
    n_eval, n_fail, n_nonfinite, first, worst_value, worst_margin, bound_compared, dtype, last_failed = (
        s.numpy() if hasattr(s, "numpy") else s for s in state)
    return {
        "n_evaluated": int(n_eval),
        "n_failed": int(n_fail),
        "n_nonfinite": int(n_nonfinite),
        "first_failure_step": int(first) if first >= 0 else None,
        "worst_value": float(worst_value),
        "worst_margin": float(worst_margin),
        "bound_compared": float(bound_compared),
        "value_dtype": dtype.decode() if isinstance(dtype, bytes) else str(dtype),
        "last_failed": bool(last_failed),
    }
