"""Keras' private names the harness reaches, each with its public fallback (docs/engine.md, "Private reaches")."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from harness.compat import fallback

RESET_STATE = "keras.src.backend.common.global_state"

# Keras imports IPython when it is installed (inside try/except ImportError) for the notebook display of
# its saved-model file editor, which it uses only in a running IPython shell. A process that has not
# imported IPython has no such shell, so hiding it while Keras imports changes nothing Keras does there.
# pandas (fit() on DataFrames) and matplotlib (Keras' image galleries) are not hidden: Keras behaves
# differently without them.
UNNEEDED_BY_KERAS = ("IPython",)


def reset_state(seed: int) -> bool:
    """What ``keras.backend.clear_session()`` resets in Keras (layer name counters, the global
    SeedGenerator, the dtype policy and other settings) and what ``keras.utils.set_random_seed(seed)``
    seeds in Python, NumPy and Keras, leaving TensorFlow's kernel caches and global seed as they are.
    Keras has no public call for these halves. True when done so; False when the fallback ran: the
    two public calls whole, which also clear TF's kernel caches (the next call of each traced
    function instantiates it again) and reset TF's global seed."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

        missing = [n for n in ("GLOBAL_STATE_TRACKER", "GLOBAL_SETTINGS_TRACKER", "set_global_attribute")
                   if not hasattr(global_state, n)]
        if missing:
            raise AttributeError(f"global_state has no {', '.join(missing)}")
        global_state.GLOBAL_STATE_TRACKER = threading.local()
        global_state.GLOBAL_SETTINGS_TRACKER = threading.local()
        global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    except (ImportError, AttributeError, TypeError) as exc:
        fallback(RESET_STATE, f"{type(exc).__name__}: {exc}")
        import keras

        keras.backend.clear_session()
        keras.utils.set_random_seed(int(seed))
        return False
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    return True


@contextmanager
def importing_without(names: tuple[str, ...] = UNNEEDED_BY_KERAS) -> Iterator[None]:
    """``import name`` raises ImportError inside the block, for the names not imported yet (Python's
    documented meaning of ``sys.modules[name] = None``); importable again after it."""
    hidden = [n for n in names if n not in sys.modules]
    for n in hidden:
        sys.modules[n] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for n in hidden:
            if n in sys.modules and sys.modules[n] is None:
                del sys.modules[n]
