"""`CalibratedModel`: a fitted model and the calibrator of its own scores, as one object.

    p(x) = calibrator(f(x)),  f(x) = the model's raw output (see `leadscore.model.kinds`)

The calibrator is a scikit-learn `CalibratedClassifierCV` (sigmoid or isotonic) around a frozen
`PrecomputedScores` stand-in: its input is one column of raw outputs, not the feature frame. So it
can be fitted on any raw outputs of the calibration window, including out-of-fold ones of a model
refitted on that window, and the explainer maps a raw output to a probability through the very
object that scores leads, with public scikit-learn API only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline

from leadscore.model.kinds import ModelKind, model_kind


@dataclass(frozen=True)
class CalibratedModel:
    """A fitted model (`kind`: its entry in `leadscore.model.kinds.MODEL_KINDS`) and the calibrator of its raw output.

    Built at training time from fitted parts; `calibrator` reads one column of the model's raw outputs and
    never falls as the raw output rises (`leadscore.training.calibration` guards it); `note` says why the
    calibration differs from the one asked for (empty when it does not).
    """

    model: Pipeline
    kind: str
    calibrator: CalibratedClassifierCV
    note: str = ""

    @property
    def model_kind(self) -> ModelKind:
        """How the model's raw output and contributions are read."""
        return model_kind(self.kind)

    @property
    def method(self) -> str:
        """The calibration method: sigmoid or isotonic."""
        return self.calibrator.method

    def raw_output(self, features: pd.DataFrame) -> np.ndarray:
        """The model's raw output (log-odds scale) for each row."""
        return np.asarray(self.model_kind.raw_output(self.model, features))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one column per class (not converted, converted)."""
        return self.calibrator.predict_proba(self.raw_output(features).reshape(-1, 1))

    def probability_of_raw(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated probability of converting, as a function of the model's raw output."""
        return self.calibrator.predict_proba(np.asarray(raw, dtype="float64").reshape(-1, 1))[:, 1]


class PrecomputedScores(ClassifierMixin, BaseEstimator):
    """A fitted-model stand-in whose input is one column of a model's raw outputs, given back as its
    decision function, so that calibration sees exactly what it would see from the model itself."""

    def fit(self, X, y):
        """Learn the classes; the raw outputs themselves need no fitting."""
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        """The class each raw output falls on (converted above 0)."""
        return (np.asarray(X)[:, 0] > 0).astype(int)

    def decision_function(self, X):
        """The raw outputs as they are."""
        return np.asarray(X)[:, 0]
