"""Figures 9a-9c: load_results against pandas.read_parquet of the same directory (2,000 runs, batched
as a sweep writes them now and one file per run as earlier versions did), and a 100,000-run sweep."""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.common import Figure, alternating, timer

ONLY = ("9",)
ROWS_PER_RUN = 3


def loading_rows(runs: int) -> Any:
    """``runs`` runs x 3 checks of realistic rows: the core columns of a seed_article-like grid
    (statuses, NaN runs, run-level numerics, 16-hex run_ids) plus two scenario extras."""
    import hashlib

    import numpy as np
    import pyarrow as pa

    from synthetic import synthetic_results
    from harness.records import CORE_SCHEMA

    per_seed = 4 * 3 * 3 * 2  # data sizes x batch sizes x precisions x clip values
    df = synthetic_results(checks={"loss_below": ("below", 1.0), "out_min": ("above", 0.0), "grad_ok": ("below", 1e3)},
                           data_sizes=(1000, 10_000, 100_000, 1_000_000), batch_sizes=(32, 64, 128),
                           precisions=("fp32", "fp16", "bf16"), clip_values=(None, 1.0),
                           seeds=range(-(-runs // per_seed)), steps=1000, eval_rate=1e-4, nonfinite_rate=0.001,
                           error_rate=0.002, sweep="bench_load")
    df = df.iloc[: runs * ROWS_PER_RUN].reset_index(drop=True)
    rng = np.random.default_rng(0)
    ids = {r: hashlib.sha256(r.encode()).hexdigest()[:16] for r in df["run_id"].unique()}
    df["run_id"] = df["run_id"].map(ids)
    per_run = np.repeat(rng.gamma(4.0, 2.0, runs), ROWS_PER_RUN)
    df["wall_s"], df["train_s"] = per_run + 3.0, per_run
    df["worker"] = [f"node{i % 4}:{4000 + i % 16}:cpu:node=ab12cd34" for i in np.repeat(np.arange(runs), ROWS_PER_RUN)]
    df["compute_dtype"] = df["precision"].map({"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"})
    df["final_loss"] = np.repeat(rng.lognormal(-2, 1, runs), ROWS_PER_RUN)
    df["harness_version"], df["tf_version"] = "0.1.0", "2.16.1"
    # as result_rows writes them: no pandas metadata (which would make pandas.read_parquet restore extension dtypes)
    table = pa.Table.from_pandas(df, schema=CORE_SCHEMA, preserve_index=False).replace_schema_metadata(None)
    table = table.append_column(pa.field("grad_norm_max", pa.float64()),
                                pa.array(np.repeat(rng.lognormal(0, 1, runs), ROWS_PER_RUN)))
    return table.append_column(pa.field("clip_active_steps", pa.int64()),
                               pa.array(np.repeat(rng.integers(0, 50, runs), ROWS_PER_RUN)))


def write_layouts(table: Any, directory: Path, per_run: bool, batch: int = 256) -> None:
    """The rows as a sweep stores them: batched part files of ``batch`` runs (store.write_batch, as
    PartBuffer writes them), or one part file per run (store.write_part, as earlier versions did)."""
    from harness.store import write_batch, write_part

    step = ROWS_PER_RUN * (1 if per_run else batch)
    for i in range(0, table.num_rows, step):
        chunk = table.slice(i, step)
        if per_run:
            write_part(directory, chunk.column("run_id")[0].as_py(), chunk)
        else:
            write_batch(directory, [chunk])


def legacy_sweep(small: Any, root: Path, repeats: int) -> Figure:
    """Figure 9b: the first load_results of a directory of one part file per run (as earlier versions
    wrote them), which converts it into one file once, against pandas.read_parquet of the same files;
    each sample on a directory of its own, written afresh, the two reads' order alternating."""
    import pandas as pd

    from harness.store import load_results, part_files

    ours, theirs, later = [], [], []
    for i in range(repeats):
        d = root / f"9b-{i}"
        write_layouts(small, d, per_run=True)
        files = len(part_files(d))
        first = [lambda: pd.read_parquet(d), lambda: load_results(d)]
        times = {}
        for fn in (first if i % 2 == 0 else first[::-1]):
            t0 = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - t0
        theirs.append(times[first[0]])
        ours.append(times[first[1]])
        t0 = time.perf_counter()
        assert len(load_results(d)) == small.num_rows
        later.append(time.perf_counter() - t0)
    import statistics

    o, t, l2 = statistics.median(ours), statistics.median(theirs), statistics.median(later)
    return Figure("9b", "first load_results of a 2,000-run sweep stored one part file per run (as earlier versions "
                  "wrote them; it converts the directory) vs pandas.read_parquet", o / t, "x pandas", "<= 1.0x",
                  o / t <= 1.0, f"{files} part files, {small.num_rows:,} rows; the first load_results {o:.2f}s "
                  f"(conversion included), pandas.read_parquet {t:.2f}s; every later load {l2:.3f}s (one file); "
                  f"median of {repeats} fresh directories, order alternating")


def small_sweep(key: str, small: Any, d: Path, per_run: bool, what: str, repeats: int) -> Figure:
    """Figure 9a (batched part files): the ratio of load_results to pandas.read_parquet."""
    import pandas as pd

    from harness.store import load_results, part_files

    write_layouts(small, d, per_run)
    assert len(load_results(d)) == len(pd.read_parquet(d)) == small.num_rows
    t0 = time.perf_counter()
    pd.read_parquet(d)
    loops = max(1, round(0.5 / (time.perf_counter() - t0)))  # a sample of about 0.5 s: ms loads are noisy
    ours, theirs = alternating([timer(lambda: [load_results(d) for _ in range(loops)]),
                                timer(lambda: [pd.read_parquet(d) for _ in range(loops)])], repeats)
    ours, theirs = ours / loops, theirs / loops
    ratio = ours / theirs
    return Figure(key, f"load_results of a 2,000-run sweep vs pandas.read_parquet ({what})", ratio,
                  "x pandas", "<= 1.0x", ratio <= 1.0,
                  f"{len(part_files(d))} part files, {small.num_rows:,} rows; load_results {ours:.3f}s, "
                  f"pandas.read_parquet {theirs:.3f}s; median of {repeats} samples of {loops} load(s), "
                  f"interleaved, order alternating")


def big_sweep(big: Path, big_runs: int, repeats: int) -> Figure:
    """Figure 9c: load_results and the resume index of a large sweep, before and after compaction."""
    import pandas as pd

    from harness.store import compact, load_results, part_files, stored_run_ids

    write_layouts(loading_rows(big_runs), big, per_run=False)
    files = len(part_files(big))
    ours, theirs, resume, complete = alternating(
        [timer(lambda: load_results(big)), timer(lambda: pd.read_parquet(big)), timer(lambda: stored_run_ids(big)),
         timer(lambda: stored_run_ids(big, complete_only=True))], repeats)
    assert len(stored_run_ids(big)) == big_runs
    t0 = time.perf_counter()
    compact(big)
    compaction = time.perf_counter() - t0
    compacted, resume_compacted = alternating([timer(lambda: load_results(big)),
                                               timer(lambda: stored_run_ids(big))], repeats)
    return Figure("9c", f"load_results of a {big_runs:,}-run sweep", ours, "s", "<= 10 s", ours <= 10,
                  f"{files} batched part files, {ROWS_PER_RUN * big_runs:,} rows; pandas.read_parquet {theirs:.2f}s; "
                  f"resume index (stored_run_ids) {resume:.2f}s, complete_only {complete:.2f}s; compacted "
                  f"in {compaction:.1f}s into {len(part_files(big))} file(s): load_results {compacted:.2f}s, "
                  f"resume index {resume_compacted:.2f}s; median of {repeats}, interleaved, order alternating")


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    figs = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("error")  # a load that warns (a file skipped) is not a fair load
        root = Path(tmp)
        small = loading_rows(2000)
        figs.append(small_sweep("9a", small, root / "9a", False, "batched part files, as a sweep writes them",
                                opts.load_repeats))
        figs.append(legacy_sweep(small, root, opts.load_repeats))
        figs.append(big_sweep(root / "9c", opts.load_runs, opts.load_repeats))
    return figs
