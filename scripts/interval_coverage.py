#!/usr/bin/env python
"""Coverage of the per-evaluation (``failure_rates(level="check")``) 95% interval, by simulation.

    python scripts/interval_coverage.py            # print the tables (about 5 minutes on 2 cores)
    python scripts/interval_coverage.py --readme   # and rewrite them in docs/intervals.md
    python scripts/interval_coverage.py --reps 200 # a quick look

Model: a sweep of n runs; run i makes m_i evaluations of a check, each failing with the
run's own probability p_i, p_i ~ F independently across runs (k_i ~ Binomial(m_i, p_i)).
Estimand: the population per-evaluation rate E[k] / E[m], expected failing evaluations of
a run over its expected evaluations; m_i is drawn independently of p_i, so this is E[p].
That is what ``failure_rates(level="check")`` estimates by sum(k) / sum(m).

Grid: n in {5, 10, 20, 30, 100}; m_i = 50, m_i = 1000, m_i uniform on 10..90 per run (runs
of one configuration, some stopped early), or m_i log-uniform on 10..1000 (runs of very
different lengths pooled, e.g. over data sizes); F one of: no clustering (p = 0.05, p =
0.005); Beta(a, b) (mean a / (a + b), intra-run correlation 1 / (a + b + 1)) for the four
cases of issue 27 item 7 and a rare, skewed one; a two-point mixture (10% of runs fail
half their evaluations, the rest never), which is not beta-binomial. Each cell: ``--reps``
independent sweeps (default 2000), the share of 95% intervals that contain E[p] (its
Monte-Carlo standard error is sqrt(0.95 * 0.05 / reps) = 0.005 at 2000) and their mean
width.

Methods: "new" is harness.analysis.cluster_interval as shipped (Korn-Graubard with df from
the runs that failed, united with Hall's skewness-corrected t); the candidates are
computed here, vectorised over the repetitions:

- old KG: Korn-Graubard effective-sample-size Clopper-Pearson with t_{n-1} (the method
  before this change);
- CR-t: R +- t_{n-1} * cluster-robust standard error (with the n / (n - 1) factor);
- Wilson n_eff: Wilson's interval on n_eff = sum m / design effect, t_{n-1} quantile;
- KG df=f-1: Korn-Graubard with df = min(runs with a failure, runs with a pass) - 1, the
  first half of "new";
- boot pct / boot BCa: the cluster bootstrap (runs resampled with replacement, 499
  resamples), percentile and bias-corrected accelerated (jackknife acceleration over
  runs; the same formulas as scipy.stats.bootstrap(method="BCa"), which is checked
  against here on a few sweeps at start);
- beta-binomial: the profile-likelihood interval for the mean of a beta-binomial
  (likelihood-ratio test inverted at chi2_1(0.95); the intra-run correlation profiled out
  on a grid); fixed m only. It is the true model of the Beta cells, so it is flattered
  there.

The rule for where "new" is shown (``CLUSTER_MIN_RUNS``, ``CLUSTER_MAX_SPREAD`` in
harness/analysis/rates.py): the smallest n of the grid from which on every cell with
evaluation counts within a factor 10 of each other (m = 50, 1000, 10..90) covers at least
95% less two Monte-Carlo standard errors; the script says whether the constant matches.
The 10..1000 cells, whose sweeps the rule hides, are there to show why.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special, stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from harness.analysis.rates import CLUSTER_MAX_SPREAD, CLUSTER_MIN_RUNS, _where_shown, cluster_interval  # noqa: E402
from markers import write_block  # noqa: E402

ALPHA = 0.05
RUNS = (5, 10, 20, 30, 100)
EVALS = ("50", "1000", "10..90", "10..1000")
SPREAD = {"50": 1, "1000": 1, "10..90": 9, "10..1000": 100}  # largest ratio of two runs' counts
# name: (a, b) of Beta(a, b); (None, p): every run p; ("two", q): a share q of runs at 0.5, the rest 0
DISTS = {
    "p = 0.05": (None, 0.05),
    "p = 0.005": (None, 0.005),
    "Beta(0.5, 9.5)": (0.5, 9.5),
    "Beta(0.2, 3.8)": (0.2, 3.8),
    "Beta(0.05, 0.95)": (0.05, 0.95),
    "Beta(0.1, 9.9)": (0.1, 9.9),
    "10% of runs at 0.5": ("two", 0.1),
}
ISSUE_CASES = [(30, "Beta(0.5, 9.5)"), (30, "Beta(0.2, 3.8)"), (10, "Beta(0.2, 3.8)"), (10, "Beta(0.05, 0.95)")]
METHODS = ("old KG", "CR-t", "Wilson n_eff", "boot pct", "boot BCa", "beta-binomial", "KG df=f-1", "new")
DOC = ROOT / "docs" / "intervals.md"


def truth_and_icc(dist: str) -> tuple[float, float]:
    a, b = DISTS[dist]
    if a is None:
        return b, 0.0
    if a == "two":
        mu = 0.5 * b
        return mu, (0.25 * b - mu**2) / (mu * (1 - mu))  # Var(p) / (mu (1 - mu))
    return a / (a + b), 1 / (a + b + 1)


def draw(rng: np.random.Generator, reps: int, n: int, dist: str, evals: str) -> tuple[np.ndarray, np.ndarray]:
    """(K, M), each (reps, n): failing evaluations and evaluations of every run of every sweep."""
    a, b = DISTS[dist]
    if a is None:
        p = np.full((reps, n), b)
    elif a == "two":
        p = np.where(rng.random((reps, n)) < b, 0.5, 0.0)
    else:
        p = rng.beta(a, b, (reps, n))
    if evals == "10..1000":
        M = np.floor(np.exp(rng.uniform(np.log(10), np.log(1001), (reps, n))))
    elif evals == "10..90":
        M = rng.integers(10, 91, (reps, n)).astype(float)
    else:
        M = np.full((reps, n), float(evals))
    return rng.binomial(M.astype(np.int64), p).astype(float), M


def _moments(K: np.ndarray, M: np.ndarray):
    n = K.shape[1]
    N = M.sum(1)
    R = K.sum(1) / N
    var = n / (n - 1) * ((K - R[:, None] * M) ** 2).sum(1) / N**2
    naive = R * (1 - R) / N
    deff = np.maximum(1.0, np.where(naive > 0, var / np.where(naive > 0, naive, 1.0), 1.0))
    return n, N, R, var, deff


def _clopper_pearson_eff(R: np.ndarray, n_eff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = R * n_eff
    with np.errstate(invalid="ignore"):
        lo = np.where(x > 0, stats.beta.ppf(ALPHA / 2, x, n_eff - x + 1), 0.0)
        hi = np.where(x < n_eff, stats.beta.ppf(1 - ALPHA / 2, x + 1, n_eff - x), 1.0)
    return lo, hi


def old_kg(K, M):
    n, N, R, var, deff = _moments(K, M)
    t = stats.t.ppf(1 - ALPHA / 2, n - 1)
    return _clopper_pearson_eff(R, N / deff * (stats.norm.ppf(1 - ALPHA / 2) / t) ** 2)


def kg_df_informative(K, M):
    n, N, R, var, deff = _moments(K, M)
    f = np.minimum((K > 0).sum(1), (K < M).sum(1))
    t = stats.t.ppf(1 - ALPHA / 2, np.clip(f - 1, 1, n - 1))
    return _clopper_pearson_eff(R, N / deff * (stats.norm.ppf(1 - ALPHA / 2) / t) ** 2)


def cr_t(K, M):
    n, N, R, var, deff = _moments(K, M)
    h = stats.t.ppf(1 - ALPHA / 2, n - 1) * np.sqrt(var)
    return np.clip(R - h, 0, 1), np.clip(R + h, 0, 1)


def wilson_eff(K, M):
    n, N, R, var, deff = _moments(K, M)
    ne = N / deff
    t = stats.t.ppf(1 - ALPHA / 2, n - 1)
    c = (R + t**2 / (2 * ne)) / (1 + t**2 / ne)
    h = t / (1 + t**2 / ne) * np.sqrt(R * (1 - R) / ne + t**2 / (4 * ne**2))
    return np.clip(c - h, 0, 1), np.clip(c + h, 0, 1)


def new(K, M):
    reps, n = K.shape
    lo, hi, _ = cluster_interval(K.ravel(), M.ravel(), np.repeat(np.arange(reps), n), reps, ALPHA)
    return lo, hi


def shown(K, M):
    """Which sweeps failure_rates shows the interval for (its rule, as shipped)."""
    reps, n = K.shape
    return _where_shown(M.ravel(), np.repeat(np.arange(reps), n), reps)[0]


def bootstrap(K, M, rng, B=499):
    """Cluster bootstrap over runs: percentile and BCa intervals, vectorised over repetitions."""
    reps, n = K.shape
    out = {"boot pct": (np.empty(reps), np.empty(reps)), "boot BCa": (np.empty(reps), np.empty(reps))}
    R = K.sum(1) / M.sum(1)
    zq = stats.norm.ppf([ALPHA / 2, 1 - ALPHA / 2])
    chunk = max(1, 4_000_000 // (B * n))
    for s in range(0, reps, chunk):
        e = min(reps, s + chunk)
        idx = rng.integers(0, n, (e - s, B, n))
        kb = np.take_along_axis(K[s:e, None, :], idx, 2).sum(2)
        mb = np.take_along_axis(M[s:e, None, :], idx, 2).sum(2)
        Rb = np.sort(kb / mb, 1)
        out["boot pct"][0][s:e], out["boot pct"][1][s:e] = _sorted_quantile(Rb, np.full((e - s, 2), [ALPHA / 2,
                                                                                                    1 - ALPHA / 2]))
        out["boot BCa"][0][s:e], out["boot BCa"][1][s:e] = _sorted_quantile(
            Rb, _bca_levels(K[s:e], M[s:e], R[s:e], Rb, zq))
    return out


def _bca_levels(K, M, R, Rb, zq):
    """The BCa quantile levels (Efron 1987): bias z0 from the resamples below the estimate,
    acceleration from the jackknife over runs (as scipy.stats.bootstrap computes them)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = stats.norm.ppf((Rb < R[:, None]).mean(1))
        jack = (K.sum(1, keepdims=True) - K) / (M.sum(1, keepdims=True) - M)
        d = jack.mean(1, keepdims=True) - jack
        acc = np.nan_to_num((d**3).sum(1) / (6 * ((d**2).sum(1)) ** 1.5))
        levels = np.stack([stats.norm.cdf(z0 + (z0 + q) / (1 - acc * (z0 + q))) for q in zq], 1)
    pct = np.array([ALPHA / 2, 1 - ALPHA / 2])
    return np.where(np.isfinite(levels), levels, pct)  # no resample below R: percentile levels


def _sorted_quantile(S, levels):
    """Quantiles of each sorted row of S at its own levels (linear interpolation, as np.quantile)."""
    B = S.shape[1]
    pos = np.clip(levels, 0, 1) * (B - 1)
    i = np.floor(pos).astype(np.int64)
    j = np.minimum(i + 1, B - 1)
    lo_v, hi_v = np.take_along_axis(S, i, 1), np.take_along_axis(S, j, 1)
    q = lo_v + (pos - i) * (hi_v - lo_v)
    return q[:, 0], q[:, 1]


def check_bca_against_scipy(rng: np.random.Generator) -> float:
    """Largest difference between ours and scipy.stats.bootstrap(method="BCa") on a few sweeps
    (the resamples differ, so they agree to Monte-Carlo error, a few percent of the width)."""
    worst = 0.0
    for _ in range(3):
        K, M = draw(rng, 1, 30, "Beta(0.5, 9.5)", "10..1000")
        ours = bootstrap(K, M, rng, B=9999)["boot BCa"]
        res = stats.bootstrap((K[0], M[0]), lambda k, m, axis=-1: k.sum(axis) / m.sum(axis), paired=True,
                              vectorized=True, n_resamples=9999, method="BCa", rng=rng)
        width = res.confidence_interval.high - res.confidence_interval.low
        worst = max(worst, abs(ours[0][0] - res.confidence_interval.low) / width,
                    abs(ours[1][0] - res.confidence_interval.high) / width)
    return worst


_TABLES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _bb_table(m: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean grid (with the true means of DISTS in it) and the beta-binomial log-likelihood of
    every count 0..m at every (mean, correlation) of the grid, less the constant log C(m, k)."""
    if m not in _TABLES:
        mus = np.unique(np.concatenate([special.expit(np.linspace(special.logit(1e-5), special.logit(0.9), 400)),
                                        [truth_and_icc(d)[0] for d in DISTS]]))
        rhos = np.concatenate([[1e-7], special.expit(np.linspace(-9, 5, 40))])
        mu_g, rho_g = np.meshgrid(mus, rhos, indexing="ij")
        a, b = mu_g * (1 - rho_g) / rho_g, (1 - mu_g) * (1 - rho_g) / rho_g
        k = np.arange(m + 1)[:, None, None]
        _TABLES[m] = mus, (special.betaln(k + a, m - k + b) - special.betaln(a, b)).reshape(m + 1, -1)
    return _TABLES[m]


def beta_binomial_profile(K, M, mu_true):
    """Coverage indicator and width of the beta-binomial profile-likelihood interval for the
    mean, fixed m (the log-likelihood of every count 0..m on a (mean, correlation) grid, once)."""
    m = int(M[0, 0])
    mus, table = _bb_table(m)
    rhos_n = table.shape[1] // len(mus)
    counts = np.stack([np.bincount(row.astype(np.int64), minlength=m + 1) for row in K]).astype(float)
    ll = (counts @ table).reshape(len(K), len(mus), rhos_n).max(2)  # profile over the correlation
    inside = 2 * (ll.max(1, keepdims=True) - ll) <= stats.chi2.ppf(1 - ALPHA, 1)
    covered = inside[:, np.searchsorted(mus, mu_true)]
    lo = mus[np.argmax(inside, 1)]
    hi = mus[len(mus) - 1 - np.argmax(inside[:, ::-1], 1)]
    return covered, hi - lo


def simulate(reps: int, seed: int, log=print) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for evals in EVALS:
        for dist in DISTS:
            mu, icc = truth_and_icc(dist)
            for n in RUNS:
                t0 = time.time()
                K, M = draw(rng, reps, n, dist, evals)
                ivs = {"old KG": old_kg(K, M), "CR-t": cr_t(K, M), "Wilson n_eff": wilson_eff(K, M),
                       "KG df=f-1": kg_df_informative(K, M), "new": new(K, M)}
                ivs.update(bootstrap(K, M, rng))
                row = {"evals": evals, "dist": dist, "n": n, "mu": mu, "icc": icc,
                       "no_failure": float((K.sum(1) == 0).mean())}
                for name, (lo, hi) in ivs.items():
                    row[name] = float(((lo <= mu) & (mu <= hi)).mean())
                    row[name + " width"] = float(np.mean(hi - lo))
                show = shown(K, M)
                lo, hi = ivs["new"]
                cov = (lo <= mu) & (mu <= hi)
                row["shown"] = float(show.mean())
                row["new shown"] = float(cov[show].mean()) if show.any() else float("nan")
                if evals in ("50", "1000"):
                    cov, width = beta_binomial_profile(K, M, mu)
                    row["beta-binomial"], row["beta-binomial width"] = float(cov.mean()), float(width.mean())
                else:
                    row["beta-binomial"] = row["beta-binomial width"] = float("nan")
                rows.append(row)
                log(f"m={evals:9s} {dist:19s} n={n:3d}  old {row['old KG']:.3f}  new {row['new']:.3f} "
                    f"(width {row['new width']:.3f})  {time.time() - t0:.1f}s")
    return rows


def in_rule(evals: str) -> bool:
    return SPREAD[evals] <= CLUSTER_MAX_SPREAD


def min_runs(rows: list[dict], bound: float, method: str = "new") -> int | None:
    """The smallest n of the grid from which on every cell of ``method`` whose evaluation counts
    are within the rule's spread covers >= bound."""
    ok = None
    for n in sorted(RUNS, reverse=True):
        if all(r[method] >= bound for r in rows if r["n"] == n and in_rule(r["evals"])):
            ok = n
        else:
            break
    return ok


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}"


def tables(rows: list[dict], reps: int, seconds: float, seed: int) -> str:
    se = np.sqrt(0.95 * 0.05 / reps)
    bound = 0.95 - 2 * se
    rule = min_runs(rows, bound)
    by = {(r["evals"], r["dist"], r["n"]): r for r in rows}
    inside = [e for e in EVALS if in_rule(e)]
    out = [f"{reps} simulated sweeps per cell (seed {seed}); coverage in percent, Monte-Carlo standard error "
           f"{100 * se:.1f} points at 95%; a cell holds when it covers at least {100 * bound:.1f}% (95% less two "
           f"standard errors). Written by `python scripts/interval_coverage.py --readme` "
           f"({seconds / 60:.0f} min on 2 cores).", "",
           "**The four cases of issue 27 item 7**: old (Korn-Graubard, t with runs - 1 df) and new coverage, "
           "and whether `failure_rates` shows the new interval there:", "",
           "| runs | per-run rate | evaluations per run | old | new | shown | old width | new width |",
           "|---|---|---|---|---|---|---|---|"]
    for n, dist in ISSUE_CASES:
        for evals in inside:
            r = by[(evals, dist, n)]
            out.append(f"| {n} | {dist} | {evals} | {_pct(r['old KG'])} | {_pct(r['new'])} | "
                       f"{'yes' if r['shown'] > 0.5 else 'no (NaN, note)'} | {r['old KG width']:.3f} | "
                       f"{r['new width']:.3f} |")
    out += ["", f"**Lowest coverage over the cells of each number of runs**, evaluation counts {', '.join(inside)} "
            f"({len(DISTS) * len(inside)} cells per row; within the rule's spread):", "",
            "| runs | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for n in RUNS:
        cells = [r for r in rows if r["n"] == n and in_rule(r["evals"])]
        out.append(f"| {n} | " + " | ".join(_pct(min((r[m] for r in cells if r[m] == r[m]), default=np.nan))
                                           for m in METHODS) + " |")
    out += ["", "The same for evaluation counts log-uniform on 10..1000 (spread 100: outside the rule):", "",
            "| runs | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for n in RUNS:
        cells = [r for r in rows if r["n"] == n and not in_rule(r["evals"])]
        out.append(f"| {n} | " + " | ".join(_pct(min((r[m] for r in cells if r[m] == r[m]), default=np.nan))
                                           for m in METHODS) + " |")
    shown_cov = [r["new shown"] for r in rows if r["new shown"] == r["new shown"]]
    out += ["", f"Rule from these tables: the new interval holds from {rule} runs on in every cell within the spread "
            f"(>= {100 * bound:.1f}%); harness/analysis/rates.py has `CLUSTER_MIN_RUNS` = {CLUSTER_MIN_RUNS}, "
            f"`CLUSTER_MAX_SPREAD` = {CLUSTER_MAX_SPREAD:g}"
            + ("." if rule == CLUSTER_MIN_RUNS else " **which does not match: update it**.")
            + f" Coverage of the intervals `failure_rates` shows, over every cell where it shows any: at least "
            f"{_pct(min(shown_cov))}%.",
            "", "**Every cell**: coverage (%) of each method; shown: share of sweeps where `failure_rates` shows "
            "the new interval, and its coverage there; mean widths; no failure: share of sweeps without any failing "
            "evaluation. ✗: the new interval covers less than the bound.", "",
            "| m | per-run rate F | E[p] | ICC | runs | no failure | " + " | ".join(METHODS)
            + " | shown | new, shown | old width | new width |",
            "|---|---|---|---|---|---|" + "---|" * (len(METHODS) + 4)]
    for r in rows:
        flag = "" if r["new"] >= bound else " ✗"
        out.append(f"| {r['evals']} | {r['dist']} | {r['mu']:.3g} | {r['icc']:.2g} | {r['n']} | "
                   f"{_pct(r['no_failure'])} | " + " | ".join(_pct(r[m]) + (flag if m == "new" else "")
                                                              for m in METHODS)
                   + f" | {_pct(r['shown'])} | {_pct(r['new shown'])} | {r['old KG width']:.3f} | "
                   f"{r['new width']:.3f} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2000, help="simulated sweeps per cell (default 2000)")
    ap.add_argument("--seed", type=int, default=20240527)
    ap.add_argument("--readme", action="store_true", help="write the tables into docs/intervals.md")
    a = ap.parse_args()
    t0 = time.time()
    worst = check_bca_against_scipy(np.random.default_rng(a.seed + 1))
    print(f"BCa here vs scipy.stats.bootstrap: largest end difference {100 * worst:.1f}% of the width",
          file=sys.stderr)
    rows = simulate(a.reps, a.seed, log=lambda s: print(s, file=sys.stderr, flush=True))
    md = tables(rows, a.reps, time.time() - t0, a.seed)
    print(md)
    if a.readme:
        write_block(DOC, "interval-coverage", md)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
