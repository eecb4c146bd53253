"""``python -m harness compare BEFORE AFTER``: did a change make the assertions flakier?

Loads both sweeps, says first what changed between them (versions, oneDNN, allocator, device,
scenario code, config values: from each sweep's ``_sweep.yaml`` and its rows), then the verdict
of every cell and check (:func:`harness.analysis.compare.compare`), worse cells first. With
``--out DIR`` it also writes the comparison page (``report/compare_page.py``) and its table as
CSV. ``--fail-on worse`` makes it a gate: exit 1 when any cell is significantly worse after
Holm's control over all of them.

Exit codes: 0 compared (and, with --fail-on worse, nothing worse); 1 something worse with
--fail-on worse; 2 bad input (a directory that is not a sweep, an unknown --by axis, a margin
out of range), nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.frame import label
from harness.analysis.verdicts import CompareVerdict

EXIT_OK, EXIT_WORSE, EXIT_USAGE = 0, 1, 2
# settings read off the rows: column -> how people name it
ROW_SETTINGS: dict[str, str] = {"harness_version": "harness", "tf_version": "tensorflow", "onednn": "oneDNN",
                                "device": "device"}
# config keys that name where results go, not how they are computed
NOT_A_CHANGE: tuple[str, ...] = ("sweep.name", "store.root")


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: doc}


def _row_settings(df: pd.DataFrame) -> dict[str, str]:
    """Each setting's values in the rows, as one string (several values joined)."""
    if "worker" in df.columns:  # host:pid:device:node=..., harness.engine.run.worker_name
        df = df.assign(device=[w.split(":")[2] if isinstance(w, str) and w.count(":") >= 2 else None
                               for w in df["worker"]])
    out = {}
    for col, name in ROW_SETTINGS.items():
        if col in df.columns:
            values = sorted({("on" if v else "off") if col == "onednn" else label(v) for v in df[col].dropna()})
            if values:
                out[name] = ", ".join(values)
    return out


def what_changed(before_dir: Path, after_dir: Path, before: pd.DataFrame,
                 after: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(changes as "what: before -> after", settings that are the same on both sides as "what value"),
    from both sweeps' ``_sweep.yaml`` (versions, the scenarios' code digests, every config value)
    and rows (harness and TensorFlow versions, oneDNN, device)."""
    from harness.store import read_sweep_doc

    db, da = read_sweep_doc(before_dir), read_sweep_doc(after_dir)
    changed, same = [], []
    rb, ra = _row_settings(before), _row_settings(after)
    versions_b, versions_a = db.get("versions") or {}, da.get("versions") or {}
    for name in dict.fromkeys([*rb, *ra, *versions_b, *versions_a]):
        b = rb.get(name, versions_b.get(name))
        a = ra.get(name, versions_a.get(name))
        if b is None and a is None:
            continue
        b, a = ("(unset)" if v is None else v for v in (b, a))
        (same.append(f"{name} {b}") if b == a else changed.append(f"{name}: {b} -> {a}"))
    defs_b, defs_a = db.get("definitions") or {}, da.get("definitions") or {}
    for scenario in sorted(set(defs_b) & set(defs_a)):
        if defs_b[scenario] != defs_a[scenario]:
            changed.append(f"code of scenario {scenario}: {', '.join(defs_b[scenario])} -> {', '.join(defs_a[scenario])}")
    cb, ca = _flat(db.get("config") or {}), _flat(da.get("config") or {})
    for key in sorted(set(cb) | set(ca)):
        if key in NOT_A_CHANGE or cb.get(key) == ca.get(key):
            continue
        changed.append(f"{key}: {_value(cb.get(key, '(unset)'))} -> {_value(ca.get(key, '(unset)'))}")
    malloc_b, malloc_a = cb.get("ray.malloc"), ca.get("ray.malloc")
    if malloc_b is not None and malloc_b == malloc_a:
        same.append(f"allocator {malloc_b}")
    return changed, same


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(label(x) for x in v) + "]"
    return label(v) if not isinstance(v, str) else v


def _pct(x: float) -> str:
    return f"{100 * x:+.0f}" if x == x else "n/a"


def lines(result: pd.DataFrame, before: str, after: str, changed: list[str], same: list[str]) -> list[str]:
    """The terminal output, worse cells first."""
    result = result.assign(where=result["where"] + " / " + result["check"].astype(str)) if not result.empty \
        else result.assign(where="")
    out = [f"compare {before} -> {after}: {len(result)} cell x check rows"]
    out.append("changed: " + ("; ".join(changed) if changed else "nothing recorded differs (same versions and config)"))
    if same:
        out.append("same: " + ", ".join(same))
    for verdict in (CompareVerdict.WORSE, CompareVerdict.BETTER):
        part = result[result["status"] == verdict]
        if len(part):
            out.append(f"{verdict.value} ({len(part)}):")
            out += ["  " + _row_line(row) for row in part.itertuples(index=False)]
    unsure = result[result["status"] == CompareVerdict.NOT_ENOUGH_DATA]
    still = (unsure["method"] == "paired") & (unsure["flipped_to_fail"].fillna(0) + unsure["flipped_to_pass"].fillna(0)
                                              == 0) if len(unsure) else unsure.index == unsure.index
    listed = unsure[~still]
    if len(listed):
        out.append(f"not enough data ({len(listed)}): too few runs to tell a change from chance")
        out += ["  " + _row_line(row) for row in listed.itertuples(index=False)]
    moved = unsure[still]
    if len(moved):
        out.append(f"values moved, no run changed its outcome ({len(moved)}): {_grouped(moved)}; "
                   "--margin M says whether the change stays within M")
    for verdict, what in ((CompareVerdict.SAME, f"the difference is within +/-{result.attrs.get('margin')} "
                                                  "(equivalence test)"),
                          (CompareVerdict.IDENTICAL, "every paired run recorded the same values"),
                          (CompareVerdict.ONLY_BEFORE, "in the first sweep only"),
                          (CompareVerdict.ONLY_AFTER, "in the second sweep only")):
        part = result[result["status"] == verdict] if len(result) else result
        if len(part):
            out.append(f"{verdict.value.replace('_', ' ')} ({len(part)}): {what}: {_grouped(part)}")
    unpaired = result.attrs.get("unpaired")
    if unpaired is not None and not unpaired.empty:
        out.append(f"seeds on one side only: {int(unpaired['only_before'].max())} at most in a cell before, "
                   f"{int(unpaired['only_after'].max())} after (compared unpaired where no seed matches)")
    from harness.analysis.paired import min_flips

    alpha = result.attrs["alpha"]
    tests = int(result["tested"].sum()) if "tested" in result.columns else 0
    holm = (f"Holm over the {tests} rows that can reach significance keeps the chance of any false worse/better "
            f"verdict at alpha {alpha:g}") if tests else \
        (f"no row can reach significance at alpha {alpha:g} (a paired row needs {min_flips(alpha)} flipped runs), "
         "so none is worse or better")
    out.append("method: runs paired by seed (exact McNemar test, Tango's score interval), else independent "
               f"(Fisher's exact test, Newcombe interval); {holm}")
    return out


def _grouped(part: pd.DataFrame, limit: int = 6) -> str:
    """The rows' places, listed when few, else counted per scenario."""
    if len(part) <= limit:
        return "; ".join(part["where"])
    counts = part["scenario"].astype(str).value_counts(sort=False) if "scenario" in part.columns else {}
    return ", ".join(f"{name} {n}" for name, n in counts.items()) + " (every row: --out DIR, compare.csv)"


def _row_line(row: Any) -> str:
    incomplete = (f" ({row.before_incomplete} -> {row.after_incomplete} did not complete)"
                  if row.before_incomplete or row.after_incomplete else "")
    if row.method == "paired":
        extra = row.before_runs + row.after_runs - 2 * row.pairs
        counts = (f"{row.paired_before_failed}/{row.pairs} -> {row.paired_after_failed}/{row.pairs} runs failed on "
                  f"the seeds both ran{incomplete}, {row.flipped_to_fail} now fail, {row.flipped_to_pass} now pass"
                  + (f" ({extra} runs of one side only not compared)" if extra else ""))
    else:
        counts = (f"{row.before_failed}/{row.before_runs} -> {row.after_failed}/{row.after_runs} runs failed"
                  f"{incomplete}, compared as independent samples ({row.pairs} seeds in common)")
    diff = f"{_pct(row.diff)} points (95% CI {_pct(row.diff_low)} to {_pct(row.diff_high)}, unadjusted)"
    holm = f"Holm p={row.p_adjusted:.2g}" if row.tested else "not tested (too few flips to be significant)"
    text = f"{row.where}: {counts}, {diff}, {holm}"
    if row.status is CompareVerdict.NOT_ENOUGH_DATA:
        more = row.more_seeds
        text += (f"; about {int(more)} more seeds would detect a change of this size with 80% power"
                 if more == more and more < float("inf") else "")
    return text


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness compare", description=__doc__.splitlines()[0])
    parser.add_argument("before", help="results directory of the sweep before the change")
    parser.add_argument("after", help="results directory of the sweep after it")
    parser.add_argument("--by", nargs="+", help="axes a cell is made of (default: every axis that varies)")
    parser.add_argument("--margin", type=float, help="a rate difference: 'same' when the change is within it")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (default 0.05)")
    parser.add_argument("--fail-on", choices=["worse"], help="exit 1 when any cell is significantly worse")
    parser.add_argument("--out", help="write the comparison page and compare.csv into this directory")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    return run(args)


def _load(path: str, which: str) -> pd.DataFrame:
    from harness.store import load_results

    directory = Path(path)
    if not directory.is_dir():
        raise ValueError(f"{which}: {path}: " + ("not a directory" if directory.exists() else "no such directory"))
    df = load_results(directory)
    if df.empty:
        raise ValueError(f"{which}: {path}: no stored runs")
    return df


def run(args: argparse.Namespace) -> int:
    from harness.analysis.compare import compare

    try:
        if not 0 < args.alpha < 1:
            raise ValueError(f"--alpha: {args.alpha!r} is not strictly between 0 and 1")
        before, after = _load(args.before, "before"), _load(args.after, "after")
        result = compare(before, after, by=args.by, margin=args.margin, alpha=args.alpha)
    except (ValueError, KeyError) as exc:
        text = exc.args[0] if exc.args else str(exc)
        print(f"error: {text}", file=sys.stderr)
        return EXIT_USAGE
    for which, df in (("before", before), ("after", after)):
        if "sweep" in df.columns and df["sweep"].nunique() > 1:
            print(f"note: {which} holds {df['sweep'].nunique()} sweeps ({', '.join(sorted(map(str, df['sweep'].unique())))}); "
                  "their runs are compared together", file=sys.stderr)
    changed, same = what_changed(Path(args.before), Path(args.after), before, after)
    changed = [*changed, *(c for c in result.attrs["changed"] if not any(c.split(":")[0] in x for x in changed))]
    for line in lines(result, args.before, args.after, changed, same):
        print(line)
    if args.out:
        from harness.report.compare_page import write_page

        try:
            page = write_page(result, Path(args.out), before=args.before, after=args.after, changed=changed, same=same)
        except OSError as exc:
            print(f"error: --out: {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"page: {page}")
    worse = bool((result["status"] == CompareVerdict.WORSE).any()) if not result.empty else False
    return EXIT_WORSE if args.fail_on == "worse" and worse else EXIT_OK
