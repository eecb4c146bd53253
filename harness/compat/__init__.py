"""Every reach into a dependency's private API, in one module per dependency.

``harness.compat.ray``, ``.tensorflow``, ``.keras`` and ``.python`` each hold the reaches into that
dependency's private names, each with a public-API fallback. Code elsewhere in the harness calls
these functions and never names a private attribute of a dependency. When a reach is not where
this version of the library keeps it, the fallback runs and :func:`fallback` logs it once per
process. The tests fail when any fallback is what runs on the versions pyproject allows, so a
release that moves a private name is caught by the suite, not by a user's results.
"""

from __future__ import annotations

import logging

log = logging.getLogger("harness.compat")

_TAKEN: dict[str, str] = {}


def fallback(reach: str, why: str) -> None:
    """Record that ``reach``'s public fallback ran instead of it, logging once per reach and process."""
    if reach not in _TAKEN:
        _TAKEN[reach] = why
        log.warning("harness.compat: %s unavailable (%s); using its public fallback", reach, why)


def taken() -> dict[str, str]:
    """The reaches whose fallback ran in this process, with why."""
    return dict(_TAKEN)
