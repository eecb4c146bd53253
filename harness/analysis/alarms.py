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

Grouping (``by``): a detector is judged per group of runs; everything not grouped on is pooled.
By default (``by="auto"``) the runs are grouped by precision, and by data size too when the runs
allow it (below); every other axis is pooled: the swept scenario parameters (the ``variant``
column, e.g. a bug and its fix, ``scenarios.NAME._axes_.fix=[false,true]``), seeds (the
replicates), batch size, clipping, ... . So a control swept as a variant (the fixed program's
runs healthy, the buggy program's unhealthy) is compared with the bug inside each precision,
instead of each variant alone, where all runs share one outcome and nothing can be tested. A
check is named without its variant (``scenario[key=value]/check`` from ``report.prepare``
becomes ``check``, or ``scenario/check`` when the frame has several scenarios); with ``variant``
in ``by`` the variants are split again, in a ``variant`` column. The axes pooled in each row are
named in its ``pooled`` column (and all of them in ``attrs["pooled"]``).

The data-size rule of ``by="auto"``: data size is a grouping key when the judged runs (completed,
with an outcome result) have more than one data size and every cell outcome check x precision x
data size that has judged runs is testable: it has healthy and unhealthy runs, h and u of them,
with C(h + u, u) > 1 / alpha, i.e. a detector firing on exactly the unhealthy runs would reach
p < alpha (the rule of the association test below). Otherwise data sizes are pooled, and
``attrs["by_rule"]`` says which cell did not allow the split.

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
from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd

from harness import axes as axis_table
from harness.analysis.frame import derived_steps, failed_mask, group_keys, label, ok_mask, pct, pformat, require
from harness.analysis.rates import wilson_interval
from harness.analysis.verdicts import AlarmVerdict

AUTO = "auto"  # by="auto": precision, and data size where the runs allow it (module docstring)
# The axes a row can pool over (besides those it is grouped by), in the order they are named: the
# configuration's (harness.axes), then precision and the seeds.
POOLABLE = ("variant", *(a for a in axis_table.DISPLAY if a not in ("scenario", "precision", "seed")),
            "precision", "seed")

COLUMNS = ("outcome", "pooled", "runs", "incomplete", "unknown", "outcome_passed", "outcome_failed", "fired",
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


def pooled_check_names(df: pd.DataFrame) -> pd.Series:
    """Each row's check without its variant: ``scenario[key=value]/check`` (``report.prepare``) becomes
    ``check``, or ``scenario/check`` when the frame has several scenarios; other names are kept."""
    names = df["check"]
    if "variant" not in df.columns or "scenario" not in df.columns or names.empty:
        return names
    several = df["scenario"].nunique() > 1
    (cc, cu), (sc, su), (vc, vu) = (pd.factorize(df[c]) for c in ("check", "scenario", "variant"))  # null: -1
    ns, nv = len(su) + 1, len(vu) + 1
    key = ((cc + 1) * ns + (sc + 1)) * nv + (vc + 1)
    uniq, inverse = np.unique(key, return_inverse=True)
    out: list[object] = []
    for k in uniq.tolist():
        c_i, rest_i = divmod(k, ns * nv)
        s_i, v_i = divmod(rest_i, nv)
        c = cu[c_i - 1] if c_i else None
        sc_, v = (su[s_i - 1] if s_i else None), (vu[v_i - 1] if v_i else None)
        prefix = f"{sc_}[{v}]/" if isinstance(v, str) and v else None
        if isinstance(c, str) and prefix is not None and c.startswith(prefix):
            c = f"{sc_}/{c[len(prefix):]}" if several else c[len(prefix):]
        out.append(c)
    return pd.Series(np.asarray(out, dtype=object)[inverse.reshape(-1)], index=df.index, dtype=object)


def _testable(h: int, u: int, alpha: float) -> bool:
    """Could a detector firing on exactly the u unhealthy runs of h + u reach p < alpha?"""
    return h > 0 and u > 0 and comb(h + u, u) > 1 / alpha  # exact integers, not floats


def _auto_keys(judged: pd.DataFrame, alpha: float) -> tuple[list[str], str]:
    """``by="auto"``: precision, and data size when every outcome x precision x data size cell of the
    judged runs (one row per run: outcome, bad, and the axes) is testable; the keys and a sentence why."""
    keys = [k for k in ("precision",) if k in judged.columns]
    if "data_size" not in judged.columns or judged["data_size"].nunique(dropna=False) < 2:
        return keys, ""
    cells = judged.groupby(["outcome", *keys, "data_size"], dropna=False, sort=True, observed=True)["bad"]
    counts = pd.DataFrame({"u": cells.sum(), "n": cells.size()}).reset_index()
    for r in counts.itertuples():
        h, u = int(r.n - r.u), int(r.u)
        if not _testable(h, u, alpha):
            where = " x ".join([*(label(getattr(r, k)) for k in keys), f"{label(r.data_size)} rows"])
            why = ("no unhealthy run" if not u else "no healthy run" if not h
                   else f"{h:,} healthy and {u:,} unhealthy runs, too few to test")
            return keys, f"data sizes pooled: {where} has {why}"
    return [*keys, "data_size"], ("split by data size: every data-size cell has enough healthy and unhealthy runs "
                                  "to test")


def _describe(axis: str, values: Sequence[object]) -> str:
    """``variant (fix=False, fix=True)``, ``data size (800, 8,000)``, ``30 seeds``."""
    if axis == "seed":
        return f"{len(values):,} seeds"
    shown = [label(v) or "(none swept)" for v in values]
    if len(shown) > 6:
        shown = [*shown[:2], "...", shown[-1], f"{len(shown)} values"]
    return f"{axis.replace('_', ' ')} ({', '.join(shown)})"


def _sort_key(v: object) -> tuple[int, object]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return (2, 0)
    return (0, v) if isinstance(v, (int, float, np.integer, np.floating)) else (1, str(v))


def pooled_text(pooled: dict[str, list[object]]) -> str:
    """The axes of ``attrs["pooled"]`` in one phrase: ``variant (fix=False, fix=True), 30 seeds``."""
    return ", ".join(_describe(a, v) for a, v in pooled.items())


def false_alarms(df: pd.DataFrame, outcome: str, by: Sequence[str] | str | None = AUTO,
                 alpha: float = 0.05, max_false_alarm: float = 0.05) -> pd.DataFrame:
    """Per detector (every check but the outcome) and group of ``by``: how often it fires in
    healthy runs (the outcome check passed) and in unhealthy ones (it failed), with
    (1 - alpha) Wilson intervals, whether firing goes with an unhealthy outcome (one-sided
    Fisher exact test) and a verdict (module docstring: methods and references).

    ``outcome`` is a check name, exact or (for frames from ``report.prepare``) the part after
    the last "/" (``match_outcome``; ValueError when nothing matches).

    ``by``: ``"auto"`` (default) groups by precision, and by data size when every data-size cell
    can be tested (module docstring), pooling every other axis: the variants (a bug and its fix),
    seeds, ...; a list of columns groups by exactly those (``["precision", "data_size",
    "variant"]`` splits the variants again); None or [] pools every run.

    Columns: check (without its variant), the ``by`` columns, then outcome (the outcome check of these
    runs), pooled (the axes that vary among the row's runs: ``variant (fix=False, fix=True), 30 seeds``),
    runs (completed runs with both results), incomplete (runs with both checks that did not
    complete), unknown (completed runs where either check has no result), outcome_passed
    (healthy runs), outcome_failed (unhealthy runs), fired, fired_when_healthy,
    false_alarm_rate, false_alarm_ci_low, false_alarm_ci_high, fired_when_unhealthy,
    detection_rate, detection_ci_low, detection_ci_high, ppv (share of alarms in unhealthy
    runs), ppv_ci_low, ppv_ci_high, odds_ratio (sample odds ratio of firing, unhealthy vs
    healthy; inf/NaN at zero cells), p_value (one-sided Fisher; NaN when not testable),
    status (AlarmVerdict value), verdict (sentence). A rate with no run under it is NaN.
    ``attrs``: outcome, outcome_checks, by (the keys used), by_rule (with "auto": why data size is
    or is not a key; else ""), pooled ({axis: values} over every row), alpha, max_false_alarm, and
    the run counts (outcome_runs, outcome_completed, outcome_judged, healthy_runs, unhealthy_runs,
    incomplete_runs).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    if not 0 <= max_false_alarm < 1:
        raise ValueError(f"max_false_alarm must be in [0, 1), not {max_false_alarm}")
    auto = isinstance(by, str) and by == AUTO
    keys = [] if auto else [k for k in group_keys(by) if k != "check"]
    require(df, ("run_id", "check", "status", "passed", *keys))
    runs = _Runs.of(df, outcome)
    rule = ""
    if auto:
        keys, rule = _auto_keys(runs.judged(df), alpha)
    rows, det = runs.detector_rows(df, keys)
    group = ["check", *keys]
    res = _counts(det, group)
    described, pooled = _pooled(df, rows, det[group], res[group], keys)
    res.insert(len(group) + 1, "pooled", described)
    testable = _rates(res, alpha)
    status = _statuses(res, testable, alpha, max_false_alarm)
    records = res.to_dict("records")
    res["status"] = [s.value for s in status]
    res["verdict"] = [_sentence(r, s, alpha, max_false_alarm) for r, s in zip(records, status)]
    res.attrs.update(outcome=outcome, outcome_checks=runs.matched, by=keys, by_rule=rule, pooled=pooled, alpha=alpha,
                     max_false_alarm=max_false_alarm)
    res.attrs.update(runs.counts())
    return res[["check", *keys, *COLUMNS]]


@dataclass(frozen=True)
class _Runs:
    """The frame's rows coded once (checks as grouped, runs), and per run (by run code): has the outcome;
    its outcome check; outcome known (every outcome row has a result); outcome failed (any outcome row
    failed); the run completed."""

    matched: list[str]  # the outcome check names
    rcode: np.ndarray  # per row: its run's code
    pcode: np.ndarray  # per row: its check's code, the check as grouped (without its variant)
    pnames: np.ndarray  # the checks as grouped, by code
    is_out: np.ndarray  # per row: an outcome row
    ok: np.ndarray  # per row: the run completed
    known: np.ndarray  # per row: completed with a pass/fail
    fired: np.ndarray  # per row: known and failed
    has_out: np.ndarray
    out_name: np.ndarray
    out_row: np.ndarray
    out_known: np.ndarray
    out_failed: np.ndarray
    run_ok: np.ndarray

    @classmethod
    def of(cls, df: pd.DataFrame, outcome: str) -> _Runs:
        ccode, cnames = df["check"].factorize()  # null check: code -1
        rcode, rnames = df["run_id"].factorize()
        matched = match_outcome(cnames, outcome)
        is_out = np.isin(ccode, [i for i, c in enumerate(cnames) if c in matched])
        pcode, pnames = pooled_check_names(df).factorize()
        ok = ok_mask(df).to_numpy()
        known = ok & df["passed"].notna().to_numpy()
        fired = failed_mask(df).to_numpy() & known
        n_runs = len(rnames)
        ro = rcode[is_out]
        has_out = np.bincount(ro, minlength=n_runs) > 0
        out_name = np.full(n_runs, -1, dtype=np.int64)
        out_name[ro] = pcode[is_out]
        out_row = np.full(n_runs, -1, dtype=np.int64)
        out_row[ro] = np.flatnonzero(is_out)
        out_known = has_out & (np.bincount(ro, weights=~known[is_out], minlength=n_runs) == 0)
        out_failed = out_known & (np.bincount(ro, weights=fired[is_out], minlength=n_runs) > 0)
        run_ok = np.bincount(rcode, weights=~ok, minlength=n_runs) == 0
        return cls(matched, rcode, pcode, np.asarray(pnames, dtype=object), is_out, ok, known, fired, has_out,
                   out_name, out_row, out_known, out_failed, run_ok)

    def judged(self, df: pd.DataFrame) -> pd.DataFrame:
        """The judged runs (completed, with an outcome result): outcome check, whether it failed, and the
        precision and data size of the run, which by="auto" decides on."""
        judged_runs = np.flatnonzero(self.has_out & self.run_ok & self.out_known)
        rows_of = self.out_row[judged_runs]
        return pd.DataFrame({"outcome": self.pnames[self.out_name[judged_runs]] if len(judged_runs) else [],
                             "bad": self.out_failed[judged_runs],
                             **{k: df[k].to_numpy()[rows_of] for k in ("precision", "data_size") if k in df.columns}})

    def detector_rows(self, df: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
        """(the detector rows of runs with an outcome, as positions in ``df``; per such row, its check, its
        ``keys``, its run's outcome check and what it counts for)."""
        named = np.flatnonzero(np.asarray([isinstance(c, str) and c != "" for c in self.pnames], dtype=bool))
        rows = np.flatnonzero(~self.is_out & np.isin(self.pcode, named) & self.has_out[self.rcode])
        r = self.rcode[rows]
        both = self.known[rows] & self.out_known[r]
        healthy, unhealthy = both & ~self.out_failed[r], both & self.out_failed[r]
        fire = self.fired[rows]
        return rows, pd.DataFrame({
            "check": self.pnames[self.pcode[rows]], **{k: df[k].to_numpy()[rows] for k in keys},
            "_outcome": self.pnames[self.out_name[r]] if len(rows) else [],
            "runs": both, "incomplete": ~self.ok[rows], "unknown": self.ok[rows] & ~both,
            "outcome_passed": healthy, "outcome_failed": unhealthy, "fired": both & fire,
            "fired_when_healthy": healthy & fire, "fired_when_unhealthy": unhealthy & fire})

    def counts(self) -> dict[str, int]:
        """The run counts of ``attrs``, over the runs that have the outcome check."""
        runs_done = self.run_ok[self.has_out]
        judged_mask = runs_done & self.out_known[self.has_out]
        bad = judged_mask & self.out_failed[self.has_out]
        return {"outcome_runs": int(self.has_out.sum()), "outcome_completed": int(runs_done.sum()),
                "outcome_judged": int(judged_mask.sum()), "healthy_runs": int((judged_mask & ~bad).sum()),
                "unhealthy_runs": int(bad.sum()), "incomplete_runs": int((~runs_done).sum())}


COUNTS = ["runs", "incomplete", "unknown", "outcome_passed", "outcome_failed", "fired", "fired_when_healthy",
          "fired_when_unhealthy"]


def _counts(det: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """Per group of detector rows: the counts, and the outcome checks of its runs."""
    res = det.groupby(group, dropna=False, sort=True, observed=True)[COUNTS].sum().reset_index()
    res = res.astype({c: "int64" for c in COUNTS})
    names = (det[[*group, "_outcome"]].drop_duplicates().groupby(group, dropna=False, sort=True, observed=True)
             ["_outcome"].agg(lambda v: ", ".join(sorted(v))))
    res.insert(len(group), "outcome", names.to_numpy() if len(res) else pd.Series([], dtype=object))
    return res


def _rates(res: pd.DataFrame, alpha: float) -> np.ndarray:
    """Add the rates with their Wilson intervals, the odds ratio and the one-sided Fisher p-value to
    ``res``; return which rows could be tested."""
    from scipy import stats

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
    testable = np.array([_testable(int(hi), int(ui), alpha) for hi, ui in zip(h, u)], dtype=bool)
    # one-sided Fisher: P(X >= a), X ~ hypergeometric(runs, alarms, unhealthy runs)
    p = stats.hypergeom.sf(fu - 1, n_all, f, u)
    res["p_value"] = np.where(testable, np.clip(p, 0.0, 1.0), np.nan)
    return testable


def _statuses(res: pd.DataFrame, testable: np.ndarray, alpha: float, max_false_alarm: float) -> list[AlarmVerdict]:
    """Each row's verdict: the first rule of the module docstring's list that applies."""
    lo, hi = res["false_alarm_ci_low"].to_numpy(), res["false_alarm_ci_high"].to_numpy()
    pv = res["p_value"].to_numpy()
    order = [AlarmVerdict.NOISY, AlarmVerdict.INFORMATIVE, AlarmVerdict.QUIET, AlarmVerdict.UNINFORMATIVE,
             AlarmVerdict.NOT_ENOUGH_DATA]
    with np.errstate(invalid="ignore"):  # NaN limits and p-values compare False: the rule does not apply
        rules = np.column_stack([lo > max_false_alarm, pv < alpha, hi <= max_false_alarm, testable,
                                 np.ones(len(res), dtype=bool)])
    return [order[i] for i in rules.argmax(axis=1)]


def _pooled(df: pd.DataFrame, rows: np.ndarray, det_keys: pd.DataFrame, res_keys: pd.DataFrame,
            keys: list[str]) -> tuple[list[str], dict[str, list[object]]]:
    """For each result row (its group keys in ``res_keys``), the axes that vary among its detector rows
    (``rows`` of ``df``, their group keys in ``det_keys``), described; and over all rows, {axis: values}."""
    axes = [a for a in POOLABLE if a in df.columns and a not in keys]
    if "steps" in axes and derived_steps(df):  # steps follow data size and epochs: not an axis of their own
        axes.remove("steps")
    group = list(det_keys.columns)
    text: dict[tuple, list[str]] = {}
    pooled: dict[str, list[object]] = {}
    if len(rows):
        for axis in axes:
            values = df[axis].to_numpy()[rows]
            if axis == "variant":
                values = np.asarray([v if isinstance(v, str) else "" for v in values], dtype=object)
            frame = det_keys.assign(_v=values).drop_duplicates()
            if frame["_v"].nunique(dropna=False) < 2:
                continue
            pooled[axis] = sorted(frame["_v"].drop_duplicates().tolist(), key=_sort_key)
            for k, part in frame.groupby(group, dropna=False, sort=False, observed=True)["_v"]:
                if len(part) > 1:
                    key = k if isinstance(k, tuple) else (k,)
                    text.setdefault(_norm(key), []).append(_describe(axis, sorted(part.tolist(), key=_sort_key)))
    described = [", ".join(text.get(_norm(tuple(t)), [])) for t in res_keys.itertuples(index=False, name=None)]
    return described, pooled


def _norm(key: tuple) -> tuple:
    """A group key with NaN/None made equal (groupby keys and itertuples values of a null key differ)."""
    return tuple(None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in key)
