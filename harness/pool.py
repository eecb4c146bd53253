"""A warm pool: a local Ray instance and its actors, TensorFlow imported, kept alive between sweeps.

    python -m harness up [--actors N] [--cpus-per-actor C] [--idle-minutes M] [--malloc M]
    python -m harness down [--force]
    python -m harness up --status

``up`` starts a small daemon process (``python -m harness.pool serve``) in its own session. It
starts an embedded local Ray (its files private to the user: harness.raystart.init_local), creates
the actors (named ``worker-<i>`` in the namespace ``harness-pool``), waits until each has imported
TensorFlow, and writes a state file (``$XDG_CACHE_HOME/harness/pool.json``, or
``$HARNESS_POOL_DIR/pool.json``). A sweep with ``ray.address`` unset and ``ray.warm`` true (the
default) finds the state file, joins that Ray as a second driver and sends its runs to those actors
instead of starting Ray itself: the start costs about a second instead of Ray's start plus
TensorFlow's import in every actor. Without a pool, nothing changes: the embedded default starts and
stops its own Ray. A state file that is not a pool's (not JSON, not an object, a field missing or of
the wrong type, no recorded start time for its pid, a pid now another process's) is no pool: it is
removed, with one warning line naming it.

A pool serves sweeps of the same user from any working directory: each run carries its sweep's
working directory and module search path (harness.worker.Workdir), and the actor runs it there,
importing the sweep's modules (its ``my_scenarios.py``, the ``_target_`` modules its path finds) as
the sweep's driver did; relative paths resolve against the sweep's directory, as on a cold sweep's
actors. A module an earlier sweep imported that this sweep's path finds elsewhere (another
project's ``my_scenarios.py``) is forgotten and imported afresh (harness.worker.Worker._enter),
never taken from sys.modules. It is used only when it matches the sweep: the same
``ray.num_cpus_per_actor`` and ``ray.num_gpus_per_actor`` (TensorFlow's thread pools are fixed when
an actor starts, and replays set them from the stored value), the same allocator (``--malloc`` as
``ray.malloc``, default auto: the library preloaded into Ray's processes is compared), the same
harness code (a digest of the package's sources, taken when the pool started), the same environment
variables that change what an actor imports or computes (ENV_KEYS; a TF_XLA_FLAGS or XLA_FLAGS that
names a flags file by a relative path also the directory the pool started in: TensorFlow reads that
file once in each actor); and only by one sweep at a time (a lock in the pool's directory, held for
the sweep). Otherwise the sweep says why, in one line, and runs cold. An actor runs a scenario only
with the code its run ids hash: each run carries the definition the driver hashed
(RunSpec.definition), and an actor whose copy of the scenario's module differs compiles it again
from its source (harness.worker.Worker._fresh); edits to other modules the scenario imports need
``down`` and ``up``.

Runs on a warm actor give the same results, bit for bit, as on a cold one (tested): each run
builds its scenario afresh and seeds everything from its own seed; an actor's cache of traced
loops is the same one a long cold sweep uses. The daemon looks after its actors every REFILL_S
seconds: an actor that does not answer a ping (killed by a sweep, by ``kill -9``, by the OOM killer)
is replaced under its name; a run whose driver is gone (killed with -9) or that is past its
``timeout_s`` (each actor records its current run in ``<name>.run`` in the pool's directory) has its
actor killed and replaced; ``pool.actors`` lists the actors' pids. The daemon exits, and Ray with
it, on ``down`` (SIGTERM; refused while a sweep holds the pool, unless ``--force``: that sweep then
ends with exit code 3, its finished runs stored), on SIGINT, or after ``--idle-minutes`` without a
sweep (default 60; 0 = never). ``down`` signals only the process the state file names if its start
time is the one recorded, and its process group only if it leads one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NAMESPACE = "harness-pool"
STATE = "pool.json"
STARTING = "pool.starting"  # the daemon's pid while it starts (before STATE exists): up and down see it
USED = "pool.used"  # touched by every sweep that uses the pool (the idle clock)
LOG = "pool.log"
ACTORS = "pool.actors"  # the daemon's view of its actors: name -> pid once it answered a ping, else null
RUN = ".run"  # <actor name>.run: the run an actor is executing (its pid, start, limit, driver), written by it
LOCK = "pool.lock"
START_TIMEOUT_S = 180.0
REFILL_S = 5.0  # how often the daemon looks after its actors
PING_S = 1.0  # how long a round waits for its pings (an idle actor answers at once)
LOCK_WAIT_S = 2.0  # down's wait for the lock, which the daemon holds for an instant while it starts actors
EXIT_OK, EXIT_BUSY, EXIT_USAGE, EXIT_CLUSTER = 0, 1, 2, 3
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")  # Ray turns token auth on for a local cluster by itself
# what an actor imports and how TF computes: a sweep whose values differ from the pool's runs cold
ENV_KEYS = ("PYTHONPATH", "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "TF_XLA_FLAGS", "CUDA_VISIBLE_DEVICES",
            "TF_DETERMINISTIC_OPS")
# a value that does not start with "-" names a file of flags (XLA's rule), which TensorFlow reads once in each
# actor, not in each sweep's directory: by a relative path, only sweeps from where the pool started use it
FLAG_FILES = ("XLA_FLAGS", "TF_XLA_FLAGS")


def join_settings(state: PoolState) -> None:
    """Before ray.init joins the pool: the authentication the pool's Ray uses (read when Ray starts a driver)."""
    for key, value in state.auth.items():
        os.environ.setdefault(key, value)


class PoolError(RuntimeError):
    """The pool cannot be started or reached (one line)."""


@dataclass(frozen=True)
class PoolState:
    address: str  # the GCS address drivers join
    pid: int  # the daemon
    actors: int
    num_cpus_per_actor: float
    num_gpus_per_actor: float
    code: str  # digest of the harness package's sources when the pool started
    started: float
    idle_minutes: float
    auth: dict[str, str] = field(default_factory=dict)  # the daemon's RAY_AUTH_* settings: a driver joins with them
    cwd: str = ""  # the daemon's working directory, its actors' between runs (each run takes its sweep's)
    env: dict[str, str] = field(default_factory=dict)  # the daemon's ENV_KEYS
    pid_start: str = ""  # the daemon's start time (/proc/PID/stat): a reused pid is not the daemon
    malloc: str | None = None  # the library preloaded into the pool's Ray processes (None: the system's allocator)

    def names(self) -> list[str]:
        return [actor_name(i) for i in range(self.actors)]


def actor_name(i: int) -> str:
    return f"worker-{i}"


def pool_dir() -> Path:
    """Where the state, the idle clock and the daemon's log live."""
    if os.environ.get("HARNESS_POOL_DIR"):
        return Path(os.environ["HARNESS_POOL_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness"


def code_digest() -> str:
    """A digest of every source file of the harness package: a pool started from other code is not used."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot, with the boot id ("" where there is no such
    process, or it has exited): with the pid it names one process, even after the pid is reused.
    Without /proc (macOS), ps's start time (to the second)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return ""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        if fields[0] == "Z":  # exited, not yet reaped by its parent: no longer running
            return ""
        start = fields[19]
    except (OSError, IndexError):
        if sys.platform.startswith("linux"):
            return ""
        ps = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True)
        return f"ps:{ps.stdout.strip()}" if ps.returncode == 0 and ps.stdout.strip() else ""
    return f"{boot}:{start}"


def _env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_KEYS if k in os.environ}


_NUMBER = (int, float)
_FIELDS: dict[str, tuple[type, ...]] = {  # PoolState's fields and the JSON types each may have
    "address": (str,), "pid": (int,), "actors": (int,), "num_cpus_per_actor": _NUMBER,
    "num_gpus_per_actor": _NUMBER, "code": (str,), "started": _NUMBER, "idle_minutes": _NUMBER,
    "auth": (dict,), "cwd": (str,), "env": (dict,), "pid_start": (str,), "malloc": (str, type(None)),
}
_OPTIONAL = {"auth", "cwd", "env", "pid_start", "malloc"}  # older state files lack them


_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "a boolean", type(None): "null"}


def _malformed(raw: Any) -> str:
    """Why ``raw``, a state file's parsed JSON, is not a pool's state ("" if it is one)."""
    if not isinstance(raw, dict):
        return f"holds {_JSON_NAMES.get(type(raw), type(raw).__name__)}, not an object"
    for key, kinds in _FIELDS.items():
        value = raw.get(key)
        if key in raw and (isinstance(value, bool) or not isinstance(value, kinds)
                           or (isinstance(value, float) and not math.isfinite(value))):
            named = "a number" if kinds == _NUMBER else " or ".join(_JSON_NAMES[k] for k in kinds)
            return f"{key}={value!r} is not {named}"
    missing = [k for k in _FIELDS if k not in raw and k not in _OPTIONAL]
    if missing:
        return f"has no {', '.join(missing)}"
    for key in ("auth", "env"):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.get(key, {}).items()):
            return f"{key} is not a map of strings"
    for key, positive in (("pid", True), ("actors", True), ("num_cpus_per_actor", True),
                          ("num_gpus_per_actor", False), ("idle_minutes", False)):
        if raw[key] < 0 or (positive and raw[key] <= 0):
            return f"{key}={raw[key]!r} is out of range"
    return ""


def _forget(path: Path, text: str, why: str) -> None:
    """Remove ``path`` if it still holds ``text`` (not a file a starting daemon wrote since), saying why."""
    try:
        if path.read_text() != text:
            return
        path.unlink()
    except OSError:
        return
    print(f"warning: {path}: {why}; removed it (taken as no warm pool)", file=sys.stderr)


def _verified(path: Path, text: str, pid: int, start: str) -> bool:
    """Whether the daemon a state file names (``pid``, started at ``start``) is alive. A dead one's file
    is removed quietly (a daemon killed with -9 leaves it); one without a start time, or whose pid is
    now another process's, is removed with a warning: its pid cannot be trusted, nor signalled."""
    if not start:
        _forget(path, text, f"records no start time for pid {pid}, so its daemon cannot be told from another process")
        return False
    now = process_start(pid)
    if not now:
        try:
            path.unlink()
        except OSError:
            pass
        return False
    if now != start:
        _forget(path, text, f"pid {pid} is no longer its daemon (another process has that pid now)")
        return False
    return True


def _read(path: Path) -> tuple[str, Any] | None:
    """(text, parsed JSON, or _NOT_JSON) of ``path``; None if it cannot be read (there is none)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return text, json.loads(text)
    except ValueError:
        return text, _NOT_JSON


_NOT_JSON = object()


def read_state(directory: Path | None = None) -> PoolState | None:
    """The running pool's state, or None: no state file, its daemon is gone, or the file is not a
    pool's state (then it is removed, with one warning line naming it)."""
    path = (directory or pool_dir()) / STATE
    read = _read(path)
    if read is None:
        return None
    text, raw = read
    why = "is not JSON" if raw is _NOT_JSON else _malformed(raw)
    if why:
        _forget(path, text, why)
        return None
    state = PoolState(**{k: v for k, v in raw.items() if k in _FIELDS})  # a newer harness's fields are left out
    return state if _verified(path, text, state.pid, state.pid_start) else None


def _alive(pid: int, start: str) -> bool:
    """Is ``pid`` the live process that started at ``start``? Never for a pid that is not positive or
    a start that was not recorded."""
    return bool(start) and process_start(pid) == start


def _signallable(pid: int, start: str) -> bool:
    """May ``pid`` be signalled as the daemon? Only a positive pid whose start time is the one recorded
    (never -1, "every process", nor 0, "my process group", nor a reused pid), and never this process."""
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and pid != os.getpid() \
        and _alive(pid, start)


def _write_json(directory: Path, name: str, value: Any) -> None:
    """``directory/name`` written whole or not at all (a temporary file renamed into place)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, directory / name)


def _write_state(directory: Path, state: PoolState) -> None:
    _write_json(directory, STATE, asdict(state))


def _starting(directory: Path | None = None) -> tuple[int, str] | None:
    """(pid, start time) of a daemon that is still starting (its actors importing TensorFlow), or None."""
    path = (directory or pool_dir()) / STARTING
    read = _read(path)
    if read is None:
        return None
    text, raw = read
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], int) and not isinstance(raw[0], bool)
            and raw[0] > 0 and isinstance(raw[1], str)):
        _forget(path, text, "is not a starting pool's [pid, start time]")
        return None
    pid, start = raw
    return (pid, start) if _verified(path, text, pid, start) else None


def starting_pid(directory: Path | None = None) -> int | None:
    """The pid of a daemon that is still starting, or None."""
    found = _starting(directory)
    return found[0] if found else None


def _mark_starting(directory: Path) -> None:
    _write_json(directory, STARTING, [os.getpid(), process_start(os.getpid())])


def _unmark_starting(directory: Path) -> None:
    if starting_pid(directory) == os.getpid():
        (directory / STARTING).unlink(missing_ok=True)


def lost(state: PoolState, directory: Path | None = None) -> str:
    """Why the pool ``state`` that a sweep is using is gone, or "" while it is up: its daemon ended
    (killed, crashed), or is stopping (the daemon removes its state file before it stops Ray)."""
    if not _alive(state.pid, state.pid_start):
        return f"its daemon, pid {state.pid}, ended"
    if not ((directory or pool_dir()) / STATE).exists():
        return "it is stopping: python -m harness down --force, or a signal to its daemon"
    return ""


def touch_used(directory: Path | None = None) -> None:
    """Restart the idle clock (a sweep is using the pool)."""
    path = (directory or pool_dir()) / USED
    try:
        path.touch()
    except OSError:
        pass


def _actors(n: int) -> str:
    return f"{n} actor{'s' if n != 1 else ''}"


def _relative_file(flags: str) -> bool:
    """Whether ``flags``, an XLA_FLAGS or TF_XLA_FLAGS value, names a flags file by a relative path."""
    flags = flags.strip()
    return bool(flags) and not flags.startswith("-") and not os.path.isabs(flags)


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _same_library(a: str | None, b: str | None) -> bool:
    return (a is None) == (b is None) and (a is None or os.path.realpath(a) == os.path.realpath(b or ""))


def _allocator(library: str | None) -> str:
    return f"the allocator {library}" if library else "the system's allocator"


def usable(cfg: Any) -> tuple[PoolState | None, str]:
    """(the pool a sweep with RayConfig ``cfg`` should use, or None; why not, if there is a pool)."""
    if cfg.address is not None or not getattr(cfg, "warm", True):
        return None, ""
    state = read_state()
    if state is None:
        return None, ""
    from harness.config import malloc_library

    wanted = malloc_library(getattr(cfg, "malloc", "auto"))
    if not _same_library(state.malloc, wanted):
        return None, (f"the warm pool runs {_allocator(state.malloc)}, this sweep asks for ray.malloc={cfg.malloc} "
                      f"({_allocator(wanted)}): running cold (restart it: python -m harness down && "
                      f"python -m harness up --malloc {cfg.malloc})")
    if (state.num_cpus_per_actor, state.num_gpus_per_actor) != (cfg.num_cpus_per_actor, cfg.num_gpus_per_actor):
        return None, (f"the warm pool has actors of {state.num_cpus_per_actor:g} CPU / {state.num_gpus_per_actor:g} "
                      f"GPU, this sweep asks for ray.num_cpus_per_actor={cfg.num_cpus_per_actor:g}, "
                      f"ray.num_gpus_per_actor={cfg.num_gpus_per_actor:g}: running cold")
    if state.code != code_digest():
        return None, ("the warm pool runs other harness code than this checkout: running cold "
                      "(restart it: python -m harness down && python -m harness up)")
    if state.env != _env():
        keys = sorted(set(state.env.items()) ^ set(_env().items()))
        return None, (f"the warm pool was started with other {', '.join(sorted({k for k, _ in keys}))}: running "
                      f"cold (restart it from this shell)")
    relative = [k for k in FLAG_FILES if _relative_file(state.env.get(k, ""))]
    if relative and state.cwd and not _same_dir(state.cwd, os.getcwd()):
        return None, (f"{relative[0]}={state.env[relative[0]]} names a flags file by a relative path, which the "
                      f"actors of the warm pool started in {state.cwd} read once, not in each sweep's directory: "
                      f"running cold (give its absolute path, or start the pool from here)")
    clash = sorted(k for k in AUTH_VARS if k in os.environ and os.environ[k] != state.auth.get(k, os.environ[k]))
    if clash:  # a driver joins with this shell's setting, which the pool's Ray would refuse
        return None, (f"this shell sets {', '.join(f'{k}={os.environ[k]}' for k in clash)}, the warm pool runs with "
                      f"{', '.join(f'{k}={state.auth[k]}' for k in clash)}: running cold (restart it from this shell)")
    return state, ""


class SweepLock:
    """Held by the one sweep that uses the pool (and, for an instant, by the daemon while it replaces
    actors): a second sweep finds it taken and runs cold; the daemon does not race a sweep for the
    CPUs of an actor the sweep replaced."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or pool_dir()) / LOCK
        self._fd: int | None = None

    def acquire(self, wait_s: float = LOCK_WAIT_S) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


# ------------------------------------------------------------------------------------------------ the daemon


def serve(actors: int, cpus_per_actor: float, gpus_per_actor: float, idle_minutes: float, malloc: str = "auto") -> int:
    """The daemon: embedded Ray, named actors, the state file; replaces dead actors and stops runs whose
    driver is gone or that are past their time limit; exits on SIGTERM/idle."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    directory = pool_dir()
    _mark_starting(directory)
    try:
        return _serve(ray, directory, actors, cpus_per_actor, gpus_per_actor, idle_minutes, malloc)
    finally:
        _unmark_starting(directory)


@dataclass
class _Slot:
    """One of the daemon's actors as the daemon last saw it."""

    handle: Any
    pid: int | None = None  # its process, once it answered a ping
    ping: Any = None  # a ping not answered yet (the actor is busy or starting)
    dead: bool = False


def _serve(ray: Any, directory: Path, actors: int, cpus_per_actor: float, gpus_per_actor: float,
           idle_minutes: float, malloc: str) -> int:
    """serve, from ray.init on (the starting mark is removed around it)."""
    from harness.config import malloc_library
    from harness.raysession import shutdown
    from harness.worker import worker_class

    stop = {"now": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    library = malloc_library(malloc)
    if not _start_ray(ray, library):
        return EXIT_CLUSTER
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cls = worker_class(ray, cpus_per_actor, gpus_per_actor)
    threads = max(1, int(round(cpus_per_actor)))
    fits = _fitting(ray, cpus_per_actor, gpus_per_actor)
    if fits is None:
        shutdown(ray)
        return EXIT_CLUSTER
    actors = min(actors, fits) if actors else fits

    def spawn(i: int) -> _Slot:
        name = actor_name(i)
        # absolute: an actor runs in each sweep's directory (harness.worker.Workdir)
        status = os.path.abspath(directory / (name + RUN))
        return _Slot(cls.options(name=name, namespace=NAMESPACE).remote(threads, status))

    slots = [spawn(i) for i in range(actors)]
    try:
        ray.get([s.handle.ready.remote() for s in slots], timeout=START_TIMEOUT_S)
        for slot, pid in zip(slots, ray.get([s.handle.pid.remote() for s in slots])):
            slot.pid = pid
        _write_actors(directory, slots)
        state = PoolState(address=ray.get_runtime_context().gcs_address, pid=os.getpid(), actors=actors,
                          num_cpus_per_actor=cpus_per_actor, num_gpus_per_actor=gpus_per_actor, code=code_digest(),
                          started=time.time(), idle_minutes=idle_minutes,
                          auth={k: v for k, v in os.environ.items() if k in AUTH_VARS}, cwd=os.getcwd(),
                          env=_env(), pid_start=process_start(os.getpid()), malloc=library)
        if stop["now"]:  # down while the actors started
            return EXIT_OK
        _write_state(directory, state)
        _unmark_starting(directory)
        touch_used(directory)
        _watch(ray, directory, state, slots, spawn, stop)
    finally:
        mine = read_state(directory)
        if mine is not None and mine.pid == os.getpid():
            (directory / STATE).unlink(missing_ok=True)  # first: a sweep on the pool sees it stopping
        shutdown(ray)
        (directory / ACTORS).unlink(missing_ok=True)
    return EXIT_OK


def _start_ray(ray: Any, library: str | None) -> bool:
    """The pool's embedded Ray, started as a cold sweep's (raysession.embedded_env) but with all of Ray's
    processes (no lean start: a pool is meant to be looked at with Ray's tools); False, said, if its
    files cannot be private to the user."""
    from harness.raysession import embedded_env
    from harness.raystart import NotPrivateError, init_local

    try:
        with embedded_env(library):
            init_local(ray, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False,
                       logging_level=logging.WARNING)
    except NotPrivateError as exc:
        print(f"error: {exc}", flush=True)
        return False
    return True


def _fitting(ray: Any, cpus_per_actor: float, gpus_per_actor: float) -> int | None:
    """How many actors the machine's CPUs and GPUs allow (the sweeps' own rule); None, said, if not one."""
    from harness.config import RayConfig
    from harness.raysession import DispatchError, num_actors

    try:
        return num_actors(ray, RayConfig(num_cpus_per_actor=cpus_per_actor, num_gpus_per_actor=gpus_per_actor),
                          1 << 30)[0]
    except DispatchError as exc:
        print(f"error: {exc}", flush=True)
        return None


def _idle_for(directory: Path, state: PoolState) -> float:
    """Seconds since a sweep last used the pool (since it started, if none has)."""
    try:
        last = (directory / USED).stat().st_mtime
    except OSError:
        last = state.started
    return time.time() - last


def _watch(ray: Any, directory: Path, state: PoolState, slots: list[_Slot], spawn: Callable[[int], _Slot],
           stop: dict[str, bool]) -> None:
    """The daemon's life once the pool is up: its actors looked after every REFILL_S (_tend) until it is
    told to stop or has been idle for its idle_minutes."""
    next_round = time.monotonic() + REFILL_S
    while not stop["now"]:
        time.sleep(0.5)
        if state.idle_minutes > 0 and _idle_for(directory, state) > state.idle_minutes * 60:
            return
        if time.monotonic() >= next_round:
            _tend(ray, directory, slots, spawn)
            next_round = time.monotonic() + REFILL_S


def _tend(ray: Any, directory: Path, slots: list[_Slot], spawn: Callable[[int], _Slot]) -> None:
    """One round of the daemon's care for its actors. A run whose driver is gone (killed with -9: no
    one will read its result) or that is past its time limit (the daemon enforces it whatever the
    driver does) has its actor killed. An actor is alive if it answers a ping: a killed actor's handle
    outlives it, and its name with it until the handle is killed. Dead actors are replaced under the
    same name, while no sweep holds the pool (the daemon does not race a sweep for their CPUs; that
    sweep replaces what it kills itself)."""
    now = time.monotonic()
    for i, slot in enumerate(slots):
        why = "" if slot.dead else _orphaned(directory / (actor_name(i) + RUN), slot.pid, now)
        if why:
            print(f"{actor_name(i)} (pid {slot.pid}): {why}: killed, to be replaced", flush=True)
            _kill(ray, slot.handle)
            slot.dead = True
    for slot in slots:
        if not slot.dead and slot.ping is None:
            slot.ping = slot.handle.pid.remote()
    pings = {s.ping: s for s in slots if not s.dead}
    answered, _ = ray.wait(list(pings), num_returns=len(pings), timeout=PING_S) if pings else ([], [])
    for ref in answered:
        slot = pings[ref]
        slot.ping = None
        try:
            slot.pid = ray.get(ref)
        except ray.exceptions.ActorUnavailableError:
            pass  # not known to be dead: asked again next round
        except ray.exceptions.RayActorError:
            slot.dead = True
    lock = SweepLock(directory)
    if not lock.acquire(wait_s=0):
        touch_used(directory)  # a sweep at work is not idleness
    else:
        try:
            for i, slot in enumerate(slots):
                if slot.dead:
                    _kill(ray, slot.handle)  # frees the name, which a dead actor's handle keeps
                    try:
                        slots[i] = spawn(i)
                    except ValueError:  # the name is still being released: next round
                        continue
                    (directory / (actor_name(i) + RUN)).unlink(missing_ok=True)
        finally:
            lock.release()
    _write_actors(directory, slots)


def _orphaned(path: Path, pid: int | None, now: float) -> str:
    """Why the run an actor (``pid``) recorded in ``path`` must be stopped, or "": its driver is gone,
    or it is past its timeout (by REFILL_S: its driver, when alive, stops it at the timeout itself)."""
    read = _read(path)
    if read is None:
        return ""
    _, run = read
    try:
        if pid is not None and run["pid"] != pid:  # left by the actor this one replaced
            return ""
        driver, started, timeout_s = run.get("driver"), float(run["started"]), run.get("timeout_s")
    except (TypeError, KeyError, ValueError):
        return ""
    if isinstance(driver, list) and len(driver) == 2 and driver[1] and process_start(driver[0]) != driver[1]:
        return f"the driver of run {run.get('run_id')} (pid {driver[0]}) is gone"
    if isinstance(timeout_s, (int, float)) and now > started + float(timeout_s) + REFILL_S:
        return f"run {run.get('run_id')} is past its timeout_s={timeout_s:g}"
    return ""


def _kill(ray: Any, handle: Any) -> None:
    try:
        ray.kill(handle, no_restart=True)
    except Exception:
        pass


def _write_actors(directory: Path, slots: list[_Slot]) -> None:
    view = {actor_name(i): (None if s.dead else s.pid) for i, s in enumerate(slots)}
    read = _read(directory / ACTORS)
    if read is None or read[1] != view:
        _write_json(directory, ACTORS, view)


def actor_pids(directory: Path | None = None) -> dict[str, int | None]:
    """The daemon's actors and their pids (None: dead or starting, being replaced), as of its last round."""
    read = _read((directory or pool_dir()) / ACTORS)
    raw = read[1] if read is not None else None
    if not isinstance(raw, dict):
        return {}
    return {k: v if isinstance(v, int) and not isinstance(v, bool) else None for k, v in raw.items()}


# ------------------------------------------------------------------------------------------------ up / down


def up(actors: int | None, cpus_per_actor: float, gpus_per_actor: float, idle_minutes: float,
       malloc: str = "auto") -> int:
    """Start the daemon unless a pool is already up; wait until its actors are ready."""
    from harness.config import malloc_library

    state = read_state()
    if state is not None:
        print(f"warm pool already up: {_actors(state.actors)} at {state.address} (pid {state.pid}); "
              f"python -m harness down stops it")
        wanted = malloc_library(malloc)
        if not _same_library(state.malloc, wanted):
            print(f"note: it runs {_allocator(state.malloc)}, not the {_allocator(wanted)} "
                  f"--malloc {malloc} asks for: sweeps with ray.malloc={malloc} run cold until it is restarted")
        return EXIT_OK
    pid = starting_pid()
    if pid is not None:
        print(f"a warm pool is starting (pid {pid}): python -m harness up --status says when it is up, "
              f"python -m harness down stops it")
        return EXIT_OK
    directory = pool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / LOG
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness.pool", "serve", *([f"--actors={actors}"] if actors else []),
                                 f"--cpus-per-actor={cpus_per_actor}", f"--gpus-per-actor={gpus_per_actor}",
                                 f"--idle-minutes={idle_minutes}", f"--malloc={malloc}"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while time.monotonic() - t0 < START_TIMEOUT_S:
        state = read_state()
        if state is not None and state.pid == proc.pid:
            idle = f"stops after {idle_minutes:g} idle minutes or on " if idle_minutes > 0 else "runs until "
            print(f"warm pool up in {time.monotonic() - t0:.1f} s: {_actors(state.actors)} of {cpus_per_actor:g} CPU at "
                  f"{state.address}; sweeps on this machine use it; it {idle}python -m harness down")
            return EXIT_OK
        if proc.poll() is not None:
            tail = log_path.read_text().strip().splitlines()[-1:] or ["(no output)"]
            print(f"error: the warm pool did not start (exit {proc.returncode}): {tail[0]} (log: {log_path})",
                  file=sys.stderr)
            return EXIT_CLUSTER
        time.sleep(0.2)
    proc.terminate()
    print(f"error: the warm pool did not start within {START_TIMEOUT_S:g} s (log: {log_path})", file=sys.stderr)
    return EXIT_CLUSTER


def down(timeout_s: float = 30.0, force: bool = False) -> int:
    """Stop the daemon (SIGTERM, then SIGKILL of its process group after ``timeout_s``); Ray and the
    actors stop with it. Refused (EXIT_BUSY) while a sweep holds the pool, unless ``force``."""
    directory = pool_dir()
    state = read_state(directory)
    target = (state.pid, state.pid_start) if state is not None else _starting(directory)
    if target is None:
        print("no warm pool is up")
        return EXIT_OK
    lock = SweepLock(directory)
    held = lock.acquire()  # kept while it stops: no sweep starts on a pool that is going
    try:
        if not held and not force:
            print("error: a sweep is using the warm pool; it stops by itself after --idle-minutes without one, "
                  "and python -m harness down --force stops it now (that sweep then exits with code 3)",
                  file=sys.stderr)
            return EXIT_BUSY
        signalled = _terminate(*target, timeout_s)
    finally:
        lock.release()
    if not signalled:  # it names this very process
        for name in (STATE, STARTING):
            (directory / name).unlink(missing_ok=True)
        print(f"warning: pid {target[0]} is not a warm pool's daemon: nothing was stopped")
        return EXIT_OK
    read_state(directory), _starting(directory)  # their daemon is gone: its files go (a new daemon's stay)
    if state is None:
        print(f"warm pool stopped while it was starting (pid {target[0]})")
    else:
        print(f"warm pool down ({_actors(state.actors)}, up {(time.time() - state.started) / 60:.1f} min)")
    return EXIT_OK


def _terminate(pid: int, start: str, timeout_s: float) -> bool:
    """SIGTERM the daemon ``pid`` (started at ``start``), then SIGKILL its process group (Ray's processes
    are in it) after ``timeout_s``. Only a process _signallable names is signalled, and killpg only
    when it leads its own group (up starts it in a session of its own). False if nothing was sent."""
    if not _signallable(pid, start):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while _alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _signallable(pid, start):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def status() -> int:
    state = read_state()
    if state is None:
        pid = starting_pid()
        print(f"a warm pool is starting (pid {pid}); its actors are importing TensorFlow" if pid is not None
              else "no warm pool is up (python -m harness up starts one)")
        return EXIT_OK
    reason = "" if state.code == code_digest() else " (started from other harness code: sweeps run cold)"
    since = time.localtime(state.started)
    pids = actor_pids()
    ready = sum(isinstance(pids.get(n), int) for n in state.names())
    # the daemon's view as of its last ping round (an actor that stops answering is killed and replaced)
    replacing = f", {state.actors - ready} being replaced" if ready < state.actors else ""
    print(f"warm pool: {_actors(state.actors)} ({ready} answering its pings{replacing}) of {state.num_cpus_per_actor:g} CPU / "
          f"{state.num_gpus_per_actor:g} GPU at {state.address}, pid {state.pid}, up since "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', since)} ({(time.time() - state.started) / 60:.1f} min), "
          f"{_allocator(state.malloc)}{reason}")
    return EXIT_OK


def _number(kind: type, minimum: float) -> Any:
    """An argparse type: a finite number of ``kind`` at least ``minimum``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum:g}")
        return value

    return parse


EPILOG = """exit codes: 0 done (also: nothing to stop); 1 down refused, a sweep is using the pool (down --force
stops it anyway, and that sweep exits with code 3); 2 bad arguments; 3 the pool could not start"""


def main(argv: list[str] | None = None) -> int:
    """``python -m harness up|down`` (and the daemon's own ``serve``)."""
    from harness.config import RayConfig  # its defaults are the sweeps' (ray.num_cpus_per_actor, ray.malloc)

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m harness up", description=__doc__.split("\n\n")[0],
                                     epilog=EPILOG, exit_on_error=False)
    parser.add_argument("command", choices=["up", "down", "serve"])
    parser.add_argument("--actors", type=_number(int, 1), default=None,
                        help="number of actors (default: one per CPU share of this machine)")
    parser.add_argument("--cpus-per-actor", type=_number(float, 0.01), default=RayConfig.num_cpus_per_actor,
                        help="CPUs (TensorFlow threads) per actor; must match the sweeps' ray.num_cpus_per_actor")
    parser.add_argument("--gpus-per-actor", type=_number(float, 0.0), default=RayConfig.num_gpus_per_actor)
    parser.add_argument("--idle-minutes", type=_number(float, 0.0), default=60.0,
                        help="stop after this long without a sweep (0: never)")
    parser.add_argument("--malloc", default=RayConfig.malloc,
                        help="the allocator of the pool's Ray processes, as ray.malloc (auto, system, jemalloc or a "
                             "library's path); must match the sweeps' ray.malloc")
    parser.add_argument("--status", action="store_true", help="say whether a pool is up, and stop")
    parser.add_argument("--force", action="store_true",
                        help="down: stop the pool even while a sweep is using it (that sweep exits with code 3); "
                             "without it, down refuses with exit code 1")
    try:
        args = parser.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        if isinstance(exc, SystemExit):
            return EXIT_OK if exc.code == 0 else EXIT_USAGE
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from harness.config import ConfigError, malloc_library

    try:
        malloc_library(args.malloc)
    except ConfigError as exc:
        print(f"error: --malloc: {str(exc).split(': ', 1)[-1]}", file=sys.stderr)
        return EXIT_USAGE
    if args.status:
        return status()
    if args.command == "down":
        return down(force=args.force)
    if args.command == "serve":
        return serve(args.actors or 0, args.cpus_per_actor, args.gpus_per_actor, args.idle_minutes, args.malloc)
    return up(args.actors, args.cpus_per_actor, args.gpus_per_actor, args.idle_minutes, args.malloc)


if __name__ == "__main__":
    sys.exit(main())
