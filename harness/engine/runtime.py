"""Process-level TensorFlow set-up: threads, determinism, logging. Once per worker."""

from __future__ import annotations

import gc
import os
import random
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_initialised = False
_onednn: bool | None = None
FRESH_EVERY = 500  # a run in a kept session still starts a fresh one after this many (memory)
_kept_runs = 0
# Keras imports these when installed, each inside try/except ImportError: matplotlib.pyplot for an
# image-gallery helper, pandas for DataFrame inputs to fit(), IPython for the notebook display of
# its saved-model file editor. A worker needs none of them, and they cost about 1.5 s of every
# actor's start (IPython alone 0.5 s). Hidden while TF and Keras import; importable again after.
UNNEEDED_BY_KERAS = ("matplotlib", "pandas", "IPython")


@contextmanager
def _hidden(names: tuple[str, ...]) -> Iterator[None]:
    """``import name`` raises ImportError inside the block (for names not imported yet)."""
    hidden = [n for n in names if n not in sys.modules]
    for n in hidden:
        sys.modules[n] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for n in hidden:
            if n in sys.modules and sys.modules[n] is None:
                del sys.modules[n]


# TensorFlow's native start-up notices: written to the process's stderr while it is imported, before
# its logging reads TF_CPP_MIN_LOG_LEVEL, so no variable silences them (TF 2.19+, reported as
# tensorflow/tensorflow#100442): absl's line about logging before InitializeLog, and the I/W lines
# that oneDNN is on, that no CUDA driver was found, which CPU instructions the build uses.
STARTUP_NOTICES = re.compile(r"(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                             r"|[IW]\d{4} [\d:.]+ +\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] )")


@contextmanager
def startup_notices_dropped() -> Iterator[None]:
    """Inside the block, the lines this process writes to its stderr (file descriptor 2) that are
    TensorFlow's start-up notices (STARTUP_NOTICES) are dropped; every other line goes on to
    stderr as it comes (a thread forwards it), so a crash in the block loses at most a line the
    thread had not forwarded yet. For a command a user reads (``replay``): an actor's stderr is
    Ray's log file. Where stderr is not a file descriptor (e.g. captured by pytest), nothing is
    filtered."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not STARTUP_NOTICES.match(line.decode(errors="replace")):
                    view = memoryview(line)
                    try:
                        while view:
                            view = view[os.write(saved, view):]
                    except OSError:  # stderr itself is gone (a closed pipe): nothing left to write to
                        pass

    thread = threading.Thread(target=forward, name="harness-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)  # the pipe's last write end closes: the thread reads to its end and stops
        thread.join(timeout=2)
        if not thread.is_alive():  # else it may still write to it (a process that kept a copy of the pipe)
            os.close(saved)


def import_tensorflow() -> bool:
    """Import TF and Keras the way a worker should (below); False if both were imported already.

    Safe before Ray gives the process its resources: it starts no TF runtime and lists no device
    (harness.engine.preload runs it as a worker process starts, before an actor is created in it)."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The import allocates some 10^6 objects, and the cyclic GC's collections during it walk
    # everything allocated so far, again and again: a third of the import's time (3.2 s -> 2.3 s
    # on 2 cores). They are frozen before the GC is on again (gc.freeze: never scanned again), or
    # the first collection after the import walks them all once more, and every later run's keras
    # clear_session(), which runs a full gc.collect(), too (0.2 s per run). Collecting them before
    # the freeze would cost 0.2 s of every worker's start to free some 300 objects (measured with
    # TF 2.21: resident memory unchanged).
    enabled = gc.isenabled()
    gc.disable()
    try:
        with _hidden(UNNEEDED_BY_KERAS):
            import tensorflow  # noqa: F401
            import keras  # noqa: F401  (loaded here, before the freeze)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
    return True


def init_tensorflow(num_threads: int | None = None) -> None:
    """Import TF, pin its thread pools to this worker's CPU share, make ops deterministic.

    Thread pools can only be set before TF's runtime starts, so this runs before any op.
    """
    global _initialised, _onednn
    if _initialised:
        return
    import_tensorflow()
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):  # several actors may share one GPU (fractional
        tf.config.experimental.set_memory_growth(gpu, True)  # num_gpus_per_actor): take memory as needed
    if num_threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(num_threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(num_threads))))
    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel("ERROR")
    _onednn = _read_onednn()
    _initialised = True


def _read_onednn() -> bool | None:
    try:  # TF has no public call for it; this is what its own tests ask (test_util.IsMklEnabled)
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def onednn_enabled() -> bool | None:
    """Whether TensorFlow's oneDNN rewrite is on in this process. TensorFlow decides it once, when
    it is imported: on by default on Linux x86 CPUs with the newer vector instructions (AVX512_VNNI,
    AVX512_BF16, AVX_VNNI or AMX), off with TF_ENABLE_ONEDNN_OPTS=0. Its kernels give other numbers
    than Eigen's (docs/engine.md), so every run records it. None when TensorFlow cannot tell."""
    return _onednn if _initialised else _read_onednn()


def seed_everything(seed: int) -> None:
    """Python, NumPy, TF and Keras seeds for one run (model initialisation, dropout)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def begin_run(seed: int, *, keep_session: bool = False) -> None:
    """Reset the process-wide state a run may read, and seed it.

    A fresh session is what a run in a new process sees: keras clear_session() (Keras' global
    state, TF's default graph and kernel caches, gc.collect) and keras.utils.set_random_seed
    (Python, NumPy, TF and Keras seeds). Clearing TF's kernel caches (tf.random.set_seed does it
    too) makes the next call of every traced function instantiate it again: ~0.1 s, where a
    reused trace of a short run computes for a few ms. So a run whose scenario keeps the reuse_trace promise may
    ``keep_session``: Keras' global state is reset and Python, NumPy and Keras are seeded as
    those two calls do, while TF's kernel caches and global seed are kept. That seed seeds only
    stateful random ops, which such a scenario does not use (checked on its structure's first
    run, in a fresh session); the kernels it keeps hold no state of a run. Every FRESH_EVERY
    kept runs the session is fresh anyway, which frees what the kept ones accumulated.
    """
    global _kept_runs
    if keep_session and _kept_runs < FRESH_EVERY:
        _kept_runs += 1
        _reset_keras(int(seed))
        return
    _kept_runs = 0
    import keras

    keras.backend.clear_session()
    seed_everything(seed)


def _reset_keras(seed: int) -> None:
    """clear_session()'s Keras half and set_random_seed()'s Python, NumPy and Keras half. Keras
    has no public call for these without TF's (keras.src is what both calls run)."""
    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    # what keras.backend.clear_session() resets first: layer name counters, the global
    # SeedGenerator, the dtype policy and other settings (Keras >= 3 keeps them all there)
    global_state.GLOBAL_STATE_TRACKER = threading.local()
    global_state.GLOBAL_SETTINGS_TRACKER = threading.local()
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    random.seed(seed)
    np.random.seed(seed)


def device_name() -> str:
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
