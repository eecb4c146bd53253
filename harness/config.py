"""Typed configuration for a sweep, built from the plain dict Hydra composes.

The untyped config stops at the CLI: ``sweep_config_from_dict`` validates every
key and turns it into frozen dataclasses. Errors are ``ConfigError`` whose
message is one line naming the key and the bad value. No I/O, no TF, no Ray.
"""

from __future__ import annotations

import math
import re
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
AXES: tuple[str, ...] = (
    "scenario",
    "data_size",
    "batch_size",
    "precision",
    "seed",
    "clip_value",
    "steps",
    "epochs",
)


class ConfigError(ValueError):
    """A bad configuration value: ``key: message`` on one line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class ScenarioConfig:
    """A named workload: the import path of its class and its parameters."""

    name: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # scenario parameters swept as extra axes: name -> values
    param_axes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Axes:
    scenario: tuple[str, ...]
    data_size: tuple[int, ...]
    batch_size: tuple[int, ...]
    precision: tuple[str, ...]
    seed: tuple[int, ...]
    clip_value: tuple[float | None, ...]
    steps: tuple[int, ...] | None  # exactly one of steps / epochs is set
    epochs: tuple[float, ...] | None


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None  # None: start an embedded local Ray
    num_actors: int | None = None  # None: as many as the cluster's CPUs allow
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0
    include_dashboard: bool = False
    log_to_driver: bool = False
    warm: bool = True  # with address unset, use the warm pool (python -m harness up) when one is up
    malloc: str = "auto"  # the allocator of an embedded Ray's processes: auto, system, jemalloc or a library path


@dataclass(frozen=True)
class StoreConfig:
    """How finished runs are written (``store.root`` is SweepConfig.results_root). The driver
    buffers finished runs and writes them as one part file when ``flush_runs`` are buffered or
    ``flush_seconds`` after the first of them finished (a driver killed with SIGKILL loses at most
    those; the rerun computes them again); a sweep that ends with more than ``compact_files``
    part files compacts them (None: never)."""

    flush_runs: int = 256
    flush_seconds: float = 2.0
    compact_files: int | None = 64


ADAPTIVE_RULES: tuple[str, ...] = ("fixed", "width", "bound")


@dataclass(frozen=True)
class AdaptiveConfig:
    """How many seeds each cell (one configuration across seeds) runs.

    rule "fixed": exactly sweep.seed. "width": add ``round`` seeds at a time until every
    check's run-level failure rate has a ``confidence`` Wilson interval at most ``width``
    wide. "bound": until every check has the completed runs a distribution-free bound at
    false-alarm rate ``target`` needs (or NaN/Inf runs alone are known to exceed it).
    Both stop at ``max_seeds`` seeds a cell. Seeds come in a fixed order: sweep.seed, then
    the integers after its largest."""

    rule: str = "fixed"
    width: float = 0.2
    target: float = 0.01
    confidence: float = 0.95
    round: int = 10
    max_seeds: int = 500

    @property
    def adaptive(self) -> bool:
        return self.rule != "fixed"


@dataclass(frozen=True)
class SweepConfig:
    name: str
    axes: Axes
    scenarios: Mapping[str, ScenarioConfig]
    exclude: tuple[Mapping[str, tuple[Any, ...]], ...] = ()
    timeout_s: float = 600.0
    retries: int = 1
    rerun: str = "none"  # which stored runs to compute again: none, incomplete (status != ok) or all
    ray: RayConfig = RayConfig()
    results_root: str = "results"
    adaptive: AdaptiveConfig = AdaptiveConfig()
    store: StoreConfig = StoreConfig()


# --------------------------------------------------------------------------- helpers


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


# an axis given as range(start, stop[, step]), Python's semantics (the CLI keeps Hydra's range(...) this way)
RANGE = re.compile(r"^range\(\s*(-?\d+)\s*,\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?\)$")


def _as_list(key: str, value: Any) -> list[Any]:
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


def _positive_ints(key: str, value: Any) -> tuple[int, ...]:
    out = []
    for v in _as_list(key, value):
        if _is_number(v) and not _is_int(v) and float(v).is_integer():
            v = int(v)  # 1e6 in YAML is a float; a whole one is fine
        if not _is_int(v) or v <= 0:
            raise ConfigError(key, f"{v!r} is not a positive integer")
        out.append(int(v))
    return tuple(out)


def _positive_numbers(key: str, value: Any) -> tuple[float, ...]:
    out = []
    for v in _as_list(key, value):
        if not _is_number(v) or not math.isfinite(v) or v <= 0:
            raise ConfigError(key, f"{v!r} is not a positive number")
        out.append(float(v))
    return tuple(out)


def _known(key: str, mapping: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for k in mapping:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}" if key else k, f"unknown key (allowed: {', '.join(allowed)})")


# --------------------------------------------------------------------------- sections


def _scenarios(raw: Any) -> dict[str, ScenarioConfig]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("scenarios", "no scenario is configured")
    out = {}
    for name, body in raw.items():
        key = f"scenarios.{name}"
        if not isinstance(body, Mapping):
            raise ConfigError(key, f"{body!r} is not a mapping with a _target_")
        target = body.get("_target_")
        if not isinstance(target, str) or "." not in target:
            raise ConfigError(f"{key}._target_", f"{target!r} is not an import path like pkg.module.Class")
        params = {k: v for k, v in body.items() if k not in ("_target_", "_axes_")}
        axes_raw = body.get("_axes_") or {}
        if not isinstance(axes_raw, Mapping):
            raise ConfigError(f"{key}._axes_", f"{axes_raw!r} is not a mapping of parameter -> values")
        param_axes = {}
        for p, values in axes_raw.items():
            if p not in params:
                raise ConfigError(f"{key}._axes_.{p}", f"not a parameter of {name} (parameters: {', '.join(params)})")
            param_axes[p] = tuple(_as_list(f"{key}._axes_.{p}", values))
        out[name] = ScenarioConfig(name=name, target=target, params=params, param_axes=param_axes)
    return out


def _axes(raw: Mapping[str, Any], scenarios: Mapping[str, ScenarioConfig]) -> Axes:
    def get(axis: str) -> Any:
        if axis not in raw or raw[axis] is None:
            raise ConfigError(f"sweep.{axis}", "missing axis")
        return raw[axis]

    names = _as_list("sweep.scenario", get("scenario"))
    for n in names:
        if not isinstance(n, str) or n not in scenarios:
            from harness.overrides import did_you_mean  # (overrides imports this module)

            raise ConfigError("sweep.scenario", f"unknown scenario {n!r} (known: {', '.join(sorted(scenarios))})"
                              + (did_you_mean(n, scenarios) if isinstance(n, str) else ""))
    precisions = _as_list("sweep.precision", get("precision"))
    for p in precisions:
        if p not in PRECISIONS:
            raise ConfigError("sweep.precision", f"unknown precision {p!r} (known: {', '.join(PRECISIONS)})")
    seeds = []
    for s in _as_list("sweep.seed", get("seed")):
        if not _is_int(s) or s < 0:
            raise ConfigError("sweep.seed", f"{s!r} is not a non-negative integer")
        seeds.append(int(s))
    clips: list[float | None] = []
    for c in _as_list("sweep.clip_value", raw.get("clip_value", [None])):
        if c is None or (isinstance(c, str) and c.lower() in ("null", "none")):
            clips.append(None)
        elif not _is_number(c) or not math.isfinite(c) or c <= 0:
            raise ConfigError("sweep.clip_value", f"{c!r} is not a positive number or null")
        else:
            clips.append(float(c))
    steps = raw.get("steps")
    epochs = raw.get("epochs")
    if (steps is None) == (epochs is None):
        raise ConfigError("sweep.steps", "set exactly one of sweep.steps or sweep.epochs (the other null)")
    return Axes(
        scenario=tuple(names),
        data_size=_positive_ints("sweep.data_size", get("data_size")),
        batch_size=_positive_ints("sweep.batch_size", get("batch_size")),
        precision=tuple(precisions),
        seed=tuple(seeds),
        clip_value=tuple(clips),
        steps=_positive_ints("sweep.steps", steps) if steps is not None else None,
        epochs=_positive_numbers("sweep.epochs", epochs) if epochs is not None else None,
    )


def _exclude(raw: Any, axes: Axes) -> tuple[Mapping[str, tuple[Any, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ConfigError("sweep.exclude", f"{raw!r} is not a list of rules")
    rules = []
    for i, rule in enumerate(raw):
        key = f"sweep.exclude[{i}]"
        if not isinstance(rule, Mapping) or not rule:
            raise ConfigError(key, f"{rule!r} is not a mapping of axis -> value(s)")
        _known(key, rule, [a for a in AXES if getattr(axes, a) is not None])
        rules.append({k: tuple(_as_list(f"{key}.{k}", v)) for k, v in rule.items()})
    return tuple(rules)


def _ray(raw: Any) -> RayConfig:
    raw = dict(raw or {})
    allowed = list(RayConfig.__dataclass_fields__)
    _known("ray", raw, allowed)
    address = raw.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigError("ray.address", f"{address!r} is not an address (use auto, host:port or ray://host:port)")
    if isinstance(address, str) and address not in ("auto", "local"):
        hostport = address.split("://", 1)[-1]
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("ray.address", f"{address!r} is not auto, host:port or ray://host:port")
    if address == "local":
        address = None
    n = raw.get("num_actors")
    if n is not None and (not _is_int(n) or n <= 0):
        raise ConfigError("ray.num_actors", f"{n!r} is not a positive integer or null")
    cpus = raw.get("num_cpus_per_actor", 1)
    if not _is_number(cpus) or cpus <= 0:
        raise ConfigError("ray.num_cpus_per_actor", f"{cpus!r} is not a positive number")
    gpus = raw.get("num_gpus_per_actor", 0)
    if not _is_number(gpus) or gpus < 0:
        raise ConfigError("ray.num_gpus_per_actor", f"{gpus!r} is not a non-negative number")
    for flag in ("include_dashboard", "log_to_driver", "warm"):
        if not isinstance(raw.get(flag, False), bool):
            raise ConfigError(f"ray.{flag}", f"{raw[flag]!r} is not true or false")
    malloc = raw.get("malloc", "auto")
    malloc_library(malloc)  # raises ConfigError for a value it cannot use
    return RayConfig(
        address=address,
        num_actors=n,
        num_cpus_per_actor=float(cpus),
        num_gpus_per_actor=float(gpus),
        include_dashboard=raw.get("include_dashboard", False),
        log_to_driver=raw.get("log_to_driver", False),
        warm=raw.get("warm", True),
        malloc=malloc,
    )


def malloc_library(value: Any) -> str | None:
    """The shared library ray.malloc names, to be preloaded into an embedded Ray's processes, or None
    for the system's allocator. ``jemalloc`` is the copy Ray's own wheel ships (ray/core/libjemalloc.so,
    which Ray preloads into some of its processes itself), so it needs nothing beyond the install;
    else the machine's (Debian and Ubuntu: ``apt install libjemalloc2``). ``auto`` (the default) is
    jemalloc where there is one on Linux (LD_PRELOAD is how it is loaded), else the system's. A path
    (e.g. of libtcmalloc) must exist."""
    import ctypes.util
    import os
    import sys

    if value == "system":
        return None
    if value in ("auto", "jemalloc"):
        if value == "auto" and not sys.platform.startswith("linux"):
            return None
        found = _ray_jemalloc() or ctypes.util.find_library("jemalloc")
        if found is None and value == "jemalloc":
            raise ConfigError("ray.malloc", "jemalloc: neither Ray's wheel nor this machine has libjemalloc "
                                            "(Debian/Ubuntu: apt install libjemalloc2), or set ray.malloc=system")
        return found
    if isinstance(value, str) and "/" in value:
        if not os.path.isfile(value):
            raise ConfigError("ray.malloc", f"{value}: no such file")
        return value
    raise ConfigError("ray.malloc", f"{value!r} is not auto, system, jemalloc or the path of a malloc library")


def _ray_jemalloc() -> str | None:
    """The libjemalloc.so in Ray's package, found without importing Ray (a second of the driver's start)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "core", "libjemalloc.so")
        if os.path.isfile(path):
            return path
    return None


def _adaptive(raw: Any) -> AdaptiveConfig:
    raw = dict(raw or {})
    _known("adaptive", raw, list(AdaptiveConfig.__dataclass_fields__))
    rule = raw.get("rule", "fixed")
    if rule not in ADAPTIVE_RULES:
        raise ConfigError("adaptive.rule", f"{rule!r} is not one of {', '.join(ADAPTIVE_RULES)}")
    out = AdaptiveConfig()
    values: dict[str, Any] = {"rule": rule}
    for key, lo, hi in (("width", 0.0, 1.0), ("target", 0.0, 1.0), ("confidence", 0.0, 1.0)):
        v = raw.get(key, getattr(out, key))
        if not _is_number(v) or not math.isfinite(v) or not lo < v < hi:
            raise ConfigError(f"adaptive.{key}", f"{v!r} is not a number strictly between {lo:g} and {hi:g}")
        values[key] = float(v)
    for key in ("round", "max_seeds"):
        v = raw.get(key, getattr(out, key))
        if not _is_int(v) or v <= 0:
            raise ConfigError(f"adaptive.{key}", f"{v!r} is not a positive integer")
        values[key] = int(v)
    return AdaptiveConfig(**values)


SWEEP_KEYS = (*AXES, "name", "exclude", "timeout_s", "retries", "rerun")
RERUN = ("none", "incomplete", "all")


def sweep_config_from_dict(cfg: Mapping[str, Any]) -> SweepConfig:
    """Validate the composed config (a plain, resolved dict) into a SweepConfig."""
    _known("", cfg, ["sweep", "scenarios", "ray", "store", "adaptive"])
    sweep = cfg.get("sweep")
    if not isinstance(sweep, Mapping):
        raise ConfigError("sweep", "no sweep selected (use sweep=NAME, e.g. sweep=smoke)")
    _known("sweep", sweep, SWEEP_KEYS)
    name = sweep.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith((".", "_")):
        raise ConfigError("sweep.name", f"{name!r} is not a plain directory name")
    scenarios = _scenarios(cfg.get("scenarios"))
    axes = _axes(sweep, scenarios)
    timeout = sweep.get("timeout_s", 600)
    if not _is_number(timeout) or timeout <= 0:
        raise ConfigError("sweep.timeout_s", f"{timeout!r} is not a positive number of seconds")
    retries = sweep.get("retries", 1)
    if not _is_int(retries) or retries < 0:
        raise ConfigError("sweep.retries", f"{retries!r} is not a non-negative integer")
    rerun = sweep.get("rerun", "none")
    if rerun not in RERUN:
        raise ConfigError("sweep.rerun", f"{rerun!r} is not one of {', '.join(RERUN)}")
    store = cfg.get("store") or {}
    _known("store", store, ["root", *StoreConfig.__dataclass_fields__])
    root = store.get("root", "results")
    if not isinstance(root, str) or not root:
        raise ConfigError("store.root", f"{root!r} is not a directory path")
    exclude = _exclude(sweep.get("exclude"), axes)
    return SweepConfig(
        name=name,
        axes=axes,
        scenarios=scenarios,
        exclude=exclude,
        timeout_s=float(timeout),
        retries=int(retries),
        rerun=rerun,
        ray=_ray(cfg.get("ray")),
        results_root=root,
        adaptive=_check_cap(_adaptive(cfg.get("adaptive")), axes, exclude),
        store=_store(store),
    )


def _store(raw: Mapping[str, Any]) -> StoreConfig:
    out = StoreConfig()
    runs = raw.get("flush_runs", out.flush_runs)
    if not _is_int(runs) or runs <= 0:
        raise ConfigError("store.flush_runs", f"{runs!r} is not a positive integer")
    seconds = raw.get("flush_seconds", out.flush_seconds)
    if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
        raise ConfigError("store.flush_seconds", f"{seconds!r} is not a non-negative number of seconds")
    files = raw.get("compact_files", out.compact_files)
    if files is not None and (not _is_int(files) or files <= 0):
        raise ConfigError("store.compact_files", f"{files!r} is not a positive integer or null (never compact)")
    return StoreConfig(flush_runs=int(runs), flush_seconds=float(seconds),
                       compact_files=None if files is None else int(files))


def _check_cap(adaptive: AdaptiveConfig, axes: Axes, exclude: tuple[Mapping[str, Any], ...]) -> AdaptiveConfig:
    if adaptive.adaptive and any("seed" in rule for rule in exclude):
        raise ConfigError("sweep.exclude", "a rule naming seed cannot be combined with adaptive seeds "
                                           f"(adaptive.rule={adaptive.rule})")
    if adaptive.adaptive and adaptive.max_seeds < len(axes.seed):
        raise ConfigError("adaptive.max_seeds", f"{adaptive.max_seeds} is fewer than the {len(axes.seed)} seeds "
                                                "of sweep.seed (the first round)")
    return adaptive
