"""False alarms of detector checks, measured against an outcome check.

A training-health detector (exploding gradient, dead ReLU, ...) is a check that "fires"
(fails) during a run. Whether an alarm is false depends on how the run ended: the user
names an OUTCOME check (e.g. an accuracy floor judged at the end, or a finite-loss check)
whose pass/fail says whether the run was healthy. Every other check is a detector, and
per detector and per group of ``by`` (the other axes; seeds are the replicates):

* false-alarm rate: the share of healthy runs (outcome passed) in which it fires;
* detection rate (sensitivity): the share of unhealthy runs (outcome failed) in which it fires;
* ppv (precision, positive predictive value): the share of its alarms that came from
  unhealthy runs. It depends on how common unhealthy runs are in the sweep, so it does not
  carry over to a sweep with another mix of configurations.

Unit: a completed run (status ok) in which both the outcome and the detector have a
pass/fail. Runs that did not complete are counted apart (``incomplete``), completed runs
where either check has no result apart again (``unknown``); neither is in any rate.

Methods:

* intervals: Wilson score intervals over runs (Wilson 1927, *JASA* 22:209-212; recommended
  over the Wald interval by Brown, Cai & DasGupta 2001, *Statistical Science* 16:101-133),
  via ``rates.wilson_interval``. A rate with no run under it (e.g. no unhealthy run in the
  cell) is NaN, never 0, and the sentence says it is unknown;
* association: is firing associated with an unhealthy outcome? Fisher's exact test of the
  2x2 table fired x outcome, one-sided (the detector fires more often in unhealthy runs),
  conditional on the margins (Fisher 1934, *Statistical Methods for Research Workers*,
  section 21.02; the hypergeometric tail, same as ``scipy.stats.fisher_exact(...,
  alternative="greater")``), with the sample odds ratio. Being exact and conditional it is
  conservative: under independence it calls a detector informative in at most ``alpha`` of
  cells. A cell whose margins cannot reach ``alpha`` even with the most extreme table
  (p >= 1 / C(runs, unhealthy runs), e.g. one unhealthy run out of five) is not tested;
* verdict (``AlarmVerdict``), first that applies: NOISY when the false-alarm rate's lower
  limit is above ``max_false_alarm``; INFORMATIVE when the test finds that firing goes with
  an unhealthy outcome (p < alpha); QUIET when the false-alarm rate's upper limit is at most
  ``max_false_alarm``; UNINFORMATIVE when the test could have found an association and did
  not; NOT_ENOUGH_DATA otherwise (no healthy or no unhealthy runs, or too few to test).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import comb

import numpy as np
import pandas as pd

from harness.analysis.frame import failed_mask, group_keys, ok_mask, pct, pformat, require
from harness.analysis.rates import wilson_interval
from harness.analysis.verdicts import AlarmVerdict

COLUMNS = ("outcome", "runs", "incomplete", "unknown", "outcome_passed", "outcome_failed", "fired",
           "fired_when_healthy", "false_alarm_rate", "false_alarm_ci_low", "false_alarm_ci_high",
           "fired_when_unhealthy", "detection_rate", "detection_ci_low", "detection_ci_high",
           "ppv", "ppv_ci_low", "ppv_ci_high", "odds_ratio", "p_value", "status", "verdict")


def match_outcome(checks: Iterable[object], outcome: str) -> list[str]:
    """The check names that ``outcome`` names: itself when a check has exactly that name,
    otherwise every ``scenario/check`` or ``scenario[variant]/check`` (``report.prepare``)
    whose part after the last "/" is ``outcome``. Raises a one-line ValueError naming the
    outcome and the available checks when nothing matches."""
    names = sorted({c for c in checks if isinstance(c, str) and c})
    if outcome in names:
        return [outcome]
    matched = [c for c in names if "/" in c and c.rsplit("/", 1)[1] == outcome]
    if not matched:
        shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        raise ValueError(f"outcome check {outcome!r} matches no check; available: {shown or 'none'}")
    return matched


def _ci(lo: float, hi: float) -> str:
    return f"{pct(lo)}-{pct(hi)}"


def _rate(k: int, n: int, rate: float, lo: float, hi: float, level: str, kind: str) -> str:
    return f"{k:,} of {n:,} {kind} runs ({pct(rate)}, {level} CI {_ci(lo, hi)})"


def _sentence(r: dict, status: AlarmVerdict, alpha: float, max_false_alarm: float) -> str:
    level = f"{1 - alpha:.0%}"
    word = status.value.replace("_", " ")
    h, u = r["outcome_passed"], r["outcome_failed"]
    if h + u == 0:
        apart = [f"{r[c]:,} {what}" for c, what in (("incomplete", "did not complete"),
                                                    ("unknown", "completed without a result")) if r[c]]
        return (f"{word}: no completed run with a result for both this check and the outcome"
                + (f" ({'; '.join(apart)})" if apart else ""))
    fa = ("fires in " + _rate(r["fired_when_healthy"], h, r["false_alarm_rate"], r["false_alarm_ci_low"],
                              r["false_alarm_ci_high"], level, "healthy")
          if h else "no healthy runs: false-alarm rate unknown")
    det = (_rate(r["fired_when_unhealthy"], u, r["detection_rate"], r["detection_ci_low"], r["detection_ci_high"],
                 level, "unhealthy") if u else "no unhealthy runs: detection rate unknown")
    text = f"{fa} and in {det}" if h and u else f"{fa}; fires in {det}" if u else f"{fa}; {det}"
    p = pformat(r["p_value"])
    limit = pct(max_false_alarm)
    if status is AlarmVerdict.NOISY:
        why = f"false alarms in more than {limit} of healthy runs (lower limit {pct(r['false_alarm_ci_low'])})"
        if r["p_value"] < alpha:
            why += f", although firing does go with an unhealthy outcome (one-sided Fisher {p})"
    elif status is AlarmVerdict.INFORMATIVE:
        why = f"fires more often in unhealthy runs (one-sided Fisher {p}, odds ratio {_odds(r['odds_ratio'])})"
    elif status is AlarmVerdict.QUIET:
        why = f"false alarms in at most {pct(r['false_alarm_ci_high'])} of healthy runs (upper limit), within {limit}"
    elif status is AlarmVerdict.UNINFORMATIVE:
        why = f"no evidence that it fires more often in unhealthy runs (one-sided Fisher {p})"
    elif h and u:
        why = (f"too few runs to test whether firing goes with the outcome ({u:,} unhealthy of {h + u:,}: "
               f"even a perfect detector would give p >= {1 / comb(h + u, u):.2g})")
    else:
        why = "whether firing goes with the outcome cannot be tested"
    if r["fired"] and u and status is not AlarmVerdict.NOT_ENOUGH_DATA:
        why += (f"; {r['fired_when_unhealthy']:,} of its {r['fired']:,} alarm{'s' if r['fired'] != 1 else ''} "
                f"{'were' if r['fired'] != 1 else 'was'} in unhealthy runs ({pct(r['ppv'])})")
    return f"{word}: {text}; {why}"


def _odds(x: float) -> str:
    return "∞" if x == np.inf else "–" if not np.isfinite(x) else f"{x:.3g}"


def false_alarms(df: pd.DataFrame, outcome: str, by: Sequence[str] | str | None = ("precision", "data_size"),
                 alpha: float = 0.05, max_false_alarm: float = 0.05) -> pd.DataFrame:
    """Per detector (every check but the outcome) and group of ``by``: how often it fires in
    healthy runs (the outcome check passed) and in unhealthy ones (it failed), with
    (1 - alpha) Wilson intervals, whether firing goes with an unhealthy outcome (one-sided
    Fisher exact test) and a verdict (module docstring: methods and references).

    ``outcome`` is a check name, exact or (for frames from ``report.prepare``) the part after
    the last "/" (``match_outcome``; ValueError when nothing matches).

    Columns: check, the ``by`` columns, then outcome (the outcome check of these runs), runs
    (completed runs with both results), incomplete (runs with both checks that did not
    complete), unknown (completed runs where either check has no result), outcome_passed
    (healthy runs), outcome_failed (unhealthy runs), fired, fired_when_healthy,
    false_alarm_rate, false_alarm_ci_low, false_alarm_ci_high, fired_when_unhealthy,
    detection_rate, detection_ci_low, detection_ci_high, ppv (share of alarms in unhealthy
    runs), ppv_ci_low, ppv_ci_high, odds_ratio (sample odds ratio of firing, unhealthy vs
    healthy; inf/NaN at zero cells), p_value (one-sided Fisher; NaN when not testable),
    status (AlarmVerdict value), verdict (sentence). A rate with no run under it is NaN.
    """
    from scipy import stats

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    if not 0 <= max_false_alarm < 1:
        raise ValueError(f"max_false_alarm must be in [0, 1), not {max_false_alarm}")
    keys = [k for k in group_keys(by) if k != "check"]
    require(df, ("run_id", "check", "status", "passed", *keys))
    ccode, cnames = df["check"].factorize()  # null check: code -1
    rcode, rnames = df["run_id"].factorize()
    matched = match_outcome(cnames, outcome)
    ok = ok_mask(df).to_numpy()
    known = ok & df["passed"].notna().to_numpy()
    fired = failed_mask(df).to_numpy() & known
    is_out = np.isin(ccode, [i for i, c in enumerate(cnames) if c in matched])
    # per run (by run code): has the outcome; its outcome check; outcome known (every outcome row
    # has a result); outcome failed (any outcome row failed); the run completed
    n_runs = len(rnames)
    ro = rcode[is_out]
    has_out = np.bincount(ro, minlength=n_runs) > 0
    out_name = np.full(n_runs, -1, dtype=np.int64)
    out_name[ro] = ccode[is_out]
    out_known = has_out & (np.bincount(ro, weights=~known[is_out], minlength=n_runs) == 0)
    out_failed = out_known & (np.bincount(ro, weights=fired[is_out], minlength=n_runs) > 0)
    run_ok = np.bincount(rcode, weights=~ok, minlength=n_runs) == 0
    named = np.flatnonzero(np.asarray([isinstance(c, str) and c != "" for c in cnames], dtype=bool))
    rows = np.flatnonzero(~is_out & np.isin(ccode, named) & has_out[rcode])
    r = rcode[rows]
    both = known[rows] & out_known[r]
    healthy, unhealthy = both & ~out_failed[r], both & out_failed[r]
    fire = fired[rows]
    det = pd.DataFrame({"check": np.asarray(cnames, dtype=object)[ccode[rows]],
                        **{k: df[k].to_numpy()[rows] for k in keys},
                        "_outcome": np.asarray(cnames, dtype=object)[out_name[r]] if len(rows) else [],
                        "runs": both, "incomplete": ~ok[rows], "unknown": ok[rows] & ~both,
                        "outcome_passed": healthy, "outcome_failed": unhealthy, "fired": both & fire,
                        "fired_when_healthy": healthy & fire, "fired_when_unhealthy": unhealthy & fire})
    counts = ["runs", "incomplete", "unknown", "outcome_passed", "outcome_failed", "fired", "fired_when_healthy",
              "fired_when_unhealthy"]
    group = ["check", *keys]
    res = det.groupby(group, dropna=False, sort=True, observed=True)[counts].sum().reset_index()
    res = res.astype({c: "int64" for c in counts})
    names = (det[[*group, "_outcome"]].drop_duplicates().groupby(group, dropna=False, sort=True, observed=True)
             ["_outcome"].agg(lambda v: ", ".join(sorted(v))))
    res.insert(len(group), "outcome", names.to_numpy() if len(res) else pd.Series([], dtype=object))
    runs_done = run_ok[has_out]
    judged = runs_done & out_known[has_out]
    bad = judged & out_failed[has_out]
    run_counts = {"outcome_runs": int(has_out.sum()), "outcome_completed": int(runs_done.sum()),
                  "outcome_judged": int(judged.sum()), "healthy_runs": int((judged & ~bad).sum()),
                  "unhealthy_runs": int(bad.sum()), "incomplete_runs": int((~runs_done).sum())}

    h, u = res["outcome_passed"].to_numpy(float), res["outcome_failed"].to_numpy(float)
    fh, fu = res["fired_when_healthy"].to_numpy(float), res["fired_when_unhealthy"].to_numpy(float)
    f = res["fired"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, k, n in (("false_alarm", fh, h), ("detection", fu, u), ("ppv", fu, f)):
            rate = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
            res[name if name == "ppv" else f"{name}_rate"] = rate
            res[f"{name}_ci_low"], res[f"{name}_ci_high"] = wilson_interval(k, n, alpha)
        # 2x2 table: a = fired & unhealthy, b = quiet & unhealthy, c = fired & healthy, d = quiet & healthy
        a, b, c, d = fu, u - fu, fh, h - fh
        res["odds_ratio"] = np.where(b * c > 0, a * d / np.where(b * c > 0, b * c, 1),
                                     np.where(a * d > 0, np.inf, np.nan))
    n_all = (h + u).astype(np.int64)
    testable = np.array([hi > 0 and ui > 0 and comb(int(ni), int(ui)) > 1 / alpha  # exact int vs float
                         for hi, ui, ni in zip(h, u, n_all)], dtype=bool)
    # one-sided Fisher: P(X >= a), X ~ hypergeometric(runs, alarms, unhealthy runs)
    p = stats.hypergeom.sf(fu - 1, n_all, f, u)
    res["p_value"] = np.where(testable, np.clip(p, 0.0, 1.0), np.nan)

    lo, hi = res["false_alarm_ci_low"].to_numpy(), res["false_alarm_ci_high"].to_numpy()
    pv = res["p_value"].to_numpy()
    order = [AlarmVerdict.NOISY, AlarmVerdict.INFORMATIVE, AlarmVerdict.QUIET, AlarmVerdict.UNINFORMATIVE,
             AlarmVerdict.NOT_ENOUGH_DATA]
    with np.errstate(invalid="ignore"):  # NaN limits and p-values compare False: the rule does not apply
        rules = np.column_stack([lo > max_false_alarm, pv < alpha, hi <= max_false_alarm, testable,
                                 np.ones(len(res), dtype=bool)])
    status = [order[i] for i in rules.argmax(axis=1)]  # the first rule that applies
    records = res.to_dict("records")
    res["status"] = [s.value for s in status]
    res["verdict"] = [_sentence(r, s, alpha, max_false_alarm) for r, s in zip(records, status)]
    res.attrs.update(outcome=outcome, outcome_checks=matched, by=keys, alpha=alpha, max_false_alarm=max_false_alarm)
    res.attrs.update(run_counts)
    return res[["check", *keys, *COLUMNS]]

