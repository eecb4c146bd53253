"""Binomial GLM fits on aggregated counts (statsmodels), with separation judged from the data.

Counts are aggregated before fitting (one row per distinct covariate pattern, endog
= [failed, passed]); the maximum-likelihood estimate is the same as on one row per run
and the fit costs nothing on a million rows.

Separation. The MLE of a binomial GLM with a logit, probit or complementary log-log link
is infinite exactly when the data are completely or quasi-completely separated: some
direction d of the coefficients has x'd >= 0 for every failure and x'd <= 0 for every
pass, with at least one strict inequality (Albert & Anderson 1984, Biometrika 71:1-10;
Silvapulle 1981, JRSS B 43:310-313, for other links; offsets change nothing). That is a
linear program (Konis 2007, "Linear programming algorithms for detecting separated data
in binary logistic regression models", DPhil thesis, Oxford; R package
``detectseparation``), solved here with ``scipy.optimize.linprog``; see
``detect_separation``. statsmodels' ``PerfectSeparationWarning`` is not used: it fires
whenever the fitted rates equal the observed ones, which is also what a *saturated* fit
does (two data sizes, two parameters) -- a finite slope, not a separated one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Link = Literal["logit", "cloglog"]
_LP_TOL = 1e-7  # an LP optimum above this (coefficients scaled to [-1, 1]) is a strict inequality


@dataclass(frozen=True)
class Separation:
    """What ``detect_separation`` found. ``separated``: the MLE does not exist (some
    coefficients run off to infinity). ``direction``: per coefficient +1 / -1 when it can
    only run off to +inf / -inf, 0 when it stays finite (or, in a complete separation that
    leaves its sign free, when either sign fits). ``infinite``: per coefficient, whether it
    runs off at all. ``boundary``: per covariate pattern, True when the pattern is not
    predicted perfectly in the limit (it still carries likelihood: the deviance of the
    separated fit is that of the model on these patterns alone)."""

    separated: bool
    infinite: np.ndarray = field(repr=False)
    direction: np.ndarray = field(repr=False)
    boundary: np.ndarray = field(repr=False)


def detect_separation(failed: np.ndarray, n: np.ndarray, exog: np.ndarray) -> Separation:
    """Judge (quasi-)complete separation of failed/n ~ exog from the data (a linear program;
    Konis 2007). Each covariate pattern with a failure gives a row +x, each with a pass a row
    -x (a pattern with both gives both, which forces x'd = 0). The data are separated iff
    some d with every row . d >= 0 and -1 <= d <= 1 has a row . d > 0: maximise the sum of
    the rows' values (Konis' LP), then, to find every row that can be made strict (the
    relative interior of the cone of such d), maximise over the rows not yet strict until no
    new one appears. A coefficient is infinite iff it is non-zero somewhere in that cone
    (two more LPs per coefficient). ``exog`` must have full column rank."""
    from scipy.optimize import linprog

    k = np.asarray(failed, dtype=float)
    m = np.asarray(n, dtype=float)
    X = np.asarray(exog, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    p = X.shape[1]
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale  # separation does not depend on the columns' scale
    has_fail, has_pass = k > 0, (m - k) > 0
    rows = np.vstack([Xs[has_fail], -Xs[has_pass]])
    pattern = np.r_[np.flatnonzero(has_fail), np.flatnonzero(has_pass)]
    none = Separation(False, np.zeros(p, bool), np.zeros(p), np.ones(len(X), bool))
    if len(rows) == 0:
        return none

    def best(c: np.ndarray) -> np.ndarray | None:
        res = linprog(-c, A_ub=-rows, b_ub=np.zeros(len(rows)), bounds=[(-1.0, 1.0)] * p, method="highs")
        return res.x if res.status == 0 else None

    strict = np.zeros(len(rows), bool)
    cone = np.zeros(p)  # a sum of cone members: strict on every row found so far
    while not strict.all():
        d = best(rows[~strict].sum(axis=0))
        if d is None:
            break
        new = rows @ d > _LP_TOL
        if not (new & ~strict).any():
            break
        strict |= new
        cone += d
    if not strict.any():
        return none
    direction = np.zeros(p)
    infinite = np.zeros(p, bool)
    for j in range(p):
        e = np.zeros(p)
        e[j] = 1.0
        up, down = best(e), best(-e)
        can_up = up is not None and up[j] > _LP_TOL
        can_down = down is not None and down[j] < -_LP_TOL
        infinite[j] = can_up or can_down
        direction[j] = 1.0 if can_up and not can_down else -1.0 if can_down and not can_up else 0.0
    boundary = np.ones(len(X), bool)
    boundary[pattern[strict]] = False  # perfectly predicted in the limit
    # a pattern with both failures and passes always stays (its two rows force x'd = 0)
    boundary[has_fail & has_pass] = True
    return Separation(True, infinite, direction, boundary)


@dataclass(frozen=True)
class SlopeFit:
    """The last covariate's coefficient, its profile-likelihood interval and its
    likelihood-ratio p-value. ``ok``: a finite MLE was found. ``separated``: the data are
    separated and the slope is unbounded; then ``coef`` is +inf or -inf, the interval's
    finite end still comes from the profile likelihood (the other end is infinite) and
    ``p_value`` is the likelihood-ratio test against the supremum of the likelihood."""

    coef: float
    ci_low: float
    ci_high: float
    p_value: float
    ok: bool
    note: str = ""
    separated: bool = False


def _family(link: Link):
    from statsmodels.genmod import families

    return families.Binomial(link=families.links.CLogLog() if link == "cloglog" else families.links.Logit())


def _start(failed: np.ndarray, n: np.ndarray, k: int, link: Link, offset: np.ndarray | None) -> np.ndarray | None:
    """Starting values: the pooled rate as intercept, zero slopes; for a cloglog model with
    an offset, the pooled hazard per unit of exposure (IRLS's default start ignores the
    offset and runs away when offsets span orders of magnitude). None (statsmodels'
    data-based start) for a logit model with an offset."""
    p = float(np.clip(failed.sum() / n.sum(), 1e-12, 1 - 1e-12))
    if offset is None:
        a = np.log(p / (1 - p)) if link == "logit" else np.log(-np.log1p(-p))
    elif link == "cloglog":  # P ~ h * exp(offset) when small: h from failures per unit of exposure
        a = np.log(max(failed.sum(), 0.5) / float((n * np.exp(offset)).sum()))
    else:
        return None
    return np.r_[a, np.zeros(k - 1)]


def fit_binomial(failed: np.ndarray, n: np.ndarray, exog: np.ndarray, link: Link = "logit",
                 offset: np.ndarray | None = None, alpha: float = 0.05) -> tuple[object | None, str]:
    """Fit failed/n ~ exog (exog includes the intercept column). Returns (results, note);
    results is None when the data are separated (judged from the data by
    ``detect_separation``, never from statsmodels' warning), the fit failed or did not
    converge (the note says which)."""
    from statsmodels.genmod.generalized_linear_model import GLM

    failed, n = np.asarray(failed, dtype=float), np.asarray(n, dtype=float)
    if detect_separation(failed, n, exog).separated:
        return None, "separated (every failure lies on one side of a cut, every pass on the other)"
    endog = np.column_stack([failed, n - failed])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PerfectSeparationWarning also fires on saturated fits: not a signal
        try:
            res = GLM(endog, exog, family=_family(link), offset=offset).fit(
                start_params=_start(failed, n, exog.shape[1], link, offset), maxiter=200)
            bse = np.asarray(res.bse, dtype=float)
        except Exception as exc:  # numerical failure of IRLS
            return None, f"fit failed ({type(exc).__name__})"
    if not res.converged or not np.all(np.isfinite(bse)) or not np.all(np.isfinite(res.params)):
        return None, "did not converge"
    return res, ""


def _loglik_terms(eta: np.ndarray, link: Link) -> tuple[np.ndarray, np.ndarray]:
    """(log mu, log(1 - mu)) for the linear predictor eta, stable at both ends."""
    if link == "logit":
        return -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
    h = np.exp(np.minimum(eta, 700.0))
    with np.errstate(divide="ignore"):
        log_mu = np.where(eta < -30, eta, np.log(-np.expm1(-h)))
    return log_mu, -h


def _deviance_at(failed: np.ndarray, n: np.ndarray, eta: np.ndarray, link: Link) -> float:
    from scipy.special import xlogy

    log_mu, log_1mu = _loglik_terms(eta, link)
    passed = n - failed
    sat = xlogy(failed, failed / np.where(n > 0, n, 1)) + xlogy(passed, passed / np.where(n > 0, n, 1))
    fit = np.where(failed > 0, failed * log_mu, 0.0) + np.where(passed > 0, passed * log_1mu, 0.0)
    return float(2.0 * np.sum(sat - fit))


def intercept_deviance(failed: np.ndarray, n: np.ndarray, offset: np.ndarray | None = None,
                       link: Link = "logit") -> float:
    """Deviance of the intercept-only model failed/n ~ 1 (+ offset), minimised exactly: the
    score in the intercept is monotone, so its root is bracketed and found with brentq.
    When nothing (or everything) fails the intercept runs off and the limit is returned."""
    from scipy.optimize import brentq

    failed, n = np.asarray(failed, dtype=float), np.asarray(n, dtype=float)
    off = np.zeros_like(n) if offset is None else np.asarray(offset, dtype=float)
    if failed.sum() == 0 or failed.sum() == n.sum():
        big = 1e3 * (1.0 if failed.sum() else -1.0) - (off.min() if failed.sum() else off.max())
        return _deviance_at(failed, n, big + off, link) if n.sum() > 0 else 0.0

    def score(a: float) -> float:  # d loglik / d a; decreasing in a
        eta = a + off
        log_mu, log_1mu = _loglik_terms(eta, link)
        if link == "logit":
            return float(np.sum(failed - n * np.exp(log_mu)))
        # d log mu / d eta = h (1 - mu) / mu, d log(1 - mu) / d eta = -h, with h = exp(eta) = -log(1 - mu)
        return float(np.sum(failed * np.exp(eta + log_1mu - log_mu) + (n - failed) * log_1mu))

    lo, hi = -1.0 - off.max(), 1.0 - off.min()
    while score(lo) < 0:
        lo -= 2 * (hi - lo)
    while score(hi) > 0:
        hi += 2 * (hi - lo)
    a = brentq(score, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=500)
    return _deviance_at(failed, n, a + off, link)


def _profile(failed: np.ndarray, n: np.ndarray, x: np.ndarray, link: Link, offset: np.ndarray | None):
    base = np.zeros_like(x, dtype=float) if offset is None else np.asarray(offset, dtype=float)
    return lambda b: intercept_deviance(failed, n, base + b * x, link)


def _profile_bound(failed: np.ndarray, n: np.ndarray, x: np.ndarray, link: Link, offset: np.ndarray | None,
                   coef: float, step: float, critical: float, sign: float) -> float:
    """One end of the profile-likelihood interval of the slope: the value b on the ``sign``
    side of ``coef`` where the deviance of the model with the slope fixed at b (an offset
    b * x, intercept refitted) exceeds the minimum by ``critical``. Infinite when the
    deviance never rises that far (the data cannot bound the slope on that side)."""
    from scipy.optimize import brentq

    dev = _profile(failed, n, x, link, offset)

    def excess(b: float) -> float:
        return dev(b) - critical

    lo, far = coef, coef + sign * step
    if not excess(lo) < 0:
        return float("nan")
    for _ in range(60):
        e = excess(far)
        if not np.isfinite(e):
            return float("nan")
        if e > 0:
            return float(brentq(excess, min(lo, far), max(lo, far), xtol=1e-6 * max(1.0, abs(coef))))
        lo, far = far, coef + 2.0 * (far - coef)  # double the distance
        if abs(far - coef) > 1e4:
            break
    return float(sign * np.inf)


def _separated_slope(failed: np.ndarray, n: np.ndarray, x: np.ndarray, link: Link, offset: np.ndarray | None,
                     sep: Separation, alpha: float) -> SlopeFit:
    """The slope of separated data: unbounded in the direction the LP found; the other end of
    its profile-likelihood interval is where the profile deviance exceeds its infimum (the
    deviance of the boundary patterns alone) by the chi-square critical value."""
    from scipy import stats

    sign = float(sep.direction[-1])
    if sign == 0:
        return SlopeFit(np.nan, np.nan, np.nan, np.nan, False, "separated: the intercept is unbounded, not the slope",
                        separated=True)
    b = sep.boundary
    off = None if offset is None else np.asarray(offset, dtype=float)
    # the boundary patterns share one x (x'd = 0 with a non-zero slope in d): an intercept fits them
    floor = intercept_deviance(failed[b], n[b], None if off is None else off[b], link) if b.any() else 0.0
    null = intercept_deviance(failed, n, off, link)
    lr = max(0.0, null - floor)
    critical = floor + float(stats.chi2.ppf(1 - alpha, 1))
    dev = _profile(failed, n, x, link, offset)
    far = 1.0
    while dev(sign * far) - critical >= 0 and far < 1e4:
        far *= 2
    limit = float("nan")
    if far < 1e4:
        limit = _profile_bound(failed, n, x, link, offset, sign * far, far, critical, -sign)
    lo, hi = (limit, np.inf) if sign > 0 else (-np.inf, limit)
    return SlopeFit(sign * np.inf, lo, hi, float(stats.chi2.sf(lr, 1)), False,
                    "separated: the slope is unbounded", separated=True)


def slope_test(failed: np.ndarray, n: np.ndarray, x: np.ndarray, link: Link = "logit",
               offset: np.ndarray | None = None, alpha: float = 0.05) -> SlopeFit:
    """Binomial GLM failed/n ~ 1 + x (+ offset): the slope of x, its profile-likelihood
    interval and the likelihood-ratio test against the intercept-only model (same offset).
    Interval and p-value come from the same likelihood, so they always agree. Two values
    of x give a saturated fit (fitted = observed) with a finite slope unless a rate is 0 or
    1; separated data (judged by ``detect_separation``) give an unbounded slope
    (``separated``), with the finite end of the interval and the LR p-value against the
    supremum of the likelihood."""
    from scipy import stats

    failed, n, x = (np.asarray(a, dtype=float) for a in (failed, n, x))
    ones = np.ones_like(x)
    exog = np.column_stack([ones, x])
    sep = detect_separation(failed, n, exog)
    if sep.separated:
        return _separated_slope(failed, n, x, link, offset, sep, alpha)
    full, note = fit_binomial(failed, n, exog, link, offset, alpha)
    if full is None:
        return SlopeFit(np.nan, np.nan, np.nan, np.nan, False, note)
    null = intercept_deviance(failed, n, offset, link)
    dev_full = _deviance_at(failed, n, exog @ np.asarray(full.params) + (0 if offset is None else offset), link)
    lr = max(0.0, null - dev_full)
    coef, se = float(full.params[-1]), float(full.bse[-1])
    critical = dev_full + float(stats.chi2.ppf(1 - alpha, 1))
    step = max(2.0 * se, 1e-3)
    lo = _profile_bound(failed, n, x, link, offset, coef, step, critical, -1.0)
    hi = _profile_bound(failed, n, x, link, offset, coef, step, critical, +1.0)
    return SlopeFit(coef, lo, hi, float(stats.chi2.sf(lr, 1)), True)


def deviance(failed: np.ndarray, n: np.ndarray, exog: np.ndarray, link: Link = "logit",
             offset: np.ndarray | None = None) -> float:
    """Deviance of the binomial model failed/n ~ exog (+ offset). Separation is tolerated:
    the deviance converges to its limit even when some coefficients run off to infinity,
    which is what a likelihood-ratio comparison of nested models needs."""
    from statsmodels.genmod.generalized_linear_model import GLM

    failed, n = np.asarray(failed, dtype=float), np.asarray(n, dtype=float)
    endog = np.column_stack([failed, n - failed])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = GLM(endog, exog, family=_family(link), offset=offset).fit(
                start_params=_start(failed, n, exog.shape[1], link, offset), maxiter=200)
            return float(res.deviance)
        except Exception:  # numerical failure of IRLS
            return float("nan")
