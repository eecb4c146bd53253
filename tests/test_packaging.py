"""What `pip install .` ships: every package of the source tree (a non-editable install would miss one
that pyproject.toml does not list)."""

from __future__ import annotations

import tomllib

from conftest import ROOT


def test_every_package_directory_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "harness").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
