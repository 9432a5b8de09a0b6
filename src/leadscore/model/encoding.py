"""Typing of raw feature columns, learned once on the training window.

Numeric and boolean columns become floats; everything else becomes a pandas categorical with the
categories seen at least `min_category_count` times in training. Rarer and unseen categories become
missing: LightGBM routes missing categoricals down its learned default branch and the logistic
model gives them no one-hot weight, so an unseen value never fails scoring (the scoring job counts
and reports them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted


class FrameEncoder(TransformerMixin, BaseEstimator):
    """Cast a frame of raw features to float and categorical columns with fixed categories."""

    def __init__(self, min_category_count: int = 5):
        self.min_category_count = min_category_count

    def fit(self, X: pd.DataFrame, y=None) -> FrameEncoder:
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.numeric_columns_ = [c for c in X.columns if _is_numeric(X[c])]
        self.categorical_columns_ = [c for c in X.columns if c not in self.numeric_columns_]
        self.categories_ = {}
        for column in self.categorical_columns_:
            counts = X[column].dropna().astype(str).value_counts()
            self.categories_[column] = sorted(counts.index[counts >= self.min_category_count])
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        out = {}
        for column in self.feature_names_in_:
            values = X[column]
            if column in self.categories_:
                categories = self.categories_[column]
                out[column] = pd.Categorical.from_codes(_category_codes(values, categories), categories=categories)
            else:
                out[column] = values.astype("float64").to_numpy()
        return pd.DataFrame(out, index=X.index)

    def unseen_counts(self, X: pd.DataFrame) -> dict[str, int]:
        """Per categorical column, how many non-missing values are not a known category."""
        check_is_fitted(self)
        counts = {}
        for column, categories in self.categories_.items():
            present = X[column].dropna().astype(str)
            unseen = int((~present.isin(categories)).sum())
            if unseen:
                counts[column] = unseen
        return counts

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_in_


def _category_codes(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Each value's position among `categories`, compared as text; -1 (missing) for rare, unseen and missing values.

    The column is factorised first (one hashing pass in C) and only its distinct values are looked up:
    a chunk of 100,000 leads holds a few dozen of them.
    """
    value_codes, distinct = pd.factorize(values)
    lookup = pd.Index(categories, dtype="string").get_indexer(pd.Index(distinct).astype("string"))
    return np.append(lookup, -1)[value_codes]  # a missing value's code, -1, picks the -1 appended last


def segment_codes(values: pd.Series, keys: tuple[str, ...]) -> np.ndarray:
    """Each value's position among the segment values `keys` (`leadscore.model.segments`), compared as text as
    categories are; -1 (the global model) for missing values and values not among the keys."""
    return _category_codes(values, list(keys))


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


# The logistic candidate's pipeline refers to the three functions below, so they are pickled with the
# model by reference: they live here, on the scoring side, so that unpickling a model for scoring never
# imports the training stack.


def signed_log(values):
    """Sign times log(1 + |x|): keeps order and sign while taming heavy-tailed counts and recencies."""
    return np.sign(values) * np.log1p(np.abs(values))


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """The encoded frame's numeric columns (every column that is not categorical)."""
    return [c for c in frame.columns if not isinstance(frame[c].dtype, pd.CategoricalDtype)]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """The encoded frame's categorical columns."""
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
