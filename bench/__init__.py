"""The benchmarks of docs/benchmarks.md: the harness against the naive ways of doing the same work.

Not part of the installed package. ``scripts/bench.py`` is the command; ``common`` holds what every
figure shares (the Figure, timing, subprocesses), ``loops`` the in-process loops that figures 1, 2, 3a
and 8 time in fresh processes, one module per figure (or per measurement several figures share),
``registry`` their order, ``record`` the results as data (docs/bench/results.jsonl) and ``render``
the table drawn from it.
"""
