"""Imported by each worker process of a Ray the harness starts, as the process starts (Ray's
``preload_python_modules``, set by harness.raysession.embedded_env): TensorFlow's import, the longest
part of an actor's start, then runs in workers Ray starts with its raylet, while the driver is still
waiting for ``ray.init``, instead of after the sweep creates its actors.

Best effort, as Ray's own preloading is: a failure is logged to the worker's log file and left to
the actor's ``init_worker``, which imports TensorFlow again and reports what fails.
"""

from __future__ import annotations

import logging

from harness.timeline import mark

mark("actor tf import start")
try:
    from harness.engine.runtime import import_tensorflow

    import_tensorflow()
except Exception:  # Ray stops a worker whose preload raises anything but ImportError
    logging.getLogger(__name__).exception("preloading TensorFlow failed; the actor imports it when it starts")
mark("actor tf import done")
