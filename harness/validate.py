"""The one rule for a value read from config: ``ConfigError(key, message)``, one line naming the
key and the bad value, and the checks every config value goes through (numbers, counts, lists
of an axis). Shared by ``harness.config`` and ``harness.axes``; no I/O, no TF, no Ray."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value: ``key: message`` on one line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key



def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def nonfinite(v: Any) -> bool:
    """A float NaN or infinity (an int is always finite, however large)."""
    return _is_number(v) and not _is_int(v) and not math.isfinite(v)


def refuse(key: str, value: Any, what: str) -> ConfigError:
    why = " (NaN and infinity are refused)" if nonfinite(value) else ""
    return ConfigError(key, f"{value!r} is not {what}{why}")


def number(key: str, value: Any, what: str, *, above: float | None = None, at_least: float | None = None,
           below: float | None = None) -> float:
    """The one rule for every real number read from config: a number (not a bool or a string), finite,
    and in range; else ConfigError ``KEY: VALUE is not WHAT``. Finite because NaN compares false
    with every limit (``timeout_s=nan`` passed ``<= 0`` and silently disabled the timeout) and no
    setting of the harness means infinity."""
    if (not _is_number(value) or nonfinite(value) or (above is not None and not value > above)
            or (at_least is not None and not value >= at_least) or (below is not None and not value < below)):
        raise refuse(key, value, what)
    return float(value)


def integer(key: str, value: Any, what: str, *, at_least: int) -> int:
    """The same rule for a count: a whole number at least ``at_least`` (a whole float such as 1e6,
    which YAML may read as a float, is fine; NaN and infinity are not whole)."""
    if _is_number(value) and not _is_int(value) and not nonfinite(value) and float(value).is_integer():
        value = int(value)
    if not _is_int(value) or value < at_least:
        raise refuse(key, value, what)
    return int(value)


# an axis given as range(start, stop[, step]), Python's semantics (the CLI keeps Hydra's range(...) this way)
RANGE = re.compile(r"^range\(\s*(-?\d+)\s*,\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?\)$")


def as_list(key: str, value: Any) -> list[Any]:
    m = RANGE.match(value.strip()) if isinstance(value, str) else None
    if m:
        start, stop, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
        if step == 0:
            raise ConfigError(key, f"{value!r}: a range step must not be 0")
        value = range(start, stop, step)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        value = [value]
    values = list(value)
    if not values:
        raise ConfigError(key, "empty axis; give at least one value")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(key, f"{values!r} has repeated values")
    return values
