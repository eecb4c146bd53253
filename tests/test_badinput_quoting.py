"""Issue 26, item 12: a value Hydra's override grammar cannot read unquoted (``sweep.name=résumé_日本``
said "error: LexerNoViableAltException: ...") is one line naming the override, with the quoting that
works, for Hydra and for a shell; and the quoting it suggests does work (Hydra 1.3)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from harness.cli import EXIT_OK, EXIT_USAGE, main

NAME = "résumé_日本"


def _error(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
           monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    code = main(["sweep=smoke", *args, f"store.root={tmp_path / 'res'}"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
    return err


def _suggested(err: str) -> tuple[str, str]:
    """The override the error suggests, and its shell form."""
    m = re.search(r"quote it: (.+) \(in a shell: (.+)\)$", err.strip())
    assert m, err
    return m.group(1), m.group(2)


def test_an_unquoted_unicode_name_says_how_to_quote_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    err = _error([f"sweep.name={NAME}"], tmp_path, capsys, monkeypatch)
    assert err == (f"error: sweep.name: Hydra cannot read the value {NAME} unquoted "
                   "(token recognition error at: 'é'); "
                   f"quote it: sweep.name='{NAME}' (in a shell: \"sweep.name='{NAME}'\")\n")
    assert "LexerNoViableAltException" not in err


@pytest.mark.parametrize(("override", "value"), [
    (f"sweep.name={NAME}", NAME),
    ("sweep.name=it's", "it's"),
    ("sweep.name=a=b", "a=b"),
])
def test_the_suggested_override_works(override: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fixed, _ = _suggested(_error([override], tmp_path, capsys, monkeypatch))
    assert main(["sweep=smoke", fixed, f"store.root={tmp_path / 'res'}", "-n"]) == EXIT_OK
    assert f"results would go to {tmp_path / 'res' / value}/" in capsys.readouterr().out


def test_a_list_gets_its_elements_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fixed, _ = _suggested(_error(["sweep.scenario=[loss_bound,é]"], tmp_path, capsys, monkeypatch))
    assert fixed == "sweep.scenario=[loss_bound,'é']"
    assert main(["sweep=smoke", fixed]) == EXIT_USAGE  # it parses: the error is now the config's
    assert capsys.readouterr().err.startswith("error: sweep.scenario: unknown scenario 'é'")


def test_the_suggested_shell_form_works_in_a_shell(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, shell = _suggested(_error([f"sweep.name={NAME}"], tmp_path, capsys, monkeypatch))
    r = subprocess.run(["bash", "-c", f"{sys.executable} -m harness sweep=smoke {shell} store.root=res -n"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"results would go to res/{NAME}/" in r.stdout


def test_a_key_hydra_cannot_read_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    err = _error(["scenarios.é.x=1"], tmp_path, capsys, monkeypatch)
    assert err.startswith("error: scenarios.é.x: not a key Hydra can read"), err


def test_a_config_dir_with_a_unicode_name_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The harness's own override for --config-dir is quoted (it failed the same way)."""
    conf = tmp_path / NAME / "sweep"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text((ROOT / "conf" / "sweep" / "smoke.yaml").read_text())
    assert main(["--config-dir", str(tmp_path / NAME), "sweep=mine", "-n"]) == EXIT_OK, capsys.readouterr().err


def test_the_docs_show_the_messages_as_they_are(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/configuration.md's validation examples (the README links them): each command's error line is
    what the command prints, this one's among them."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    err = _error([f"sweep.name={NAME}"], tmp_path, capsys, monkeypatch)
    assert f"$ python -m harness sweep=smoke sweep.name={NAME}\n{err}" in doc
    shown = re.findall(r"^\$ python -m harness sweep=smoke (\S+)\n(error: .*\n)", doc, re.M)
    assert len(shown) >= 4, shown
    for arg, line in shown:
        assert _error([arg], tmp_path, capsys, monkeypatch) == line, arg
