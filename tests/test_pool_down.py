"""What `down` may signal, and state files that are not a pool's: never any process but the pool's own
daemon (a pid of -1 would be every process, 0 this process group), never a traceback, one line saying why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from harness import pool
from harness.config import RayConfig


@pytest.fixture()
def pool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_POOL_DIR", str(tmp_path / "pool"))
    (tmp_path / "pool").mkdir()
    return tmp_path / "pool"


@pytest.fixture()
def signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """os.kill and os.killpg record what they would send, and send nothing."""
    sent: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(("kill", pid, sig)))
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: sent.append(("killpg", pgid, sig)))
    return sent


def _state(**kw: Any) -> dict[str, Any]:
    state = {"address": "127.0.0.1:1", "pid": os.getpid(), "actors": 2, "num_cpus_per_actor": 1.0,
             "num_gpus_per_actor": 0.0, "code": pool.code_digest(), "started": 0.0, "idle_minutes": 60.0,
             "cwd": os.getcwd(), "env": pool._env(), "pid_start": pool.process_start(os.getpid()), "malloc": None}
    state.update(kw)
    return state


def _sleeper(**kw: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "120"], **kw)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped as soon as it ends
    return proc


ONE = pool.process_start(1) or "x:1"
FOREIGN = [  # (what the state file says, why it must not be signalled)
    (_state(pid=-1), "kill(-1) signals every process"),
    (_state(pid=-1, pid_start=""), "kill(-1) signals every process"),
    (_state(pid=0), "kill(0) signals this process group"),
    (_state(pid=1, pid_start="another-boot:1" if ONE != "another-boot:1" else "x"), "pid 1 with a wrong start"),
    (_state(pid=1, pid_start=""), "no start time recorded"),
    (_state(pid_start="another-boot:1"), "this process, with a wrong start"),
    (_state(pid_start=""), "this process, no start time"),
    (_state(), "this very process, its start time right"),
]


@pytest.mark.parametrize("raw, why", FOREIGN, ids=[why for _, why in FOREIGN])
def test_down_signals_nothing_but_the_pools_own_daemon(pool_dir: Path, signals: list, raw: dict, why: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (pool_dir / pool.STATE).write_text(json.dumps(raw))
    assert pool.down(timeout_s=0) == pool.EXIT_OK
    assert signals == [], why
    assert not (pool_dir / pool.STATE).exists()
    out = capsys.readouterr()
    assert "Traceback" not in out.err and len((out.out + out.err).strip().splitlines()) <= 2


@pytest.mark.parametrize("raw", [[-1, "x"], [0, ""], [1, "another-boot:1"], [os.getpid(), ""], ["1", "x"], [1]])
def test_down_signals_nothing_a_starting_file_names_unless_it_is_the_starting_daemon(
        pool_dir: Path, signals: list, raw: list, capsys: pytest.CaptureFixture[str]) -> None:
    (pool_dir / pool.STARTING).write_text(json.dumps(raw))
    assert pool.down(timeout_s=0) == pool.EXIT_OK
    assert signals == [] and not (pool_dir / pool.STARTING).exists()
    assert "Traceback" not in capsys.readouterr().err


def test_down_signals_its_daemon_and_kills_its_process_group_only_where_it_leads_one(
        pool_dir: Path, signals: list) -> None:
    leader = _sleeper(start_new_session=True)  # as up starts the daemon
    try:
        (pool_dir / pool.STATE).write_text(json.dumps(_state(pid=leader.pid, pid_start=pool.process_start(leader.pid))))
        assert pool.down(timeout_s=0) == pool.EXIT_OK  # the recorded signals are not sent: it outlives the wait
        assert signals == [("kill", leader.pid, signal.SIGTERM), ("killpg", leader.pid, signal.SIGKILL)]
    finally:
        leader.kill()
    signals.clear()
    member = _sleeper()  # in this process's group: killpg would hit the test itself
    try:
        (pool_dir / pool.STATE).write_text(json.dumps(_state(pid=member.pid, pid_start=pool.process_start(member.pid))))
        assert pool.down(timeout_s=0) == pool.EXIT_OK
        assert signals == [("kill", member.pid, signal.SIGTERM), ("kill", member.pid, signal.SIGKILL)]
    finally:
        member.kill()


def test_down_refuses_while_a_sweep_holds_the_pool_and_force_stops_it(
        pool_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daemon = _sleeper(start_new_session=True)
    (pool_dir / pool.STATE).write_text(json.dumps(_state(pid=daemon.pid, pid_start=pool.process_start(daemon.pid))))
    sweep = pool.SweepLock()
    assert sweep.acquire()
    try:
        assert pool.main(["down"]) == pool.EXIT_BUSY == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "a sweep is using the warm pool" in err and "down --force" in err
        assert daemon.poll() is None and (pool_dir / pool.STATE).exists()
        assert pool.main(["down", "--force"]) == pool.EXIT_OK
        assert "warm pool down" in capsys.readouterr().out
    finally:
        sweep.release()
    assert daemon.wait(timeout=60) == -signal.SIGTERM
    assert not (pool_dir / pool.STATE).exists()


MALFORMED = ["[1, 2, 3]", '"x"', "null", "17", "{", '{"pid": "abc"}', "{}",
             json.dumps({k: v for k, v in _state().items() if k != "address"}),
             json.dumps(_state(actors=0)), json.dumps(_state(num_cpus_per_actor=-1.0)),
             json.dumps(_state(env={"XLA_FLAGS": 1})), json.dumps(_state(pid=True)),
             json.dumps(_state(idle_minutes=float("nan")))]


@pytest.mark.parametrize("text", MALFORMED)
def test_a_state_file_that_is_not_a_pools_is_no_pool_with_one_warning_never_a_traceback(
        pool_dir: Path, signals: list, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.dispatch import _warm_pool

    path = pool_dir / pool.STATE
    for command in (["up", "--status"], ["down"], None):  # a sweep asks dispatch._warm_pool
        path.write_text(text)
        if command is None:
            assert _warm_pool(RayConfig()) == (None, "", None)
        else:
            assert pool.main(command) == pool.EXIT_OK
        out, err = capsys.readouterr()
        assert command is None or "no warm pool is up" in out
        err = err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"warning: {path}: ") and "removed" in err[0], err
        assert not path.exists()
    assert signals == []


@pytest.mark.parametrize("args", [["--idle-minutes", "nan"], ["--idle-minutes", "inf"], ["--cpus-per-actor", "nan"],
                                  ["--cpus-per-actor", "inf"], ["--gpus-per-actor", "nan"], ["--actors", "nan"]])
def test_numbers_that_are_not_finite_are_refused_in_one_line(pool_dir: Path, args: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert pool.main(["up", *args]) == pool.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and args[0] in err and args[1] in err
    assert not (pool_dir / pool.LOG).exists()  # nothing was started
