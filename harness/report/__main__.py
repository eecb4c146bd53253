"""``python -m harness.report RESULTS_DIR [options]``: see ``harness.report.cli``."""

import sys

from harness.report.cli import main
from harness.warnfmt import one_line_warnings

one_line_warnings()

sys.exit(main())
