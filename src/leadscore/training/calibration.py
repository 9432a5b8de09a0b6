"""The model tournament: LightGBM against a regularised logistic regression, each calibrated.

Both candidates are scikit-learn pipelines that start from the raw feature frame. Each is calibrated
on the calibration window; the calibration method (sigmoid or isotonic) and the winning candidate
are chosen by out-of-fold log loss *within* the calibration window, so the choice never sees the test
window and a calibrator is never scored on the rows it was fitted on.

The winner is then refitted on the training and calibration windows together (`refit_winner`): the
calibration window holds the latest labelled rows before the test window, and a model that never learns
from them misses whatever changed lately (new campaigns, a new kind of lead, a new conversion level).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if

_EPS = 1e-6


def calibrate(model: Pipeline, X_cal: pd.DataFrame, y_cal: np.ndarray, method: str, seed: int) -> tuple[CalibratedClassifierCV, str, float]:
    """Calibrate a fitted model on the calibration window.

    With method `auto`, sigmoid and isotonic are compared by 5-fold out-of-fold log loss on the
    calibration window and the better one is refitted on the whole window. Returns the calibrated
    classifier, the method and its out-of-fold log loss.
    """
    methods = ["sigmoid", "isotonic"] if method == "auto" else [method]
    scores = {m: _out_of_fold_log_loss(model, X_cal, y_cal, m, seed) for m in methods}
    best = min(scores, key=scores.get)
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=best).fit(X_cal, y_cal)
    return calibrated, best, scores[best]


def _out_of_fold_log_loss(model, X, y, method, seed) -> float:
    # The frozen model's scores are computed once; each fold then calibrates those scores alone.
    scores = _raw_scores(model, X)
    folds = StratifiedKFold(n_splits=max(2, min(5, int(np.bincount(y).min()))), shuffle=True, random_state=seed)
    predicted = np.empty(len(y))
    for fit_rows, held_rows in folds.split(scores, y):
        calibrator = _calibrate_scores(scores[fit_rows], y[fit_rows], method, _response(model))
        predicted[held_rows] = calibrator.predict_proba(scores[held_rows])[:, 1]
    return float(log_loss(y, np.clip(predicted, _EPS, 1 - _EPS)))


def _response(model) -> str:
    """The output calibration reads from a model: its decision function if it has one, else its probability."""
    return "decision_function" if hasattr(model, "decision_function") else "predict_proba"


def _raw_scores(model, X) -> np.ndarray:
    """The model's output that calibration reads (see `_response`), as one column."""
    scores = model.decision_function(X) if _response(model) == "decision_function" else model.predict_proba(X)[:, 1]
    return scores.reshape(-1, 1)


def _calibrate_scores(scores: np.ndarray, y: np.ndarray, method: str, response: str) -> CalibratedClassifierCV:
    """A calibrator fitted on a model's precomputed scores (one column), read as `response` like the model's own."""
    stand_in = FrozenEstimator(_PrecomputedScores(response).fit(scores, y))
    return CalibratedClassifierCV(stand_in, method=method).fit(scores, y)


class _PrecomputedScores(ClassifierMixin, BaseEstimator):
    """A fitted-model stand-in whose input is the model's own scores, exposing the same response
    method (decision function or probability) so that calibration sees exactly what it would see."""

    def __init__(self, response: str = "decision_function"):
        self.response = response

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return (np.asarray(X)[:, 0] > (0 if self.response == "decision_function" else 0.5)).astype(int)

    @available_if(lambda self: self.response == "decision_function")
    def decision_function(self, X):
        return np.asarray(X)[:, 0]

    @available_if(lambda self: self.response == "predict_proba")
    def predict_proba(self, X):
        p = np.asarray(X)[:, 0]
        return np.column_stack([1 - p, p])
