"""Process-level TensorFlow set-up: threads, determinism, logging. Once per worker."""

from __future__ import annotations

import gc
import os

_initialised = False


def init_tensorflow(num_threads: int | None = None) -> None:
    """Import TF, pin its thread pools to this worker's CPU share, make ops deterministic.

    Thread pools can only be set before TF's runtime starts, so this runs before any op.
    """
    global _initialised
    if _initialised:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if num_threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(num_threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(num_threads))))
    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel("ERROR")
    import keras  # noqa: F401  (loaded before the freeze below)

    # TF and Keras leave some 10^5 long-lived objects; every run's keras clear_session()
    # runs a full gc.collect(), which walked them all (0.2 s per run). Frozen objects are
    # never scanned again.
    gc.collect()  # what the imports left as garbage is freed, not frozen
    gc.freeze()
    _initialised = True


def seed_everything(seed: int) -> None:
    """Python, NumPy, TF and Keras seeds for one run (model initialisation, dropout)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def device_name() -> str:
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
