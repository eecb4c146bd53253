"""The typed config groups registered with Hydra's ConfigStore: where their defaults come from.

``ray``, ``store`` and ``adaptive`` are the dataclasses of :mod:`harness.config`, stored as the
config ``base`` of their group (the pattern of Hydra's own launchers, e.g. hydra_ray_launcher's
``ConfigStore.instance().store(group="hydra/launcher", ...)``). A group's YAML files list ``base``
first in their defaults and set only what differs from it, so each default is written once, in
the dataclass. Hydra then types every value (a wrong type fails the compose, and the CLI words it
with the harness's own validators, see :func:`harness.config.explain`) and knows every key, so
``adaptive.target=...`` works under any ``adaptive=`` file without a ``+``.
"""

from __future__ import annotations

from typing import Any

GROUPS: dict[str, Any] = {}


def register() -> None:
    """Store each group's dataclass as ``<group>/base`` (idempotent; needs Hydra, so it is called
    where the CLI composes, not at import)."""
    if GROUPS:
        return
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from harness.config import AdaptiveConfig, RayConfig, StoreConfig

    store = ConfigStore.instance()
    for group, cls in (("ray", RayConfig), ("store", StoreConfig), ("adaptive", AdaptiveConfig)):
        node = OmegaConf.structured(cls)
        OmegaConf.set_readonly(node, False)  # the dataclasses are frozen; overrides must still apply
        store.store(group=group, name="base", node=node)
        GROUPS[group] = cls
