"""Every private reach into TensorFlow, Keras and Python (harness.compat): on the installed versions the reach
itself runs (its fallback would be in harness.compat.taken()), and with the private name removed its public
fallback gives a correct result and logs exactly once."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, make_spec

import harness.compat
from harness.compat import keras as compat_keras
from harness.compat import python as compat_python
from harness.compat import tensorflow as compat_tf


@pytest.fixture
def fresh_log(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """No fallback taken yet in this process (the test's own record), and the compat log captured."""
    monkeypatch.setattr(harness.compat, "_TAKEN", {})
    caplog.set_level(logging.WARNING, logger="harness.compat")
    return caplog


def _logged(caplog: pytest.LogCaptureFixture, reach: str) -> int:
    return sum(1 for r in caplog.records if r.name == "harness.compat" and reach in r.getMessage())


# ------------------------------------------------------------------------------------------ keras

def _reset_state_effects(seed: int, reset: Any) -> tuple[Any, ...]:
    """What a run sees after ``reset(seed)``, following runs that built layers and changed settings."""
    import keras

    keras.layers.Dense(1)
    keras.layers.Dense(1)
    keras.config.set_dtype_policy("mixed_float16")
    returned = reset(seed)
    return (returned, keras.layers.Dense(1).name, keras.config.dtype_policy().name, random.random(),
            float(np.random.random()), float(keras.random.uniform((), seed=keras.random.SeedGenerator())))


def _public_reset(seed: int) -> None:
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def test_keras_reset_state_runs_on_the_installed_keras(tf_worker: None) -> None:
    import tensorflow as tf

    tf.random.set_seed(5)
    expected_tf = float(tf.random.uniform(()))
    returned, *effects = _reset_state_effects(3, compat_keras.reset_state)
    assert returned is True and compat_keras.RESET_STATE not in harness.compat.taken()
    _, *public = _reset_state_effects(3, _public_reset)
    assert effects == public  # the Keras, Python and NumPy state of a fresh session seeded alike
    tf.random.set_seed(5)
    compat_keras.reset_state(3)
    assert float(tf.random.uniform(())) == expected_tf  # TF's global seed is left as it was


def _without_keras_global_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """``from keras.src.backend.common import global_state`` fails, as it would where Keras moved it (Keras'
    own modules keep the module they imported)."""
    import keras.src.backend.common as common

    monkeypatch.delattr(common, "global_state")
    monkeypatch.setitem(sys.modules, "keras.src.backend.common.global_state", None)


def test_keras_reset_state_falls_back_to_a_fresh_session(tf_worker: None, monkeypatch: pytest.MonkeyPatch,
                                                         fresh_log: pytest.LogCaptureFixture) -> None:
    _, *public = _reset_state_effects(4, _public_reset)
    _without_keras_global_state(monkeypatch)
    returned, *effects = _reset_state_effects(4, compat_keras.reset_state)
    assert returned is False and effects == public
    assert _reset_state_effects(4, compat_keras.reset_state)[0] is False
    assert _logged(fresh_log, compat_keras.RESET_STATE) == 1 and compat_keras.RESET_STATE in harness.compat.taken()


def _loss_bound_runs(seeds: tuple[int, ...] = (0, 1, 2)) -> list[Any]:
    """Runs of one structure in this worker, the first tracing (reuse_trace), the others reusing it."""
    from harness.engine import execute, reuse

    reuse.clear()
    return [execute(make_spec(seed=s, steps=20)) for s in seeds]


def test_reused_runs_give_the_same_results_when_keras_state_falls_back(tf_worker: None,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       fresh_log: pytest.LogCaptureFixture) -> None:
    kept = _loss_bound_runs()
    _without_keras_global_state(monkeypatch)
    fresh = _loss_bound_runs()
    assert all(r.error is None for r in fresh) and [r.checks for r in fresh] == [r.checks for r in kept]
    assert compat_keras.RESET_STATE in harness.compat.taken()


# ------------------------------------------------------------------------------------- tensorflow

def test_onednn_enabled_reads_tensorflow_on_the_installed_version(tf_worker: None) -> None:
    assert isinstance(compat_tf.onednn_enabled(), bool)
    assert compat_tf.ONEDNN not in harness.compat.taken()


def test_onednn_enabled_falls_back_to_the_environment(tf_worker: None, monkeypatch: pytest.MonkeyPatch,
                                                      fresh_log: pytest.LogCaptureFixture) -> None:
    from tensorflow.python.util import _pywrap_util_port

    monkeypatch.delattr(_pywrap_util_port, "IsMklEnabled")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert compat_tf.onednn_enabled() is False  # switched off by the variable TF reads
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert compat_tf.onednn_enabled() is None  # TF's default: cannot tell without it
    assert _logged(fresh_log, compat_tf.ONEDNN) == 1


STATEFUL = ["RandomStandardNormal", "RandomUniform", "RandomUniformInt", "StatefulUniform", "Multinomial",
            "TruncatedNormal"]
STATELESS = ["StatelessRandomNormalV2", "StatelessRandomUniformV2", "StatelessRandomGetKeyCounter", "MatMul", "AddV2"]


def _random_named() -> list[str]:
    import tensorflow as tf

    return [t for t in dir(tf.raw_ops) if not t.startswith("_") and ("Random" in t or "Multinomial" in t
                                                                       or t.startswith("Stateful"))]


def test_is_stateful_reads_the_op_registry_on_the_installed_version(tf_worker: None) -> None:
    assert [compat_tf.is_stateful(t) for t in STATEFUL] == [True] * len(STATEFUL)
    assert [compat_tf.is_stateful(t) for t in STATELESS] == [False] * len(STATELESS)
    assert compat_tf.is_stateful("AssignVariableOp")
    assert compat_tf.OP_DEF not in harness.compat.taken()


def test_is_stateful_falls_back_to_tensorflows_naming(tf_worker: None, monkeypatch: pytest.MonkeyPatch,
                                                      fresh_log: pytest.LogCaptureFixture) -> None:
    from tensorflow.python.framework import op_def_registry

    registry = {t: compat_tf.is_stateful(t) for t in _random_named()}
    monkeypatch.delattr(op_def_registry, "get")
    named = {t: compat_tf.is_stateful(t) for t in registry}
    assert [compat_tf.is_stateful(t) for t in STATEFUL] == [True] * len(STATEFUL)
    assert [compat_tf.is_stateful(t) for t in STATELESS[:3]] == [False] * 3
    # the fallback misses no stateful random op but those named stateless; it calls stateful some that are not
    missed = sorted(t for t in registry if registry[t] and not named[t])
    assert all(t.startswith("Stateless") for t in missed), missed
    print("registry stateless, fallback stateful:", sorted(t for t in registry if named[t] and not registry[t]),
          "; registry stateful, fallback not:", missed)
    assert _logged(fresh_log, compat_tf.OP_DEF) == 1


def test_watching_eager_ops_sees_them_on_the_installed_version(tf_worker: None) -> None:
    import tensorflow as tf

    assert compat_tf.can_watch_eager_ops()
    with compat_tf.watching_eager_ops() as ops:
        tf.random.normal([2])
        tf.add(tf.constant(1.0), 2.0)
    assert ops is not None and "RandomStandardNormal" in ops and "AddV2" in ops
    with compat_tf.watching_eager_ops() as again:
        pass
    assert again == []  # the callback was removed with the block
    assert compat_tf.OP_CALLBACKS not in harness.compat.taken()


def test_without_op_callbacks_every_run_starts_a_fresh_session(tf_worker: None, monkeypatch: pytest.MonkeyPatch,
                                                               fresh_log: pytest.LogCaptureFixture) -> None:
    from tensorflow.python.framework import op_callbacks

    from harness.engine import runtime

    watched = _loss_bound_runs()
    monkeypatch.delattr(op_callbacks, "add_op_callback")
    with compat_tf.watching_eager_ops() as ops:
        pass
    assert ops is None and not compat_tf.can_watch_eager_ops()
    kept: list[bool] = []
    begin = runtime.begin_run

    def begin_run(seed: int, *, keep_session: bool = False) -> None:
        kept.append(keep_session)
        begin(seed, keep_session=keep_session)

    monkeypatch.setattr(runtime, "begin_run", begin_run)
    unwatched = _loss_bound_runs()
    assert kept == [False, False, False]
    assert all(r.error is None for r in unwatched) and [r.checks for r in unwatched] == [r.checks for r in watched]
    assert _logged(fresh_log, compat_tf.OP_CALLBACKS) == 1


def _loss_bound_loop() -> Any:
    from harness.engine.context import RunContext
    from harness.engine.loop import compile_loop
    from harness.scenarios.loss_bound import LossBound

    scenario = LossBound()
    data = scenario.build(RunContext(make_spec(data_size=100, batch_size=8)))
    return compile_loop(scenario, data, scenario.checks(), batch_size=8)


def test_nested_graphs_are_read_on_the_installed_version(tf_worker: None) -> None:
    loop = _loss_bound_loop()
    fn = loop.variants[1]
    top = {op.type for op in fn.graph.get_operations()}
    types = compat_tf.op_types(fn)
    assert top & {"While", "StatelessWhile"} and set(types) - top  # the loop body's own ops are there
    assert {op.type for op in compat_tf.operations(fn)} == set(types)
    assert compat_tf.NESTED_GRAPHS not in harness.compat.taken()


def test_op_types_fall_back_to_the_graph_def(tf_worker: None, monkeypatch: pytest.MonkeyPatch,
                                             fresh_log: pytest.LogCaptureFixture) -> None:
    loop = _loss_bound_loop()
    fn = loop.variants[1]
    expected = set(compat_tf.op_types(fn))
    monkeypatch.delattr(fn.graph, "_functions")
    assert set(compat_tf.op_types(fn)) == expected
    assert {op.type for op in compat_tf.operations(fn)} == {op.type for op in fn.graph.get_operations()}
    assert _logged(fresh_log, compat_tf.NESTED_GRAPHS) == 1


def test_a_stateful_random_op_in_the_loop_is_refused_with_both_routes(tf_worker: None,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     fresh_log: pytest.LogCaptureFixture) -> None:
    from harness.engine import execute, reuse

    def refused() -> str | None:
        reuse.clear()
        return execute(make_spec(scenario="noise", target="plugins.faulty.StatefulNoise")).error

    assert "uses stateful random ops (RandomStandardNormal)" in (refused() or "")
    # TF's own tracing reads both names, so here only the harness's lookups miss them
    monkeypatch.setattr(compat_tf, "_op_def_lookup", _no_op_defs)
    monkeypatch.setattr(compat_tf, "_nested_graphs", _no_nested_graphs)
    error = refused()
    assert "uses stateful random ops (RandomStandardNormal)" in (error or ""), error
    assert set(harness.compat.taken()) == {compat_tf.OP_DEF, compat_tf.NESTED_GRAPHS}


def _no_op_defs() -> None:
    compat_tf.fallback(compat_tf.OP_DEF, "removed by the test")


def _no_nested_graphs(graph: Any) -> None:
    """_nested_graphs as where TF keeps no ``Graph._functions``."""
    compat_tf.fallback(compat_tf.NESTED_GRAPHS, "removed by the test")


# ----------------------------------------------------------------------------------------- python

EXIT_PROBE = textwrap.dedent("""
    import atexit, json, sys, threading
    import harness.compat
    from harness.compat.python import exit_now
    {patch}
    done = threading.Event()
    def work():
        done.wait()
        print("thread finished", flush=True)
    threading.Thread(target=work).start()
    atexit.register(lambda: print("atexit", json.dumps(harness.compat.taken()), flush=True))
    done.set()
    exit_now(3)
    print("after exit_now")
""")


def _exit_probe(patch: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", EXIT_PROBE.format(patch=patch)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_exit_now_exits_as_python_does_on_the_installed_version() -> None:
    out = _exit_probe("")
    assert out.returncode == 3, out.stderr
    assert out.stdout.splitlines() == ["thread finished", "atexit {}"]  # joined first, then atexit; no fallback
    assert "harness.compat" not in out.stderr


def test_exit_now_falls_back_to_sys_exit() -> None:
    out = _exit_probe("del atexit._run_exitfuncs")
    assert out.returncode == 3, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "thread finished" and lines[1].startswith("atexit ")
    assert list(json.loads(lines[1].split(" ", 1)[1])) == [compat_python.EXIT]
    assert out.stderr.count(f"harness.compat: {compat_python.EXIT} unavailable") == 1


# ------------------------------------------------------------------------------- hidden imports

FRAME_PROBE = textwrap.dedent("""
    import json, sys
    {first}
    from conftest import make_spec
    from harness.engine import execute, init_worker
    init_worker(1)
    keras_has_pandas = "pandas" in sys.modules
    r = execute(make_spec(scenario="frames", target="plugins.frames.FrameFit", params={{}}, data_size=64,
                          batch_size=16, steps=10))
    print(json.dumps({{"error": r.error, "loss": r.final_loss, "pandas": keras_has_pandas,
                      "checks": [[c.check, c.n_evaluated, c.worst_value] for c in r.checks]}}))
""")


def _frame_run(first: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", FRAME_PROBE.format(first=first)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_keras_program_fed_with_pandas_gives_the_same_result_in_a_worker_as_in_a_notebook() -> None:
    """The worker's path (init_worker imports TF and Keras as an actor does, its modules not imported
    yet) against a plain process that imported pandas first, as a notebook has: Keras sees pandas in
    both (its DataFrame and Series inputs take its pandas path), and the run's numbers are the same."""
    worker = _frame_run("")
    notebook = _frame_run("import pandas, tensorflow, keras")
    assert worker["error"] is None and notebook["error"] is None, (worker, notebook)
    assert worker["pandas"] and notebook["pandas"]
    assert worker == notebook
