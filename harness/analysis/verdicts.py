"""The verdicts of the analysis layer, declared once.

A verdict is data: analyses return one of these enums per row (a ``*_status`` column)
beside a sentence for people, and code (the report's colours, the terminal summary)
branches on the enum only, never on the wording. ``tone`` says how a reader should take
it: "good", "bad" or "neutral" (nothing to conclude yet).
"""

from __future__ import annotations

import enum


class Verdict(str, enum.Enum):
    """Base: the value is a stable lower-case token, safe to store in a table."""

    @property
    def tone(self) -> str:
        return _TONE.get(self, "neutral")


class TrendVerdict(Verdict):
    """Does the run-level failure rate change with data size?"""

    RISES = "rises"
    FALLS = "falls"
    FLAT = "flat"  # tested: no evidence of a change
    NEVER_FAILS = "never_fails"
    ALWAYS_FAILS = "always_fails"
    NOT_ENOUGH_DATA = "not_enough_data"  # one data size, or too few runs to test


class RiseVerdict(Verdict):
    """Is the change of the run-level failure rate with data size explained by the number
    of evaluations per run alone (a constant per-evaluation hazard)?"""

    EXPLAINED = "explained"  # rises, and as much as the evaluation count predicts
    NOT_EXPLAINED = "not_explained"  # the per-evaluation hazard itself grows with data size
    RATE_RISES = "rate_rises"  # rises with a fixed evaluation count: the count cannot explain it
    LESS_THAN_COUNT = "less_than_count"  # rises less than the count predicts (failures cluster within runs)
    UNRESOLVED = "unresolved"  # rises, but the count and the rate could not be told apart
    NO_RISE = "no_rise"  # no significant rise: nothing to explain
    FALLS = "falls"  # falls with data size: nothing to explain
    NEVER_FAILS = "never_fails"
    ALWAYS_FAILS = "always_fails"
    NOT_ENOUGH_DATA = "not_enough_data"  # one data size, or too few runs to test


class BoundVerdict(Verdict):
    """Is there a bound that keeps the run-level false-alarm rate at the target, with the
    stated confidence?"""

    GUARANTEED = "guaranteed"  # distribution-free guarantee from enough runs
    NEEDS_RUNS = "needs_runs"  # too few runs for the guarantee: the row says how many more
    NO_BOUND = "no_bound"  # runs that saw NaN/Inf alone exceed the target: no bound can hold
    NO_DATA = "no_data"  # no completed run evaluated the check
    UNKNOWN_OP = "unknown_op"  # results written before the op was recorded (schema 1)


class ValidationVerdict(Verdict):
    """The recommended bound applied to runs it was not computed from."""

    HOLDS = "holds"  # the failure rate's upper confidence limit is at most the target
    EXCEEDS = "exceeds"  # the lower confidence limit is above the target
    INCONCLUSIVE = "inconclusive"  # too few validation runs to tell the target from a miss
    NOT_VALIDATED = "not_validated"  # no validation runs


class AlarmVerdict(Verdict):
    """How a detector check's alarms relate to the run's outcome (harness.analysis.alarms):
    the first that applies."""

    NOISY = "noisy"  # false alarms in more than the allowed share of healthy runs (lower limit above it)
    INFORMATIVE = "informative"  # fires more often in unhealthy runs (one-sided Fisher exact test)
    QUIET = "quiet"  # false alarms within the allowed share of healthy runs (upper limit at most it)
    UNINFORMATIVE = "uninformative"  # testable, and no evidence that firing goes with an unhealthy outcome
    NOT_ENOUGH_DATA = "not_enough_data"  # no healthy or no unhealthy runs, or too few to test


class CompareVerdict(Verdict):
    """Did the run-level failure rate of a check change from one sweep to another
    (harness.analysis.compare)? The first that applies."""

    WORSE = "worse"  # fails more often after, significant after Holm's control over all rows
    BETTER = "better"  # fails less often after, likewise
    IDENTICAL = "identical"  # every paired run recorded the same values on both sides
    SAME = "same"  # within the margin: the 1 - 2 alpha interval of the difference inside (-margin, margin)
    NOT_ENOUGH_DATA = "not_enough_data"  # none of the above: the row says how many more seeds would tell
    ONLY_BEFORE = "only_before"  # the cell or check exists in the first sweep only
    ONLY_AFTER = "only_after"  # in the second only


_TONE: dict[Verdict, str] = {
    TrendVerdict.RISES: "bad", TrendVerdict.ALWAYS_FAILS: "bad", TrendVerdict.FALLS: "good",
    TrendVerdict.FLAT: "neutral", TrendVerdict.NEVER_FAILS: "good",
    RiseVerdict.EXPLAINED: "good", RiseVerdict.NOT_EXPLAINED: "bad", RiseVerdict.RATE_RISES: "bad",
    RiseVerdict.FALLS: "good", RiseVerdict.NEVER_FAILS: "good", RiseVerdict.ALWAYS_FAILS: "bad",
    BoundVerdict.GUARANTEED: "good", BoundVerdict.NO_BOUND: "bad",
    ValidationVerdict.HOLDS: "good", ValidationVerdict.EXCEEDS: "bad",
}
_TONE.update({CompareVerdict.WORSE: "bad", CompareVerdict.BETTER: "good", CompareVerdict.IDENTICAL: "good",
              CompareVerdict.SAME: "good"})
_TONE.update({AlarmVerdict.NOISY: "bad", AlarmVerdict.INFORMATIVE: "good", AlarmVerdict.QUIET: "good"})
