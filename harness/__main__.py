import sys

from harness.timeline import mark

mark("driver start")
from harness.cli import main  # noqa: E402  (the mark comes first: it times the imports)
from harness.compat.python import exit_now  # noqa: E402

try:
    code = main()
except BrokenPipeError:  # the reader of stdout went away (| head): no traceback, the usual code of it
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
    code = 141
mark("driver exit")
exit_now(code)  # without the interpreter's teardown of every module (harness.compat.python)
