"""docs/detectors.md is generated from the detectors (scripts/detector_docs.py): it cannot drift from them."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))


def test_the_detector_page_is_what_the_detectors_render(tf_worker: None) -> None:
    import detector_docs

    assert (ROOT / "docs" / "detectors.md").read_text() == detector_docs.render(), \
        "docs/detectors.md is stale: run python scripts/detector_docs.py --write"


def test_the_page_names_every_detector_its_source_thresholds_and_steps(tf_worker: None) -> None:
    import detector_docs

    from harness import detectors as D

    page = detector_docs.render()
    for f in D.DETECTORS:
        section = page.split(f"## {f.__name__}\n", 1)[1].split("\n## ", 1)[0]
        assert "**The tool's rule and source**" in section and "**Thresholds**" in section, f.__name__
        assert ".py" in section.split("**The tool's rule and source**", 1)[1], f.__name__  # the tool's file
        for c in detector_docs._checks(f):
            row = next(ln for ln in section.splitlines() if ln.startswith(f"| `{c.name}` |"))
            assert row.endswith(("| applied steps only |", "| every step |", "| – |")), row
            assert ("applied" in row) == (c.on == "applied")
    assert "README" in page
