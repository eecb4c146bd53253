"""Issue 26, item 10: a scenario whose module (imported by the driver to validate it), constructor or
checks() raises SystemExit or KeyboardInterrupt itself is a configuration error (one line, exit 2),
not an exit with the scenario's code and no word, nor a traceback; the user's own Ctrl-C (or SIGTERM)
while the driver validates is still an interrupt: one line, 130 (143)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, main

PLUGIN = '''
import os, sys, time
from harness import checks

if os.environ.get("BADINPUT_EXIT_AT_IMPORT") == "{module}":
    sys.exit(7)


class Base:
    def checks(self):
        return [checks.below("loss", "loss", 1.0)]

    def build(self, ctx):
        raise NotImplementedError

    def train_step(self, batch, step):
        raise NotImplementedError


class Exit(Base):
    def __init__(self, x: float = 1.0):
        raise SystemExit(7)


class Interrupt(Base):
    def __init__(self, x: float = 1.0):
        raise KeyboardInterrupt


class ChecksExit(Base):
    def checks(self):
        sys.exit(3)


class Slow(Base):
    """Blocks in its constructor until the test has signalled the driver."""

    def __init__(self, x: float = 1.0):
        open(os.environ["BADINPUT_MARKER"], "w").close()
        time.sleep(120)
'''


@pytest.fixture()
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A scenario module of its own name per test (so no test sees another's import), importable here
    and in subprocesses."""
    name = f"badinput_plugin_{abs(hash(request.node.name)) % 10**8}"
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / f"{name}.py").write_text(PLUGIN.replace("{module}", name))
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _sweep(target: str, tmp_path: Path) -> list[str]:
    return ["sweep=smoke", f"+scenarios.bad._target_={target}", "sweep.scenario=[bad]",
            f"store.root={tmp_path / 'res'}"]


@pytest.mark.parametrize(("cls", "at_import", "message"), [
    ("Exit", False, "error: scenario bad: its constructor {m}.Exit() raised SystemExit(7)"),
    ("Interrupt", False, "error: scenario bad: its constructor {m}.Interrupt() raised KeyboardInterrupt()"),
    ("ChecksExit", False, "error: scenario bad: ChecksExit.checks() raised SystemExit(3)"),
    ("Exit", True, "error: scenario bad: importing its module {m} raised SystemExit(7)"),
])
def test_systemexit_or_keyboardinterrupt_of_the_scenario_is_one_line_exit_2(
        cls: str, at_import: bool, message: str, plugin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    if at_import:
        monkeypatch.setenv("BADINPUT_EXIT_AT_IMPORT", plugin)
    code = main(_sweep(f"{plugin}.{cls}", tmp_path))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert err == message.format(m=plugin) + "\n"
    assert not (tmp_path / "res").exists()
    assert plugin not in sys.modules or not at_import  # a failed import leaves no half module behind


def test_the_same_in_a_subprocess_exits_2_not_7(plugin: str, tmp_path: Path) -> None:
    """What the user saw: ``python -m harness ...`` exiting 7 with no output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), os.environ.get("PYTHONPATH", "")]),
           "BADINPUT_EXIT_AT_IMPORT": plugin}
    r = subprocess.run([sys.executable, "-m", "harness", *_sweep(f"{plugin}.Exit", tmp_path)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == EXIT_USAGE and r.stderr == f"error: scenario bad: importing its module {plugin} raised " \
                                                      "SystemExit(7)\n", r.stderr
    assert not (tmp_path / "res").exists()


def test_list_shows_such_a_scenario_as_broken(plugin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf" / "scenario").mkdir(parents=True)
    (tmp_path / "conf" / "scenario" / "bad.yaml").write_text(f"# Exits.\n_target_: {plugin}.Exit\n")
    assert main(["list", "--config-dir", str(tmp_path / "conf")]) == 0
    out = capsys.readouterr().out
    assert f"cannot load: ScenarioError: its constructor {plugin}.Exit() raised SystemExit(7)" in out


@pytest.mark.parametrize(("sig", "code", "line"), [
    (signal.SIGINT, EXIT_INTERRUPTED, "interrupted: nothing was started or written"),
    (signal.SIGTERM, EXIT_TERMINATED, "terminated (SIGTERM): nothing was started or written"),
])
def test_a_real_interrupt_while_validating_is_still_an_interrupt(sig: int, code: int, line: str, plugin: str,
                                                                 tmp_path: Path) -> None:
    marker = tmp_path / "constructing"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), os.environ.get("PYTHONPATH", "")]),
           "BADINPUT_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", *_sweep(f"{plugin}.Slow", tmp_path)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not marker.exists():  # the driver is inside the scenario's constructor
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err == line + "\n" and out == ""
    assert not (tmp_path / "res").exists()
