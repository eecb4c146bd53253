"""Warnings on a command's terminal as one line each: ``warning: <message>``.

Python's default format takes two lines (the file and line that warned, then its source line),
which for a user of the commands is noise: the harness's own warnings (a skipped part file, a
newer schema) say everything in their message. Other packages' warnings keep their category.
The library (``import harness``) leaves Python's format alone: only the commands call this."""

from __future__ import annotations

import warnings

def _one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              line: str | None = None) -> str:
    text = " ".join(str(message).split())
    own = category.__module__.split(".")[0] == "harness"
    return f"warning: {text}\n" if own else f"warning: {category.__name__}: {text}\n"


def one_line_warnings() -> None:
    """Show warnings as one line each from now on, in this process (the commands' entry points)."""
    warnings.formatwarning = _one_line  # type: ignore[assignment]
