"""Did-you-mean for a misspelt key, scenario, parameter or option (one place, imported by all that offer one)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """"; did you mean X?" for the closest choice, or ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""
