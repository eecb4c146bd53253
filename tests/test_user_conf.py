"""A user's --config-dir: its files take the place of shipped ones of the same name (and say so), and
`list` says where each sweep and scenario comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from harness.cli import compose_config, main


@pytest.fixture
def user_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "my_conf"
    (conf / "sweep").mkdir(parents=True)
    circles = (ROOT / "conf" / "sweep" / "circles.yaml").read_text()
    (conf / "sweep" / "circles.yaml").write_text(circles.replace("name: circles", "name: my_circles"))
    (conf / "sweep" / "own.yaml").write_text(
        "# @package _global_\n# My own sweep.\nscenarios:\n  inline: {_target_: harness.scenarios.loss_bound.LossBound, "
        "bound: 2.0}\nsweep:\n  name: own\n  scenario: [inline]\n")
    return conf


def test_a_users_sweep_file_takes_the_place_of_the_built_in_of_its_name(user_conf: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert compose_config(["sweep=circles"], str(user_conf))["sweep"]["name"] == "my_circles"
    assert compose_config(["sweep=circles"])["sweep"]["name"] == "circles"  # without it, the built-in
    assert main(["--config-dir", str(user_conf), "sweep=circles", "-n"]) == 0
    out = capsys.readouterr()
    assert "sweep my_circles:" in out.out
    assert f"note: {user_conf / 'sweep' / 'circles.yaml'} is used in place of the built-in sweep/circles.yaml" \
        in out.err
    assert compose_config(["sweep=own"], str(user_conf))["scenarios"]["inline"]["bound"] == 2.0  # new ones too


def test_list_says_where_each_sweep_and_scenario_comes_from(user_conf: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--config-dir", str(user_conf)]) == 0
    lines = capsys.readouterr().out.splitlines()

    def line(name: str) -> str:
        return next(ln for ln in lines if ln.lstrip().startswith((f"{name} ", f"{name}:")))

    assert line("circles").endswith(f"[{user_conf / 'sweep' / 'circles.yaml'}, in place of the built-in]")
    assert line("smoke").endswith("[built-in]") and line("own").endswith(f"[{user_conf / 'sweep' / 'own.yaml'}]")
    assert line("inline") == f"  inline: defined in sweep own  [{user_conf / 'sweep' / 'own.yaml'}]"
    assert line("loss_bound:").endswith("[built-in]")
