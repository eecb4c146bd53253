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


def test_any_constructor_parameter_is_an_axis_and_the_error_says_how_to_add_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`_axes_` works for a parameter its config does not set (the README's form, with the + Hydra needs for a
    new key); without the +, the error gives the + form; a misspelt parameter gets the parameters and a guess."""
    inline = ["sweep=smoke", "+scenarios.lb2._target_=harness.scenarios.loss_bound.LossBound",
              "+scenarios.lb2._axes_.bound=[0.5,1.0]", "sweep.scenario=[lb2]", "-n"]
    assert main(inline) == 0
    assert "variants bound=0.5; bound=1.0" in capsys.readouterr().out
    assert main(["sweep=smoke", "scenarios.loss_bound._axes_.bound=[0.5,1.0]", "-n"]) == 2
    assert capsys.readouterr().err.strip() == ("error: scenarios.loss_bound._axes_.bound: not in the config yet: "
                                               "sweep a parameter with a leading +, "
                                               "+scenarios.loss_bound._axes_.bound=[VALUE,...] (a list of values)")
    assert main(["sweep=smoke", "scenarios.loss_bound.bund=0.5", "-n"]) == 2
    err = capsys.readouterr().err
    assert "'bund' is not a parameter of scenario loss_bound (parameters: bound, learning_rate" in err
    assert "did you mean" in err and "bound" in err.rsplit("did you mean", 1)[1]
    assert main([*inline[:2], "+scenarios.lb2._axes_.bund=[1.0]", "sweep.scenario=[lb2]", "-n"]) == 2
    assert "error: scenarios.lb2._axes_.bund: not a parameter of LossBound" in capsys.readouterr().err


def test_a_misspelt_parameter_of_a_scenario_a_sweep_file_defines_gets_its_parameters(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep=regression_explode", "scenarios.regression_explode.learning_rat=0.1", "-n"]) == 2
    err = capsys.readouterr().err
    assert "'learning_rat' is not a parameter of scenario regression_explode" in err and "learning_rate?" in err
