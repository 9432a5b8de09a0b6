"""MQL and SQL cutoffs chosen from a stated business policy, on the calibration window.

Each policy picks a probability cutoff `t`; a lead is flagged when `p_convert >= t`. The candidate
cutoffs are the distinct calibrated probabilities, so a cutoff always sits exactly on a lead.
Conversion-rate guarantees use the exact (Clopper-Pearson) binomial bound.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.stats import beta

from leadscore.config import (
    CutoffPolicy,
    CutoffsConfig,
    KeepConversions,
    MinConversionRate,
    MinLift,
    TopFraction,
)
from leadscore.errors import ConfigError
from leadscore.model.cutoffs import BANDS, Cutoffs

log = logging.getLogger(__name__)


def clopper_pearson_lower(k: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided exact lower confidence bound of a binomial proportion k/n."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - confidence, k, n - k + 1)
    return np.where(k > 0, bound, 0.0)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact confidence interval of a binomial proportion k/n."""
    if n == 0:
        return float("nan"), float("nan")
    alpha = 1 - confidence
    low = beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    high = beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def _candidates(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct cutoffs (descending) with the leads and conversions at or above each."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    n_above = np.arange(1, len(p) + 1)
    k_above = np.cumsum(y_sorted)
    last_of_tie = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    return p_sorted[last_of_tie], n_above[last_of_tie], k_above[last_of_tie]


def choose_cutoff(p: np.ndarray, y: np.ndarray, policy: CutoffPolicy, *, which: str) -> tuple[float, str]:
    """The cutoff one policy asks for, with a one-line description of the policy."""
    cutoff, text, _ = _choose(p, y, policy, which=which)
    return cutoff, text


def _choose(p: np.ndarray, y: np.ndarray, policy: CutoffPolicy, *, which: str) -> tuple[float, str, str | None]:
    """The cutoff one policy asks for, its description, and a warning when the policy could only be approached."""
    cutoffs, n_above, k_above = _candidates(np.asarray(p, dtype=float), np.asarray(y, dtype=int))
    if isinstance(policy, MinLift):
        base = k_above[-1] / n_above[-1]
        rate = policy.lift * base
        lower = clopper_pearson_lower(k_above, n_above, policy.confidence)
        feasible = np.flatnonzero(lower >= rate)
        text = (f"conversion above the cutoff >= {policy.lift:g}x the average ({rate:.1%}) "
                f"with {policy.confidence:.0%} confidence")
        if feasible.size:
            return float(cutoffs[feasible[-1]]), text, None
        # Conversion at `lift` times the average is possible only among at most 1/lift of the leads: the best
        # fallback is sought there, or the widest cutoff, whose bound is tightest, would always win.
        within = n_above <= max(n_above[0], n_above[-1] / max(policy.lift, 1.0))
        best = int(np.argmax(np.where(within, lower, -1.0)))
        reached = f"{lower[best]:.1%} ({lower[best] / base:.1f}x the average {base:.1%})" if base > 0 else f"{lower[best]:.1%}"
        message = (f"cutoffs.{which}: no cutoff gives {policy.lift:g}x the average conversion ({rate:.1%}) with "
                   f"{policy.confidence:.0%} confidence on the calibration window; the best achievable lower bound is "
                   f"{reached} at p >= {cutoffs[best]:.3f} ({n_above[best]} leads, {k_above[best]} conversions)")
        if policy.if_unreachable == "stop":
            raise ConfigError(f"{message}. Lower the lift or the confidence, or choose another policy")
        return float(cutoffs[best]), f"{text}; unreachable, so the best lower bound", (
            f"{message}, so the cutoff was set there. Lower cutoffs.{which}.lift to silence this")
    if isinstance(policy, MinConversionRate):
        lower = clopper_pearson_lower(k_above, n_above, policy.confidence)
        feasible = np.flatnonzero(lower >= policy.conversion_rate)
        if feasible.size == 0:
            best = int(np.argmax(lower))
            raise ConfigError(
                f"cutoffs.{which}: no cutoff gives a conversion rate of at least {policy.conversion_rate:.0%} with "
                f"{policy.confidence:.0%} confidence on the calibration window; the best achievable lower bound is "
                f"{lower[best]:.1%} (cutoff p >= {cutoffs[best]:.3f}, {n_above[best]} leads, {k_above[best]} conversions). "
                "Lower the rate or the confidence, or choose another policy"
            )
        index = feasible[-1]  # the lowest feasible cutoff admits the most leads
        text = f"conversion above the cutoff >= {policy.conversion_rate:.0%} with {policy.confidence:.0%} confidence"
    elif isinstance(policy, KeepConversions):
        index = int(np.flatnonzero(k_above >= policy.recall * k_above[-1])[0])
        text = f"keeps >= {policy.recall:.0%} of conversions"
    else:
        fraction = policy.fraction if isinstance(policy, TopFraction) else min(1.0, policy.leads_per_week / policy.weekly_volume)
        index = int(np.flatnonzero(n_above >= fraction * n_above[-1])[0])
        text = (f"top {fraction:.1%} of leads" if isinstance(policy, TopFraction)
                else f"capacity {policy.leads_per_week} of {policy.weekly_volume} leads a week")
    return float(cutoffs[index]), text, None


def choose_cutoffs(p: np.ndarray, y: np.ndarray, cfg: CutoffsConfig) -> Cutoffs:
    """Both cutoffs; the MQL cutoff is lowered to the SQL cutoff if its policy asks for more.

    A policy that could only be approached, and an MQL band left empty on the window (no lead between the two
    cutoffs, so every MQL is an SQL), are warnings carried by the cutoffs (logged, tagged on the run, shown in the
    model card), or a ConfigError when `cfg.strict`."""
    p = np.asarray(p, dtype=float)
    sql, sql_text, sql_warning = _choose(p, y, cfg.sql, which="sql")
    mql, mql_text, mql_warning = _choose(p, y, cfg.mql, which="mql")
    notes = ()
    warnings = [w for w in (sql_warning, mql_warning) if w]
    if mql > sql:
        notes = (f"the MQL policy asked for p >= {mql:.4f}, above the SQL cutoff; the MQL cutoff was set to the SQL cutoff",)
        mql = sql
    if not ((p >= mql) & (p < sql)).any():
        warnings.append(
            f"the MQL band is empty: no lead of the calibration window scores between the MQL cutoff (p >= {mql:.4f}) "
            f"and the SQL cutoff (p >= {sql:.4f}), so every MQL is also an SQL. Loosen cutoffs.mql (e.g. a higher "
            "recall) or tighten cutoffs.sql (e.g. a higher lift)"
        )
    if warnings and cfg.strict:
        raise ConfigError("; ".join(warnings) + " (cutoffs.strict is on: set it to false to train with a warning)")
    for warning in warnings:
        log.warning(warning)
    return Cutoffs(mql=mql, sql=sql, mql_policy=mql_text, sql_policy=sql_text, notes=notes, warnings=tuple(warnings))


def band_table(p: np.ndarray, y: np.ndarray, cutoffs: Cutoffs, window: str,
               frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per band: volume, conversion rate with its 95 % interval, and share of all conversions; the leads of `frame`
    (the rows of `p`, when given) banded by their own cutoffs (per segment: `leadscore.model.cutoffs.SegmentCutoffs`)."""
    bands = cutoffs.band(np.asarray(p, dtype=float), frame)
    y = np.asarray(y, dtype=int)
    rows = []
    for band in BANDS:
        members = bands == band
        n, k = int(members.sum()), int(y[members].sum())
        low, high = clopper_pearson_interval(k, n)
        rows.append({
            "window": window, "band": band, "leads": n, "share_of_leads": n / len(y),
            "conversions": k, "conversion_rate": k / n if n else float("nan"), "rate_ci_low": low, "rate_ci_high": high,
            "share_of_conversions": k / max(1, int(y.sum())),
        })
    return pd.DataFrame(rows)
