"""Calibration of a fitted model on the calibration window, and the choice of its method.

The calibration method (sigmoid or isotonic) is chosen by out-of-fold log loss *within* the
calibration window, so the choice never sees the test window and a calibrator is never scored on the
rows it was fitted on. The result is a `leadscore.model.calibrated.CalibratedModel`: the model and a
calibrator fitted on the model's own raw output (its decision function).

A calibrator never inverts its model (`fit_calibrator`). Read on a grid of the raw outputs the model gave
the calibration rows (where it ranks), the calibrated probability must rise: a sigmoid fitted on a window
whose relation to the raw output is inverted learns a slope of the wrong sign and would turn the best
leads into the worst. When it does, the isotonic fit (non-decreasing by construction, which is checked)
takes its place; when that is flat too, every lead gets the window's base rate. Either way the model
records why (`CalibratedModel.note`), and the run and the model card show it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import PredefinedSplit, StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore.model.calibrated import CalibratedModel, PrecomputedScores
from leadscore.model.kinds import model_kind

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before a log loss
# Where a calibrator is checked: these quantiles of the raw outputs it was fitted on, i.e. where the model ranks
# the window's leads (the tails beyond hold too few leads to tell a slope from noise).
_GRID = np.linspace(0.01, 0.99, 99)
# Below this rise in probability from the grid's lowest to its highest raw output, a calibrator is flat: it
# gives every lead the same probability and throws the model's ranking away.
MIN_RISE = 1e-6


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibrator, the method it uses, and why that differs from the method asked for ("" if it does not)."""

    calibrator: CalibratedClassifierCV
    method: str
    note: str = ""


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
    fitted = fit_calibrator(scores, y_cal, best)
    return CalibratedModel(model, kind, fitted.calibrator, fitted.note), fitted.method, losses[best]


def out_of_fold_log_loss(scores: np.ndarray, y: np.ndarray, method: str, seed: int) -> float:
    """Log loss of `method` calibrating raw outputs `scores`, each fold by a calibrator fitted on the other folds."""
    predicted = out_of_fold_probabilities(scores, y, method, seed)
    return float(log_loss(y, np.clip(predicted, EPS, 1 - EPS)))


def out_of_fold_probabilities(scores: np.ndarray, y: np.ndarray, method: str, seed: int) -> np.ndarray:
    """Probabilities of `method` calibrating raw outputs `scores`, each fold by a calibrator fitted on the other folds
    (the folds of `out_of_fold_log_loss`)."""
    scores = np.asarray(scores).reshape(-1, 1)
    folds = StratifiedKFold(n_splits=max(2, min(5, int(np.bincount(y).min()))), shuffle=True, random_state=seed)
    predicted = np.empty(len(y))
    for fit_rows, held_rows in folds.split(scores, y):
        # The guarded calibrator, so that the loss is the one of what would be deployed.
        calibrator = fit_calibrator(scores[fit_rows], y[fit_rows], method).calibrator
        predicted[held_rows] = calibrator.predict_proba(scores[held_rows])[:, 1]
    return predicted


def calibrate_scores(scores: np.ndarray, y: np.ndarray, method: str) -> CalibratedClassifierCV:
    """A calibrator (`method`: sigmoid or isotonic) fitted on precomputed raw outputs of a model, read as
    the model's own decision function would be."""
    scores = np.asarray(scores).reshape(-1, 1)
    stand_in = FrozenEstimator(PrecomputedScores().fit(scores, y))
    # A frozen model's scores do not depend on folds, so one split that holds out every row gives the same
    # calibrator as k folds, and also works on a small window with fewer than k leads of a class.
    every_row_held_out = PredefinedSplit(np.zeros(len(scores)))
    return CalibratedClassifierCV(stand_in, method=method, cv=every_row_held_out).fit(scores, y)


def fit_calibrator(scores: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    """A calibrator of raw outputs `scores` (`method`: sigmoid or isotonic) that never inverts the model.

    Checked on a grid of the raw outputs' quantiles: a sigmoid whose probability falls or stays flat as the raw
    output rises (the window's relation is inverted or flat) is replaced by the isotonic fit, whose probability
    never falls; an isotonic fit that is flat there gives every lead the window's base rate. The note says which.
    """
    scores = np.asarray(scores, dtype="float64").reshape(-1, 1)
    calibrator = calibrate_scores(scores, y, method)
    problem = direction_problem(calibrator, scores)
    if problem is None:
        return Calibrator(calibrator, method)
    if method == "sigmoid":
        isotonic = calibrate_scores(scores, y, "isotonic")
        flat = direction_problem(isotonic, scores)
        note = (f"the sigmoid calibration {problem}, so isotonic calibration (never decreasing) replaced it"
                + (f"; it {flat}, so every lead gets the window's base rate" if flat else ""))
        return Calibrator(isotonic, "isotonic", note)
    return Calibrator(calibrator, method, f"the isotonic calibration {problem}, so every lead gets the window's base rate")


def direction_problem(calibrator: CalibratedClassifierCV, scores: np.ndarray) -> str | None:
    """How the calibrator fails to rise with the raw output on the grid of `scores`' quantiles, or None.

    Isotonic calibration is non-decreasing by construction; a decrease there is a broken invariant, not data.
    """
    grid = np.quantile(np.asarray(scores, dtype="float64").ravel(), _GRID)
    p = calibrator.predict_proba(grid.reshape(-1, 1))[:, 1]
    steps = np.diff(p)
    if calibrator.method == "isotonic" and (steps < -1e-12).any():
        raise AssertionError("isotonic calibration decreased with the raw output: scikit-learn's fit is increasing")
    rise = p[-1] - p[0]
    if rise < -MIN_RISE:
        return (f"fell from {p[0]:.4f} to {p[-1]:.4f} as the model's raw output rose (the calibration window ranks "
                "leads the other way round from the model)")
    if rise <= MIN_RISE:
        return f"was flat at {p[-1]:.4f} where the model ranks (the calibration window shows no relation to its raw output)"
    return None
