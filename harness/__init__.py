"""harness: distributed scale sweeps for numerical assertions in TensorFlow training.

    python -m harness sweep=smoke                      # run a sweep
    python -m harness.report results/smoke             # analyse it
    import harness; df = harness.load_results("results/smoke")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"  # the only place the version is written (pyproject.toml reads it)
__all__ = ["__version__", "load_results"]


def load_results(path: Any, *, columns: Any = None, filter: Any = None) -> Any:
    """Results of a sweep directory (or a root of several) as a pandas DataFrame, one row per (run, check);
    ``columns`` selects columns, ``filter`` rows (a pyarrow expression or a dict of column -> value(s))."""
    from harness.store import load_results as _load

    return _load(path, columns=columns, filter=filter)
