"""Analysis of sweep results: failure rates, the evaluation-count decomposition, trends
over data size, tolerance calibration and factor attribution (pandas, scipy, statsmodels).

    import harness
    from harness import analysis as A
    df = harness.load_results("results/smoke")
    A.failure_rates(df, by=["check", "precision", "data_size"])   # runs, failed, rate, 95% Wilson CI
    A.trend(df)                      # does the rate rise with data size? (logistic on log10 size)
    A.explain_rise(df)               # ... and is that only more evaluations per run?
    A.calibrate_tolerance(df)        # bound with "<= 1% false alarms at 95% confidence", or what is missing
    A.attribute_factors(df)          # which axis moves the rate most
    A.wide(df)                       # one row per run, a column per check and field ("loss_below/passed")

Every function takes the tidy frame (one row per (run, check)) and returns a new frame.
Runs that errored, crashed or timed out are counted apart (``incomplete``) or listed by
``incomplete_runs``; nothing is dropped silently. No TensorFlow or Ray import here.
"""

from __future__ import annotations

from harness.analysis.alarms import false_alarms, match_outcome
from harness.analysis.attribution import attribute_factors
from harness.analysis.bounds import gpd_bound, order_statistic_bound, runs_needed, safe_bound, validate
from harness.analysis.decomposition import decompose, explain_rise
from harness.analysis.frame import (AXES, CONFIG_AXES, completed, directions, factor_axes, incomplete_runs, wide,
                                    with_variant)
from harness.analysis.glm import detect_separation
from harness.analysis.rates import cluster_interval, failure_rates, wilson_interval
from harness.analysis.tail import TailFit, pot_quantile
from harness.analysis.tolerance import calibrate_tolerance, split_seeds
from harness.analysis.verdicts import BoundVerdict, ValidationVerdict
from harness.analysis.trend import trend
from harness.analysis.verdicts import RiseVerdict, TrendVerdict
from harness.analysis.verdicts import AlarmVerdict

__all__ = [
    "AXES", "CONFIG_AXES", "TailFit", "attribute_factors", "calibrate_tolerance", "completed", "directions",
    "decompose", "explain_rise", "factor_axes", "failure_rates", "incomplete_runs", "pot_quantile", "split_seeds",
    "trend", "wide", "wilson_interval", "with_variant",
    "RiseVerdict", "TrendVerdict", "cluster_interval", "detect_separation",
    "BoundVerdict", "ValidationVerdict", "gpd_bound", "order_statistic_bound", "runs_needed", "safe_bound", "validate",
    "AlarmVerdict", "false_alarms", "match_outcome",
]
