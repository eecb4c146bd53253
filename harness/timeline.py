"""Where a sweep's start-up and shut-down time goes, when asked: HARNESS_TIMELINE=<file>.

With the variable set, the driver and every actor started by it append one line per event to the
file: ``<unix time> <pid> <event>``, e.g. ``ray.init start``, ``actor tf import done``. Unset (the
default), ``mark`` costs one dictionary look-up. scripts/bench.py reads it to split a sweep's fixed
cost into Ray's start, TensorFlow's import in the actors, the runs and Ray's shut-down; a user can
read it to see why a sweep is slow to start:

    HARNESS_TIMELINE=/tmp/timeline.txt python -m harness sweep=smoke
    python -m harness.timeline /tmp/timeline.txt

Actors of a warm pool were started before the sweep and do not inherit its environment: their
start is not in the file (it is the pool's, not the sweep's).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ENV = "HARNESS_TIMELINE"


def mark(event: str) -> None:
    """Append ``event`` with the time and this process's pid, if HARNESS_TIMELINE names a file."""
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        with open(path, "a") as f:  # one short write per line: lines of several processes do not interleave
            f.write(f"{time.time():.6f} {os.getpid()} {event}\n")
    except OSError:
        pass  # a timeline is a diagnostic: it never stops a sweep


@dataclass(frozen=True)
class Event:
    t: float
    pid: int
    name: str


def read(path: str | os.PathLike[str]) -> list[Event]:
    """The events of a timeline file, in time order (malformed lines skipped)."""
    events = []
    for line in Path(path).read_text().splitlines():
        parts = line.split(" ", 2)
        try:
            events.append(Event(float(parts[0]), int(parts[1]), parts[2]))
        except (ValueError, IndexError):
            continue
    return sorted(events, key=lambda e: e.t)


def first(events: Sequence[Event], name: str) -> float | None:
    return next((e.t for e in events if e.name == name), None)


def last(events: Sequence[Event], name: str) -> float | None:
    return next((e.t for e in reversed(events) if e.name == name), None)


def phases(events: Sequence[Event]) -> dict[str, float]:
    """Seconds per phase of a sweep (those whose two ends are in the file): the driver before Ray,
    Ray's start, actors from Ray's start to their TensorFlow import, the import (first actor start
    to last actor ready), the runs (first dispatched to last finished), the end (last run to the
    driver's exit), Ray's shut-down (in the background, inside the end). Workers that Ray started
    with its raylet may import TensorFlow while ray.init still runs (harness.engine.preload): only
    the part after Ray's start counts as the import, and actor start is then 0."""
    spans = {  # name: (event, first or last of it; event, first or last of it)
        "driver before Ray": ("driver start", first, "ray.init start", first),
        "Ray start": ("ray.init start", first, "ray.init done", first),
        "actor start": ("ray.init done", first, "actor tf import start", first),
        "TF import in actors": ("actor tf import start", first, "actor tf import done", last),
        "runs": ("run dispatched", first, "run finished", last),
        "end": ("run finished", last, "driver exit", last),
        "Ray shutdown": ("ray.shutdown start", first, "ray.shutdown done", last),
    }
    ray_up = first(events, "ray.init done")
    out = {}
    for name, (a, pick_a, b, pick_b) in spans.items():
        t0, t1 = pick_a(events, a), pick_b(events, b)
        if ray_up is not None and name in ("actor start", "TF import in actors"):
            t0, t1 = (t0 if t0 is None else max(t0, ray_up)), (t1 if t1 is None else max(t1, ray_up))
        if t0 is not None and t1 is not None and t1 >= t0:
            out[name] = t1 - t0
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.timeline FILE``: the phases of the sweep recorded in FILE."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.timeline FILE (written by a sweep run with HARNESS_TIMELINE=FILE)",
              file=sys.stderr)
        return 2
    try:
        events = read(argv[0])
    except OSError as exc:
        print(f"error: {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not events:
        print(f"error: {argv[0]}: no events", file=sys.stderr)
        return 2
    t0 = events[0].t
    for name, seconds in phases(events).items():
        print(f"{name:<22} {seconds:7.2f} s")
    print(f"{'total':<22} {events[-1].t - t0:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
