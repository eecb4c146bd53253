"""What Hydra users type: accepted, or refused with the harness's equivalent in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from harness.cli import main


def test_hydra_short_and_long_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "c"
    (conf / "sweep").mkdir(parents=True)
    (conf / "sweep" / "mine.yaml").write_text((ROOT / "conf" / "sweep" / "smoke.yaml").read_text()
                                              .replace("name: smoke", "name: mine"))
    assert main(["-cd", str(conf), "sweep=mine", "-n"]) == 0 and "sweep mine:" in capsys.readouterr().out
    assert main(["--config-dir", str(conf), "list"]) == 0 and "mine" in capsys.readouterr().out  # options first
    assert main(["sweep=smoke", "--cfg", "job"]) == 0 and "sweep:" in capsys.readouterr().out
    assert main(["sweep=smoke", "--cfg", "hydra"]) == 2
    assert "--cfg hydra: Hydra's own config is not used" in capsys.readouterr().err
    assert main(["--config-name", "smoke"]) == 2
    assert "choose the sweep with sweep=smoke" in capsys.readouterr().err
    assert main(["sweep=smoke", "~sweep.exclude", "-n"]) == 0  # Hydra's deletion of a key
    capsys.readouterr()
