"""Process-level TensorFlow set-up: threads, determinism, logging. Once per worker."""

from __future__ import annotations

import gc
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from harness.compat import keras as compat_keras
from harness.compat import tensorflow as compat_tf
from harness.compat.keras import UNNEEDED_BY_KERAS, importing_without

_initialised = False
_onednn: bool | None = None
FRESH_EVERY = 500  # a run in a kept session still starts a fresh one after this many (memory)
_kept_runs = 0
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
    # The import allocates about a million objects, and the cyclic GC's collections during it walk
    # everything allocated so far, again and again, freeing nearly nothing. They are frozen before
    # the GC is on again (gc.freeze: never scanned again), or the first collection after the import
    # walks them all once more, and so does every later run's keras clear_session(), which runs a
    # full gc.collect(). No collection before the freeze: it would free a few hundred objects at
    # the cost of a full walk in every worker's start (docs/engine.md).
    enabled = gc.isenabled()
    gc.disable()
    try:
        with importing_without(UNNEEDED_BY_KERAS):
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
    _onednn = compat_tf.onednn_enabled()
    _initialised = True


def onednn_enabled() -> bool | None:
    """Whether TensorFlow's oneDNN rewrite is on in this process. TensorFlow decides it once, when
    it is imported: on by default on Linux x86 CPUs with the newer vector instructions (AVX512_VNNI,
    AVX512_BF16, AVX_VNNI or AMX), off with TF_ENABLE_ONEDNN_OPTS=0. Its kernels give other numbers
    than Eigen's (docs/engine.md), so every run records it. None when TensorFlow cannot tell."""
    return _onednn if _initialised else compat_tf.onednn_enabled()


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
    kept runs the session is fresh anyway, which frees what the kept ones accumulated. Where
    Keras keeps its global state elsewhere (harness.compat.keras.reset_state's fallback), every
    run starts a fresh session.
    """
    global _kept_runs
    if keep_session and _kept_runs < FRESH_EVERY:
        _kept_runs += 1
        if not compat_keras.reset_state(int(seed)):
            _kept_runs = 0  # its fallback was a fresh session
        return
    _kept_runs = 0
    import keras

    keras.backend.clear_session()
    seed_everything(seed)


def device_name() -> str:
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
