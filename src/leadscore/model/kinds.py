"""The kinds of fitted model a scorer can carry, and how the scoring artifact reads each one.

A training candidate (`leadscore.training.candidates`) names its kind. Everything the fitted artifact
needs from its model at scoring time lives here, so that scoring never loads the training stack:
- `raw_output`: the model's raw output on the log-odds scale, which the calibrator reads and the
  explanations split exactly;
- `contributions`: built once at training time from the rows the model learned from, it splits the
  raw output of any lead into a base value and one exact contribution per feature column.

Adding a kind of model is one entry in `MODEL_KINDS`.

The kinds
---------
- `lightgbm`: a pipeline `encode` (categoricals native) then `LGBMClassifier`. Raw output: the raw margin
  (its decision function).
  Contributions: exact TreeSHAP, LightGBM's own `pred_contrib` values, computed once per group of rows
  that take the same directions in a tree (`leadscore.model.tree_paths`: the same values, to float
  rounding, at a few times a prediction's cost instead of 30 to 200 times); categoricals are native, so
  there is already one value per original column. SHAP's TreeExplainer gives the same values (it calls
  the same routine for LightGBM) and is not faster, so scoring needs no SHAP. The base value is the
  model's expected raw output over its training data.
- `logistic`: a pipeline `encode`, `prepare` (a `ColumnTransformer`), then a linear model with `coef_`
  and `intercept_`. Raw output: the decision function. Contributions: phi_j = sum over the model inputs
  derived from column j (its scaled value, its missing indicator, its one-hot columns) of coefficient *
  (input - mean of that input over the rows the model was fitted on); the base value is the intercept
  plus the coefficients times those means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from leadscore.model.tree_paths import TreePathExplainer, frame_matrix


class Contributions(Protocol):
    """Exact contributions of one fitted model: `base_raw` + the row sum of `__call__` is its raw output."""

    base_raw: float

    def __call__(self, pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
        """Contributions to the raw output, rows x feature columns (in the order they were built with)."""
        ...


@dataclass(frozen=True)
class ModelKind:
    """How the scoring artifact reads one kind of fitted model (see the module docstring)."""

    raw_output: Callable[[Pipeline, pd.DataFrame], np.ndarray]  # (pipeline, features) -> one value per row
    contributions: Callable[[Pipeline, pd.DataFrame, list[str]], Contributions]  # (pipeline, training rows, columns)


@dataclass(frozen=True)
class TreeContributions:
    """LightGBM's exact TreeSHAP values (`pred_contrib`, by groups of rows: `TreePathExplainer`); the base value is
    LightGBM's own. The explainer is built from the booster on first use and not pickled with the model."""

    base_raw: float
    _paths: TreePathExplainer | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, pipeline: Pipeline, train_features: pd.DataFrame, feature_columns: list[str]) -> TreeContributions:
        """The contributions of a fitted `encode` + LightGBM pipeline (any one row gives the base value)."""
        encoded = pipeline[:-1].transform(train_features[feature_columns].head(1))
        return cls(base_raw=float(pipeline[-1].booster_.predict(encoded, pred_contrib=True)[0, -1]))

    def __call__(self, pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
        booster = pipeline[-1].booster_
        if self._paths is None or self._paths.booster is not booster:
            object.__setattr__(self, "_paths", TreePathExplainer(booster))
        return self._paths.contributions(frame_matrix(pipeline[:-1].transform(features)))[:, :-1]

    def __getstate__(self) -> dict:
        return {"base_raw": self.base_raw}

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "base_raw", state["base_raw"])
        object.__setattr__(self, "_paths", None)


@dataclass(frozen=True)
class LinearContributions:
    """A linear model's contributions, measured from the mean of each model input over its training rows."""

    base_raw: float
    reference: np.ndarray  # mean of each model input over the training rows
    origin: np.ndarray  # for each model input, the position of the feature column it comes from
    columns: int  # how many feature columns

    @classmethod
    def build(cls, pipeline: Pipeline, train_features: pd.DataFrame, feature_columns: list[str]) -> LinearContributions:
        """The contributions of a fitted `encode` + `prepare` + linear model pipeline."""
        prepare = pipeline["prepare"]
        inputs = np.asarray(prepare.transform(pipeline["encode"].transform(train_features[feature_columns])), dtype="float64")
        reference = inputs.mean(axis=0)
        base_raw = float(pipeline[-1].intercept_[0] + reference @ pipeline[-1].coef_[0])
        return cls(base_raw=base_raw, reference=reference, origin=_input_origins(prepare, feature_columns),
                   columns=len(feature_columns))

    def __call__(self, pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
        encoded = pipeline["encode"].transform(features)
        inputs = np.asarray(pipeline["prepare"].transform(encoded), dtype="float64")
        weighted = (inputs - self.reference) * pipeline[-1].coef_[0]
        # Each input comes from exactly one feature column: summing back is a 0/1 matrix product.
        summing = np.zeros((len(self.origin), self.columns))
        summing[np.arange(len(self.origin)), self.origin] = 1.0
        return weighted @ summing


def _decision_function(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    return pipeline.decision_function(features)


def _linear_decision(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """The linear model's decision function, each row's dot product summed on its own.

    A matrix product (what `decision_function` does) lets BLAS block the rows, and the last bits of a row's
    sum then depend on how many rows came with it: the same lead scored in chunks of another size, or by
    another engine, would get a probability that differs in the last bits. A row-wise sum does not.
    """
    inputs = np.ascontiguousarray(pipeline[:-1].transform(features), dtype="float64")
    model = pipeline[-1]
    return (inputs * model.coef_[0]).sum(axis=1) + model.intercept_[0]


MODEL_KINDS: dict[str, ModelKind] = {
    "lightgbm": ModelKind(raw_output=_decision_function, contributions=TreeContributions.build),
    "logistic": ModelKind(raw_output=_linear_decision, contributions=LinearContributions.build),
}


def model_kind(name: str) -> ModelKind:
    """The registered kind called `name`; an unknown name is refused with the known ones."""
    try:
        return MODEL_KINDS[name]
    except KeyError:
        raise ValueError(f"no model kind '{name}'; known kinds: {', '.join(MODEL_KINDS)}") from None


def _input_origins(prepare: ColumnTransformer, feature_columns: list[str]) -> np.ndarray:
    """For each column the ColumnTransformer outputs, the index of the feature column it comes from."""
    position = {c: i for i, c in enumerate(feature_columns)}
    origin = np.full(len(prepare.get_feature_names_out()), -1)
    for name, transformer, columns in prepare.transformers_:
        piece = prepare.output_indices_[name]
        if piece.stop == piece.start:
            continue
        sources = _output_sources(transformer, list(columns))
        if len(sources) != piece.stop - piece.start:
            raise TypeError(f"cannot trace the outputs of transformer '{name}' back to its input columns")
        origin[piece] = [position[c] for c in sources]
    return origin


def _output_sources(transformer, columns: list[str]) -> list[str]:
    """The input column behind each output of a fitted transformer, for the kinds the models use."""
    if isinstance(transformer, Pipeline):
        sources = _output_sources(transformer[0], columns)
        if len(transformer.get_feature_names_out(columns)) != len(sources):
            raise TypeError("a pipeline step after the first changes the number of columns")
        return sources
    if isinstance(transformer, SimpleImputer):
        kept = [c for c, s in zip(columns, transformer.statistics_) if transformer.keep_empty_features or not np.isnan(s)]
        flagged = [columns[i] for i in transformer.indicator_.features_] if transformer.add_indicator else []
        return kept + flagged
    if isinstance(transformer, OneHotEncoder):
        infrequent = transformer.min_frequency is not None or transformer.max_categories is not None
        if transformer.drop_idx_ is not None or infrequent:
            raise TypeError("one-hot columns with dropped or infrequent categories are not traced")
        return [c for c, categories in zip(columns, transformer.categories_) for _ in categories]
    if transformer == "passthrough":
        return columns
    raise TypeError(f"cannot trace the outputs of a {type(transformer).__name__} back to its input columns")
