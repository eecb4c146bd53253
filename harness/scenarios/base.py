"""The protocol every scenario implements, built-in or a user's own.

A scenario is a class whose constructor takes its parameters (the keys of its
config next to ``_target_``) and which implements:

    checks()              -> the assertions, declared with harness.checks (no TF needed)
    build(ctx)            -> the data, a tuple of tensors whose first dimension is
                             ctx.data_size; also creates the model and optimizer
    train_step(batch, step) -> a dict of observations (tensors); runs inside the
                             compiled loop; must include "loss" (a float scalar)

and optionally:

    evaluate()            -> observations for checks declared with when="final",
                             computed once after training (also compiled)
    extras()              -> run-level result columns {name: float|int|bool|str}
    float32_params = {...} -> a class attribute: the parameters that make the scenario compute
                             in float32 what it computes in the compute dtype (e.g.
                             {"accumulate_float32": True}); the summary names them as the fix
                             to try where fp16 gives NaN/Inf and fp32 does not
    extra_columns()       -> the columns extras() returns, declared: {name: "float64" | "int64" |
                             "string" | "bool"} (a function of the parameters, no TF): every part
                             file of a sweep then carries every column of every scenario in it,
                             so plain readers (pandas.read_parquet) see them all
    trains = False        -> a class attribute for a scenario that does not train
                             (e.g. a preprocessing check): no loop runs, steps is
                             recorded as 0, every check must be when="final" and
                             train_step may be omitted; the axes it cannot use (the
                             training axes of harness.axes: batch_size, clip_value,
                             steps/epochs, learning_rate) collapse in the grid: one run
                             per remaining point, those axes recorded as null
    ignores_axes = (...)  -> a class attribute naming further axes the scenario does not
                             read (any training axis); they collapse too
    autograph = False     -> a class attribute for code with no Python control flow on
                             tensors: TF then skips AutoGraph's source conversion, which
                             makes every run's tracing faster (default True, TF's default)
    reuse_trace = True    -> a class attribute promising that the compiled code (train_step,
                             evaluate) reads the run only through the tensors build() returns
                             or leaves in the scenario's attributes, the tf.Variables build()
                             creates, the batch and the step (plus Python values fixed by the
                             parameters, precision, clip value and batch size), and that no
                             stateful TF random op runs, in build() either: a worker then
                             traces the loop and the final evaluation once per such structure
                             and reuses them for later runs, in a kept session (see
                             harness.engine.reuse); default False, and not inherited: a
                             subclass makes the promise again
    allows_inf = (...)    -> a class attribute naming float parameters that may be infinite
                             (e.g. a clip norm where inf means none); others refuse inf, and
                             every numeric parameter refuses NaN (it compares false with
                             everything, so it silently disables what it sets)
    unroll = 1            -> a class attribute keeping the training loop one of single steps:
                             otherwise a loop that many runs reuse gets hot and is traced
                             again, 8 steps per loop iteration (train_step's Python then runs
                             9 more times; results are the same, see harness.engine.loop)

Import tensorflow inside the methods, not at module level: the driver imports
scenario modules to validate them and must stay free of TensorFlow. A ``SystemExit`` (or a
``KeyboardInterrupt`` no signal caused) that the module, the constructor or ``checks()`` raises
while the driver validates is a configuration error like any other exception of theirs.
``ctx`` (harness.engine.context.RunContext) carries the run's axes, its dtype
policy and the precision-aware ``ctx.optimizer(...)`` and ``ctx.minimize(...)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import signal
import sys
import threading
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from harness import axes as axes_table
from harness.checks import Check

REQUIRED = ("checks", "build", "train_step")
OPTIONAL = ("evaluate", "extras")


@runtime_checkable
class Scenario(Protocol):
    def checks(self) -> Sequence[Check]: ...

    def build(self, ctx: Any) -> tuple[Any, ...]: ...

    def train_step(self, batch: tuple[Any, ...], step: Any) -> Mapping[str, Any]: ...


class ScenarioError(ValueError):
    """A scenario that cannot be loaded or does not follow the protocol."""


_sigints = 0  # SIGINTs received while counting_interrupts() is in effect
_counting = False


def _count_sigint(signum: int, frame: Any) -> None:
    global _sigints
    _sigints += 1
    raise KeyboardInterrupt  # as Python's default handler does


@contextlib.contextmanager
def counting_interrupts() -> Iterator[None]:
    """While the driver validates (imports and constructs scenarios): Ctrl-C still raises
    KeyboardInterrupt, and is counted, so ``_scenario_code`` tells the user's Ctrl-C (an interrupt:
    exit 130) from a KeyboardInterrupt the scenario's code raises itself (a configuration error).
    Outside it, e.g. in a Ray worker, every KeyboardInterrupt is taken for an interrupt. Only in the
    main thread, and only over Python's own handler (one installed by someone else is left alone)."""
    global _counting
    if threading.current_thread() is not threading.main_thread() or _counting \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _count_sigint)
    _counting = True
    try:
        yield
    finally:
        _counting = False
        if signal.getsignal(signal.SIGINT) is _count_sigint:  # not one installed meanwhile
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def _scenario_code(what: str) -> Iterator[None]:
    """Around a call into the scenario's own code (its module's import, its constructor, its
    ``checks()``): a SystemExit it raises, or a KeyboardInterrupt that no signal caused, is a
    ScenarioError ``WHAT raised SystemExit(7)``, not an exit with the scenario's code and no word.
    Ctrl-C (counted by counting_interrupts) and SIGTERM (harness.signals) stay interrupts."""
    from harness import signals

    seen = _sigints
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt) and (not _counting or _sigints != seen or signals.received):
            raise
        raise ScenarioError(f"{what} raised {exc!r}") from None


class ScenarioImportWarning(UserWarning):
    """Importing a scenario's module in the driver imported TensorFlow (it belongs inside the methods)."""


def load_class(target: str) -> type:
    """Import ``pkg.module.Class`` and check it has the protocol's methods."""
    module_name, _, attr = target.rpartition(".")
    had_tf = "tensorflow" in sys.modules
    try:
        with _scenario_code(f"importing its module {module_name}"):
            module = importlib.import_module(module_name)
    except ScenarioError:
        raise
    except Exception as exc:  # any import failure of a user's module is a config error
        raise ScenarioError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    if not had_tf and "tensorflow" in sys.modules:
        import warnings

        warnings.warn(f"importing {module_name} imported TensorFlow into the driver, which only validates the "
                      f"scenario (seconds of start-up and TF's notices on every command, -n included): import "
                      f"keras and tensorflow inside the scenario's methods instead (README, 'Your own scenario')",
                      ScenarioImportWarning, stacklevel=2)
    cls = getattr(module, attr, None)
    if cls is None:
        from harness.suggest import did_you_mean

        classes = [n for n, v in vars(module).items()  # the classes the module defines
                   if isinstance(v, type) and not n.startswith("_") and v.__module__ == module.__name__]
        raise ScenarioError(f"_target_ {target}: {module_name!r} has no class {attr!r} (classes: "
                            f"{', '.join(sorted(classes)) or 'none'})" + did_you_mean(attr, classes))
    required = REQUIRED if getattr(cls, "trains", True) else tuple(m for m in REQUIRED if m != "train_step")
    missing = [m for m in required if not callable(getattr(cls, m, None))]
    if missing:
        raise ScenarioError(f"{target} lacks method(s) {', '.join(missing)} of the scenario protocol")
    return cls


# the axes a scenario that does not train cannot use (harness.axes: those marked training)
TRAINING_AXES: tuple[str, ...] = axes_table.TRAINING


def unused_axes(cls: type) -> frozenset[str]:
    """Axes whose values cannot change a run of ``cls``: the training axes of a scenario that
    does not train, plus those it declares in ``ignores_axes``. The grid collapses them (one run,
    the axis recorded as null) so that identical runs are never counted as replicates."""
    ignored = getattr(cls, "ignores_axes", ())
    bad = [a for a in ignored if a not in TRAINING_AXES]
    if bad:
        raise ScenarioError(f"{cls.__name__}.ignores_axes names {bad[0]!r}; it may name only "
                            f"{', '.join(TRAINING_AXES)}")
    out = frozenset(ignored) | (frozenset(TRAINING_AXES) if not getattr(cls, "trains", True) else frozenset())
    if out & set(axes_table.SCHEDULE):  # steps or epochs: the run's length, however the sweep gives it
        out |= frozenset(axes_table.SCHEDULE)
    return out


class ParamError(ScenarioError):
    """A scenario parameter whose value does not convert to the constructor's type."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def _convert(value: Any, expected: Any, name: str) -> Any:
    """``value`` as ``expected`` (a type or typing form), strictly: True/False (or the strings
    true/false) for bool, whole numbers for int, numbers or numeric strings for float, the
    listed values for a Literal; anything else is a ParamError. Other types pass unchanged."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], name) if len(inner) == 1 else value
    if origin is typing.Literal:
        if value not in args:
            raise ParamError(name, f"{value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if expected is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ParamError(name, f"{value!r} is not true or false")
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise ParamError(name, f"{value!r} is not an integer")
        return int(value)
    if expected is float:
        if isinstance(value, bool):
            raise ParamError(name, f"{value!r} is not a number")
        try:
            return float(value)  # numbers, and numeric strings (YAML reads 1e-3 as a string); see _finite
        except (TypeError, ValueError):
            raise ParamError(name, f"{value!r} is not a number") from None
    if expected is str and not isinstance(value, str):
        raise ParamError(name, f"{value!r} is not a string")
    return value


def typed_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters converted to the types of the constructor's annotations (or of its
    defaults, where a parameter is not annotated). An unknown parameter is a ParamError
    (unless the constructor takes ``**kwargs``)."""
    init = cls.__init__  # type: ignore[misc]
    try:
        sig = inspect.signature(init)
    except (TypeError, ValueError):
        return dict(params)
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # unresolvable annotations: fall back to the defaults' types
        hints = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    named = [n for n, p in sig.parameters.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    out = {}
    for name, value in params.items():
        p = sig.parameters.get(name)
        if p is None or name == "self":
            if takes_any:
                out[name] = _finite(cls, name, value)
                continue
            raise ParamError(name, f"not a parameter of {cls.__name__} (parameters: {', '.join(named) or 'none'})")
        expected = hints.get(name)
        if expected is None and p.default is not inspect.Parameter.empty and p.default is not None:
            expected = type(p.default)
        out[name] = _finite(cls, name, value if expected is None else _convert(value, expected, name))
    return out


def _finite(cls: type, name: str, value: Any) -> Any:
    """A converted parameter, refused if it is (or holds) a NaN, or an infinity the class does not
    allow (``allows_inf``): a NaN compares false with everything, so a NaN tolerance or rate passes
    every check against it and silently changes what the run measures."""
    for v in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(v, float) and math.isnan(v):
            raise ParamError(name, f"{v!r} is not a number (NaN is refused)")
        if isinstance(v, float) and math.isinf(v) and name not in getattr(cls, "allows_inf", ()):
            raise ParamError(name, f"{v!r} is not a finite number ({cls.__name__}.allows_inf does not name {name})")
    return value


def instantiate(target: str, params: Mapping[str, Any]) -> Any:
    """Construct the scenario; any exception of its constructor is a one-line ScenarioError."""
    cls = load_class(target)
    call = f"{target}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    try:
        with _scenario_code(f"its constructor {call}"):
            return cls(**params)
    except ScenarioError:
        raise
    except Exception as exc:  # a user's constructor may raise anything: it is a configuration error
        raise ScenarioError(f"{call}: {type(exc).__name__}: {exc}") from exc


def definition(target: str, params: Mapping[str, Any]) -> str:
    """A digest of what a scenario asserts and of its code: its declared checks (name, op,
    bound, compare, when) and the source of the module that defines its class. Part of every
    run's id, so editing a check or the scenario's code never reuses stale stored results."""
    cls = load_class(target)
    meanings = [_meaning_key(c) for c in declared_checks(instantiate(target, params))]
    try:
        source = inspect.getsource(sys.modules[cls.__module__])
    except (OSError, TypeError, KeyError):  # no source to read (e.g. defined interactively)
        source = f"{cls.__module__}.{cls.__qualname__}"
    blob = json.dumps({"checks": meanings, "source": hashlib.sha256(source.encode()).hexdigest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _meaning_key(check: Check) -> dict[str, Any]:
    """A check's meaning as hashed into run ids. The windowed-statistic fields are left out at their
    defaults, so checks declared before they existed keep their run ids (stored sweeps resume)."""
    key = dataclasses.asdict(check.meaning())
    if key.get("statistic") == "value" and key.get("window") == 1:
        del key["statistic"], key["window"]
    if key.get("on") == "all":  # likewise the steps judged (every step, as before it existed)
        del key["on"]
    return key


def _call(what: str, method: Any) -> Any:
    """``method()``, one of the scenario's own methods named ``what``: whatever it raises is a one-line
    ScenarioError "WHAT raised TYPE: message" (SystemExit and the like too, see _scenario_code)."""
    try:
        with _scenario_code(what):
            return method()
    except ScenarioError:
        raise
    except Exception as exc:
        raise ScenarioError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def declared_checks(scenario: Any) -> list[Check]:
    """The scenario's checks, validated: Check instances with unique names."""
    raw = _call(f"{type(scenario).__name__}.checks()", scenario.checks)
    flat: list[Any] = []
    for c in raw or ():
        flat.extend(c if isinstance(c, (tuple, list)) else [c])
    if not flat:
        raise ScenarioError(f"{type(scenario).__name__}.checks() declared no check")
    bad = [c for c in flat if not isinstance(c, Check)]
    if bad:
        raise ScenarioError(f"{type(scenario).__name__}.checks() returned {bad[0]!r}, not a harness.checks.Check")
    names = [c.name for c in flat]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScenarioError(f"{type(scenario).__name__}.checks() repeats check name(s) {', '.join(dupes)}")
    return flat


def extra_columns(target: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The run-level extra columns runs of this scenario have: the engine's training numerics
    (``records.TRAINING_EXTRAS``) for a scenario that trains, and what its ``extra_columns()``
    declares. ScenarioError for a declaration that is not {name: a type of records.EXTRA_TYPES}
    or names a core column."""
    from harness.records import CORE_COLUMNS, EXTRA_TYPES, TRAINING_EXTRAS

    cls = load_class(target)
    out = dict(TRAINING_EXTRAS) if getattr(cls, "trains", True) else {}
    declare = getattr(cls, "extra_columns", None)
    if not callable(declare):
        return out
    scenario = instantiate(target, params)
    declared = _call(f"{cls.__name__}.extra_columns()", scenario.extra_columns)
    if not isinstance(declared, Mapping):
        raise ScenarioError(f"{cls.__name__}.extra_columns() must return a dict of name -> type, "
                            f"got {type(declared).__name__}")
    for name, kind in declared.items():
        if not isinstance(name, str) or not name or name in CORE_COLUMNS:
            raise ScenarioError(f"{cls.__name__}.extra_columns(): {name!r} is not a new column name")
        if kind not in EXTRA_TYPES:
            raise ScenarioError(f"{cls.__name__}.extra_columns(): {name!r} has type {kind!r} "
                                f"(types: {', '.join(EXTRA_TYPES)})")
    return {**out, **declared}


def sweep_extra_columns(runs: Sequence[Any]) -> dict[str, str]:
    """The extra columns of a sweep's runs (RunSpecs): the union over its distinct scenarios and
    parameters. ScenarioError when two of them declare one name with different types."""
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for spec in runs:
        key = (spec.target, json.dumps(dict(spec.params), sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        for name, kind in extra_columns(spec.target, spec.params).items():
            if out.setdefault(name, kind) != kind:
                raise ScenarioError(f"extra column {name!r} is {out[name]} in {owner[name]} and {kind} in "
                                    f"{spec.scenario}: one name, one type per sweep")
            owner.setdefault(name, spec.scenario)
    return out


def constructor_parameters(cls: type) -> list[str]:
    """The names a scenario's constructor takes (``["**"]`` when it takes any keyword, ``**kwargs``)."""
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return ["**"]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return ["**"]
    return [n for n in sig.parameters if n != "self"]
