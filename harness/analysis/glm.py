"""Binomial GLM fits on aggregated counts (statsmodels), with separation detected.

Counts are aggregated before fitting (one row per distinct covariate pattern, endog
= [failed, passed]); the maximum-likelihood estimate is the same as on one row per run
and the fit costs nothing on a million rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

Link = Literal["logit", "cloglog"]
SEPARATED_SE = 50.0  # a standard error this large on a log-odds scale means the MLE ran off to infinity


@dataclass(frozen=True)
class SlopeFit:
    """The last covariate's coefficient, its Wald interval and its likelihood-ratio p-value."""

    coef: float
    ci_low: float
    ci_high: float
    p_value: float
    ok: bool
    note: str = ""


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
    results is None when the fit failed, separated or did not converge (the note says which)."""
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM

    family = families.Binomial(link=families.links.CLogLog() if link == "cloglog" else families.links.Logit())
    endog = np.column_stack([failed, n - failed]).astype(float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = GLM(endog, exog, family=family, offset=offset).fit(
                start_params=_start(failed, n, exog.shape[1], link, offset), maxiter=200)
        except Exception as exc:  # numerical failure of IRLS
            return None, f"fit failed ({type(exc).__name__})"
    separated = any("separation" in type(w.message).__name__.lower() or "separation" in str(w.message).lower()
                    for w in caught)
    bse = np.asarray(res.bse, dtype=float)
    if separated:
        return None, "separated (the failure rate jumps between 0 and 1)"
    if not res.converged or not np.all(np.isfinite(bse)) or np.any(bse > SEPARATED_SE):
        return None, "did not converge"
    return res, ""


def _profile_bound(failed: np.ndarray, n: np.ndarray, x: np.ndarray, link: Link, offset: np.ndarray | None,
                   coef: float, step: float, critical: float, sign: float) -> float:
    """One end of the profile-likelihood interval of the slope: the value b on the ``sign``
    side of ``coef`` where the deviance of the model with the slope fixed at b (an offset
    b * x, intercept refitted) exceeds the minimum by ``critical``. Infinite when the
    deviance never rises that far (the data cannot bound the slope on that side)."""
    from scipy.optimize import brentq

    ones = np.ones((len(x), 1))
    base = np.zeros_like(x, dtype=float) if offset is None else offset

    def excess(b: float) -> float:
        return deviance(failed, n, ones, link, base + b * x) - critical

    lo, far = coef, coef + sign * step
    if not excess(lo) < 0:
        return float("nan")
    for _ in range(40):
        e = excess(far)
        if not np.isfinite(e):
            return float("nan")
        if e > 0:
            return float(brentq(excess, min(lo, far), max(lo, far), xtol=1e-6 * max(1.0, abs(coef))))
        lo, far = far, far + sign * (far - coef)  # double the distance
        if abs(far - coef) > 1e4:
            break
    return float(sign * np.inf)


def slope_test(failed: np.ndarray, n: np.ndarray, x: np.ndarray, link: Link = "logit",
               offset: np.ndarray | None = None, alpha: float = 0.05) -> SlopeFit:
    """Binomial GLM failed/n ~ 1 + x (+ offset): the slope of x, its profile-likelihood
    interval and the likelihood-ratio test against the intercept-only model (same offset).
    Interval and p-value come from the same likelihood, so they always agree."""
    from scipy import stats

    ones = np.ones_like(x, dtype=float)
    full, note = fit_binomial(failed, n, np.column_stack([ones, x]), link, offset, alpha)
    if full is None:
        return SlopeFit(np.nan, np.nan, np.nan, np.nan, False, note)
    null, note0 = fit_binomial(failed, n, ones[:, None], link, offset, alpha)
    if null is None:
        return SlopeFit(np.nan, np.nan, np.nan, np.nan, False, f"null model {note0}")
    lr = max(0.0, float(null.deviance - full.deviance))
    coef, se = float(full.params[-1]), float(full.bse[-1])
    critical = float(full.deviance) + float(stats.chi2.ppf(1 - alpha, 1))
    step = max(2.0 * se, 1e-3)
    lo = _profile_bound(failed, n, x, link, offset, coef, step, critical, -1.0)
    hi = _profile_bound(failed, n, x, link, offset, coef, step, critical, +1.0)
    return SlopeFit(coef, lo, hi, float(stats.chi2.sf(lr, 1)), True)


def deviance(failed: np.ndarray, n: np.ndarray, exog: np.ndarray, link: Link = "logit",
             offset: np.ndarray | None = None) -> float:
    """Deviance of the binomial model failed/n ~ exog (+ offset). Separation is tolerated:
    the deviance converges to its limit even when some coefficients run off to infinity,
    which is what a likelihood-ratio comparison of nested models needs."""
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM

    family = families.Binomial(link=families.links.CLogLog() if link == "cloglog" else families.links.Logit())
    endog = np.column_stack([failed, n - failed]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = GLM(endog, exog, family=family, offset=offset).fit(
                start_params=_start(failed, n, exog.shape[1], link, offset), maxiter=200)
            return float(res.deviance)
        except Exception:  # numerical failure of IRLS
            return float("nan")
