"""docs/results.md documents every results column and nothing else; its table of axes is rendered from
harness/axes.py (scripts/axes_table.py), so neither can drift from the schema."""

from __future__ import annotations

import re
import sys

from conftest import ROOT

from harness.records import CORE_COLUMNS, TRAINING_EXTRAS

sys.path.insert(0, str(ROOT / "scripts"))
PAGE = ROOT / "docs" / "results.md"


def documented() -> set[str]:
    """The column names in the first cell of each table row of the page's Columns section."""
    section = PAGE.read_text().split("\n## Columns\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split(" | ", 1)[0]))
    return names


def test_the_page_documents_every_column_and_nothing_that_is_not_one() -> None:
    columns = {*CORE_COLUMNS, *TRAINING_EXTRAS}
    names = documented()
    assert not columns - names, f"undocumented in docs/results.md: {sorted(columns - names)}"
    assert not names - columns, f"documented but not a column: {sorted(names - columns)}"


def test_the_table_of_axes_is_what_the_axes_render() -> None:
    import axes_table
    from markers import read_block

    assert read_block(PAGE, axes_table.BLOCK).strip() == axes_table.render(), \
        "docs/results.md's axes are stale: run python scripts/axes_table.py --write"

