"""The generated blocks of README.md and docs/*.md: the text between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``, written by the script named inside each block. One reader and one writer for
every script that keeps such a block (bench, detector_table, seed_table, adaptive_figures, readme_sample,
onednn, run_cost)."""

from __future__ import annotations

from pathlib import Path


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _located(path: Path, name: str) -> tuple[str, int, int]:
    """The file's text and the offsets of the block's body (after its start marker, before its end)."""
    start, end = _markers(name)
    text = path.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} ... {end} block")
    return text, text.index(start) + len(start), text.index(end)


def read_block(path: Path, name: str) -> str:
    """The block's current body."""
    text, i, j = _located(path, name)
    return text[i:j]


def write_block(path: Path, name: str, body: str) -> None:
    """Replace the block's body with ``body`` (the markers stay, each on its own line)."""
    text, i, j = _located(path, name)
    path.write_text(f"{text[:i]}\n{body}\n{text[j:]}")
