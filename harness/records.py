"""What a run produces: RunResult/CheckResult, the run status, and the Arrow schema.

The schema is declared once here and versioned (SCHEMA_VERSION). One row per
(run, check); a run that did not complete still yields rows (status set, check
values null) so that failures are never filtered out. Scenario-specific run-level
values travel in ``RunResult.extras`` and become extra columns.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from harness import axes

# 2: each check row records its op, compare mode, when, schedule (every, after, judge), the bound
#    as compared, the measured dtype and the run's scenario variant. Version 1 part files read
#    with those columns null.
# 3: each check row records its statistic and window (a windowed step check, see checks.Check);
#    earlier part files read with those columns null (every earlier check compared its value).
# 4: each run records ``onednn``, whether TensorFlow's oneDNN rewrite was on in its worker (its
#    kernels give other numbers than Eigen's, see docs/engine.md); earlier part files read it null.
# 5: each check row records ``on``, the steps it judges (all, or applied: not skipped by fp16's
#    dynamic loss scaling, see checks.Check); earlier part files read it null (every step judged).
# 6: the run-level columns are the axes of harness.axes (a column per axis): ``optimizer`` and
#    ``learning_rate`` are new; earlier part files read them null (the scenario's own, as it was).
SCHEMA_VERSION = "6"


class Status(str, enum.Enum):
    """How a run ended. Only ``ok`` runs have check values."""

    OK = "ok"
    ERROR = "error"  # the run raised
    CRASHED = "crashed"  # the worker process died (after retries)
    TIMEOUT = "timeout"  # the run exceeded the per-run time limit


@dataclass(frozen=True)
class CheckMeaning:
    """What a check asserts, declared before the run: ``value <op> bound``, compared
    "native" (bound rounded to the value's dtype) or "exact" (float64), judged after every
    step or once at the end (``when``). Recorded even for runs that did not complete."""

    check: str
    bound: float
    op: str
    compare: str
    when: str
    every: int = 1  # a step check's schedule: steps after, after + every, ...
    after: int = 0
    judge: str = "any"  # any: every scheduled evaluation must pass; last: only the last one decides
    statistic: str = "value"  # what is compared: the step value, or a statistic of a window of period means
    window: int = 1
    on: str = "all"  # which steps are judged: all, or applied (not skipped by fp16 loss scaling)

    @property
    def upper(self) -> bool:
        """True for < and <= (the bound is a ceiling)."""
        return self.op in ("<", "<=")


@dataclass(frozen=True)
class CheckResult:
    """One instrumented assertion, accumulated over a whole run."""

    check: str
    bound: float
    n_evaluated: int
    n_failed: int
    n_nonfinite: int
    first_failure_step: int | None
    worst_value: float
    worst_margin: float
    bound_compared: float | None = None  # the bound the comparison used (rounded to value_dtype if native)
    value_dtype: str | None = None  # dtype of the measured value
    last_failed: bool | None = None  # did the last scheduled evaluation fail
    judge: str = "any"

    @property
    def passed(self) -> bool:
        """judge "any": no evaluation failed; "last": the last evaluation passed."""
        if self.judge == "last":
            return not self.last_failed and self.n_evaluated > 0
        return self.n_failed == 0


@dataclass(frozen=True)
class RunResult:
    """Everything one run reports back to the driver (plain data, picklable)."""

    run_id: str
    status: Status
    checks: tuple[CheckResult, ...] = ()
    declared: tuple[CheckMeaning, ...] = ()  # the checks declared, known even if the run failed
    error: str | None = None
    wall_s: float = math.nan
    train_s: float = math.nan
    worker: str = ""
    tf_version: str = ""
    onednn: bool | None = None  # TensorFlow's oneDNN rewrite on in the worker (None: unknown, or no worker ran it)
    steps: int | None = None  # resolved number of training steps
    compute_dtype: str | None = None
    final_loss: float | None = None
    nonfinite_values: int | None = None
    loss_scale_min: float | None = None
    skipped_steps: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


_TYPES = {"float64": pa.float64(), "int64": pa.int64(), "string": pa.string(), "bool": pa.bool_()}
# Columns every part file has, in order. Scenario extras follow them.
CORE_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("run_id", pa.string()),
        *((c, _TYPES[t]) for c, t in axes.COLUMN_TYPES.items()),  # a column per axis, and schedule
        ("params", pa.string()),
        ("variant", pa.string()),
        ("check", pa.string()),
        ("op", pa.string()),
        ("compare", pa.string()),
        ("when", pa.string()),
        ("every", pa.int64()),
        ("after", pa.int64()),
        ("judge", pa.string()),
        ("statistic", pa.string()),
        ("window", pa.int64()),
        ("on", pa.string()),
        ("bound", pa.float64()),
        ("bound_compared", pa.float64()),
        ("value_dtype", pa.string()),
        ("n_evaluated", pa.int64()),
        ("n_failed", pa.int64()),
        ("n_nonfinite", pa.int64()),
        ("first_failure_step", pa.int64()),
        ("worst_value", pa.float64()),
        ("worst_margin", pa.float64()),
        ("passed", pa.bool_()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("wall_s", pa.float64()),
        ("train_s", pa.float64()),
        ("worker", pa.string()),
        ("compute_dtype", pa.string()),
        ("final_loss", pa.float64()),
        ("nonfinite_values", pa.int64()),
        ("loss_scale_min", pa.float64()),
        ("skipped_steps", pa.int64()),
        ("schema_version", pa.string()),
        ("harness_version", pa.string()),
        ("tf_version", pa.string()),
        ("onednn", pa.bool_()),
    ]
)
CORE_COLUMNS: tuple[str, ...] = tuple(CORE_SCHEMA.names)
# the columns a row takes from its CheckMeaning (declared) and from its CheckResult (measured)
MEANING_COLUMNS: tuple[str, ...] = ("op", "compare", "when", "every", "after", "judge", "statistic", "window", "on")
RESULT_COLUMNS: tuple[str, ...] = ("bound_compared", "value_dtype", "n_evaluated", "n_failed", "n_nonfinite",
                                   "first_failure_step", "worst_value", "worst_margin")


# The types a scenario may declare for its run-level extra columns (``extra_columns()``), by name.
EXTRA_TYPES: dict[str, pa.DataType] = _TYPES
# The extra columns the engine adds to every run of a scenario that trains.
TRAINING_EXTRAS: dict[str, str] = {"grad_norm_max": "float64", "clip_active_steps": "int64"}


def sweep_schema(extras: dict[str, str]) -> pa.Schema:
    """The schema of every part file of a sweep: the core columns, then its declared extra columns by
    name (``extras``: name -> a type of EXTRA_TYPES)."""
    return pa.schema([*CORE_SCHEMA, *(pa.field(k, EXTRA_TYPES[extras[k]]) for k in sorted(extras))])


def _extra_type(value: Any) -> pa.DataType:
    if value is None:  # no value, no type yet: another run's value sets it (an all-null column unifies with any)
        return pa.null()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    return pa.string()


def result_rows(spec: Any, result: RunResult, harness_version: str) -> pa.Table:
    """Tidy rows for one run: one per declared check (at least one row per run).

    ``spec`` is the run's RunSpec (duck-typed to keep this module free of grid imports).
    """
    by_name = {c.check: c for c in result.checks}
    declared: list[CheckMeaning | None] = list(result.declared)
    if not declared:  # a run that failed before declaring its checks still leaves a row
        declared = [None]
    run_level = {
        "sweep": spec.sweep,
        "run_id": spec.run_id,
        **axes.axis_values(spec),
        "steps": result.steps if result.steps is not None else spec.steps,
        "schedule": "epochs" if spec.epochs is not None else "steps",
        "params": json.dumps(dict(spec.params), sort_keys=True),
        "variant": getattr(spec, "variant", ""),
        "status": result.status.value,
        "error": result.error,
        "wall_s": result.wall_s,
        "train_s": result.train_s,
        "worker": result.worker,
        "compute_dtype": result.compute_dtype,
        "final_loss": result.final_loss,
        "nonfinite_values": result.nonfinite_values,
        "loss_scale_min": result.loss_scale_min,
        "skipped_steps": result.skipped_steps,
        "schema_version": SCHEMA_VERSION,
        "harness_version": harness_version,
        "tf_version": result.tf_version,
        "onednn": result.onednn,
    }
    rows = []
    for meaning in declared:
        c = by_name.get(meaning.check) if meaning else None
        ok = result.status is Status.OK and c is not None
        row = dict(run_level)
        row.update(check=meaning.check if meaning else "", bound=meaning.bound if meaning else math.nan,
                   passed=c.passed if ok else None,
                   **{f: getattr(meaning, f) if meaning else None for f in MEANING_COLUMNS},
                   **{f: getattr(c, f) if ok else None for f in RESULT_COLUMNS})
        rows.append(row)
    columns = {name: [r[name] for r in rows] for name in CORE_COLUMNS}
    table = pa.table(columns, schema=CORE_SCHEMA)
    for key in sorted(result.extras):
        if key in CORE_COLUMNS:
            raise ValueError(f"scenario extra column {key!r} clashes with a core column")
        value = result.extras[key]
        table = table.append_column(
            pa.field(key, _extra_type(value)), pa.array([value] * len(rows), type=_extra_type(value))
        )
    return table
