import sys

from harness.timeline import mark

mark("driver start")
from harness.cli import main  # noqa: E402  (the mark comes first: it times the imports)

code = main()
mark("driver exit")
sys.exit(code)
