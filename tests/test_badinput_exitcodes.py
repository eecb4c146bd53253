"""The exit-code tables of docs/cli.md (the README links them) cover every command, and agree with the codes each command's usage
text and constants name, so they cannot drift apart (issue 26)."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

import harness.cli
import harness.pool
import harness.replay
import harness.report.cli


def documented_codes() -> dict[str, set[int]]:
    """command -> the exit codes docs/cli.md's tables give it (the sweep's own table, then the table of
    the other commands, whose command cell is left empty on the rows after its first)."""
    text = (ROOT / "docs" / "cli.md").read_text()
    out: dict[str, set[int]] = {}
    sweep = re.search(r"^\| exit code \| `python -m harness sweep=\.\.\.` \|\n\|---\|---\|\n((?:\|.*\n)+)", text, re.M)
    assert sweep, "the sweep's exit-code table"
    out["sweep"] = {int(m) for m in re.findall(r"^\| (\d+) \|", sweep.group(1), re.M)}
    others = re.search(r"^\| command \| exit code \| meaning \|\n\|---\|---\|---\|\n((?:\|.*\n)+)", text, re.M)
    assert others, "the other commands' exit-code table"
    command = ""
    for row in others.group(1).splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        command = cells[0].strip("`") or command
        out.setdefault(command, set()).add(int(cells[1]))
    return out


def usage_codes(text: str, heading: str = "exit codes:") -> set[int]:
    """The codes a usage text lists after ``heading``: each a number followed by its meaning."""
    part = text.split(heading, 1)[1].lstrip("\n").split("\n\n", 1)[0]
    return {int(m) for m in re.findall(r"(?:^|[:,])\s*(\d+)\s+[a-zA-Z(]", part, re.M)}


def constants(module: object, prefix: str = "EXIT_") -> set[int]:
    return {v for k, v in vars(module).items() if k.startswith(prefix) and isinstance(v, int)}


def test_every_command_is_in_the_tables() -> None:
    assert {"sweep", "report", "replay", "compact", "up", "down", "list"} <= set(documented_codes())


def test_sweep() -> None:
    assert documented_codes()["sweep"] == usage_codes(harness.cli.USAGE) == constants(harness.cli) \
        == usage_codes(harness.cli.__doc__ or "", "Exit codes:")


def test_compact() -> None:
    codes = usage_codes(harness.cli.COMPACT_USAGE)
    assert codes == {0, 2, 4, 130, 143}
    assert documented_codes()["compact"] == codes and codes <= constants(harness.cli)


def test_replay() -> None:
    assert documented_codes()["replay"] == usage_codes(harness.replay.__doc__ or "", "Exit codes:") \
        == {harness.replay.EXIT_MATCH, harness.replay.EXIT_MISMATCH, harness.replay.EXIT_BAD}


def test_report() -> None:
    assert documented_codes()["report"] == usage_codes(harness.report.cli.__doc__ or "", "Exit codes:")


def test_up_and_down() -> None:
    """The pool's codes (its constants; down's "a sweep is using the pool" among them once it exists)
    are each documented for up or down."""
    codes = documented_codes()
    assert constants(harness.pool) <= codes["up"] | codes["down"]
    assert codes["up"] == {0, 2, 3} and codes["down"] >= {0, 2}


@pytest.mark.parametrize("args", [["list", "--bogus"], ["list", "extra"]])
def test_list(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert harness.cli.main(args) == 2 and 2 in documented_codes()["list"]
    assert capsys.readouterr().err.count("\n") == 1
