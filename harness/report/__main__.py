"""``python -m harness.report RESULTS_DIR [options]``: see ``harness.report.cli``."""

import sys

from harness.report.cli import main

sys.exit(main())
