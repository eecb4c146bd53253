"""Peaks over threshold: a generalized Pareto fit to the upper tail and its quantile.

The fit is ``scipy.stats.genpareto.fit`` (maximum likelihood, location fixed at 0) on
the exceedances over a high threshold. Goodness of fit, ``gof``:

* ``"ks"`` (default, fast): ``scipy.stats.kstest`` against the fitted GPD. The
  parameters are estimated from the same exceedances, so the p-value is conservative
  (the test rejects less often than its nominal level).
* ``"ad"``: ``scipy.stats.goodness_of_fit`` with the Anderson-Darling statistic and a
  Monte Carlo null that refits the GPD on every simulated sample (exact level, ~1-2 s
  per fit).

Every refusal to extrapolate returns a plain-words reason instead of a number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

Gof = Literal["ks", "ad"]


@dataclass(frozen=True)
class TailFit:
    """The GPD estimate of the quantile exceeded with probability ``exceed`` (nan when refused)."""

    value: float
    ok: bool
    note: str  # the fit summary, or why there is no estimate
    threshold: float = np.nan
    n_exceed: int = 0
    shape: float = np.nan
    scale: float = np.nan
    gof_p: float = np.nan


def pot_quantile(x: np.ndarray, exceed: float, *, tail_fraction: float = 0.2, min_exceedances: int = 15,
                 max_exceedances: int = 500, gof: Gof = "ks", gof_alpha: float = 0.05,
                 n_mc_samples: int = 99, seed: int = 0) -> TailFit:
    """Value exceeded with probability ``exceed`` under a GPD fitted to the top of ``x``.

    The threshold is the order statistic leaving ``tail_fraction`` of the values above it
    (at most ``max_exceedances``); fewer than ``min_exceedances`` values above it, a tail
    with fewer than 5 distinct values, a rejected fit (p < gof_alpha) or a non-finite
    quantile all refuse with a stated reason.
    """
    from scipy import stats

    x = np.sort(np.asarray(x, dtype=float)[np.isfinite(x)])
    n = x.size
    k = int(min(max_exceedances, np.floor(tail_fraction * n)))
    if k < min_exceedances:
        return TailFit(np.nan, False, f"tail too small: {n} runs give {max(k, 0)} above the threshold "
                                      f"(a fit needs {min_exceedances})")
    u = x[n - k - 1]
    y = x[x > u] - u
    k = y.size
    if k < min_exceedances or np.unique(y).size < 5:
        return TailFit(np.nan, False, f"tail has {np.unique(y).size} distinct value(s) above the threshold "
                                      "(discrete or constant values): no continuous fit", u, k)
    if exceed >= k / n:
        return TailFit(np.nan, False, f"target {exceed:.2%} lies inside the observed runs ({k}/{n} above "
                                      "the threshold): no extrapolation needed", u, k)
    unit = float(np.std(y)) or 1.0  # fit on a unit scale, for the optimizer's sake
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shape, _, scale = stats.genpareto.fit(y / unit, floc=0)
        if gof == "ad":
            p = stats.goodness_of_fit(stats.genpareto, y / unit, known_params={"loc": 0}, statistic="ad",
                                      n_mc_samples=n_mc_samples, rng=np.random.default_rng(seed)).pvalue
            test = "Anderson-Darling (Monte Carlo)"
        elif gof == "ks":
            p = stats.kstest(y / unit, stats.genpareto(shape, 0, scale).cdf).pvalue
            test = "KS"
        else:
            raise ValueError(f"gof must be 'ks' or 'ad', not {gof!r}")
    scale *= unit
    summary = f"GPD shape {shape:.2f}, {k} exceedances, {test} p={p:.2f}"
    if not p >= gof_alpha:
        return TailFit(np.nan, False, f"GPD fit rejected ({test} p={p:.3f} < {gof_alpha})", u, k, shape, scale, p)
    q = u + float(stats.genpareto.ppf(1.0 - exceed * n / k, shape, 0, scale))
    if not np.isfinite(q):
        return TailFit(np.nan, False, f"GPD quantile is not finite ({summary})", u, k, shape, scale, p)
    return TailFit(q, True, summary, u, k, shape, scale, p)
