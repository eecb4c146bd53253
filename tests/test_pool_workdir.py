"""A warm pool serves sweeps from any working directory (issue 28 item 13): each run carries its sweep's
directory and module search path (worker.Workdir), and an actor imports the sweep's modules as the
driver did, a module of the same name from another project afresh, never the one sys.modules holds.
Which pools a sweep uses (pool.usable), the actor's side without Ray, and a real pool started in one
directory serving sweeps from two others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pool import write_state
from test_pool_live import code_snapshot

from harness import load_results, pool
from harness.config import RayConfig
from harness.worker import Workdir, Worker

# one module name, my_scenarios, in every project; each imports a helper of one name too (project_helper),
# and reads its bound from a file by a relative path (the sweep's directory)
SCENARIO = '''from pathlib import Path

from project_helper import SUFFIX

from harness import checks
from harness.scenarios.loss_bound import LossBound

PROJECT = "{project}"


class Mine(LossBound):
    """A project's own scenario: its check is named after the module and helper that defined it."""

    def checks(self):
        return [checks.below(f"loss_{{PROJECT}}_{{SUFFIX}}", "post_loss", float(Path("bound.txt").read_text()))]
'''
POOLS_OWN = 'raise ImportError("my_scenarios of the directory the pool started in was imported")\n'


def project(directory: Path, name: str, bound: float) -> Path:
    """A project directory with its my_scenarios.py, project_helper.py and bound.txt."""
    directory.mkdir(parents=True)
    (directory / "my_scenarios.py").write_text(SCENARIO.format(project=name))
    (directory / "project_helper.py").write_text(f'SUFFIX = "{name}{len(name) + 1}"\n')
    (directory / "bound.txt").write_text(f"{bound}\n")
    return directory


@pytest.fixture()
def pool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_POOL_DIR", str(tmp_path / "pool"))
    return tmp_path / "pool"


def test_a_pool_started_in_another_directory_is_used_unless_a_flags_file_is_named_relative_to_it(
        pool_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = write_state(pool_dir, cwd="/elsewhere")
    assert pool.usable(RayConfig()) == (state, "")  # its actors take each run's directory and module path
    for key in pool.FLAG_FILES:  # XLA reads a flags file as TensorFlow starts: relative to where the pool started
        monkeypatch.setenv(key, "flags.txt")
        state = write_state(pool_dir, cwd="/elsewhere", env=pool._env())
        got, why = pool.usable(RayConfig())
        assert got is None and why.count("\n") == 0, why
        assert why.startswith(f"{key}=flags.txt names a flags file by a relative path")
        assert "/elsewhere" in why and "running cold" in why
        assert pool.usable(RayConfig())[0] is None
        state = write_state(pool_dir, cwd=os.getcwd(), env=pool._env())
        assert pool.usable(RayConfig())[0] == state  # started here: the same file
        flags = str(tmp_path / "flags.txt")
        monkeypatch.setenv(key, flags)  # an absolute path, or flags themselves, mean the same anywhere
        state = write_state(pool_dir, cwd="/elsewhere", env=pool._env())
        assert pool.usable(RayConfig())[0] == state
        monkeypatch.setenv(key, "--xla_cpu_enable_fast_math=false")
        state = write_state(pool_dir, cwd="/elsewhere", env=pool._env())
        assert pool.usable(RayConfig())[0] == state
        monkeypatch.delenv(key)
    write_state(pool_dir, cwd="/elsewhere", env={"XLA_FLAGS": "--xla_cpu_fast_math"})  # still: other variables
    got, why = pool.usable(RayConfig())
    assert got is None and "XLA_FLAGS" in why and "from this shell" in why


def _definition(directory: Path) -> str:
    """The definition a sweep's driver in ``directory`` hashes into run ids: a fresh process, as a driver."""
    code = "from harness.scenarios.base import definition; print(definition('my_scenarios.Mine', {}))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=directory)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture()
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """A Worker's run-time state without Ray and TensorFlow; sys.path, sys.modules and the working
    directory as they were afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("my_scenarios", "project_helper"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.chdir(os.getcwd())
    w = object.__new__(Worker)
    w.name = "test-worker"
    w._state(None)
    yield w
    for name in ("my_scenarios", "project_helper"):
        sys.modules.pop(name, None)


def test_an_actor_imports_each_sweeps_own_module_of_a_shared_name_and_runs_in_its_directory(
        tmp_path: Path, worker: Worker) -> None:
    """Projects b and c each have my_scenarios.py and project_helper.py; the actor started in a, whose
    my_scenarios.py must never be imported. Each run's module is its own sweep's, fresh, and the helper
    it imports too; the relative bound.txt is read in the sweep's directory; the process's own modules
    (the harness) are kept; between runs the actor is back in its own directory."""
    from conftest import make_spec

    import harness

    home = Path.cwd()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "my_scenarios.py").write_text(POOLS_OWN)
    sys.path.insert(0, str(tmp_path / "a"))  # as Ray puts the directory of `up` first on its actors' path
    worker._own_path = Workdir.here().path
    b, c = project(tmp_path / "b", "b", 50.0), project(tmp_path / "c", "c", 60.0)
    paths = {}
    for d in (b, c):
        os.chdir(d)
        paths[d] = Workdir(cwd=str(d), path=(str(d), *[p for p in Workdir.here().path if p != str(tmp_path / "a")]))
    os.chdir(home)
    specs = {d: make_spec(scenario="mine", target="my_scenarios.Mine", params={}, definition=_definition(d))
             for d in (b, c)}
    assert specs[b].definition != specs[c].definition

    def run(d: Path) -> str:
        assert worker._enter(paths[d]) == "" and Path.cwd() == d
        try:
            from harness.scenarios.base import declared_checks, instantiate

            assert worker._fresh(specs[d]) == ""
            module = sys.modules["my_scenarios"]
            assert module.__file__ == str(d / "my_scenarios.py") and sys.modules["project_helper"].__file__ == \
                str(d / "project_helper.py")
            (check,) = declared_checks(instantiate("my_scenarios.Mine", {}))
            return f"{check.name} {check.bound:g}"
        finally:
            worker._leave()
            assert Path.cwd() == home

    assert run(b) == "loss_b_b2 50"
    assert run(c) == "loss_c_c2 60"  # not b's module, nor its helper, taken from sys.modules
    assert run(b) == "loss_b_b2 50"
    assert sys.modules["harness"] is harness
    assert sys.path[0] == str(b) and str(tmp_path / "a") not in sys.path  # the driver's path, not the actor's
    gone = Workdir(cwd=str(tmp_path / "removed"), path=paths[b].path)
    error = worker._enter(gone)
    assert error.startswith(f"ScenarioError: cannot run in the sweep's working directory {tmp_path / 'removed'}")


# ------------------------------------------------------------------------------------------- a real pool


def test_a_pool_started_in_one_directory_runs_warm_the_sweeps_of_two_others_each_with_its_own_module(
        tmp_path: Path) -> None:
    """`up` in a (whose my_scenarios.py raises on import); sweeps from b and c, each with its own
    my_scenarios.py and project_helper.py, run on the pool's one actor, one after the other, and each
    stores its own module's results under its own directory's relative store.root."""
    code = code_snapshot(tmp_path / "code")
    env = {**os.environ, "HARNESS_POOL_DIR": str(tmp_path / "pool"),
           "PYTHONPATH": os.pathsep.join([str(code), os.environ["PYTHONPATH"]])}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "my_scenarios.py").write_text(POOLS_OWN)
    b, c = project(tmp_path / "b", "b", 50.0), project(tmp_path / "c", "c", 60.0)

    def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                              timeout=300, cwd=cwd, env=env)

    sweep = ["sweep=smoke", "+scenarios.mine._target_=my_scenarios.Mine", "sweep.name=mine", "sweep.scenario=[mine]",
             "sweep.seed=[0,1]", "sweep.data_size=[1000]", "sweep.precision=[fp32]", "sweep.clip_value=[null]",
             "sweep.batch_size=[32]", "sweep.steps=[20]", "ray.num_actors=1", "store.root=results"]
    up = cli(tmp_path / "a", "up", "--actors", "1", "--idle-minutes", "5")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        workers = set()
        for d, name, bound in ((b, "loss_b_b2", 50.0), (c, "loss_c_c2", 60.0)):
            done = cli(d, *sweep)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "warm pool: " in done.stdout and "running cold" not in done.stdout + done.stderr, done.stdout
            runs = load_results(d / "results" / "mine")
            assert len(runs) == 2 and (runs["status"] == "ok").all(), runs[["status", "error"]]
            assert set(runs["check"]) == {name} and set(runs["bound"]) == {bound}
            workers |= set(runs["worker"])
        assert len(workers) == 1  # the pool's one actor ran both projects' runs
        assert json.loads((tmp_path / "pool" / pool.STATE).read_text())["cwd"] == str(tmp_path / "a")
    finally:
        down = cli(tmp_path, "down", "--force")
    assert down.returncode == 0 and "warm pool down" in down.stdout
