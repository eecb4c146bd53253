"""Failure rates with 95% intervals, per run or per check evaluation.

Runs that did not complete (status error, crashed, timeout) carry no check values:
they are counted apart in the ``incomplete`` column, never dropped silently, so a
sweep that is still running or partly failed reads correctly.

Per run, runs are independent replicates: a Wilson interval over runs. Per evaluation,
they are not: evaluations of one run share its weights, data order and numerics, so
failures cluster within runs, and a Wilson interval over evaluations is too narrow by
the square root of the design effect (often several-fold). The default per-evaluation
interval therefore treats runs as clusters (``cluster_interval``); the naive one is
there on request and labelled as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from harness.analysis.frame import failed_mask, group_keys, groupby, nonfinite_mask, ok_mask, require

Level = Literal["run", "check"]
Interval = Literal["cluster", "naive"]
# Where the per-evaluation interval (level="check") is shown: at least CLUSTER_MIN_RUNS runs whose
# evaluation counts differ by at most a factor CLUSTER_MAX_SPREAD. There it covered at least ~94%
# (95% less two Monte-Carlo standard errors) in every simulated cell; with fewer runs, or with runs
# of very different lengths, it did not (scripts/interval_coverage.py; docs/intervals.md).
CLUSTER_MIN_RUNS = 30
CLUSTER_MAX_SPREAD = 10.0
RATE_COLUMNS = ("n", "failed", "rate", "ci_low", "ci_high", "nonfinite", "runs", "incomplete", "design_effect",
                "interval", "interval_ok", "note")
INTERVAL_LABELS = {
    "wilson": "Wilson interval over runs (runs are independent replicates)",
    "cluster": ("runs as clusters: cluster-robust ratio-estimator variance (Cochran 1977, sections 6.4 and 11.8); "
                "the union of the Korn-Graubard effective-sample-size Clopper-Pearson interval (degrees of freedom: "
                "runs with a failure - 1) and Hall's skewness-corrected t interval; shown from "
                f"{CLUSTER_MIN_RUNS} runs of comparable length (docs/intervals.md)"),
    "naive": "naive Wilson interval over evaluations, as if independent (too narrow when failures cluster in runs)",
}


def wilson_interval(failed: np.ndarray | Sequence[float] | float, n: np.ndarray | Sequence[float] | float,
                    alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for failed/n (statsmodels ``proportion_confint``); NaN where n == 0."""
    from statsmodels.stats.proportion import proportion_confint

    k = np.atleast_1d(np.asarray(failed, dtype=float))
    m = np.atleast_1d(np.asarray(n, dtype=float))
    lo = np.full(m.shape, np.nan)
    hi = np.full(m.shape, np.nan)
    some = m > 0
    if some.any():
        lo[some], hi[some] = proportion_confint(k[some], m[some], alpha=alpha, method="wilson")
    lo[some & (k == 0)] = 0.0  # exact ends instead of floating-point dust
    hi[some & (k == m)] = 1.0
    return lo, hi


def cluster_interval(failed: np.ndarray, n: np.ndarray, group: np.ndarray | None = None, n_groups: int | None = None,
                     alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ci_low, ci_high, design_effect) per group for the pooled rate R = sum(failed) /
    sum(n) when each element of ``failed`` / ``n`` is one cluster (a run: its failing
    evaluations out of its evaluations) and ``group`` (integer codes 0..n_groups-1; None:
    one group) says which rate it belongs to. Vectorised: a million clusters take a few
    hundredths of a second.

    Estimand: the population per-evaluation rate E[k] / E[n] (expected failing evaluations
    of a run over its expected evaluations; E[p] when a run's evaluation count does not
    depend on its failure probability p), runs being the independent replicates.

    Variance: the ratio estimator's cluster-robust (linearisation) variance, Cochran,
    *Sampling Techniques* (3rd ed., 1977), sections 6.4 and 11.8:
    Var(R) = m / (m - 1) * sum_i (k_i - R n_i)^2 / (sum_i n_i)^2 over the m clusters with
    n_i > 0 (the sandwich variance of an intercept-only GEE with runs as groups, with the
    small-sample factor m / (m - 1)).

    Interval: the union of two intervals, each of which alone under-covers somewhere
    (scripts/interval_coverage.py; docs/intervals.md has the table):

    1. Korn & Graubard (1998, *Survey Methodology* 24:193-201; the NCHS standard for survey
       proportions, Parker et al. 2017): the design effect d = Var(R) / (R (1 - R) / sum n),
       at least 1, gives the effective sample size n* = sum n / d, shrunk by
       (z / t_df)^2; the Clopper-Pearson interval of R n* out of n*. The degrees of freedom
       are those of the variance estimate, which only runs that failed (or, for rates near
       1, passed) inform: df = min(runs with a failure, runs with a pass) - 1, between 1 and
       m - 1 (a Satterthwaite-type count; with m - 1, the old choice, the interval covered
       88% with 10 runs of 50 evaluations and Beta(0.2, 3.8) rates and 74% with Beta(0.05,
       0.95), because most runs never fail and the few that do carry the variance). With no failing run at all,
       df = 1 and the upper end is wide: the data cannot tell "rare" from "concentrated in
       runs not yet seen", so it is close to the run-level bound.
    2. Hall's (1992, *JRSS B* 54:221-228) skewness-corrected t interval on the same
       linearised residuals u_i = (k_i - R n_i) / mean(n): the cubic transform
       g(T) = T + g1/(6 sqrt m) + g1 T^2/(3 sqrt m) + g1^2 T^3/(27 m) of the studentised
       rate, g1 the sample skewness of u, inverted in closed form with t_{m-1} quantiles.
       Per-run failure rates are right-skewed (most runs fail rarely, a few often), which
       the binomial shape of (1) underestimates at 30-100 runs with many evaluations each.

    The union covered E[p] at least 94.9% (2000 sweeps per cell; 94.0% is 95% less two
    Monte-Carlo standard errors) in every simulated cell with at least ``CLUSTER_MIN_RUNS``
    (30) runs whose evaluation counts differ at most ``CLUSTER_MAX_SPREAD``-fold: 5 to 100
    runs, 50, 1000 or 10..90 evaluations each, per-run rates constant, Beta(0.5, 9.5),
    Beta(0.2, 3.8), Beta(0.05, 0.95), Beta(0.1, 9.9) or a two-point mixture;
    ``failure_rates`` shows it only there. Below 30 runs its lowest coverage was 41-88%
    (runs of 1000 evaluations whose failures are concentrated in a few runs), and with counts
    spread over 10..1000 it was 92% even at 100 runs. Chosen over the cluster-robust t
    interval, Wilson on the effective sample size and the percentile and BCa cluster
    bootstrap (their lowest coverage at 30 runs: 79-85%) and a beta-binomial profile
    likelihood (79% at 100 runs, where failures are not beta-binomial). The naive Wilson interval over evaluations
    covers far less (22-65% at design effects 3-42).

    No failure (or no pass) anywhere gives no estimate of the clustering: d = 1 there. A
    group with fewer than two clusters has no between-run variance to estimate: NaN."""
    from scipy import stats

    k = np.asarray(failed, dtype=float)
    m_ = np.asarray(n, dtype=float)
    g = np.zeros(len(k), dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
    size = int(n_groups if n_groups is not None else (g.max() + 1 if len(g) else 0))
    used = (m_ > 0).astype(float)
    K = np.bincount(g, weights=k, minlength=size)
    N = np.bincount(g, weights=m_, minlength=size)
    m = np.bincount(g, weights=used, minlength=size)
    failing = np.bincount(g, weights=used * (k > 0), minlength=size)
    passing = np.bincount(g, weights=used * (k < m_), minlength=size)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        R = np.where(N > 0, K / N, np.nan)
        resid = k - np.nan_to_num(R)[g] * m_
        ss = np.bincount(g, weights=resid**2, minlength=size)
        var = m / (m - 1) * ss / N**2
        naive = R * (1 - R) / N
        deff = np.where(naive > 0, np.maximum(1.0, var / np.where(naive > 0, naive, 1.0)), 1.0)
        # 1. Korn-Graubard with the degrees of freedom of the runs that inform the variance
        df_kg = np.clip(np.minimum(failing, passing) - 1, 1, np.maximum(m - 1, 1))
        n_eff = N / deff * (z / stats.t.ppf(1 - alpha / 2, df_kg)) ** 2
        k_eff = R * n_eff
        lo = np.where(k_eff > 0, stats.beta.ppf(alpha / 2, k_eff, n_eff - k_eff + 1), 0.0)
        hi = np.where(k_eff < n_eff, stats.beta.ppf(1 - alpha / 2, k_eff + 1, n_eff - k_eff), 1.0)
        # 2. Hall's skewness-corrected t on the linearised residuals u_i = resid_i / mean(n)
        mean_n = N / m
        u = resid / mean_n[g]
        m2 = np.bincount(g, weights=u**2, minlength=size) / m
        m3 = np.bincount(g, weights=u**3, minlength=size) / m
        skew = np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)
        c = stats.t.ppf(1 - alpha / 2, np.maximum(m - 1, 1))
        a = skew / (3 * np.sqrt(m))

        def g_inv(x: np.ndarray) -> np.ndarray:
            y = x - skew / (6 * np.sqrt(m))
            flat = np.abs(a) < 1e-12
            return np.where(flat, y, (np.cbrt(1 + 3 * a * y) - 1) / np.where(flat, 1.0, a))

        se = np.sqrt(var)
        lo = np.where(var > 0, np.minimum(lo, R - se * g_inv(c)), lo)
        hi = np.where(var > 0, np.maximum(hi, R - se * g_inv(-c)), hi)
    lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    bad = ~(m >= 2) | ~(N > 0)
    lo[bad] = hi[bad] = np.nan
    deff = np.where(bad, np.nan, deff)
    return lo, hi, deff


def _where_shown(n: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: is the clustered interval shown (at least CLUSTER_MIN_RUNS runs with
    evaluations, whose evaluation counts differ by at most a factor CLUSTER_MAX_SPREAD), and
    the note that says why not ("" where shown)."""
    used = n > 0
    g, m_ = group[used], n[used].astype(float)
    runs = np.bincount(g, minlength=n_groups)
    big = np.full(n_groups, 0.0)
    small = np.full(n_groups, np.inf)
    np.maximum.at(big, g, m_)
    np.minimum.at(small, g, m_)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = big / small
    few = runs < CLUSTER_MIN_RUNS
    uneven = ~few & (spread > CLUSTER_MAX_SPREAD)
    why = np.full(n_groups, "", dtype=object)
    why[few] = [f"{r} run{'s' if r != 1 else ''} with evaluations, fewer than {CLUSTER_MIN_RUNS}: the per-evaluation "
                "interval's simulated coverage is below 95% there (docs/intervals.md); add runs, or use "
                "level='run'" for r in runs[few]]
    why[uneven] = [f"the runs' evaluation counts differ {s:.0f}-fold (more than {CLUSTER_MAX_SPREAD:g}): the "
                   "per-evaluation interval's simulated coverage is below 95% there (docs/intervals.md); group by "
                   "what sets the run length (data_size, steps)" for s in spread[uneven]]
    why[runs == 0] = "no completed run with evaluations"
    return ~few & ~uneven, why


def _with_interval(out: pd.DataFrame, alpha: float) -> pd.DataFrame:
    n = out["n"].to_numpy(float)
    k = out["failed"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate"] = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
    out["ci_low"], out["ci_high"] = wilson_interval(k, n, alpha)
    return out


def failure_rates(df: pd.DataFrame, by: Sequence[str] | str | None = ("check",), level: Level = "run",
                  alpha: float = 0.05, interval: Interval = "cluster") -> pd.DataFrame:
    """Failure counts and rates with a (1 - alpha) interval, one row per group of ``by``.

    level="run": the unit is a completed run (a (run, check) row when "check" is in
    ``by``; otherwise a run fails when any of its checks failed); runs are independent
    replicates, so the interval is Wilson's over runs. level="check": the unit is one
    evaluation of a check (sum of n_failed over sum of n_evaluated). Evaluations within a
    run are correlated, so by default (interval="cluster") runs are the clusters of
    ``cluster_interval`` (cluster-robust ratio variance; Korn-Graubard interval united with
    Hall's skewness-corrected t), an interval for the population per-evaluation rate
    E[failing evaluations of a run] / E[evaluations of a run]. It is shown only where its
    simulated coverage held (at least ~94% at 95% nominal in every cell of
    scripts/interval_coverage.py, table in docs/intervals.md): at least
    ``CLUSTER_MIN_RUNS`` (30) runs with evaluations whose evaluation counts differ by at
    most a factor ``CLUSTER_MAX_SPREAD`` (10). Elsewhere ci_low and ci_high are NaN and
    ``note`` says why: with 10 runs of per-run rate Beta(0.2, 3.8) or Beta(0.05, 0.95) and
    1000 evaluations each it covered 92% and 89% (the old Korn-Graubard interval: 87% and
    72%), and with evaluation counts spread log-uniformly over 10..1000 its lowest coverage
    was 92% even at 100 runs. interval="naive" gives the Wilson interval over
    evaluations as if they were independent, which is too narrow whenever failures
    cluster in runs. ``interval`` has no effect on level="run".

    Columns: the ``by`` columns, then n (runs or evaluations), failed, rate, ci_low,
    ci_high, nonfinite (units that saw NaN/Inf), runs (completed runs), incomplete (runs
    of the group that errored, crashed or timed out; they are not in n), design_effect
    (level="check": the variance of the rate with runs as clusters over the binomial
    variance, at least 1; NaN per run), interval ("wilson", "cluster" or "naive"; the
    same word and its description are in ``attrs["interval"]`` and
    ``attrs["interval_method"]``), interval_ok (ci_low and ci_high are given) and note
    (why not, or what the interval is not; "" otherwise).
    """
    if level not in ("run", "check"):
        raise ValueError(f"level must be 'run' or 'check', not {level!r}")
    if interval not in ("cluster", "naive"):
        raise ValueError(f"interval must be 'cluster' or 'naive', not {interval!r}")
    keys = group_keys(by)
    require(df, ("run_id", "status", "passed", "n_evaluated", "n_failed", "n_nonfinite", *keys))
    ok = ok_mask(df)
    work = pd.DataFrame({k: df[k] for k in keys})
    work["_g"] = 0  # a constant key so that by=[] means "everything"
    keys_g = [*keys, "_g"]
    work["run_id"] = df["run_id"].to_numpy()
    work["_ok"] = ok.to_numpy()
    work["_okrun"] = work["run_id"].where(work["_ok"])
    work["_badrun"] = work["run_id"].where(~work["_ok"])
    if level == "run":
        work["_failed"] = failed_mask(df).to_numpy()
        work["_nonfinite"] = nonfinite_mask(df).to_numpy()
        if "check" not in keys:  # unit = run: collapse its checks first
            work = groupby(work, ["run_id", *keys_g]).agg(
                _ok=("_ok", "max"), _failed=("_failed", "max"), _nonfinite=("_nonfinite", "max"),
                _okrun=("_okrun", "first"), _badrun=("_badrun", "first")).reset_index()
        g = groupby(work, keys_g)
        out = g.agg(n=("_ok", "sum"), failed=("_failed", "sum"), nonfinite=("_nonfinite", "sum"),
                    runs=("_okrun", "nunique"), incomplete=("_badrun", "nunique"))
    else:
        work["_n"] = df["n_evaluated"].where(ok, 0).fillna(0).to_numpy(dtype=float)
        work["_failed"] = df["n_failed"].where(ok, 0).fillna(0).to_numpy(dtype=float)
        work["_nonfinite"] = df["n_nonfinite"].where(ok, 0).fillna(0).to_numpy(dtype=float)
        g = groupby(work, keys_g)
        out = g.agg(n=("_n", "sum"), failed=("_failed", "sum"), nonfinite=("_nonfinite", "sum"),
                    runs=("_okrun", "nunique"), incomplete=("_badrun", "nunique"))
        codes = g.ngroup().to_numpy()
    out = out.reset_index().drop(columns="_g")
    out = out.astype({"n": "int64", "failed": "int64", "nonfinite": "int64", "runs": "int64",
                      "incomplete": "int64"})
    out = _with_interval(out, alpha)
    out["design_effect"] = np.nan
    out["note"] = np.where(out["n"].to_numpy() > 0, "", "no completed run")
    used = "wilson"
    if level == "check":
        clusters = pd.DataFrame({"_code": codes, "run_id": work["run_id"].to_numpy(),
                                 "_n": work["_n"].to_numpy(), "_failed": work["_failed"].to_numpy()})[ok.to_numpy()]
        if "check" not in keys:  # a run's checks are one cluster
            clusters = clusters.groupby(["_code", "run_id"], sort=False).sum().reset_index()
        lo, hi, deff = cluster_interval(clusters["_failed"].to_numpy(), clusters["_n"].to_numpy(),
                                        clusters["_code"].to_numpy(), len(out), alpha)
        out["design_effect"] = deff
        used = interval
        if interval == "cluster":
            shown, why = _where_shown(clusters["_n"].to_numpy(), clusters["_code"].to_numpy(), len(out))
            out["ci_low"], out["ci_high"] = np.where(shown, lo, np.nan), np.where(shown, hi, np.nan)
            out["note"] = why
        else:
            out["note"] = "naive: evaluations counted as independent; too narrow when failures cluster in runs"
    out["interval_ok"] = out["ci_low"].notna().to_numpy() & out["ci_high"].notna().to_numpy()
    out["interval"] = used
    out.attrs["level"] = level
    out.attrs["interval"] = used
    out.attrs["interval_method"] = INTERVAL_LABELS[used]
    return out[[*keys, *RATE_COLUMNS]]
