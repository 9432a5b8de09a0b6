"""Paired, stratified bootstrap of ROC AUC for the quality benchmark.

Every contender is scored on the same resampled test rows, so what the interval measures is the
difference between two models on the same leads, not the luck of one test set against another.
Resampling keeps each stratum's size (each label, and each origin of a rolling-origin evaluation):
every resample has the test set's conversion rate and no resample lacks a class.

A resample is a vector of counts (how often each test row was drawn), drawn for all resamples at
once; the ROC AUC of a weighted sample is then a few array operations over the rows sorted by score,
instead of one `roc_auc_score` call per resample and contender (tens of milliseconds each on a
busy machine, minutes over a whole benchmark). `weighted_auc` with unit weights equals
`sklearn.metrics.roc_auc_score`, ties included; `paired_intervals` checks that on every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

LEVEL = 0.95
BATCH = 250  # resamples per block of counts: bounds memory at BATCH x rows floats per contender


@dataclass(frozen=True)
class Interval:
    """A point estimate of a difference and its percentile bootstrap interval."""

    point: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """'better' when the interval lies above 0, 'worse' when below, 'within noise' when it holds 0."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "within noise"

    def __str__(self) -> str:
        return f"{self.point:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def resample_counts(strata: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Counts (resamples x rows): each stratum's rows drawn with replacement, as many as it holds."""
    counts = np.zeros((n_resamples, len(strata)), dtype=np.float64)
    for stratum in np.unique(strata):
        rows = np.flatnonzero(strata == stratum)
        counts[:, rows] = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=n_resamples)
    return counts


def weighted_auc(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of `score` for each row of `counts` (how often each row counts), ties as half.

    The Mann-Whitney form: over every distinct score, the weight of positives there times the
    weight of negatives below it plus half the negatives level with it.
    """
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    positive = (y[order] == 1)
    w = counts[:, order]
    pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def paired_intervals(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    reference: str,
    n_resamples: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> dict[str, Interval]:
    """ROC AUC of `reference` minus each other contender's, with a paired bootstrap interval.

    `scores` holds each contender's scores on the same test rows `y`. With `groups` (e.g. the origin
    of each row in a rolling-origin evaluation), a contender's AUC is the mean of its AUCs within
    the groups, and resampling keeps each group's size as well as each label's.
    """
    y = np.asarray(y).astype(int)
    groups = np.zeros(len(y), dtype=int) if groups is None else np.asarray(groups)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    for rows in members:
        for score in scores.values():
            # The fast form must be the metric the tables report: the same number on the sample itself.
            exact = roc_auc_score(y[rows], score[rows])
            fast = weighted_auc(y[rows], score[rows], np.ones((1, len(rows))))[0]
            if not np.isclose(exact, fast, rtol=0, atol=1e-9):
                raise AssertionError(f"bootstrap AUC {fast} differs from roc_auc_score {exact}")

    def mean_auc(score: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.mean([weighted_auc(y[rows], score[rows], counts[:, rows]) for rows in members], axis=0)

    rng = np.random.default_rng(seed)
    strata = groups * 2 + y
    resampled: dict[str, list[np.ndarray]] = {name: [] for name in scores}
    for start in range(0, n_resamples, BATCH):
        counts = resample_counts(strata, min(BATCH, n_resamples - start), rng)
        for name, score in scores.items():
            resampled[name].append(mean_auc(score, counts))
    point = {name: float(mean_auc(score, np.ones((1, len(y))))[0]) for name, score in scores.items()}
    ours = np.concatenate(resampled[reference])
    tail = (1 - LEVEL) / 2 * 100
    out = {}
    for name in scores:
        if name == reference:
            continue
        diff = ours - np.concatenate(resampled[name])
        low, high = np.percentile(diff, [tail, 100 - tail])
        out[name] = Interval(point[reference] - point[name], float(low), float(high))
    return out
