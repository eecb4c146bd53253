import sys

from harness.timeline import mark

mark("driver start")
from harness.cli import main  # noqa: E402  (the mark comes first: it times the imports)


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown of every module: with Ray, pyarrow and pandas loaded it
    takes about half a second, after everything the command writes is closed and Ray has stopped. What
    a normal exit does first is still done, in its order: threading's exit hooks run and other threads
    joined, atexit handlers run, output flushed."""
    import atexit
    import os
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if shutdown is None or run_exit_handlers is None:  # not CPython: exit the usual way
        sys.exit(code)
    shutdown()  # as the interpreter does first: threading's exit hooks (they stop idle ThreadPoolExecutor
    # workers, e.g. the store's readers), then every other non-daemon thread joined
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


try:
    code = main()
except BrokenPipeError:  # the reader of stdout went away (| head): no traceback, the usual code of it
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
    code = 141
mark("driver exit")
_exit(code)
