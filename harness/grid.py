"""Grid expansion: SweepConfig -> [RunSpec]. Deterministic, no TF, no Ray.

A run's id hashes everything that defines it (scenario and its parameters typed from the
constructor, the scenario's definition: its declared checks and its module's source,
every axis value, and the engine's RUN_ID_VERSION), so the same run has the same id in
every sweep and on every machine: resume is "skip the ids already stored", and a run
whose scenario was edited is a new run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from harness import axes as table
from harness.config import ConfigError, SweepConfig
from harness.scenarios.base import ParamError, ScenarioError, definition, load_class, typed_params, unused_axes

# Bump when a change to the engine makes old results incomparable with new ones.
# 2: the id also hashes the scenario's definition (declared checks and module source).
RUN_ID_VERSION = "2"


@dataclass(frozen=True)
class RunSpec:
    """One run: a point of the grid. Plain data, cheap to send to a worker."""

    sweep: str
    scenario: str
    target: str
    params: Mapping[str, Any]
    data_size: int
    batch_size: int | None  # None: the scenario does not use it (collapsed axis)
    steps: int  # 0 for a scenario that does not train
    epochs: float | None
    seed: int
    precision: str
    clip_value: float | None
    definition: str = ""  # digest of the scenario's declared checks and code (scenarios.base.definition)
    run_id: str = field(default="", compare=False)
    variant: str = field(default="", compare=False)  # the swept scenario parameters, "key=value, ..."
    # the values of the table's axes that have no field above (harness.axes.AXES, e.g. learning_rate),
    # only those set: an axis added to the table needs no new field
    more: Mapping[str, Any] = field(default_factory=dict)

    def axis(self, name: str) -> Any:
        """The run's value of the axis ``name`` (null: unset, or collapsed for this scenario)."""
        if name not in table.BY_NAME:
            raise KeyError(f"no axis {name!r} (axes: {', '.join(table.NAMES)})")
        return getattr(self, name) if name in _FIELDS else self.more.get(name)

    def identity(self) -> dict[str, Any]:
        """Everything that defines the run (the sweep's name does not): every axis's value (an axis
        added after run ids were stored only when set, harness.axes.identity), the scenario's class,
        parameters and definition."""
        return {"v": RUN_ID_VERSION, "target": self.target, "params": dict(self.params),
                "definition": self.definition, **table.identity(table.axis_values(self))}

    def structure(self) -> tuple[Any, ...]:
        """What the traced training loop of a run depends on besides its data and seed: runs
        with equal structures can share one trace (see harness.engine.reuse)."""
        params = json.dumps(dict(self.params), sort_keys=True, default=str)
        more = json.dumps(dict(self.more), sort_keys=True, default=str)
        return (self.target, params, self.precision, self.clip_value, self.batch_size, more)


_FIELDS = frozenset(f.name for f in fields(RunSpec))


def make_run_id(spec: RunSpec) -> str:
    blob = json.dumps(spec.identity(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def steps_for(data_size: int, batch_size: int, epochs: float) -> int:
    """Steps of an epochs schedule: epochs x data_size / batch_size, at least one."""
    return max(1, math.ceil(epochs * data_size / batch_size))


def _excluded(point: Mapping[str, Any], rules: tuple[Mapping[str, tuple[Any, ...]], ...]) -> bool:
    return any(all(point.get(k) in values for k, values in rule.items()) for rule in rules)


def variant_label(params: Mapping[str, Any], swept: Sequence[str]) -> str:
    """The swept scenario parameters of a run, readable: ``"bound=0.5, tol=0.1"`` ("" if none)."""
    return ", ".join(f"{k}={params[k]}" for k in sorted(swept))


def expand(cfg: SweepConfig) -> list[RunSpec]:
    """All runs of a sweep, in a stable order, minus those an exclude rule matches.

    The axes are those of ``harness.axes.AXES``, in its order (the last varies fastest). Axes a
    scenario does not use (``harness.scenarios.base.unused_axes``: the training axes of a scenario
    that does not train) collapse: one run per remaining point, recorded with those axes null and
    steps 0, so no run is repeated.

    Raises ConfigError for a run that cannot exist (batch_size > data_size) and
    for a grid that is empty after exclusion; ScenarioError ``NAME: ...`` for a scenario that
    cannot be imported or constructed or declares bad checks.
    """
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for scenario in cfg.axes.scenario:
        try:
            runs.extend(_scenario_runs(cfg, scenario, seen))
        except ScenarioError as exc:  # named, so a sweep of several scenarios says which one
            raise ScenarioError(f"{scenario}: {exc}") from exc
    if not runs:
        raise ConfigError("sweep.exclude", "every run of the grid is excluded")
    return runs


def _scenario_runs(cfg: SweepConfig, scenario: str, seen: set[str]) -> list[RunSpec]:
    """The runs of one scenario of the sweep (see expand); ``seen`` collects the run ids."""
    sc = cfg.scenarios[scenario]
    cls = load_class(sc.target)
    swept = _swept_axes(cfg, unused_axes(cls))
    pnames = sorted(sc.param_axes)
    runs: list[RunSpec] = []
    for pvalues in itertools.product(*(sc.param_axes[p] for p in pnames)):
        params = _params(cls, scenario, sc.params, dict(zip(pnames, pvalues)), sc.param_axes)
        digest = definition(sc.target, params)
        for values in itertools.product(*swept.values()):
            point = {"scenario": scenario, **dict(zip(swept, values))}
            if _excluded(point, cfg.exclude):
                continue
            spec = run_spec(cfg.name, sc.target, params, digest, point)
            run_id = make_run_id(spec)
            if run_id in seen:
                continue
            seen.add(run_id)
            runs.append(replace(spec, run_id=run_id, variant=variant_label(params, pnames)))
    return runs


def _swept_axes(cfg: SweepConfig, unused: frozenset[str]) -> dict[str, tuple[Any, ...]]:
    """Each axis's values for one scenario, in the table's order: the schedule the sweep set (steps
    or epochs, not the other), and the axes the scenario does not use collapsed to null."""
    out = {}
    for a in table.AXES:
        values = cfg.axes.values[a.name]
        if a.name == "scenario" or values is None:
            continue
        out[a.name] = (None,) if a.name in unused else values
    return out


def _params(cls: type, scenario: str, fixed: Mapping[str, Any], swept: Mapping[str, Any],
            param_axes: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario's parameters of one point, typed from its constructor; ConfigError naming the
    key (``scenarios.NAME.PARAM`` or ``scenarios.NAME._axes_.PARAM``) for a value that does not convert."""
    try:
        return typed_params(cls, {**fixed, **swept})
    except ParamError as exc:
        where = f"_axes_.{exc.param}" if exc.param in param_axes else exc.param
        raise ConfigError(f"scenarios.{scenario}.{where}", str(exc).split(": ", 1)[1]) from exc


def run_spec(sweep: str, target: str, params: Mapping[str, Any], digest: str, point: Mapping[str, Any]) -> RunSpec:
    """The RunSpec of one point of the grid: the schedule resolved to steps (0 for a scenario that
    does not train), each axis in its field or in ``more``. ConfigError for a batch larger than the data."""
    data_size, batch_size, epochs = point["data_size"], point.get("batch_size"), point.get("epochs")
    if batch_size is not None and batch_size > data_size:
        raise ConfigError("sweep.batch_size", f"{batch_size} > data_size {data_size}; exclude the pair with "
                                              f"sweep.exclude=[{{data_size:{data_size},batch_size:{batch_size}}}]")
    if epochs is not None:
        steps = steps_for(data_size, batch_size or data_size, epochs)
    else:
        steps = int(point.get("steps") or 0)
    known = {**point, "steps": steps, "epochs": None if epochs is None else float(epochs)}
    more = {k: v for k, v in known.items() if k not in _FIELDS and v is not None}
    return RunSpec(sweep=sweep, target=target, params=params, definition=digest, more=more,
                   **{k: known.get(k) for k in table.NAMES if k in _FIELDS})
