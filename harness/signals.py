"""SIGTERM handled like Ctrl-C: what `timeout`, batch schedulers and `ray job stop` send.

``install()`` makes SIGTERM raise ``Terminated`` (a KeyboardInterrupt, so every cleanup that
runs on Ctrl-C runs on it too: the actor pool is killed, an embedded Ray is shut down, the
finished runs stay stored). ``ray.init`` installs a SIGTERM handler of its own
(``sys.exit``), so the dispatcher installs this one again once Ray is up.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


received = False  # set once SIGTERM arrived: code between the handler and the CLI (Ray's Cython
# layer) may turn the exception into a plain KeyboardInterrupt, so the CLI checks this flag


def _raise(signum: int, frame: Any) -> None:
    global received
    received = True
    raise Terminated()


def install() -> None:
    """SIGTERM -> Terminated, where a handler can be installed (the main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)
