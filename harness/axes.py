"""The axes of a sweep, declared once: ``AXES``, in the grid's order, each with its display order.

Each ``Axis`` says how a value is read from config (``parse``, which raises the one-line
``ConfigError(key, message)``), its column's type in the results (a column of the axis's name),
its label, whether a scenario that does not train uses it, where the closing summary shows it,
whether an unset value enters the run id; ``show`` prints a value of any of them. Everything that names axes
reads this table: the config (``sweep.NAME``), the grid (the product, the run id), the results
schema and rows, the analysis frame, the summary, the adaptive plan, replay, trace and the
report. Adding an axis is one entry here (and its test); a scenario reads its value as
``ctx.axis(NAME)``, and an axis with ``optimizer`` changes the run's optimizer in
``ctx.optimizer`` with no scenario code at all (a Keras scenario's compile optimizer included):
``optimizer`` (the class, by Keras name) and ``learning_rate`` are such axes.

Modelled on Ray Tune's ``search/sample.py`` (each axis a Domain that validates, casts and prints
itself), without Ray: the driver imports this module, so no TensorFlow and no Ray here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.validate import ConfigError, as_list, integer, number

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
# Where the closing summary (harness.summary) shows an axis: its rows, its columns, pooled over
# (named under the table), or the replicates (seeds).
SUMMARY_PLACES: tuple[str, ...] = ("row", "column", "pooled", "replicate")


def show(value: Any) -> str:
    """A value as the harness prints it: ``none`` for unset, whole floats without ``.0``, others ``%g``."""
    if value is None:
        return "none"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):  # float, numpy's floats
        v = float(value)
        if math.isnan(v):  # a null read from a float column
            return "none"
        return f"{int(v)}" if v.is_integer() and abs(v) < 1e15 else f"{v:g}"
    return str(value)


@dataclass(frozen=True)
class Axis:
    """One axis of a sweep (see the module's docstring).

    ``parse(key, value)``: one value as the axis's python type, or ConfigError. ``default``: the
    values of a sweep that does not set it (``None``: a sweep must set it). ``training``: only a
    scenario that trains uses it; the grid collapses it to null for the others (one run, not
    repeated ones). ``hashed_unset``: an unset (null) value enters the run id; the axes that
    existed when run ids were first stored do, an axis added later does not, so a sweep that does
    not set it keeps its run ids. ``optimizer(value, cls, kwargs) -> (cls, kwargs)``: how a set
    value changes the Keras optimizer the scenario builds with ``ctx.optimizer`` (its class and
    arguments; the axes apply in the table's order; null: the scenario's own)."""

    name: str
    type: type
    column_type: str  # the results column's type, a name of harness.records.EXTRA_TYPES
    label: str
    display: int  # the axis's place among the results' columns (and the analysis's axes)
    doc: str
    parse: Callable[[str, Any], Any]
    summary: str = "pooled"
    default: tuple[Any, ...] | None = None
    training: bool = False
    hashed_unset: bool = True
    optimizer: Callable[[Any, type, dict[str, Any]], tuple[type, dict[str, Any]]] | None = None
    nullable: bool = False  # null is a value of the axis (no clipping); else null means unset

    def __post_init__(self) -> None:
        if self.summary not in SUMMARY_PLACES:
            raise ValueError(f"axis {self.name}: summary {self.summary!r} is not one of {', '.join(SUMMARY_PLACES)}")

    def values(self, raw: Any) -> tuple[Any, ...] | None:
        """The axis's values from the sweep's ``raw`` setting (absent: ``default``); ConfigError
        ``sweep.NAME: ...`` for a missing required axis or a bad value."""
        key = f"sweep.{self.name}"
        if raw is None:
            if self.default is None and self.name not in SCHEDULE:  # (steps/epochs: harness.config checks one is set)
                raise ConfigError(key, "missing axis")
            return self.default
        out = []
        for v in as_list(key, raw):
            null = v is None or (isinstance(v, str) and v.strip().lower() in ("null", "none"))
            out.append(None if null and (self.nullable or self.default == (None,)) else self.parse(key, v))
        return tuple(out)


def _scenario(key: str, value: Any) -> Any:
    return value  # a name of the configured scenarios: harness.config checks it against them


def _precision(key: str, value: Any) -> str:
    if value not in PRECISIONS:
        raise ConfigError(key, f"unknown precision {value!r} (known: {', '.join(PRECISIONS)})")
    return value


# Keras optimizers by the names keras.optimizers.get knows (Muon is left out: it needs to be told
# which variables it may orthogonalize)
OPTIMIZERS: tuple[str, ...] = ("adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "ftrl", "lion",
                               "nadam", "rmsprop", "sgd")


def _optimizer_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in OPTIMIZERS:
        from harness.suggest import did_you_mean

        raise ConfigError(key, f"unknown optimizer {value!r} (known: {', '.join(OPTIMIZERS)})"
                          + (did_you_mean(value.lower(), OPTIMIZERS) if isinstance(value, str) else ""))
    return value.lower()


def _other_optimizer(value: str, cls: type, kwargs: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The Keras optimizer named ``value``, keeping the scenario's arguments that it also takes
    (learning rate, weight decay, ...; not SGD's momentum for Adam, nor the old class's name)."""
    import inspect

    import keras

    new = type(keras.optimizers.get(value))
    takes = set(inspect.signature(new.__init__).parameters) - {"self", "name"}
    return new, {k: v for k, v in kwargs.items() if k in takes}


def _learning_rate(value: float, cls: type, kwargs: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    return cls, {**kwargs, "learning_rate": value}  # a schedule of the scenario's included


def _positive_int(key: str, value: Any) -> int:
    return integer(key, value, "a positive integer", at_least=1)


def _positive_number(key: str, value: Any) -> float:
    return number(key, value, "a positive number", above=0)


# In the grid's order (the product of a sweep varies the last axis fastest); ``display`` orders the
# columns of the results and the analysis.
AXES: tuple[Axis, ...] = (
    Axis("scenario", str, "string", "scenario", 0, "the scenario's name (a key of `scenarios`)", _scenario,
         summary="row"),
    Axis("data_size", int, "int64", "data size", 1, "rows of data the run generates", _positive_int,
         summary="column"),
    Axis("batch_size", int, "int64", "batch size", 2, "rows a training step takes", _positive_int, training=True),
    Axis("precision", str, "string", "precision", 6, "fp32, fp16 or bf16 (a Keras dtype policy)", _precision,
         summary="row"),
    Axis("seed", int, "int64", "seed", 5, "the replicate: data and initialisation",
         lambda key, v: integer(key, v, "a non-negative integer", at_least=0), summary="replicate"),
    Axis("clip_value", float, "float64", "clip value", 7, "gradient clipping by value; null: none",
         lambda key, v: number(key, v, "a positive number or null", above=0), default=(None,), training=True,
         nullable=True),
    Axis("steps", int, "int64", "steps", 3, "training steps (resolved for an epochs schedule; 0: the "
         "scenario does not train)", _positive_int, training=True),
    Axis("epochs", float, "float64", "epochs", 4, "passes over the data (null for a steps schedule)",
         _positive_number, training=True),
    Axis("optimizer", str, "string", "optimizer", 8, "the optimizer's class by its Keras name (sgd, adam, ...), "
         "with the scenario's arguments it takes; null: the scenario's own", _optimizer_name, summary="row",
         default=(None,), training=True, hashed_unset=False, optimizer=_other_optimizer),
    Axis("learning_rate", float, "float64", "learning rate", 9, "the optimizer's learning rate; null: the "
         "scenario's own", _positive_number, summary="row", default=(None,), training=True, hashed_unset=False,
         optimizer=_learning_rate),
)
BY_NAME: Mapping[str, Axis] = {a.name: a for a in AXES}
NAMES: tuple[str, ...] = tuple(BY_NAME)
# The two ways to give a run's length; a sweep sets exactly one of them.
SCHEDULE: tuple[str, ...] = ("steps", "epochs")
# The axes a scenario that does not train cannot use (harness.scenarios.base.unused_axes).
TRAINING: tuple[str, ...] = tuple(a.name for a in AXES if a.training)
# The axes in display order, and the run-level columns of the results in that order, with
# ``schedule`` (which of steps and epochs the sweep set) beside the schedule's axes.
DISPLAY: tuple[str, ...] = tuple(a.name for a in sorted(AXES, key=lambda a: a.display))
_LAST = max(DISPLAY.index(n) for n in SCHEDULE) + 1
COLUMNS: tuple[str, ...] = (*DISPLAY[:_LAST], "schedule", *DISPLAY[_LAST:])
COLUMN_TYPES: Mapping[str, str] = {c: BY_NAME[c].column_type if c in BY_NAME else "string" for c in COLUMNS}


def in_summary(place: str) -> tuple[str, ...]:
    """The axes the closing summary shows at ``place`` (one of SUMMARY_PLACES), in display order."""
    return tuple(n for n in DISPLAY if BY_NAME[n].summary == place)


def axis_values(spec: Any) -> dict[str, Any]:
    """Every axis's value of a run (a RunSpec, duck-typed), by name; null for an unset one."""
    return {a.name: spec.axis(a.name) for a in AXES}


def identity(values: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run's id the axes give: each axis's value, but an axis that does not hash an
    unset value (``hashed_unset``) only when it is set."""
    return {a.name: values.get(a.name) for a in AXES if a.hashed_unset or values.get(a.name) is not None}


def optimizer(values: Mapping[str, Any], cls: type, kwargs: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The optimizer class and arguments of a run: the scenario's ``cls`` and ``kwargs`` changed by
    each set axis that has an ``optimizer``, in the table's order (``{"learning_rate": 0.001}``)."""
    for a in AXES:
        if a.optimizer is not None and values.get(a.name) is not None:
            cls, kwargs = a.optimizer(values[a.name], cls, kwargs)
    return cls, kwargs


def label(names: Sequence[str], values: Mapping[str, Any]) -> str:
    """``name=value, ...`` of the named axes, as printed (summary, trace labels, replay)."""
    return ", ".join(f"{n}={show(values.get(n))}" for n in names)
