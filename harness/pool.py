"""A warm pool: a local Ray instance and its actors, TensorFlow imported, kept alive between sweeps.

    python -m harness up [--actors N] [--cpus-per-actor C] [--idle-minutes M] [--malloc M]
    python -m harness down
    python -m harness up --status

``up`` starts a small daemon process (``python -m harness.pool serve``) in its own session. It
starts an embedded local Ray, creates the actors (named ``worker-<i>`` in the namespace
``harness-pool``), waits until each has imported TensorFlow, and writes a state file
(``$XDG_CACHE_HOME/harness/pool.json``, or ``$HARNESS_POOL_DIR/pool.json``). A sweep with
``ray.address`` unset and ``ray.warm=auto`` (the default) finds the state file, joins that Ray
as a second driver and sends its runs to those actors instead of starting Ray itself: the start
costs about a second instead of Ray's start plus TensorFlow's import in every actor. Without a
pool, nothing changes: the embedded default starts and stops its own Ray.

A pool is used only when it matches the sweep: the same ``ray.num_cpus_per_actor`` and
``ray.num_gpus_per_actor`` (TensorFlow's thread pools are fixed when an actor starts, and replays
set them from the stored value), the same allocator (``--malloc`` as ``ray.malloc``, default auto:
the library preloaded into Ray's processes is compared), the same harness code (a digest of the package's sources, taken
when the pool started), the same working directory and the same environment variables that
change what an actor imports or computes (ENV_KEYS); and only by one sweep at a time (a lock in
the pool's directory, held for the sweep). Otherwise the sweep says why and runs cold. A scenario module
edited since an actor imported it is re-imported by that actor before its next run (its file's
modification time and size are compared), and the traced loops it cached are dropped; edits to
other modules the scenario imports need ``down`` and ``up``.

Runs on a warm actor give the same results, bit for bit, as on a cold one (tested): each run
builds its scenario afresh and seeds everything from its own seed; an actor's cache of traced
loops is the same one a long cold sweep uses. An actor killed by a sweep (a run past its
timeout, or a sweep interrupted mid-run) is replaced by the daemon within a few seconds. The
daemon exits, and Ray with it, on ``down`` (SIGTERM), on SIGINT, or after ``--idle-minutes``
without a sweep (default 60; 0 = never).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.store import pid_alive

NAMESPACE = "harness-pool"
STATE = "pool.json"
STARTING = "pool.starting"  # the daemon's pid while it starts (before STATE exists): up and down see it
USED = "pool.used"  # touched by every sweep that uses the pool (the idle clock)
LOG = "pool.log"
START_TIMEOUT_S = 180.0
REFILL_S = 5.0
EXIT_OK, EXIT_USAGE, EXIT_CLUSTER = 0, 2, 3
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")  # Ray turns token auth on for a local cluster by itself
# what an actor imports and how TF computes: a sweep whose values differ from the pool's runs cold
ENV_KEYS = ("PYTHONPATH", "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "TF_XLA_FLAGS", "CUDA_VISIBLE_DEVICES",
            "TF_DETERMINISTIC_OPS")
LOCK = "pool.lock"


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
    cwd: str = ""  # the daemon's working directory (the actors import from it)
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
    """The process's start time in clock ticks since boot, with the boot id ("" where /proc has no such
    record): with the pid it names one process, even after the pid is reused."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, IndexError):
        return ""
    return f"{boot}:{start}"


def _env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_KEYS if k in os.environ}


def read_state(directory: Path | None = None) -> PoolState | None:
    """The running pool's state, or None (no state file, or its daemon is gone: the file is removed)."""
    path = (directory or pool_dir()) / STATE
    try:
        raw = json.loads(path.read_text())
        state = PoolState(**{k: v for k, v in raw.items() if k in PoolState.__dataclass_fields__})  # a newer one's too
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(state.pid, state.pid_start):
        path.unlink(missing_ok=True)  # the daemon is gone (its pid may now be another process's)
        return None
    return state


def _alive(pid: int, start: str) -> bool:
    """Is the process ``pid`` alive and, where its start time was recorded, still the same process?"""
    return pid_alive(pid) and not (start and process_start(pid) != start)


def _write_json(directory: Path, name: str, value: Any) -> None:
    """``directory/name`` written whole or not at all (a temporary file renamed into place)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, directory / name)


def _write_state(directory: Path, state: PoolState) -> None:
    _write_json(directory, STATE, asdict(state))


def starting_pid(directory: Path | None = None) -> int | None:
    """The pid of a daemon that is still starting (its actors importing TensorFlow), or None."""
    path = (directory or pool_dir()) / STARTING
    try:
        pid, start = json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(pid, start):
        path.unlink(missing_ok=True)
        return None
    return int(pid)


def _mark_starting(directory: Path) -> None:
    _write_json(directory, STARTING, [os.getpid(), process_start(os.getpid())])


def _unmark_starting(directory: Path) -> None:
    if starting_pid(directory) == os.getpid():
        (directory / STARTING).unlink(missing_ok=True)


def touch_used(directory: Path | None = None) -> None:
    """Restart the idle clock (a sweep is using the pool)."""
    path = (directory or pool_dir()) / USED
    try:
        path.touch()
    except OSError:
        pass


def _actors(n: int) -> str:
    return f"{n} actor{'s' if n != 1 else ''}"


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
    if state.cwd and state.cwd != os.getcwd():
        return None, (f"the warm pool was started in {state.cwd}, this sweep runs in {os.getcwd()} (its actors "
                      f"import from there): running cold (start the pool from here)")
    if state.env != _env():
        keys = sorted(set(state.env.items()) ^ set(_env().items()))
        return None, (f"the warm pool was started with other {', '.join(sorted({k for k, _ in keys}))}: running "
                      f"cold (restart it from this shell)")
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

    def acquire(self, wait_s: float = 2.0) -> bool:
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
    """The daemon: embedded Ray, named actors, the state file; refills dead actors; exits on SIGTERM/idle."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    directory = pool_dir()
    _mark_starting(directory)
    try:
        return _serve(ray, directory, actors, cpus_per_actor, gpus_per_actor, idle_minutes, malloc)
    finally:
        _unmark_starting(directory)


def _serve(ray: Any, directory: Path, actors: int, cpus_per_actor: float, gpus_per_actor: float,
           idle_minutes: float, malloc: str) -> int:
    """serve, from ray.init on (the starting mark is removed around it)."""
    from harness.config import RayConfig, malloc_library
    from harness.dispatch import DispatchError, _num_actors, embedded_env, shutdown, worker_class

    stop = {"now": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    library = malloc_library(malloc)
    with embedded_env(library):  # as a cold sweep's embedded Ray (dispatch.connect)
        ray.init(address="local", namespace=NAMESPACE, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cls = worker_class(ray, cpus_per_actor, gpus_per_actor)
    threads = max(1, int(round(cpus_per_actor)))
    try:  # as many as the machine's CPUs and GPUs allow (the sweeps' own rule), at most --actors
        fits = _num_actors(ray, RayConfig(num_cpus_per_actor=cpus_per_actor, num_gpus_per_actor=gpus_per_actor),
                           1 << 30)[0]
    except DispatchError as exc:
        print(f"error: {exc}", flush=True)
        shutdown(ray)
        return EXIT_CLUSTER
    actors = min(actors, fits) if actors else fits

    def spawn(i: int) -> Any:
        return cls.options(name=actor_name(i), namespace=NAMESPACE).remote(threads)

    handles = [spawn(i) for i in range(actors)]
    try:
        ray.get([h.ready.remote() for h in handles], timeout=START_TIMEOUT_S)
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
        next_refill = time.monotonic() + REFILL_S
        while not stop["now"]:
            time.sleep(0.5)
            if idle_minutes > 0:
                try:
                    last = (directory / USED).stat().st_mtime
                except OSError:
                    last = state.started
                if time.time() - last > idle_minutes * 60:
                    break
            if time.monotonic() >= next_refill:
                next_refill = time.monotonic() + REFILL_S
                lock = SweepLock(directory)
                if not lock.acquire(wait_s=0):  # a sweep is on the pool: it replaces what it kills itself
                    touch_used(directory)  # and a sweep at work is not idleness
                    continue
                try:
                    for i in range(actors):  # a killed or dead actor frees its name: start a new one under it
                        try:
                            ray.get_actor(actor_name(i), namespace=NAMESPACE)
                        except ValueError:
                            try:
                                handles[i] = spawn(i)
                            except ValueError:  # the name is still being released: next round
                                pass
                finally:
                    lock.release()
    finally:
        mine = read_state(directory)
        if mine is not None and mine.pid == os.getpid():
            (directory / STATE).unlink(missing_ok=True)
        shutdown(ray)
    return EXIT_OK


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


def down(timeout_s: float = 30.0) -> int:
    """Stop the daemon (SIGTERM, then SIGKILL after ``timeout_s``); Ray and the actors stop with it."""
    state = read_state()
    pid = state.pid if state is not None else starting_pid()
    if pid is None:
        print("no warm pool is up")
        return EXIT_OK
    _terminate(pid, timeout_s)
    (pool_dir() / STATE).unlink(missing_ok=True)
    (pool_dir() / STARTING).unlink(missing_ok=True)
    if state is None:
        print(f"warm pool stopped while it was starting (pid {pid})")
    else:
        print(f"warm pool down ({_actors(state.actors)}, up {(time.time() - state.started) / 60:.1f} min)")
    return EXIT_OK


def _terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM the daemon, then SIGKILL its session (Ray's processes with it) after ``timeout_s``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    t0 = time.monotonic()
    while pid_alive(pid) and time.monotonic() - t0 < timeout_s:
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)  # its own session: Ray's processes go with it
        except ProcessLookupError:
            pass


def status() -> int:
    state = read_state()
    if state is None:
        pid = starting_pid()
        print(f"a warm pool is starting (pid {pid}); its actors are importing TensorFlow" if pid is not None
              else "no warm pool is up (python -m harness up starts one)")
        return EXIT_OK
    reason = "" if state.code == code_digest() else " (started from other harness code: sweeps run cold)"
    since = time.localtime(state.started)
    print(f"warm pool: {_actors(state.actors)} of {state.num_cpus_per_actor:g} CPU / {state.num_gpus_per_actor:g} GPU "
          f"at {state.address}, pid {state.pid}, up since {time.strftime('%Y-%m-%d %H:%M:%S', since)} "
          f"({(time.time() - state.started) / 60:.1f} min), {_allocator(state.malloc)}{reason}")
    return EXIT_OK


def _positive(kind: type, minimum: float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum:g}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    """``python -m harness up|down`` (and the daemon's own ``serve``)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m harness up", description=__doc__.split("\n\n")[0],
                                     exit_on_error=False)
    parser.add_argument("command", choices=["up", "down", "serve"])
    parser.add_argument("--actors", type=_positive(int, 1), default=None,
                        help="number of actors (default: one per CPU share of this machine)")
    parser.add_argument("--cpus-per-actor", type=_positive(float, 0.01), default=1.0,
                        help="CPUs (TensorFlow threads) per actor; must match the sweeps' ray.num_cpus_per_actor")
    parser.add_argument("--gpus-per-actor", type=_positive(float, 0.0), default=0.0)
    parser.add_argument("--idle-minutes", type=_positive(float, 0.0), default=60.0,
                        help="stop after this long without a sweep (0: never)")
    parser.add_argument("--malloc", default="auto",
                        help="the allocator of the pool's Ray processes, as ray.malloc (auto, system, jemalloc or a "
                             "library's path); must match the sweeps' ray.malloc")
    parser.add_argument("--status", action="store_true", help="say whether a pool is up, and stop")
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
        return down()
    if args.command == "serve":
        return serve(args.actors or 0, args.cpus_per_actor, args.gpus_per_actor, args.idle_minutes, args.malloc)
    return up(args.actors, args.cpus_per_actor, args.gpus_per_actor, args.idle_minutes, args.malloc)


if __name__ == "__main__":
    sys.exit(main())
