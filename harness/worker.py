"""The worker actor: TensorFlow imported once, runs arriving one by one, each in its sweep's directory.

An actor (``Worker``, made a Ray actor class by ``worker_class``) runs one run at a time, so a per-run
timeout is exact. On this machine's Ray (embedded, or a warm pool's, which serves sweeps of any
directory), every run carries its sweep's Workdir: the actor runs it in the sweep's working directory,
importing with the sweep's module search path, as the driver did; modules an earlier sweep imported
from directories this one does not search are forgotten first (Worker._enter). An actor runs a
scenario only with the code its run id hashed (Worker._fresh): a module is compiled from its source,
never from a .pyc an edit may have left trusted.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import io
import json
import linecache
import logging
import os
import sys
import time
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.grid import RunSpec
from harness.records import RunResult, Status
from harness.timeline import mark

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workdir:
    """Where a sweep's driver runs: its working directory and its module search path (sys.path, each
    entry absolute: '' and relative entries as the driver resolves them). Sent with every run to an
    actor on this machine, which runs it there (Worker._enter): the sweep's ``_target_`` modules are
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


class Worker:
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
        """What the actor keeps between runs (without Ray and TensorFlow: tests build a Worker with it)."""
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
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0, max_task_retries=0)(Worker)

