"""Typed configuration for a sweep, built from the plain dict Hydra composes.

The untyped config stops at the CLI: ``sweep_config_from_dict`` validates every
key and turns it into frozen dataclasses. Errors are ``ConfigError`` whose
message is one line naming the key and the bad value. No I/O, no TF, no Ray.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import axes as table
from harness.suggest import did_you_mean
from harness.validate import RANGE, ConfigError, as_list, integer, nonfinite, number, refuse

__all__ = ["AXES", "PRECISIONS", "RANGE", "ConfigError", "integer", "number", "sweep_config_from_dict"]

PRECISIONS: tuple[str, ...] = table.PRECISIONS
AXES: tuple[str, ...] = table.NAMES  # the sweep's axes (harness.axes.AXES), by name


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
    """The sweep's values of every axis of ``harness.axes.AXES``, by name (``axes.seed``); None for
    the schedule axis the sweep does not use (exactly one of steps and epochs is set)."""

    values: Mapping[str, tuple[Any, ...] | None]

    def __getattr__(self, name: str) -> tuple[Any, ...] | None:
        if name.startswith("_") or name == "values":  # (pickle and copy look for dunders before values is set)
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"no axis {name!r}") from None


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

    root: str = "results"  # results land in <root>/<sweep.name>/, relative to the working directory
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
    results_root: str = StoreConfig.root
    adaptive: AdaptiveConfig = AdaptiveConfig()
    store: StoreConfig = StoreConfig()


# --------------------------------------------------------------------------- helpers


NAME_MAX = 255  # bytes in one path component (Linux, macOS; most file systems)
# the sweep's directory has siblings named after it: <name>_report (the report), <name>_traces (replay --trace)
SIBLING_SUFFIX = len("_report")


def _component(key: str, part: str, limit: int = NAME_MAX) -> None:
    """One component of a path the harness will create: encodable, no NUL, at most ``limit`` bytes."""
    if "\0" in part:
        raise ConfigError(key, f"{part!r} contains a NUL character")
    try:
        size = len(os.fsencode(part))
    except UnicodeEncodeError as exc:
        raise ConfigError(key, f"{part!r} cannot be encoded as a file name ({exc.reason})") from None
    if size > limit:
        raise ConfigError(key, f"{part[:40]!r}... is {size} bytes long; a file name holds at most {limit} bytes"
                          + (f" ({NAME_MAX} less the {SIBLING_SUFFIX} of '_report', the report's directory beside it)"
                             if limit < NAME_MAX else ""))


def sweep_name(name: Any) -> str:
    """``sweep.name``: one path component (no '/', not '.' or '..', not empty, not hidden or starting
    with '_', which dataset readers skip), short enough that ``<name>_report`` is a valid file name."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith((".", "_")):
        raise ConfigError("sweep.name", f"{name!r} is not a plain directory name")
    _component("sweep.name", name, NAME_MAX - SIBLING_SUFFIX)
    return name


def store_root(root: Any) -> str:
    """``store.root``: a non-empty path whose every component is a valid file name (checked here, before
    anything is created, so a bad one is not half made)."""
    if not isinstance(root, str) or not root:
        raise ConfigError("store.root", f"{root!r} is not a directory path")
    for part in root.split("/"):
        _component("store.root", part)
    return root


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
        for p, values in axes_raw.items():  # any constructor parameter (the grid checks the name against the class)
            param_axes[p] = tuple(as_list(f"{key}._axes_.{p}", values))
        out[name] = ScenarioConfig(name=name, target=target, params=params, param_axes=param_axes)
    return out


def _axes(raw: Mapping[str, Any], scenarios: Mapping[str, ScenarioConfig]) -> Axes:
    """Every axis of the table read from ``sweep``; the scenarios named must be configured, and
    exactly one of steps and epochs set."""
    values = {a.name: a.values(raw.get(a.name)) for a in table.AXES}
    for n in values["scenario"]:
        if not isinstance(n, str) or n not in scenarios:
            raise ConfigError("sweep.scenario", f"unknown scenario {n!r} (known: {', '.join(sorted(scenarios))})"
                              + (did_you_mean(n, scenarios) if isinstance(n, str) else ""))
    if (values["steps"] is None) == (values["epochs"] is None):
        raise ConfigError("sweep.steps", "set exactly one of sweep.steps or sweep.epochs (the other null)")
    return Axes(values)


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
        _known(key, rule, [a for a in AXES if axes.values[a] is not None])
        values = {k: tuple(as_list(f"{key}.{k}", v)) for k, v in rule.items()}
        for k, vs in values.items():
            for v in vs:  # NaN equals nothing: a rule naming it would silently exclude nothing
                if nonfinite(v):
                    raise refuse(f"{key}.{k}", v, "a value of the axis")
        rules.append(values)
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
    if n is not None:
        n = integer("ray.num_actors", n, "a positive integer or null", at_least=1)
    default = RayConfig()
    cpus = number("ray.num_cpus_per_actor", raw.get("num_cpus_per_actor", default.num_cpus_per_actor),
                  "a positive number", above=0)
    gpus = number("ray.num_gpus_per_actor", raw.get("num_gpus_per_actor", default.num_gpus_per_actor),
                  "a non-negative number", at_least=0)
    flags = {flag: raw.get(flag, getattr(default, flag)) for flag in ("include_dashboard", "log_to_driver", "warm")}
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"ray.{flag}", f"{value!r} is not true or false")
    malloc = raw.get("malloc", default.malloc)
    malloc_library(malloc)  # raises ConfigError for a value it cannot use
    return RayConfig(address=address, num_actors=n, num_cpus_per_actor=cpus, num_gpus_per_actor=gpus, malloc=malloc,
                     **flags)


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
    rule = raw.get("rule", AdaptiveConfig.rule)
    if rule not in ADAPTIVE_RULES:
        raise ConfigError("adaptive.rule", f"{rule!r} is not one of {', '.join(ADAPTIVE_RULES)}")
    out = AdaptiveConfig()
    values: dict[str, Any] = {"rule": rule}
    for key in ("width", "target", "confidence"):
        values[key] = number(f"adaptive.{key}", raw.get(key, getattr(out, key)), "a number strictly between 0 and 1",
                             above=0, below=1)
    for key in ("round", "max_seeds"):
        values[key] = integer(f"adaptive.{key}", raw.get(key, getattr(out, key)), "a positive integer", at_least=1)
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
    name = sweep_name(sweep.get("name"))
    scenarios = _scenarios(cfg.get("scenarios"))
    axes = _axes(sweep, scenarios)
    timeout = number("sweep.timeout_s", sweep.get("timeout_s", SweepConfig.timeout_s), "a positive number of seconds",
                     above=0)
    retries = integer("sweep.retries", sweep.get("retries", SweepConfig.retries), "a non-negative integer", at_least=0)
    rerun = sweep.get("rerun", SweepConfig.rerun)
    if rerun not in RERUN:
        raise ConfigError("sweep.rerun", f"{rerun!r} is not one of {', '.join(RERUN)}")
    store = cfg.get("store") or {}
    _known("store", store, list(StoreConfig.__dataclass_fields__))
    root = store_root(store.get("root", StoreConfig.root))
    exclude = _exclude(sweep.get("exclude"), axes)
    return SweepConfig(
        name=name,
        axes=axes,
        scenarios=scenarios,
        exclude=exclude,
        timeout_s=timeout,
        retries=retries,
        rerun=rerun,
        ray=_ray(cfg.get("ray")),
        results_root=root,
        adaptive=_check_cap(_adaptive(cfg.get("adaptive")), axes, exclude),
        store=_store(store, root),
    )


def _store(raw: Mapping[str, Any], root: str) -> StoreConfig:
    out = StoreConfig()
    runs = integer("store.flush_runs", raw.get("flush_runs", out.flush_runs), "a positive integer", at_least=1)
    seconds = number("store.flush_seconds", raw.get("flush_seconds", out.flush_seconds),
                     "a non-negative number of seconds", at_least=0)
    files = raw.get("compact_files", out.compact_files)
    if files is not None:
        files = integer("store.compact_files", files, "a positive integer or null (never compact)", at_least=1)
    return StoreConfig(root=root, flush_runs=runs, flush_seconds=seconds, compact_files=files)


def _check_cap(adaptive: AdaptiveConfig, axes: Axes, exclude: tuple[Mapping[str, Any], ...]) -> AdaptiveConfig:
    if adaptive.adaptive and any("seed" in rule for rule in exclude):
        raise ConfigError("sweep.exclude", "a rule naming seed cannot be combined with adaptive seeds "
                                           f"(adaptive.rule={adaptive.rule})")
    if adaptive.adaptive and adaptive.max_seeds < len(axes.seed):
        raise ConfigError("adaptive.max_seeds", f"{adaptive.max_seeds} is fewer than the {len(axes.seed)} seeds "
                                                "of sweep.seed (the first round)")
    return adaptive


def explain(key: str, value: Any) -> str | None:
    """The one-line error for ``key`` (``ray.X``, ``store.X`` or ``adaptive.X``) set to ``value``, as the
    validators word it; None when they accept it. Hydra types these groups (harness.schema) and refuses
    a value of the wrong type before the validators see it; its message ("Value 'abc' of type 'str'
    could not be converted to Integer") is replaced with this one."""
    group, _, leaf = key.partition(".")
    check = {"ray": lambda: _ray({leaf: value}), "adaptive": lambda: _adaptive({leaf: value}),
             "store": lambda: _store({leaf: value}, store_root(value) if leaf == "root" else StoreConfig.root)}
    if group not in check or "." in leaf:
        return None
    try:
        check[group]()
    except ConfigError as exc:
        return str(exc)
    return None
