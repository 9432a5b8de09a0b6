"""The leakage guard: feature columns that cannot be known when a lead is scored.

A column filled in after the outcome (the call's duration, a "lost reason", a lead quality set by the
rep) makes offline metrics look excellent and the live model useless, and nothing fails. Before any
fitting, every feature column is screened on the training table's labelled rows, and flagged when:

- `post_outcome`: the config lists it in `data.post_outcome_columns` (names or shell patterns) and it
  is still a feature;
- `predicts_alone`: its ROC AUC alone reaches `leakage.max_single_auc` (default 0.9). The AUC is that
  of the column's own conversion rates (per category, per quantile bin of a number, and for missing
  values), learned out of fold so that an identifier-like column scores no better than chance;
- `one_class_fill`: it is filled (not missing) almost only for one class: among its filled rows the
  other class is absent although its base rate predicts it, and those rows hold at least
  `leakage.min_segment_share` of their class. Fields typed in after the outcome look like this;
- `decides_segment`: a range of its values (a lower or upper tail, one category, or the missing
  values) sets apart at least `min_segment_share` of one class's rows while the other class is absent
  there. "Absent" means at most `absent_ratio` (default 0.02) of the count its base rate predicts, and
  the check is made only where that count is at least `min_expected` (default 10), so that chance
  alone cannot empty a range.

Why the last rule rather than a lower AUC threshold: many honest columns predict well (the economy in
bank telemarketing, engagement counts in a funnel) and reach single-column AUCs of 0.75, close to the
0.8 of the bank data's call duration. What an honest column hardly ever does is make the outcome
certain for a sizeable share of leads: calls too short to sell anything never end in a subscription,
while even the best honest signal leaves some converters among the leads it rates lowest.

Limits. A business rule can make a segment certain honestly (a country the company does not serve
never converts): review the column and list it in `leakage.allow_columns`. A leak that only shifts
rates (a rep's optimistic rating) passes every rule: mark it in `data.post_outcome_columns`. The guard
reads the training table only; it cannot see whether a column is filled at scoring time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from leadscore.config import LeakageConfig
from leadscore.errors import InputError
from leadscore.model.dimensions import matches_any

log = logging.getLogger("leadscore")

CLASS_NAMES = ("not converted", "converted")
_BINS = 20  # quantile bins of a number for its single-column AUC
_FOLDS = 5
_SMOOTHING = 20.0  # rows' worth of the overall rate mixed into each bin's rate


@dataclass(frozen=True)
class Segment:
    """A range of one column's values where one class is (almost) absent."""

    description: str  # e.g. "duration <= 62", "job == 'student'", "missing", "filled"
    rows: int
    absent_class: int  # 1: no conversions there; 0: only conversions there
    observed: int  # rows of the absent class found in the segment
    expected: float  # rows of the absent class its base rate predicts there
    share_of_present: float  # share of the other class's rows that lie in the segment

    def __str__(self) -> str:
        present = CLASS_NAMES[1 - self.absent_class]
        return (f"where {self.description} ({self.rows:,} rows, {self.share_of_present:.1%} of the {present} ones) "
                f"there are {self.observed:,} {CLASS_NAMES[self.absent_class]} rows where {self.expected:,.0f} were expected")


@dataclass(frozen=True)
class ColumnEvidence:
    """What the guard measured about one feature column, flagged or not."""

    column: str
    single_auc: float
    fill_rate_converted: float
    fill_rate_not_converted: float
    segment: Segment | None  # the segment setting apart the largest share of a class, if any


@dataclass(frozen=True)
class Finding:
    """A column the guard flags, why, and the evidence."""

    column: str
    reasons: tuple[str, ...]
    evidence: ColumnEvidence

    @property
    def message(self) -> str:
        e = self.evidence
        parts = [f"column '{self.column}' may not be known when a lead is scored ({', '.join(self.reasons)})"]
        if "post_outcome" in self.reasons:
            parts.append("the config marks it as known only after the outcome")
        parts.append(f"ROC AUC alone {e.single_auc:.3f}")
        parts.append(f"filled for {e.fill_rate_converted:.1%} of converted and {e.fill_rate_not_converted:.1%} "
                     "of not converted rows")
        if e.segment is not None and {"one_class_fill", "decides_segment"} & set(self.reasons):
            parts.append(str(e.segment))
        return "; ".join(parts)


@dataclass(frozen=True)
class LeakageReport:
    """The evidence on every screened column and the flagged ones."""

    evidence: list[ColumnEvidence]
    findings: list[Finding]

    @property
    def flagged(self) -> list[str]:
        return [f.column for f in self.findings]

    def table(self) -> pd.DataFrame:
        """One row per screened column, for the training run's artifacts."""
        reasons = {f.column: ",".join(f.reasons) for f in self.findings}
        return pd.DataFrame([
            {
                "column": e.column, "flagged": e.column in reasons, "reasons": reasons.get(e.column, ""),
                "single_auc": e.single_auc, "fill_rate_converted": e.fill_rate_converted,
                "fill_rate_not_converted": e.fill_rate_not_converted,
                "segment": str(e.segment) if e.segment else "",
            }
            for e in self.evidence
        ])


def screen_columns(frame: pd.DataFrame, columns: list[str], label_column: str, cfg: LeakageConfig,
                   post_outcome: list[str] = (), *, seed: int = 0) -> LeakageReport:
    """Screen `columns` of `frame` (label 0/1 in `label_column`) and flag the suspects (see the module docstring)."""
    y = frame[label_column].to_numpy().astype(int)
    folds = np.random.default_rng(seed).integers(0, _FOLDS, len(y))
    evidence, findings = [], []
    for column in columns:
        e = column_evidence(frame[column], y, folds, cfg)
        evidence.append(e)
        reasons = _reasons(e, cfg, marked=matches_any(column, post_outcome), allowed=matches_any(column, cfg.allow_columns))
        if reasons:
            findings.append(Finding(column, reasons, e))
    return LeakageReport(evidence, findings)


def column_evidence(values: pd.Series, y: np.ndarray, folds: np.ndarray, cfg: LeakageConfig) -> ColumnEvidence:
    """Single-column AUC, fill rates by class and the most telling one-class segment of one column."""
    filled = values.notna().to_numpy()
    return ColumnEvidence(
        column=str(values.name),
        single_auc=single_column_auc(values, y, folds),
        fill_rate_converted=float(filled[y == 1].mean()) if (y == 1).any() else float("nan"),
        fill_rate_not_converted=float(filled[y == 0].mean()) if (y == 0).any() else float("nan"),
        segment=one_class_segment(values, y, cfg),
    )


def single_column_auc(values: pd.Series, y: np.ndarray, folds: np.ndarray) -> float:
    """ROC AUC of the column's out-of-fold conversion rate per bin (category, quantile bin or missing)."""
    if len(np.unique(y)) < 2:
        return float("nan")
    codes = _bin_codes(values)
    n_codes = int(codes.max()) + 1
    rows = np.bincount(codes, minlength=n_codes).astype(float)
    conversions = np.bincount(codes, weights=y, minlength=n_codes)
    predicted = np.empty(len(y))
    for fold in range(_FOLDS):
        held = folds == fold
        if not held.any():
            continue
        # Rates from the other folds only: a bin's own rows never vote for themselves.
        fold_rows = rows - np.bincount(codes[held], minlength=n_codes)
        fold_conversions = conversions - np.bincount(codes[held], weights=y[held], minlength=n_codes)
        prior = fold_conversions.sum() / max(fold_rows.sum(), 1.0)
        rate = (fold_conversions + _SMOOTHING * prior) / (fold_rows + _SMOOTHING)
        predicted[held] = rate[codes[held]]
    # ROC AUC as the Mann-Whitney statistic: the rates take few distinct values, and ties count half.
    positives = int(y.sum())
    ranks = rankdata(predicted)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * (len(y) - positives)))


def _bin_codes(values: pd.Series) -> np.ndarray:
    """Integer bin per row: quantile bins for numbers, one per category otherwise; missing is bin 0."""
    missing = values.isna().to_numpy()
    codes = np.zeros(len(values), dtype=np.int64)
    present = values[~missing]
    if _is_number(values):
        numbers = present.to_numpy(dtype="float64")
        edges = np.unique(np.quantile(numbers, np.linspace(0, 1, _BINS + 1)[1:-1])) if len(numbers) else np.array([])
        codes[~missing] = 1 + np.searchsorted(edges, numbers, side="right")
    else:
        codes[~missing] = 1 + pd.factorize(present.astype("string"))[0]
    return codes


def one_class_segment(values: pd.Series, y: np.ndarray, cfg: LeakageConfig) -> Segment | None:
    """The segment (tail, category, missing or filled rows) that sets apart the largest share of one
    class while the other class is absent there, or None."""
    rate = np.array([1 - y.mean(), y.mean()])
    totals = np.array([(y == 0).sum(), (y == 1).sum()])
    best: Segment | None = None
    for describe, rows, conversions in _segments(values, y):
        for absent in (0, 1):
            observed = conversions if absent == 1 else rows - conversions
            expected = rows * rate[absent]
            qualifies = (expected >= cfg.min_expected) & (observed <= cfg.absent_ratio * expected)
            share = np.where(qualifies, (rows - observed) / max(totals[1 - absent], 1), 0.0)
            if not share.size or share.max() < cfg.min_segment_share:
                continue
            i = int(np.argmax(share))
            if best is None or share[i] > best.share_of_present:
                best = Segment(describe(i), int(rows[i]), absent, int(observed[i]), float(expected[i]), float(share[i]))
    return best


def _segments(values: pd.Series, y: np.ndarray):
    """(description of the i-th, row counts, conversions) of each family of candidate segments, counts as arrays."""
    name = values.name
    missing = values.isna().to_numpy()
    if missing.any() and not missing.all():
        yield (("missing", "filled").__getitem__, np.array([missing.sum(), (~missing).sum()]),
               np.array([y[missing].sum(), y[~missing].sum()]))
    present, y_present = values[~missing], y[~missing]
    if not len(present):
        return
    if _is_number(values):
        numbers = present.to_numpy(dtype="float64")
        order = np.argsort(numbers, kind="stable")
        numbers, ordered_y = numbers[order], y_present[order]
        last_of_value = np.r_[numbers[1:] != numbers[:-1], True]
        upto = np.arange(1, len(numbers) + 1)[last_of_value]
        conversions_upto = np.cumsum(ordered_y)[last_of_value]
        cut = numbers[last_of_value]
        # Lower tails end at each distinct value; upper tails start at each one.
        yield (lambda i: f"{name} <= {cut[i]:g}"), upto, conversions_upto
        starts_rows = len(numbers) - np.r_[0, upto[:-1]]
        starts_conversions = ordered_y.sum() - np.r_[0, conversions_upto[:-1]]
        yield (lambda i: f"{name} >= {cut[i]:g}"), starts_rows, starts_conversions
    else:
        text = present.astype("string").to_numpy()
        categories, codes = np.unique(text, return_inverse=True)
        yield (lambda i: f"{name} == '{categories[i]}'"), np.bincount(codes), np.bincount(codes, weights=y_present).astype(int)


def _reasons(e: ColumnEvidence, cfg: LeakageConfig, *, marked: bool, allowed: bool) -> tuple[str, ...]:
    reasons = ["post_outcome"] if marked else []
    if allowed:  # reviewed by a person: only the config's own marking still counts
        return tuple(reasons)
    if e.single_auc >= cfg.max_single_auc:
        reasons.append("predicts_alone")
    if e.segment is not None:
        reasons.append("one_class_fill" if e.segment.description == "filled" else "decides_segment")
    return tuple(reasons)


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def guard(frame: pd.DataFrame, columns: list[str], label_column: str, cfg: LeakageConfig,
          post_outcome: list[str] = (), *, seed: int = 0) -> LeakageReport:
    """Screen the feature columns before fitting: log a warning per flagged column, and in strict mode
    refuse to go on with an error that names them."""
    report = screen_columns(frame, columns, label_column, cfg, post_outcome, seed=seed)
    for finding in report.findings:
        log.warning("leakage guard: %s", finding.message)
    if report.findings and cfg.strict:
        raise InputError(
            f"the leakage guard flags {len(report.flagged)} feature column(s) that may not be known when a lead is "
            f"scored: {report.flagged} (leakage.strict is on). " + " | ".join(f.message for f in report.findings),
            fix="add the columns to data.exclude_columns; if one is known when a lead is scored, list it in "
            "leakage.allow_columns (unless data.post_outcome_columns marks it); or set leakage.strict: false to only warn",
        )
    return report
