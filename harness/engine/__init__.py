"""The only package that imports TensorFlow: runtime set-up, precision, the compiled loop.

Workers call ``init_worker`` once, then ``execute(spec)`` for every run.
"""

from harness.engine.run import execute, init_worker

__all__ = ["execute", "init_worker"]
