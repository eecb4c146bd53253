"""A real warm pool under the faults it must survive: an actor killed from outside is replaced, a run whose
driver was killed is stopped and its actor replaced, an edit that keeps a scenario's size and mtime is run,
and losing the pool mid-sweep ends the sweep with exit code 3 and its finished runs stored. Every wait is
on an event (a file, a pid, a process's exit), with a deadline only to fail instead of hanging."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import load_results, pool
from harness.store import stored_run_ids

DEADLINE_S = 180.0  # only to fail rather than hang: every wait ends on its event

GATE = '''"""Written by tests/test_pool_live.py: runs that wait on events the test controls."""

import os
import time
from pathlib import Path

from harness.scenarios.loss_bound import LossBound

VERSION = 1


class Gate(LossBound):
    """mode block: a run of seed 1 says so in a file and blocks; pair: a run waits until runs are on two
    processes (at most a minute); version: a run raises once VERSION is 2. Trial runs pass."""

    def __init__(self, mode: str = "pair", marks: str = "", **kw) -> None:
        super().__init__(**kw)
        self.mode, self.marks = mode, Path(marks)

    def build(self, ctx):
        data = super().build(ctx)
        if ctx.spec.run_id.startswith("trial-"):
            return data
        if self.mode == "block" and ctx.seed == 1:
            (self.marks / f"blocked-{os.getpid()}").write_text(ctx.spec.run_id)
            while True:
                time.sleep(1)
        if self.mode == "pair":
            (self.marks / f"running-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while len(list(self.marks.glob("running-*"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.mode == "version" and VERSION == 2:
            raise ValueError("version 2 ran")
        return data
'''

SWEEP = """# @package _global_
scenarios:
  gate: {{_target_: gate_scenario.Gate, mode: pair, marks: {marks}}}
sweep:
  name: gate
  scenario: [gate]
  data_size: [1000]
  batch_size: [32]
  precision: [fp32]
  seed: [0, 1]
  clip_value: [null]
  steps: [20]
  epochs: null
  timeout_s: 600
  retries: 0
"""


def code_snapshot(directory: Path) -> Path:
    """A copy of the harness package (its conf inside, as installed) in ``directory``, to put first on
    PYTHONPATH: a pool serves only sweeps of the code it started with (pool.code_digest), and the working
    tree may be edited while the tests run."""
    import harness

    source = Path(harness.__file__).parent
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    shutil.copytree(source, directory / "harness", ignore=skip)
    conf = Path(importlib.import_module("harness.conf").__file__).parent
    if conf != source / "conf":
        shutil.copytree(conf, directory / "harness" / "conf", ignore=skip)
    return directory


def wait_for(what: str, event: Callable[[], Any]) -> Any:
    """``event()``'s first true value; fails after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = event()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Pool:
    """A warm pool of 2 actors in ``tmp``, and sweeps on it, each a `python -m harness` process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.dir = tmp / "pool"
        self.marks = tmp / "marks"
        self.marks.mkdir()
        (tmp / "gate_scenario.py").write_text(GATE)
        (tmp / "conf" / "sweep").mkdir(parents=True)
        (tmp / "conf" / "sweep" / "gate.yaml").write_text(SWEEP.format(marks=self.marks))
        code = code_snapshot(tmp / "code")
        self.env = {**os.environ, "HARNESS_POOL_DIR": str(self.dir),
                    "PYTHONPATH": os.pathsep.join([str(code), str(tmp), os.environ["PYTHONPATH"]])}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.tmp, env=self.env)

    def sweep(self, name: str, *overrides: str) -> list[str]:
        return ["--config-dir", str(self.tmp / "conf"), "sweep=gate", f"sweep.name={name}",
                f"store.root={self.tmp / 'results'}", *overrides]

    def start(self, name: str, *overrides: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "harness", *self.sweep(name, *overrides)], cwd=self.tmp,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def state(self) -> pool.PoolState:
        state = pool.read_state(self.dir)
        assert state is not None
        return state

    def actors(self) -> dict[str, int | None]:
        return pool.actor_pids(self.dir)

    def blocked(self) -> tuple[int, str]:
        """(the actor pid, run_id) of the run that blocks, once it blocks."""
        found = wait_for("a run to block", lambda: list(self.marks.glob("blocked-*")))[0]
        pid, run_id = int(found.name.split("-")[1]), found.read_text()
        found.unlink()  # the next blocking sweep's run leaves its own
        return pid, run_id


@pytest.fixture()
def warm(tmp_path: Path) -> Iterator[Pool]:
    p = Pool(tmp_path)
    up = p.cli("up", "--actors", "2", "--idle-minutes", "10")
    assert up.returncode == 0, up.stdout + up.stderr
    daemon = p.state()
    try:
        yield p
    finally:
        p.cli("down", "--force", timeout=120)
        try:  # what is left of its session (Ray's processes), if a test killed the daemon itself
            os.killpg(daemon.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _replaced(p: Pool, name: str, old: int) -> dict[str, int | None]:
    """The daemon's actors once ``name`` is a new, answering process and every actor answers."""
    def replaced() -> dict[str, int | None] | None:
        actors = p.actors()
        return actors if actors.get(name) not in (None, old) and all(actors.values()) else None

    return wait_for(f"{name} (pid {old}) to be replaced", replaced)


@pytest.mark.slow  # a long real sweep or pool; `pytest -m slow` runs it (the default run stays near 10 minutes)
def test_an_actor_killed_from_outside_and_one_whose_driver_was_killed_are_replaced_by_the_daemon(warm: Pool) -> None:
    actors = warm.actors()
    assert sorted(actors) == ["worker-0", "worker-1"] and all(actors.values())
    os.kill(actors["worker-0"], signal.SIGKILL)  # as the OOM killer would
    after = _replaced(warm, "worker-0", actors["worker-0"])
    assert after["worker-1"] == actors["worker-1"]
    status = warm.cli("up", "--status")
    assert "2 actors (2 answering its pings) of" in status.stdout and "being replaced" not in status.stdout

    driver = warm.start("orphan", "scenarios.gate.mode=block")
    pid, run_id = warm.blocked()
    name = next(n for n, a in warm.actors().items() if a == pid)
    assert (warm.dir / f"{name}{pool.RUN}").exists()  # what the daemon reads: the run, its limit, its driver
    driver.kill()  # kill -9: nothing in the driver stops the run, whose timeout_s is 600
    driver.wait()
    wait_for(f"the orphaned run's actor (pid {pid}) to be stopped", lambda: not pool.process_start(pid))
    _replaced(warm, name, pid)
    assert "is gone: killed" in (warm.dir / pool.LOG).read_text()

    done = warm.cli(*warm.sweep("after"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warm pool: " in done.stdout and "2 actors" in done.stdout, done.stdout
    runs = load_results(warm.tmp / "results" / "after")
    assert runs["worker"].nunique() == 2  # the pair of runs waited for each other: two actors ran them

    lost = warm.start("lost", "scenarios.gate.mode=block")
    warm.blocked()
    os.kill(warm.state().pid, signal.SIGKILL)  # the daemon, and Ray with it
    _lost_the_pool(lost)


def test_down_refuses_while_a_sweep_uses_the_pool_and_force_ends_that_sweep_with_exit_3(warm: Pool) -> None:
    module = warm.tmp / "gate_scenario.py"
    first = warm.cli(*warm.sweep("v1", "scenarios.gate.mode=version"))
    assert first.returncode == 0 and "warm pool: " in first.stdout, first.stdout + first.stderr
    stamp = module.stat()
    module.write_text(GATE.replace("VERSION = 1", "VERSION = 2"))  # same size; the mtime restored below
    os.utime(module, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert module.stat().st_size == stamp.st_size
    second = warm.cli(*warm.sweep("v2", "scenarios.gate.mode=version"))
    assert second.returncode == 1 and "warm pool: " in second.stdout  # the new code ran, and raised
    errors = load_results(warm.tmp / "results" / "v2")["error"]
    assert errors.str.contains("version 2 ran").all()

    sweep = warm.start("stopped", "scenarios.gate.mode=block")
    warm.blocked()
    wait_for("the finished run to be stored", lambda: stored_run_ids(warm.tmp / "results" / "stopped"))
    refused = warm.cli("down")
    assert refused.returncode == 1 and "down --force" in refused.stderr, refused.stdout + refused.stderr
    assert sweep.poll() is None and pool.read_state(warm.dir) is not None
    forced = warm.cli("down", "--force", timeout=120)
    assert forced.returncode == 0 and "warm pool down" in forced.stdout
    _lost_the_pool(sweep)
    assert len(stored_run_ids(warm.tmp / "results" / "stopped")) == 1  # seed 0 finished before


def _lost_the_pool(sweep: subprocess.Popen[str]) -> None:
    """The sweep ends with exit code 3 and one line, not Ray's GCS timeout a minute later."""
    out, err = sweep.communicate(timeout=DEADLINE_S)
    assert sweep.returncode == 3, out + err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "the warm pool stopped during the sweep" in errors[0], err
    assert "rerun" in errors[0] and "Failed to connect to GCS" not in err and "Traceback" not in err
