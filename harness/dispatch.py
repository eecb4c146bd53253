"""Ray dispatch: a pool of long-lived actors, RunSpec in, RunResult out, as runs finish.

With harness.pool (the warm pool's daemon), the only modules that import ray. Each actor imports TensorFlow once and runs one
run at a time, so a per-run timeout is exact: a run past its limit has its actor
killed and replaced and is recorded as status=timeout. An actor process that dies
mid-run has its run retried on a fresh actor up to ``retries`` times, then recorded
as status=crashed. A run that raises is recorded by the engine as status=error.

On this machine's Ray (embedded, or a warm pool's, which serves sweeps of any directory), every run
carries its sweep's Workdir: the actor runs it in the sweep's working directory, importing with the
sweep's module search path, as the driver did; modules an earlier sweep imported from directories
this one does not search are forgotten first (_Worker._enter).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import io
import json
import linecache
import logging
import math
import os
import socket
import sys
import threading
import time
import tokenize
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.config import RayConfig, malloc_library
from harness.grid import RunSpec
from harness.raystart import init_local, lean_start
from harness.records import RunResult, Status
from harness.timeline import mark

log = logging.getLogger(__name__)
POLL_S = 0.25
MAX_ACTOR_START_FAILURES = 3
WARM_READY_S = 10.0  # a warm actor that does not answer by then is busy with another driver's run: replaced


class DispatchError(RuntimeError):
    """The cluster cannot run the sweep (cannot connect, actors cannot start)."""


class TrialError(ValueError):
    """A scenario's trial run failed: the scenario does not work, so the sweep does not start."""

    def __init__(self, scenario: str, error: str) -> None:
        super().__init__(f"{scenario}: a 2-step trial run failed before the sweep started: {error}")


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    embedded: bool
    num_actors: int
    cpus: float
    gpus: float
    warm: bool = False  # the runs go to a warm pool's actors (harness.pool)
    note: str = ""  # for the user: why a warm pool that is up was not used; a ray.num_actors that was capped


@dataclass(frozen=True)
class Workdir:
    """Where a sweep's driver runs: its working directory and its module search path (sys.path, each
    entry absolute: '' and relative entries as the driver resolves them). Sent with every run to an
    actor on this machine, which runs it there (_Worker._enter): the sweep's ``_target_`` modules are
    imported as the driver imported them, and relative paths (data files a scenario reads, a
    TF_XLA_FLAGS file) resolve against the sweep's directory, whichever directory the actor's
    process started in (a warm pool's started in the directory of ``up``)."""

    cwd: str
    path: tuple[str, ...]

    @classmethod
    def here(cls) -> Workdir:
        """This process's working directory and module search path."""
        cwd = os.getcwd()
        path = dict.fromkeys(os.path.normpath(os.path.join(cwd, p)) for p in sys.path if isinstance(p, str))
        return cls(cwd=cwd, path=tuple(path))


def _entry(name: str, file: Any) -> str | None:
    """The sys.path entry module ``name``, loaded from ``file``, was imported from (the directory
    holding its top-level package), or None (a built-in, a namespace package: no file)."""
    if not isinstance(file, str) or not os.path.isabs(file):
        return None
    where = Path(file).parent
    for _ in range(name.count(".") + Path(file).name.startswith("__init__.")):
        where = where.parent
    return os.path.normpath(where)


def _held(top: str, module: Any) -> str | tuple[str, ...] | None:
    """Where the top-level module ``top`` was imported from: its sys.path entry, or the directories of
    a namespace package."""
    entry = _entry(top, getattr(module, "__file__", None))
    if entry is None and getattr(module, "__path__", None) is not None:
        return tuple(os.path.normpath(p) for p in module.__path__)
    return entry


def _found(top: str) -> str | tuple[str, ...] | None:
    """Where a fresh import of the top-level module ``top`` would take it from, as _held says (None: nowhere)."""
    try:
        spec = importlib.machinery.PathFinder.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and os.path.isabs(spec.origin):
        return _entry(top, spec.origin)
    return tuple(os.path.normpath(p) for p in spec.submodule_search_locations or ()) or None


def _within(path: str, directory: str) -> bool:
    try:
        return bool(directory) and os.path.commonpath([path, directory]) == directory
    except ValueError:  # one relative, the other absolute
        return False


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles a module from its source file, never from __pycache__ (Python trusts a .pyc whose
    recorded modification time and size match the source's, which an edit can keep), and keeps the
    bytes it compiled."""

    source: bytes = b""

    def get_code(self, fullname: str) -> Any:
        self.source = self.get_data(self.path)
        return self.source_to_code(self.source, self.path)


def _source_lines(data: bytes) -> list[str]:
    """``data`` as linecache holds a source file (its coding, universal newlines, a final newline):
    inspect.getsource, which scenarios.base.definition hashes, joins these lines."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    lines = io.TextIOWrapper(io.BytesIO(data), encoding, line_buffering=True).readlines()
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _exec_source(name: str) -> tuple[ModuleType, bytes | None]:
    """Import module ``name`` (or execute it again, in place, if it is imported) compiled from its
    source file; returns it and the source it ran (None for a module that is not a plain source
    file: that one is imported or reloaded as Python does)."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None) if module is not None else importlib.util.find_spec(name)
    if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or not spec.origin:
        return (importlib.reload(module) if module is not None else importlib.import_module(name)), None
    loader = _SourceLoader(name, spec.origin)
    fresh = importlib.util.spec_from_file_location(name, spec.origin, loader=loader,
                                                   submodule_search_locations=spec.submodule_search_locations)
    if module is None:
        module = importlib.util.module_from_spec(fresh)  # type: ignore[arg-type]
        sys.modules[name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    else:
        module.__spec__, module.__loader__ = fresh, loader
        loader.exec_module(module)
    return module, loader.source


class _Worker:
    """Lives in a Ray actor process: TF is imported once, then runs arrive one by one."""

    def __init__(self, num_threads: int, status: str | None = None) -> None:
        import ray

        from harness.engine import init_worker
        from harness.engine.run import worker_name

        mark("actor tf import start")
        self.tf_version = init_worker(num_threads)
        mark("actor tf import done")
        # host:pid:device, plus the Ray node: on one machine several nodes share a host name
        self.name = f"{worker_name()}:node={ray.get_runtime_context().get_node_id()[:8]}"
        self._state(status)

    def _state(self, status: str | None) -> None:
        """What the actor keeps between runs (without Ray and TensorFlow: tests build a _Worker with it)."""
        self._status = status  # a warm pool's actor: where it records its run for the daemon (harness.pool)
        self._sources: dict[str, bytes | None] = {}  # module -> the source this actor runs (compiled from it)
        self._digests: dict[tuple[str, str], str] = {}  # (target, params) -> definition of the code held
        self._home = os.getcwd()  # where the process started (a warm pool's: where `up` ran); between runs
        self._own_path = Workdir.here().path
        ray = importlib.util.find_spec("ray")
        self._ray_dir = os.path.dirname(ray.origin) if ray is not None and ray.origin else ""
        self._preloaded = frozenset(sys.modules)  # TensorFlow, Ray, the harness: never forgotten
        self._where: Workdir | None = None  # the sweep whose path sys.path holds

    def ready(self) -> str:
        return self.name

    def pid(self) -> int:
        """This actor's process (the warm pool's daemon pings its actors with it)."""
        return os.getpid()

    def run(self, spec: RunSpec, timeout_s: float | None = None, driver: tuple[int, str] | None = None,
            where: Workdir | None = None) -> RunResult:
        """Run ``spec``, if the scenario code this actor holds is the code its run_id hashed (_fresh),
        in the sweep's directory ``where`` with its module search path (_enter; None: as the process
        is). A warm pool's actor records the run, ``timeout_s`` and the ``driver`` process (pid, start)
        that sent it while it runs, so that the daemon stops it once past its time or orphaned."""
        self._record(spec, timeout_s, driver)
        try:
            error = self._enter(where) if where is not None else ""
            error = error or self._fresh(spec)
            if error:
                return RunResult(run_id=spec.run_id, status=Status.ERROR, error=error, worker=self.name)
            from harness.engine import execute

            return replace(execute(spec), worker=self.name)
        finally:
            if where is not None:
                self._leave()
            self._record(None)

    def _enter(self, where: Workdir) -> str:
        """Take the sweep's module search path and working directory for a run. When the sweep is
        another than the last one's, every module imported since the process started that the new
        path would import from another place (a module of the same name in the new sweep's
        directory) or not at all is forgotten first, with the code held for it and the traced loops:
        it is imported afresh from where the new sweep's driver imported it, never taken from
        sys.modules. The modules the process had imported when it started (TensorFlow, Ray, the
        harness) stay. The path is the driver's, followed by Ray's own entries of the process's
        path. Returns "" or why the run cannot run there."""
        if where != self._where:
            ray_own = [p for p in self._own_path if p not in where.path and _within(p, self._ray_dir)]
            sys.path[:] = [*where.path, *ray_own]
            importlib.invalidate_caches()
            self._forget_moved()
            self._where = where
        try:
            os.chdir(where.cwd)
        except OSError as exc:
            return (f"ScenarioError: cannot run in the sweep's working directory {where.cwd}: "
                    f"{exc.strerror or type(exc).__name__}")
        return ""

    def _leave(self) -> None:
        """Back to the directory the process started in between runs (the sweep's may be removed)."""
        try:
            os.chdir(self._home)
        except OSError:
            pass

    def _forget_moved(self) -> None:
        """Drop from sys.modules each package and module imported since the process started that
        sys.path now finds elsewhere, or not at all (with its submodules), the sources held for
        them, the definitions computed and the traced loops."""
        tops = {name.partition(".")[0] for name in list(sys.modules)} - self._preloaded
        moved = {top for top in tops if top in sys.modules and _found(top) != _held(top, sys.modules[top])}
        gone = [name for name in list(sys.modules) if name.partition(".")[0] in moved]
        for name in gone:
            sys.modules.pop(name, None)
            self._sources.pop(name, None)
        if gone:
            self._digests.clear()
            reuse = sys.modules.get("harness.engine.reuse")
            if reuse is not None:
                reuse.clear()

    def _record(self, spec: RunSpec | None, timeout_s: float | None = None,
                driver: tuple[int, str] | None = None) -> None:
        if self._status is None:
            return
        path = Path(self._status)
        try:
            if spec is None:
                path.unlink(missing_ok=True)
                return
            tmp = path.with_name(f".{path.name}.tmp")
            # monotonic: one clock for every process of the machine (Linux: CLOCK_MONOTONIC), immune to clock steps
            tmp.write_text(json.dumps({"pid": os.getpid(), "run_id": spec.run_id, "started": time.monotonic(),
                                       "timeout_s": timeout_s, "driver": list(driver) if driver else None}))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not record the run for the warm pool's daemon in %s: %s", path, exc)

    def _fresh(self, spec: RunSpec) -> str:
        """Make sure the scenario code this actor runs for ``spec`` is the code the driver hashed into
        the run's id (RunSpec.definition): the module is compiled from its source when first used, and
        again when the definition of the code held (scenarios.base.definition over the source it was
        compiled from) is not the spec's; the traced loops of old code are dropped then. Returns ""
        or, when the module's source still differs (it changed after the sweep hashed it), why the
        run is not run. Without a definition (a spec made by hand), a module whose file's content
        changed is compiled again."""
        name, _, attr = spec.target.rpartition(".")
        try:
            if name not in self._sources:
                self._load(name, attr, first=True)
            if not spec.definition:
                if self._changed(name):
                    self._load(name, attr)
                return ""
            if self._digest(spec) == spec.definition:
                return ""
            self._load(name, attr)
            held = self._digest(spec)
        except _NoDigest:
            return ""  # the scenario cannot be built: execute reports why, as for any run
        except Exception as exc:
            return f"ScenarioError: cannot import {name!r}: {type(exc).__name__}: {exc}"
        if held == spec.definition:
            return ""
        return (f"ScenarioChanged: the source of {name} changed after the sweep hashed it into run ids "
                f"(definition {spec.definition}, now {held}): not run; rerun the sweep to run the current code")

    def _load(self, name: str, attr: str, first: bool = False) -> None:
        """Compile the scenario's module from its source (and the module defining the class, if that
        is another one), priming linecache with that source so that definition() hashes it."""
        module, source = _exec_source(name)
        self._sources[name] = source
        defined_in = getattr(getattr(module, attr, None), "__module__", name)
        if defined_in != name and (not first or defined_in not in self._sources):
            self._sources[defined_in] = _exec_source(defined_in)[1]
            module, source = _exec_source(name)  # its name for the class now names the new one
            self._sources[name] = source
        self._digests.clear()
        reuse = sys.modules.get("harness.engine.reuse")  # not imported yet: nothing was traced
        if reuse is not None and not first:
            reuse.clear()

    def _changed(self, name: str) -> bool:
        source = self._sources.get(name)
        path = getattr(sys.modules.get(name), "__file__", None)
        try:
            return source is not None and path is not None and Path(path).read_bytes() != source
        except OSError:
            return False

    def _digest(self, spec: RunSpec) -> str:
        """scenarios.base.definition of ``spec``'s scenario as this actor holds it: its source lines are
        put in linecache (which inspect reads) as compiled, marked as not from a file (mtime None)
        so that linecache does not re-read the file, which may have changed since."""
        from harness.scenarios.base import definition

        key = (spec.target, json.dumps(dict(spec.params), sort_keys=True, default=str))
        if key not in self._digests:
            for name, source in self._sources.items():
                path = getattr(sys.modules.get(name), "__file__", None)
                if source is not None and path:
                    linecache.cache[path] = (len(source), None, _source_lines(source), path)
            try:
                self._digests[key] = definition(spec.target, spec.params)
            except Exception as exc:
                raise _NoDigest from exc
        return self._digests[key]


class _NoDigest(Exception):
    """definition() failed (the scenario cannot be constructed): the run reports it."""


def worker_class(ray: Any, num_cpus: float, num_gpus: float) -> Any:
    """The actor class runs execute on: one run at a time, never restarted by Ray."""
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0, max_task_retries=0)(_Worker)


def connect(cfg: RayConfig, namespace: str | None = None, *, runs: int = 0) -> tuple[Any, bool, bool]:
    """ray.init: an embedded local instance when address is None, else join ``address``. An
    embedded one starts lean (harness.raystart), its workers importing TensorFlow as they start
    where a sweep of ``runs`` runs will have an actor in each of them (preload_tensorflow).

    Returns (ray, embedded, owned): owned is False when Ray was already initialised
    by the caller (then the caller also shuts it down)."""
    wait_stopped()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if cfg.address is None or namespace is not None:  # embedded, or this machine's warm pool
        # Single-machine mode: Ray then uses 127.0.0.1 as the node address and binds every
        # server (GCS, raylet, workers, agents) to loopback. Read when ray is first imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    kwargs: dict[str, Any] = {
        "include_dashboard": cfg.include_dashboard,
        "log_to_driver": cfg.log_to_driver,
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    if namespace is not None:
        kwargs["namespace"] = namespace
    if ray.is_initialized():
        return ray, False, False
    # Token authentication stays on; its notice on every embedded start is noise for this tool.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if cfg.address is not None:
        _check_reachable(cfg.address)
    mark("ray.init start")
    try:
        if cfg.address is None:
            # "local" always starts a new instance; a bare ray.init() would join any cluster
            # that `ray start` left running on this machine (or RAY_ADDRESS).
            threads = max(math.floor(cfg.num_cpus_per_actor), 1) if preload_tensorflow(cfg, runs) else None
            # lean_start patches Ray process-wide while ray.init runs: wait_stopped() above made sure
            # no other Ray of this process is starting or stopping meanwhile
            with embedded_env(malloc_library(cfg.malloc), dashboard=cfg.include_dashboard, preload_threads=threads), \
                    lean_start(dashboard=cfg.include_dashboard, usage_stats=_usage_stats_on(),
                               log_to_driver=cfg.log_to_driver) as changed:
                init_local(ray, **kwargs)  # its temp directory and token private to the user
            log.debug("embedded Ray started without or with: %s", ", ".join(changed) or "nothing changed")
            mark("ray.init done")
            return ray, True, True
        kwargs.pop("include_dashboard")
        # The warm pool's Ray has no dashboard: its drivers record no task events either (see
        # NO_TASK_EVENTS; a driver's ray.shutdown waited 0.27 s on their flush in 3 of 4 here), nor
        # metrics (NO_METRICS)
        with _environ(_unset({**NO_TASK_EVENTS, **NO_METRICS}) if namespace else {}):
            ray.init(address=cfg.address, **kwargs)
        mark("ray.init done")
        return ray, False, True
    except Exception as exc:
        hint = ""
        if cfg.address not in (None, "auto") and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            # Ray enables token auth by itself only for auto; a cluster started with `ray start`
            # (Ray 2.5x+) needs it whenever a token exists, and the failure names no cause
            hint = (" (if the cluster uses token authentication, set RAY_AUTH_MODE=token; the token "
                    "is read from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")
        raise DispatchError(f"ray.address={cfg.address or 'local'}: cannot start or join Ray: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{hint}") from exc


def _usage_stats_on() -> bool:
    """Whether the user turned Ray's usage stats on (the harness turns them off by default): the
    dashboard head is what reports them, so an embedded Ray then keeps it (harness.raystart)."""
    return os.environ.get("RAY_USAGE_STATS_ENABLED", "0").strip() == "1"  # Ray's rule: 0 or 1


def preload_value(library: str) -> str:
    """LD_PRELOAD with ``library`` in front of what this process's environment already preloads."""
    before = os.environ.get("LD_PRELOAD")
    return f"{library} {before}" if before else library


# The raylet's plasma client connects to the object store's socket, which a thread of the same raylet
# opens at about the same moment: when the socket is not there yet, the client waits
# raylet_client_connect_timeout_milliseconds (Ray's default: 1000) before trying again, and the
# node registers, and ray.init returns, a whole second later (about every other start on this
# machine). Workers connecting to the raylet, and asking it for Ray's config, use the same two
# settings. An embedded Ray retries every 50 ms instead, 200 times: the same 10 s of waiting
# before giving up (each missed try is one "Retrying to connect" line in raylet.out).
CONNECT_RETRY = {"RAY_raylet_client_connect_timeout_milliseconds": "50",
                 "RAY_raylet_client_num_connect_attempts": "200"}
# Task events (each task's state changes, sent to the GCS every second) feed only the dashboard's
# task views, `ray list tasks` and ray.timeline(), which an embedded Ray without its dashboard does
# not serve (and the harness does not call), and the driver's ray.shutdown waits on them: it took
# 0.36-0.46 s in four of five shutdowns measured here (0.17 s in the fifth), 0.13-0.17 s in five
# with them off. 0 turns them off (ray_config_def.h).
NO_TASK_EVENTS = {"RAY_task_events_report_interval_ms": "0"}
# A driver exports its metrics to the node's metrics agent, and ray.shutdown flushes them, waiting up to
# 10 s for an agent that is gone: a sweep that lost the warm pool (down --force, its daemon killed)
# would wait that long before it exits. Nothing reads a warm-pool driver's metrics (no dashboard).
NO_METRICS = {"RAY_enable_metrics_collection": "0"}
# A raylet starts one worker per CPU (services.start_raylet passes --num_prestart_python_workers)
# soon after it has registered, before ray.init returns in the starts logged here, and a sweep's
# actors are created in them; each actor then imports TensorFlow (about 2 s on 2 cores, the longest
# part of its start). preload_python_modules (Ray system config, ray_config_def.h, read from
# RAY_<name> by the raylet) has every worker import harness.engine.preload (TensorFlow) as it
# starts, before it takes work: the import starts before the sweep has created its actors. Ray
# sets a worker's OMP_NUM_THREADS (numpy's BLAS reads it as it loads) only when an actor is
# created in it, unless set: with the preload it is set beforehand to what Ray would set.
PRELOAD = {"RAY_preload_python_modules": "harness.engine.preload"}
THREADS = "OMP_NUM_THREADS"


@contextmanager
def embedded_env(library: str | None, *, dashboard: bool = False, preload_threads: int | None = None) -> Iterator[None]:
    """The environment an embedded Ray (a sweep's, or the warm pool's) starts in, set in this process
    while the block starts it: every process Ray starts inherits it (the raylet starts the workers,
    and so the actors, with its environment). ``library`` (an allocator, or None) is preloaded with
    LD_PRELOAD; CONNECT_RETRY is set unless this environment sets either of its variables (then
    both are left as they are), NO_TASK_EVENTS unless it is set or the Ray has its ``dashboard``;
    with ``preload_threads`` (an actor's CPUs, see preload_tensorflow), PRELOAD (after the modules
    the user's list names) and OMP_NUM_THREADS unless set. This process's environment is as it was
    afterwards."""
    changes = dict(CONNECT_RETRY) if not any(k in os.environ for k in CONNECT_RETRY) else {}
    if not dashboard:
        changes.update(_unset(NO_TASK_EVENTS))
    if preload_threads is not None:
        for k, v in PRELOAD.items():
            changes[k] = ",".join(m for m in (os.environ.get(k, "").strip(","), v) if m)
        if THREADS not in os.environ:
            changes[THREADS] = str(preload_threads)
    if library is not None:
        changes["LD_PRELOAD"] = preload_value(library)
    with _environ(changes):
        yield


def _unset(defaults: dict[str, str]) -> dict[str, str]:
    """The entries of ``defaults`` whose variable this process's environment does not set."""
    return {k: v for k, v in defaults.items() if k not in os.environ}


@contextmanager
def _environ(changes: dict[str, str]) -> Iterator[None]:
    """``changes`` in this process's environment inside the block, as it was afterwards."""
    before = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_stopping: list[threading.Thread] = []


def _end_monitor(ray: Any) -> None:
    """Kill this process's embedded Ray's autoscaler monitor outright, before ray.shutdown. Ray stops
    its processes one after another, each with SIGTERM and up to a second's wait before SIGKILL;
    the monitor (nothing to autoscale on one machine) is stopped after the GCS it reports to and
    does not exit on SIGTERM then, so it cost that whole second for the SIGKILL it gets anyway.
    Ray's private API: if it has changed, ray.shutdown stops the monitor as before."""
    try:
        from ray._private import ray_constants

        node = ray._private.worker._global_node  # None unless this process started or joined Ray
        if node is not None and ray_constants.PROCESS_TYPE_MONITOR in node.all_processes:  # only ones it started
            node._kill_process_type(ray_constants.PROCESS_TYPE_MONITOR, allow_graceful=False, check_alive=False,
                                    wait=True)
    except Exception as exc:
        log.debug("could not stop Ray's monitor ahead of ray.shutdown: %s: %s", type(exc).__name__, exc)


def shutdown(ray: Any) -> None:
    """ray.shutdown of a Ray this process started or joined, its monitor ended outright first (see
    _end_monitor): every place that stops a Ray goes through here."""
    _end_monitor(ray)
    ray.shutdown()


def _stop(ray: Any) -> None:
    """ray.shutdown in the background. An embedded Ray's processes take over a second to exit (Ray
    stops them one after another and waits for each), time the sweep's summary can use instead of
    waiting; wait_stopped() joins it, and connecting again waits for it first."""
    def stop() -> None:
        mark("ray.shutdown start")
        try:
            shutdown(ray)
        except Exception as exc:  # Ray's processes are tied to this one: they end with it regardless
            log.warning("ray.shutdown failed: %s: %s", type(exc).__name__, exc)
        mark("ray.shutdown done")

    thread = threading.Thread(target=stop, name="harness-ray-shutdown")
    _stopping.append(thread)
    thread.start()


def wait_stopped() -> None:
    """Return once a Ray this process started has been shut down (see _stop)."""
    while _stopping:
        _stopping.pop().join()


def _check_reachable(address: str) -> None:
    """Fail at once, in one line, when nothing listens at the address Ray would use:
    ray.init retries an unreachable address for minutes. Ray replaces 127.0.0.1 and
    localhost by this machine's primary address (unless it runs in single-machine mode),
    so the address checked is Ray's own resolution of ``address`` (also of ``auto``)."""
    if "://" in address:  # ray:// (Ray Client): resolved and checked by Ray itself
        return
    try:
        from ray._private.services import canonicalize_bootstrap_address

        target = canonicalize_bootstrap_address(address) or ""
    except Exception:  # a private helper; if it moves, check the address as given
        target = "" if address == "auto" else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # auto with no running cluster recorded: ray.init says so at once
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        via = f" (Ray resolves {address} to {target})" if target != address else ""
        raise DispatchError(f"ray.address={address}: no Ray cluster answers at {target}{via}: "
                            f"{exc.strerror or type(exc).__name__}") from exc


def _fitting(cfg: RayConfig, cpus: float, gpus: float) -> int:
    """How many actors of the configured CPU and GPU share fit in ``cpus`` and ``gpus``."""
    n = int(cpus // cfg.num_cpus_per_actor)
    return min(n, int(gpus // cfg.num_gpus_per_actor)) if cfg.num_gpus_per_actor > 0 else n


def _num_actors(ray: Any, cfg: RayConfig, n_runs: int) -> tuple[int, float, float, str]:
    """(actors for a sweep of ``n_runs`` runs, the cluster's CPUs and GPUs, a note when the configured
    ray.num_actors was more than fit): one actor per share of the cluster unless ray.num_actors asks
    for fewer; more than fit would wait for resources that never come."""
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    fits = _fitting(cfg, cpus, gpus)
    if fits < 1:
        raise DispatchError(f"the cluster ({cpus:g} CPU, {gpus:g} GPU) cannot fit one actor of "
                            f"ray.num_cpus_per_actor={cfg.num_cpus_per_actor:g}, "
                            f"ray.num_gpus_per_actor={cfg.num_gpus_per_actor:g}")
    n, note = fits, ""
    if cfg.num_actors is not None:
        n = min(cfg.num_actors, fits)
        if cfg.num_actors > fits:
            note = _capped(cfg.num_actors, fits, f"the cluster's {cpus:g} CPU, {gpus:g} GPU fit {fits} actors of "
                           f"ray.num_cpus_per_actor={cfg.num_cpus_per_actor:g}, "
                           f"ray.num_gpus_per_actor={cfg.num_gpus_per_actor:g}")
    return max(1, min(n, n_runs)), cpus, gpus, note


def _capped(asked: int, used: int, why: str) -> str:
    return f"ray.num_actors={asked} capped to {used}: {why}"


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def preload_tensorflow(cfg: RayConfig, n_runs: int) -> bool:
    """Whether the workers of a sweep's embedded Ray should import TensorFlow as they start (PRELOAD):
    when each worker the raylet prestarts (one per CPU, as Ray counts them: cgroup quotas included)
    will hold one of the sweep's actors, as _num_actors counts them once Ray is up. Else a worker
    no actor uses would import it on cores the actors need. Not for actors that take GPUs, out of
    caution: Ray gives a worker its GPUs (CUDA_VISIBLE_DEVICES) only when an actor is created in it,
    and the preload has not been tried on a GPU. Imports Ray: call it after connect() has set the
    environment Ray reads as it is imported."""
    if cfg.address is not None or cfg.num_gpus_per_actor > 0:
        return False
    try:
        from ray._private.utils import get_num_cpus  # what ray.init counts; private API, hence the fallback

        cpus = float(get_num_cpus())
    except Exception:
        cpus = float(os.cpu_count() or 1)
    fits = _fitting(cfg, cpus, 0.0)
    actors = min(fits if cfg.num_actors is None else min(cfg.num_actors, fits), n_runs)
    return actors >= int(cpus) >= 1


def _failed(spec: RunSpec, status: Status, error: str, worker: str, started: float) -> RunResult:
    return RunResult(run_id=spec.run_id, status=status, error=error, worker=worker,
                     wall_s=time.monotonic() - started)


class RunQueue:
    """Pending runs grouped by structure (RunSpec.structure). An actor that becomes idle is
    given another run of the structure it ran last, so that its worker reuses the traced
    loop (harness.engine.reuse); failing that, a run of the first structure no other actor
    is on; failing that, the first pending run."""

    def __init__(self, specs: Sequence[RunSpec] = ()) -> None:
        self._groups: dict[Any, deque[RunSpec]] = {}
        self.extend(specs)

    def extend(self, specs: Sequence[RunSpec]) -> None:
        """Add runs at the back of their structures' groups (also while a pool is running them)."""
        for s in specs:
            self._groups.setdefault(s.structure(), deque()).append(s)

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values())

    def __bool__(self) -> bool:
        return bool(self._groups)

    def push_front(self, spec: RunSpec) -> None:
        """Put back a run to retry: it goes first in its structure's group."""
        key = spec.structure()
        if key not in self._groups:
            self._groups = {key: deque(), **self._groups}
        self._groups[key].appendleft(spec)

    def pop(self, last: Any = None, taken: Sequence[Any] = ()) -> RunSpec:
        """The next run for an actor whose last run had structure ``last``, while other
        actors are on the structures ``taken``."""
        if last in self._groups:
            key = last
        else:
            key = next((k for k in self._groups if k not in taken), None)
            key = next(iter(self._groups)) if key is None else key
        group = self._groups[key]
        spec = group.popleft()
        if not group:
            del self._groups[key]
        return spec


class ActorPool:
    """Runs specs on a fixed number of actors, yielding (spec, result) as each finishes."""

    def __init__(self, ray: Any, cfg: RayConfig, num_actors: int, *, timeout_s: float, retries: int,
                 warm: Sequence[Any] = (), lost: Callable[[], str] | None = None, where: Workdir | None = None) -> None:
        from harness.pool import process_start

        self.ray = ray
        self.cfg = cfg
        self.num_actors = num_actors
        self.timeout_s = timeout_s
        self.retries = retries
        self.warm = list(warm)[:num_actors]  # a warm pool's actors: used first, left alive when idle at the end
        self.lost = lost  # why the warm pool the actors belong to is gone ("" while it is up)
        self.where = where  # the sweep's directory and module path, sent with each run (actors on this machine)
        threads = max(1, int(round(cfg.num_cpus_per_actor)))
        self._cls = worker_class(ray, cfg.num_cpus_per_actor, cfg.num_gpus_per_actor)
        self._threads = threads
        self._start_failures = 0
        self._driver = (os.getpid(), process_start(os.getpid()))  # a warm actor's daemon stops runs it orphans

    def _check(self) -> None:
        """DispatchError when the warm pool stopped: its Ray is going or gone, and a call that needs its
        GCS (starting an actor) would wait a minute for it before Ray ends the process."""
        why = self.lost() if self.lost else ""
        if why:
            raise DispatchError(f"the warm pool stopped during the sweep ({why}); finished runs are stored, "
                                f"rerun the same command to resume")

    def _spawn(self) -> tuple[Any, Any]:
        self._check()
        actor = self._cls.remote(self._threads)
        return actor, actor.ready.remote()

    def _submit(self, actor: Any, spec: RunSpec) -> Any:
        return actor.run.remote(spec, self.timeout_s, self._driver, self.where)

    def _trial(self, actor: Any, trials: Sequence[RunSpec]) -> None:
        """Run each trial spec on ``actor``; the first that does not complete raises TrialError."""
        for spec in trials:
            try:
                result = self.ray.get(self._submit(actor, spec), timeout=self.timeout_s)
            except Exception as exc:
                raise TrialError(spec.scenario, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}") from exc
            if result.status is not Status.OK:
                raise TrialError(spec.scenario, result.error or result.status.value)

    def run(self, specs: Sequence[RunSpec] | RunQueue, on_start: Callable[[RunSpec], None] | None = None,
            trials: Sequence[RunSpec] = (), on_verified: Callable[[], None] | None = None,
            heartbeat: Callable[[], None] | None = None) -> Iterator[tuple[RunSpec, RunResult]]:
        """Yield (spec, result) as runs finish. ``trials`` run first, on the first actor to be
        ready, before any spec is dispatched; ``on_verified`` is called once they passed.
        Given a RunQueue, runs the caller adds to it while iterating are run too."""
        ray = self.ray
        exc = ray.exceptions
        pending = specs if isinstance(specs, RunQueue) else RunQueue(specs)
        attempts: Counter[str] = Counter()
        starting: dict[Any, Any] = {}  # ready ref -> actor
        idle: list[tuple[Any, str]] = []  # (actor, worker name)
        running: dict[Any, tuple[Any, str, RunSpec, float]] = {}  # run ref -> (actor, name, spec, t0)
        last: dict[str, Any] = {}  # worker name -> structure of its last run
        verified = False
        for actor in self.warm:
            starting[actor.ready.remote()] = actor
        warm_deadline = time.monotonic() + WARM_READY_S
        for _ in range(self.num_actors - len(self.warm)):
            actor, ref = self._spawn()
            starting[ref] = actor
        try:
            while pending or running:
                self._check()
                if heartbeat:
                    heartbeat()
                if self.warm and time.monotonic() > warm_deadline:
                    warm_deadline = math.inf
                    for ref, actor in list(starting.items()):  # still busy (a driver killed mid-run)
                        if any(actor is w for w in self.warm):
                            starting.pop(ref)
                            ray.kill(actor, no_restart=True)
                            new, new_ref = self._spawn()
                            starting[new_ref] = new
                if not verified and idle:
                    try:
                        self._trial(idle[0][0], trials)
                    except BaseException:  # a trial that failed or was interrupted may still be running
                        ray.kill(idle.pop(0)[0], no_restart=True)
                        raise
                    if trials:  # that actor has traced the last trial's structure
                        last[idle[0][1]] = trials[-1].structure()
                    verified = True
                    if on_verified:
                        on_verified()
                while verified and idle and pending:
                    actor, name = idle.pop()
                    spec = pending.pop(last.get(name), [last.get(n) for _, n, *_ in running.values()])
                    last[name] = spec.structure()
                    attempts[spec.run_id] += 1
                    if on_start:
                        on_start(spec)
                    running[self._submit(actor, spec)] = (actor, name, spec, time.monotonic())
                    mark("run dispatched")
                if not starting and not running and not idle:
                    raise DispatchError("no actor is alive to run the remaining runs")
                ready, _ = ray.wait([*starting, *running], num_returns=1, timeout=POLL_S)
                for ref in ready:
                    if ref in starting:
                        actor = starting.pop(ref)
                        try:
                            idle.append((actor, ray.get(ref)))
                        except exc.RayError as err:
                            # a warm actor that died (killed from outside, or being replaced) is no
                            # failure to start: one of this sweep's takes its place
                            self._start_failures += not any(actor is w for w in self.warm)
                            if self._start_failures > MAX_ACTOR_START_FAILURES:
                                raise DispatchError(f"actors fail to start: {str(err).splitlines()[-1]}") from err
                            new, new_ref = self._spawn()
                            starting[new_ref] = new
                        continue
                    actor, name, spec, t0 = running.pop(ref)
                    mark("run finished")
                    try:
                        result = ray.get(ref)
                    except (exc.RayActorError, exc.WorkerCrashedError, exc.ObjectLostError) as err:
                        new, new_ref = self._spawn()
                        starting[new_ref] = new
                        if attempts[spec.run_id] <= self.retries:
                            log.warning("worker %s died during run %s; retrying", name, spec.run_id)
                            pending.push_front(spec)
                            continue
                        result = _failed(spec, Status.CRASHED, f"{type(err).__name__}: worker process died "
                                         f"({attempts[spec.run_id]} attempt(s))", name, t0)
                    except exc.RayTaskError as err:
                        idle.append((actor, name))
                        result = _failed(spec, Status.ERROR, str(err).strip().splitlines()[-1], name, t0)
                    else:
                        idle.append((actor, name))
                    yield spec, result
                now = time.monotonic()
                for ref, (actor, name, spec, t0) in list(running.items()):
                    if now - t0 > self.timeout_s:
                        running.pop(ref)
                        ray.kill(actor, no_restart=True)
                        new, new_ref = self._spawn()
                        starting[new_ref] = new
                        yield spec, _failed(spec, Status.TIMEOUT, f"TimeoutError: run exceeded "
                                            f"sweep.timeout_s={self.timeout_s:g}", name, t0)
        finally:  # a warm actor that is idle stays for the next sweep; one still running a run is killed
            warm = {id(a) for a in self.warm}
            for actor in [a for a, _ in idle if id(a) not in warm] + [a for a, *_ in running.values()] + \
                    [a for a in starting.values() if id(a) not in warm]:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:
                    pass


def dispatch(specs: Sequence[RunSpec] | RunQueue, cfg: RayConfig, *, timeout_s: float, retries: int,
             on_ready: Callable[[ClusterInfo], None] | None = None,
             on_start: Callable[[RunSpec], None] | None = None,
             trials: Sequence[RunSpec] = ()) -> Iterator[tuple[RunSpec, RunResult]]:
    """Connect to Ray, run ``specs`` on an actor pool, yield (spec, result) as runs finish,
    and disconnect at the end (also on error or Ctrl-C); an embedded Ray stops with it.
    Runs added to a RunQueue ``specs`` while iterating are run too (adaptive seeds). With ray.address
    unset, a warm pool that matches (harness.pool) is joined instead of starting Ray, one sweep at a time.
    Ray is shut down in the background once the runs are over: wait_stopped() waits for it."""
    wait_stopped()
    state, note, lock = _warm_pool(cfg)
    try:
        yield from _dispatch(specs, cfg, state, note, timeout_s=timeout_s, retries=retries, on_ready=on_ready,
                             on_start=on_start, trials=trials)
    finally:
        if lock is not None:
            lock.release()


def _warm_pool(cfg: RayConfig) -> tuple[Any, str, Any]:
    """(the warm pool's state, or None; why it is not used; the lock held while it is used)."""
    from harness import pool as warm_pool

    if _ray_initialized():  # the caller's Ray is used as it is
        return None, "", None
    state, note = warm_pool.usable(cfg)
    if state is None:
        return None, note, None
    lock = warm_pool.SweepLock()
    if not lock.acquire():
        return None, "the warm pool is busy with another sweep: running cold", None
    return state, "", lock


def _ray_initialized() -> bool:
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def _dispatch(specs: Sequence[RunSpec] | RunQueue, cfg: RayConfig, state: Any, note: str, *, timeout_s: float,
              retries: int, on_ready: Callable[[ClusterInfo], None] | None,
              on_start: Callable[[RunSpec], None] | None, trials: Sequence[RunSpec]
              ) -> Iterator[tuple[RunSpec, RunResult]]:
    from harness import pool as warm_pool

    if state is not None:
        warm_pool.join_settings(state)
        try:
            ray, embedded, owned = connect(replace(cfg, address=state.address), namespace=warm_pool.NAMESPACE)
        except DispatchError as exc:
            state, note = None, f"the warm pool did not answer ({exc}): running cold"
            ray, embedded, owned = connect(cfg, runs=len(specs))
    else:
        ray, embedded, owned = connect(cfg, runs=len(specs))
    from harness.signals import install

    install()  # ray.init replaced the SIGTERM handler with sys.exit: SIGTERM stops a sweep like Ctrl-C
    try:
        warm: list[Any] = []
        if state is not None:
            warm_pool.touch_used()
            for name in state.names():
                try:
                    warm.append(ray.get_actor(name, namespace=warm_pool.NAMESPACE))
                except ValueError:  # being replaced by the daemon: the sweep starts its own in its place
                    pass
        if state is not None:  # the pool's actors hold its CPUs: use them, never more
            _, cpus, gpus, _ = _num_actors(ray, replace(cfg, num_actors=1), 1)
            n = max(1, min(state.actors, cfg.num_actors or state.actors, len(specs)))
            capped = "" if (cfg.num_actors or 0) <= state.actors else \
                _capped(cfg.num_actors or 0, state.actors, f"the warm pool has {_plural(state.actors, 'actor')}")
        else:
            n, cpus, gpus, capped = _num_actors(ray, cfg, len(specs))
        address = ray.get_runtime_context().gcs_address
        info = ClusterInfo(address=address, embedded=embedded, num_actors=n, cpus=cpus, gpus=gpus,
                           warm=state is not None, note="\n".join(filter(None, [note, capped])))
        # actors on this machine run in the sweep's directory, with its module path (a warm pool's
        # started elsewhere); a cluster's actors, on other machines, import as Ray has them import
        where = Workdir.here() if state is not None or embedded else None
        pool = ActorPool(ray, cfg, n, timeout_s=timeout_s, retries=retries, warm=warm,
                         lost=(lambda: warm_pool.lost(state)) if state is not None else None, where=where)
        beat = {"last": time.monotonic()}

        def heartbeat() -> None:  # a sweep at work keeps the pool from its idle timeout
            if state is not None and time.monotonic() - beat["last"] > 30:
                beat["last"] = time.monotonic()
                warm_pool.touch_used()

        yield from pool.run(specs, on_start=on_start, trials=trials,
                            on_verified=(lambda: on_ready(info)) if on_ready else None, heartbeat=heartbeat)
    finally:
        if owned:
            _stop(ray)
