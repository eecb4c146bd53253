"""Two-sample statistics for comparing two sweeps: failure rates paired by seed, or independent.

Runs are deterministic by seed, so two sweeps over the same seeds are a paired design: the
information is in the discordant pairs (a seed that fails on one side only). Each function
returns plain numbers; :mod:`harness.analysis.compare` applies them per cell and check.

Methods:
- paired test: the exact McNemar test, a two-sided binomial test of the discordant pairs
  against 1/2 (McNemar 1947; scipy.stats.binomtest);
- paired interval for the difference of rates: Tango's score interval (Tango 1998, Stat. Med.
  17:891-908), also the equivalence test's (its 1 - 2 alpha interval inside the margin): an
  adjusted Wald interval (Bonett and Price 2012) was tried first and called 'same' more often
  than alpha at the margin with many pairs;
- independent test: Fisher's exact test (scipy.stats.fisher_exact); interval: Newcombe's hybrid
  score interval (Newcombe 1998, method 10; statsmodels confint_proportions_2indep "newcomb");
- shift of a value on the same seeds: the Wilcoxon signed-rank test (scipy.stats.wilcoxon, zeros
  split with Pratt's method) and the median difference with its distribution-free order-statistic
  interval (the sign-test interval; Conover, Practical Nonparametric Statistics, 3rd ed., 3.6);
- runs needed: Connor's (1987, Biometrics 43:207-211) sample size for McNemar's test, and for
  independent runs statsmodels' NormalIndPower on Cohen's h.
The coverage and error rates are checked by simulation in tests/test_analysis_compare.py and
docs/compare.md (python scripts/compare_tables.py --write).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    """after - before, as a rate difference with its interval and a two-sided exact p-value."""

    diff: float
    low: float
    high: float
    p: float
    method: str


def _tango_score(delta: float, worse: int, better: int, pairs: int) -> float:
    """Tango's score statistic for H: p_worse - p_better = delta (the restricted MLE of p_better
    in closed form, Tango 1998 eq. 3)."""
    a = 2 * pairs
    b = -worse - better + (2 * pairs - worse + better) * delta
    c = -better * delta * (1 - delta)
    q = (math.sqrt(max(b * b - 4 * a * c, 0.0)) - b) / (2 * a)
    excess = worse - better - pairs * delta
    var = pairs * (2 * q + delta * (1 - delta))
    if var <= 0:
        return 0.0 if excess == 0 else math.copysign(math.inf, excess)
    return excess / math.sqrt(var)


def tango_interval(worse: int, better: int, pairs: int, alpha: float = 0.05) -> tuple[float, float]:
    """Tango's (1998) score interval for the paired difference of rates: every delta whose score
    statistic lies within the two-sided normal quantile."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    z, est, edge = norm.ppf(1 - alpha / 2), (worse - better) / pairs, 1 - 1e-12
    low = -1.0 if _tango_score(-edge, worse, better, pairs) <= z else \
        brentq(lambda d: _tango_score(d, worse, better, pairs) - z, -edge, est)
    high = 1.0 if _tango_score(edge, worse, better, pairs) >= -z else \
        brentq(lambda d: _tango_score(d, worse, better, pairs) + z, est, edge)
    return float(low), float(high)


def paired_difference(worse: int, better: int, pairs: int, alpha: float = 0.05) -> Difference:
    """The rate difference after - before over ``pairs`` runs matched by seed, of which ``worse``
    passed before and failed after, and ``better`` the reverse."""
    from scipy.stats import binomtest

    if pairs <= 0:
        return Difference(math.nan, math.nan, math.nan, math.nan, "paired")
    low, high = tango_interval(worse, better, pairs, alpha)
    discordant = worse + better
    p = 1.0 if discordant == 0 else float(binomtest(worse, discordant, 0.5).pvalue)
    return Difference((worse - better) / pairs, low, high, p, "paired")


def independent_difference(failed_before: int, runs_before: int, failed_after: int, runs_after: int,
                           alpha: float = 0.05) -> Difference:
    """The rate difference after - before between runs that share no seed."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.proportion import confint_proportions_2indep

    if runs_before <= 0 or runs_after <= 0:
        return Difference(math.nan, math.nan, math.nan, math.nan, "independent")
    low, high = confint_proportions_2indep(failed_after, runs_after, failed_before, runs_before, method="newcomb",
                                           compare="diff", alpha=alpha)
    table = [[failed_after, runs_after - failed_after], [failed_before, runs_before - failed_before]]
    p = float(fisher_exact(table).pvalue)
    return Difference(failed_after / runs_after - failed_before / runs_before, float(low), float(high), p,
                      "independent")


@dataclass(frozen=True)
class Shift:
    """The paired shift of a value (after - before): median, its interval, the signed-rank p-value."""

    median: float
    low: float
    high: float
    p: float
    n: int


def paired_shift(before: np.ndarray, after: np.ndarray, alpha: float = 0.05) -> Shift:
    """Shift of ``after - before`` over pairs where both are finite."""
    from scipy.stats import binom, wilcoxon

    with np.errstate(invalid="ignore"):  # -inf - -inf: both saw a NaN/Inf, no finite shift
        d = np.asarray(after, float) - np.asarray(before, float)
    d = np.sort(d[np.isfinite(d)])
    n = len(d)
    if n == 0:
        return Shift(math.nan, math.nan, math.nan, math.nan, 0)
    # the largest k with P(Bin(n, 1/2) <= k - 1) <= alpha / 2: [d_(k), d_(n-k+1)] covers the median
    k = int(binom.ppf(alpha / 2, n, 0.5))
    if binom.cdf(k, n, 0.5) > alpha / 2:
        k -= 1
    low, high = (d[k], d[n - k - 1]) if k >= 0 else (-math.inf, math.inf)
    if not np.any(d != 0):
        p = 1.0
    else:
        p = float(wilcoxon(d, zero_method="pratt").pvalue) if n >= 2 else 1.0
    return Shift(float(np.median(d)), float(low), float(high), p, n)


def runs_needed_paired(effect: float, discordant: float, alpha: float, power: float = 0.8) -> float:
    """Pairs McNemar's test needs to detect a rate difference ``effect`` when a share ``discordant``
    of pairs differ (Connor 1987); inf when no such design exists (|effect| > discordant)."""
    from scipy.stats import norm

    effect = abs(effect)
    if not effect > 0 or not discordant > 0 or effect > discordant:
        return math.inf
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n = (za * math.sqrt(discordant) + zb * math.sqrt(max(discordant - effect ** 2, 0.0))) ** 2 / effect ** 2
    return float(math.ceil(n))


def runs_needed_independent(rate: float, effect: float, alpha: float, power: float = 0.8) -> float:
    """Runs per side a two-sided test of two independent rates needs to tell ``rate`` from ``rate +
    effect`` (normal approximation on Cohen's h; statsmodels NormalIndPower)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    other = min(max(rate + effect, 0.0), 1.0)
    h = abs(proportion_effectsize(other, min(max(rate, 0.0), 1.0)))
    if not h > 0:
        return math.inf
    return float(math.ceil(NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=1.0)))


def mcnemar_min_p(flips: int) -> float:
    """The smallest p-value the exact McNemar test can give with ``flips`` discordant pairs (all one way)."""
    return min(1.0, 2 * 0.5 ** flips)


def fisher_min_p(failed_before: int, runs_before: int, failed_after: int, runs_after: int) -> float:
    """The smallest p-value Fisher's exact test can give with these margins (every failure on one side)."""
    from scipy.stats import fisher_exact

    k, n1, n2 = failed_before + failed_after, runs_before, runs_after
    if k == 0 or k == n1 + n2:
        return 1.0
    extremes = [min(k, n2), max(0, k - n1)]  # failures after: as many as can be, as few as can be
    return min(float(fisher_exact([[x, n2 - x], [k - x, n1 - k + x]]).pvalue) for x in extremes)


def min_flips(alpha: float) -> int:
    """The fewest flipped pairs with which McNemar's exact test can reach ``alpha``."""
    return next(d for d in range(1, 64) if mcnemar_min_p(d) <= alpha)


def holm_family(p: np.ndarray, min_p: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(tested, Holm-adjusted p) over the tests that can reject at ``alpha``: a test whose smallest
    attainable p-value exceeds alpha cannot reject at any level Holm uses, so it leaves the family
    (Tarone 1990, Biometrics 46:515-522); its adjusted p is 1. NaN p-values are not tests."""
    from statsmodels.stats.multitest import multipletests

    p, min_p = np.asarray(p, float), np.asarray(min_p, float)
    tested = ~np.isnan(p) & ~(np.nan_to_num(min_p, nan=0.0) > alpha)
    adjusted = np.where(np.isnan(p), np.nan, 1.0)
    if tested.any():
        adjusted[tested] = multipletests(p[tested], alpha=alpha, method="holm")[1]
    return tested, adjusted
