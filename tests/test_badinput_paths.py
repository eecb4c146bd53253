"""Issue 26, item 11: sweep.name and store.root are checked before anything is created, and the error
names the key at fault: a 300-character sweep.name with a store.root that did not exist yet said
"store.root: cannot create ...: File name too long" and left the root behind; a dangling symlink
said "File exists"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.cli import EXIT_OK, EXIT_USAGE, main
from harness.config import NAME_MAX, SIBLING_SUFFIX


def _run(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    code = main(["sweep=smoke", *args])
    return code, capsys.readouterr().err


def test_a_long_sweep_name_is_named_and_nothing_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = _run([f"sweep.name={'x' * 300}", f"store.root={tmp_path / 'new' / 'root'}"], tmp_path, capsys,
                     monkeypatch)
    assert code == EXIT_USAGE and err.count("\n") == 1, err
    assert err.startswith("error: sweep.name: 'xxxxxxxx") and "300 bytes" in err and "at most 248 bytes" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "ok"), [
    ("x" * (NAME_MAX - SIBLING_SUFFIX), True),  # <name>_report still fits a file name
    ("x" * (NAME_MAX - SIBLING_SUFFIX + 1), False),
    ("é" * ((NAME_MAX - SIBLING_SUFFIX) // 2 + 1), False),  # bytes, not characters: é is 2 bytes in UTF-8
])
def test_the_name_limit_counts_encoded_bytes(name: str, ok: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = _run([f"sweep.name='{name}'", f"store.root={tmp_path / 'res'}", "-n"], tmp_path, capsys, monkeypatch)
    assert code == (EXIT_OK if ok else EXIT_USAGE), err
    assert ok or err.startswith("error: sweep.name: "), err


@pytest.mark.parametrize("name", [".", "..", "a/b", "_x", ".hidden"])
def test_a_sweep_name_is_one_plain_component(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = _run([f"sweep.name='{name}'", f"store.root={tmp_path / 'res'}"], tmp_path, capsys, monkeypatch)
    assert code == EXIT_USAGE and err == f"error: sweep.name: {name!r} is not a plain directory name\n"
    assert list(tmp_path.iterdir()) == []


def test_a_long_component_of_the_root_is_named_before_anything_is_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = _run([f"store.root={tmp_path / 'new' / ('y' * 256) / 'z'}"], tmp_path, capsys, monkeypatch)
    assert code == EXIT_USAGE and err.startswith("error: store.root: 'yyyy") and "256 bytes" in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_dangling_symlink_root_is_named_with_its_target(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "results"
    link.symlink_to(tmp_path / "gone" / "away")
    for root in (link, link / "sub"):
        code, err = _run([f"store.root={root}"], tmp_path, capsys, monkeypatch)
        assert code == EXIT_USAGE and err.count("\n") == 1, err
        assert err == (f"error: store.root: {link} is a dangling symlink (to {tmp_path / 'gone' / 'away'}, which does "
                       "not exist); create its target or use another path\n")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results"] and link.is_symlink()


def test_a_dangling_symlink_sweep_dir_names_sweep_name(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "smoke").symlink_to("elsewhere")
    code, err = _run([f"store.root={tmp_path / 'res'}"], tmp_path, capsys, monkeypatch)
    assert code == EXIT_USAGE and err.startswith(f"error: sweep.name: {tmp_path / 'res' / 'smoke'} is a dangling "
                                                 "symlink (to elsewhere"), err


def test_a_symlink_loop_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    code, err = _run([f"store.root={tmp_path / 'a'}"], tmp_path, capsys, monkeypatch)
    assert code == EXIT_USAGE and err.startswith(f"error: store.root: {tmp_path / 'a'} is a symlink loop (to b)"), err


def test_a_preflight_that_created_the_root_and_then_failed_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The directories a failing start created are removed again (a failure after mkdir: a quota, a
    file system that refuses a name); a directory that was there before stays."""
    import harness.runner
    from harness.store import StoreError

    made = []

    def make_then_fail(directory: Path) -> None:
        directory.mkdir(parents=True)
        made.append(directory)
        raise StoreError(f"cannot create {directory}: Disk quota exceeded")

    monkeypatch.setattr(harness.runner, "make_sweep_dir", make_then_fail)
    (tmp_path / "kept").mkdir()
    code, err = _run([f"store.root={tmp_path / 'kept' / 'new' / 'deeper'}"], tmp_path, capsys, monkeypatch)
    assert code == EXIT_USAGE and err.startswith("error: store.root: cannot create") and made, err
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and list((tmp_path / "kept").iterdir()) == []


def test_the_root_can_be_a_symlink_to_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    code, err = _run([f"store.root={tmp_path / 'link'}", "-n"], tmp_path, capsys, monkeypatch)
    assert code == EXIT_OK, err
    assert os.listdir(tmp_path / "real") == []  # -n writes nothing
