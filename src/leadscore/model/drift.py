"""Population stability of the leads being scored against the data the model was trained on.

Training stores a `DriftReference` on the scorer: decile bins of every numeric feature on the training
window, the shares of every categorical feature's known categories (the encoder's), and decile bins of
`p_convert` on the test window. A scoring job feeds each chunk to a `DriftCounter`, which keeps only
counts per bin: memory stays constant however many leads are scored, and counts from Spark partitions
add up to the same report as one pass over the whole file.

The population stability index of a column is `sum((a - e) * ln(a / e))` over its bins, with `e` the
reference share and `a` the scored share of each bin. Rules of thumb: below 0.1 stable, 0.1-0.2 a
moderate shift, above 0.2 a shift worth a look before trusting the scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MISSING, OTHER = "(missing)", "(other)"
SCORE = "p_convert"
DEFAULT_BINS = 10
# Shares are floored here so that an empty bin on either side gives a large but finite index.
_SHARE_FLOOR = 1e-4


@dataclass(frozen=True)
class Binning:
    """How one column is bucketed, and the share of reference rows in each bucket.

    Numeric columns have `edges` (bucket i holds edges[i-1] < x <= edges[i]; the last bucket is above
    the last edge) and a final bucket for missing values. Categorical columns have `categories`, then
    one bucket for any other value and one for missing values.
    """

    expected: tuple[float, ...]
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None

    @property
    def labels(self) -> list[str]:
        """A readable name per bucket, in bucket order."""
        if self.categories is not None:
            return [*self.categories, OTHER, MISSING]
        edges = self.edges
        if not edges:
            return ["all", MISSING]
        inner = [f"({low:.6g}, {high:.6g}]" for low, high in zip(edges[:-1], edges[1:])]
        return [f"<= {edges[0]:.6g}", *inner, f"> {edges[-1]:.6g}", MISSING]

    def counts(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """How many of `values` fall in each bucket."""
        n_buckets = len(self.expected)
        if self.categories is not None:
            text = pc.cast(pa.array(pd.Series(values).astype("string"), from_pandas=True), pa.string())
            position = pc.index_in(text, value_set=pa.array(self.categories, pa.string()))
            other = pc.if_else(pc.is_null(text), n_buckets - 1, n_buckets - 2)  # missing, or outside the categories
            codes = pc.coalesce(position, other).to_numpy(zero_copy_only=False)
        else:
            numbers = np.asarray(values) if getattr(values, "dtype", None) == "float64" else (
                pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
            codes = np.searchsorted(np.asarray(self.edges, dtype="float64"), numbers, side="left")
            codes[np.isnan(numbers)] = n_buckets - 1
        return np.bincount(codes, minlength=n_buckets)


@dataclass(frozen=True)
class DriftReference:
    """Reference distributions of the features (training window) and of `p_convert` (test window)."""

    features: dict[str, Binning]
    score: Binning
    rows: int


def numeric_binning(values: pd.Series | np.ndarray, bins: int = DEFAULT_BINS) -> Binning:
    """Quantile bins of a numeric column; repeated quantiles (e.g. many zeros) merge into one bin."""
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    present = numbers[~np.isnan(numbers)]
    edges = tuple(np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))) if len(present) else ()
    return _with_shares(Binning(expected=(0.0,) * (len(edges) + 2), edges=tuple(float(e) for e in edges)), numbers)


def categorical_binning(values: pd.Series, categories: list[str]) -> Binning:
    """Shares of the known categories, of any other value and of missing values."""
    return _with_shares(Binning(expected=(0.0,) * (len(categories) + 2), categories=tuple(categories)), values)


def _with_shares(binning: Binning, values) -> Binning:
    counts = binning.counts(values)
    shares = counts / max(int(counts.sum()), 1)
    return Binning(expected=tuple(float(s) for s in shares), edges=binning.edges, categories=binning.categories)


def build_reference(
    train_features: pd.DataFrame, categories: Mapping[str, list[str]], test_scores: np.ndarray, bins: int = DEFAULT_BINS
) -> DriftReference:
    """The reference for a scorer: `categories` are the encoder's known categories per categorical column."""
    features = {
        str(column): categorical_binning(train_features[column], list(categories[column]))
        if column in categories else numeric_binning(train_features[column], bins)
        for column in train_features.columns
    }
    return DriftReference(features=features, score=numeric_binning(test_scores, bins), rows=len(train_features))


def psi(expected: np.ndarray, actual_counts: np.ndarray) -> float:
    """Population stability index of observed bucket counts against reference shares."""
    actual_counts = np.asarray(actual_counts, dtype="float64")
    if actual_counts.sum() == 0:
        return float("nan")
    e = np.maximum(np.asarray(expected, dtype="float64"), _SHARE_FLOOR)
    a = np.maximum(actual_counts / actual_counts.sum(), _SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftCounter:
    """Bucket counts of scored leads, added chunk by chunk (or partition by partition)."""

    def __init__(self, reference: DriftReference):
        self.reference = reference
        self.counts = {column: np.zeros(len(b.expected), dtype="int64") for column, b in reference.features.items()}
        self.counts[SCORE] = np.zeros(len(reference.score.expected), dtype="int64")

    def _binning(self, column: str) -> Binning:
        return self.reference.score if column == SCORE else self.reference.features[column]

    def add(self, features: pd.DataFrame | None = None, scores: np.ndarray | None = None) -> None:
        """Count one chunk's feature values and/or its `p_convert` values."""
        if features is not None:
            for column in self.reference.features:
                self.counts[column] += self._binning(column).counts(features[column])
        if scores is not None:
            self.counts[SCORE] += self.reference.score.counts(scores)

    def add_counts(self, counts: Mapping[str, list[int]]) -> None:
        """Add counts made elsewhere (another process, a Spark partition)."""
        for column, values in counts.items():
            self.counts[column] += np.asarray(values, dtype="int64")

    def other_counts(self) -> dict[str, int]:
        """Per categorical feature, how many values were outside the known categories (scored as missing)."""
        return {
            column: int(self.counts[column][-2])
            for column, binning in self.reference.features.items()
            if binning.categories is not None and self.counts[column][-2]
        }

    def as_lists(self) -> dict[str, list[int]]:
        """The counts as plain lists, for JSON."""
        return {column: values.tolist() for column, values in self.counts.items()}

    def report(self, threshold: float) -> dict:
        """PSI per feature and for the score, with the bins behind each figure, as a JSON-ready dict."""
        columns = {}
        for column, counts in self.counts.items():
            binning = self._binning(column)
            value = psi(np.asarray(binning.expected), counts)
            columns[column] = {
                "psi": None if np.isnan(value) else round(value, 6),
                "kind": "categorical" if binning.categories is not None else "numeric",
                "bins": binning.labels,
                "expected_share": [round(s, 6) for s in binning.expected],
                "actual_count": counts.tolist(),
            }
        drifted = sorted(
            (c for c, v in columns.items() if v["psi"] is not None and v["psi"] > threshold),
            key=lambda c: -columns[c]["psi"],
        )
        return {
            "threshold": threshold,
            "rows": int(self.counts[SCORE].sum()),
            "reference_rows": self.reference.rows,
            "drifted": drifted,
            "score": columns.pop(SCORE),
            "features": columns,
        }
