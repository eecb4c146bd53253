"""Config defaults are written once, in harness/config.py's dataclasses: the group files set only what
differs, and docs/configuration.md's defaults block is generated (scripts/config_docs.py)."""

from __future__ import annotations

import dataclasses
import sys

import yaml
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))


def test_the_configuration_page_shows_the_defaults_the_code_has() -> None:
    import config_docs

    page = config_docs.PAGE.read_text()
    assert page == config_docs.render(page), "docs/configuration.md is stale: run python scripts/config_docs.py --write"


def test_no_group_file_repeats_a_default_of_its_dataclass() -> None:
    from harness.config import AdaptiveConfig, RayConfig, StoreConfig

    for group, cls in (("ray", RayConfig), ("store", StoreConfig), ("adaptive", AdaptiveConfig)):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for path in sorted((ROOT / "conf" / group).glob("*.yaml")):
            doc = yaml.safe_load(path.read_text()) or {}
            assert "base" in doc.get("defaults", []) or "local" in doc.get("defaults", []), path
            repeated = [k for k, v in doc.items() if k in defaults and v == defaults[k] and k != "rule"]
            assert not repeated, f"{path.relative_to(ROOT)} repeats the defaults of {', '.join(repeated)}"


def test_the_composed_groups_hold_every_field_with_the_dataclass_default() -> None:
    from harness.cli import compose_config
    from harness.config import AdaptiveConfig, RayConfig, StoreConfig

    cfg = compose_config(["sweep=smoke"])
    for group, cls in (("ray", RayConfig), ("store", StoreConfig), ("adaptive", AdaptiveConfig)):
        assert cfg[group] == dataclasses.asdict(cls()), group
