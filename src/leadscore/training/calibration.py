"""Calibration of a fitted model on the calibration window, and the choice of its method.

The calibration method (sigmoid or isotonic) is chosen by out-of-fold log loss *within* the
calibration window, so the choice never sees the test window and a calibrator is never scored on the
rows it was fitted on. The result is a `leadscore.model.calibrated.CalibratedModel`: the model and a
calibrator fitted on the model's own raw output (its decision function).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore.model.calibrated import CalibratedModel, PrecomputedScores
from leadscore.model.kinds import model_kind

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before a log loss


def calibrate(model: Pipeline, kind: str, X_cal: pd.DataFrame, y_cal: np.ndarray, method: str,
              seed: int) -> tuple[CalibratedModel, str, float]:
    """Calibrate a fitted model (of kind `kind`, see `leadscore.model.kinds`) on the calibration window.

    With method `auto`, sigmoid and isotonic are compared by 5-fold out-of-fold log loss on the
    calibration window and the better one is refitted on the whole window. Returns the calibrated
    model, the method and its out-of-fold log loss.
    """
    scores = model_kind(kind).raw_output(model, X_cal)
    methods = ["sigmoid", "isotonic"] if method == "auto" else [method]
    losses = {m: out_of_fold_log_loss(scores, y_cal, m, seed) for m in methods}
    best = min(losses, key=losses.get)
    return CalibratedModel(model, kind, calibrate_scores(scores, y_cal, best)), best, losses[best]


def out_of_fold_log_loss(scores: np.ndarray, y: np.ndarray, method: str, seed: int) -> float:
    """Log loss of `method` calibrating raw outputs `scores`, each fold by a calibrator fitted on the other folds."""
    scores = np.asarray(scores).reshape(-1, 1)
    folds = StratifiedKFold(n_splits=max(2, min(5, int(np.bincount(y).min()))), shuffle=True, random_state=seed)
    predicted = np.empty(len(y))
    for fit_rows, held_rows in folds.split(scores, y):
        calibrator = calibrate_scores(scores[fit_rows], y[fit_rows], method)
        predicted[held_rows] = calibrator.predict_proba(scores[held_rows])[:, 1]
    return float(log_loss(y, np.clip(predicted, EPS, 1 - EPS)))


def calibrate_scores(scores: np.ndarray, y: np.ndarray, method: str) -> CalibratedClassifierCV:
    """A calibrator (`method`: sigmoid or isotonic) fitted on precomputed raw outputs of a model, read as
    the model's own decision function would be."""
    scores = np.asarray(scores).reshape(-1, 1)
    stand_in = FrozenEstimator(PrecomputedScores().fit(scores, y))
    return CalibratedClassifierCV(stand_in, method=method).fit(scores, y)
