"""Python's private names the harness reaches, each with its public fallback (docs/engine.md, "Private reaches")."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

from harness.compat import fallback

EXIT = "threading._shutdown, atexit._run_exitfuncs"


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` without the interpreter's teardown of every module (with Ray, pyarrow and
    pandas loaded, the larger part of a command's exit: docs/engine.md), doing first what a normal
    exit does, in its order: threading's exit hooks (they stop idle ThreadPoolExecutor workers) and
    every other non-daemon thread joined, atexit handlers run, output flushed. CPython exposes no
    public call for the first two. Fallback: ``sys.exit(code)``, the interpreter's whole exit."""
    shutdown = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if not (callable(shutdown) and callable(run_exit_handlers)):
        fallback(EXIT, "not in this interpreter (not CPython?)")
        sys.exit(code)
    shutdown()
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
