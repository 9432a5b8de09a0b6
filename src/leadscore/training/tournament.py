"""The model tournament: every registered candidate (`leadscore.training.candidates`), each calibrated.

Every candidate is calibrated on the calibration window; the calibration method (sigmoid or isotonic)
and the winning candidate are chosen by out-of-fold log loss *within* the calibration window, so the
choice never sees the test window and a calibrator is never scored on the rows it was fitted on.

The winner is then refitted on the training and calibration windows together (`refit_winner`): the
calibration window holds the latest labelled rows before the test window, and a model that never learns
from them misses whatever changed lately (new campaigns, a new kind of lead, a new conversion level).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore.config import ModelConfig
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.kinds import model_kind
from leadscore.training.calibration import EPS, calibrate, calibrate_scores
from leadscore.training.candidates import candidate


@dataclass(frozen=True)
class Candidate:
    """One calibrated candidate and how it did on the calibration window."""

    name: str
    classifier: CalibratedModel | None  # None for the points fallback, which is not a classifier
    calibration_method: str
    calibration_log_loss: float
    details: dict


def run_tournament(fitted: dict[str, Pipeline], X_cal, y_cal, cfg: ModelConfig) -> tuple[Candidate, list[Candidate]]:
    """Calibrate every fitted candidate (keyed by its registry name); the winner has the lowest
    out-of-fold calibration log loss."""
    candidates = []
    for name, model in fitted.items():
        spec = candidate(name)
        classifier, method, loss = calibrate(model, spec.kind, X_cal, y_cal, cfg.calibration, cfg.seed)
        candidates.append(Candidate(name, classifier, method, loss, spec.details(model)))
    winner = min(candidates, key=lambda c: c.calibration_log_loss)
    return winner, candidates


_REFIT_FOLDS = 3


@dataclass(frozen=True)
class Refit:
    """The tournament winner refitted on the training and calibration windows together."""

    candidate: Candidate  # the refitted model with its calibration; details gain `refit_rows`
    model: Pipeline  # the refitted model before calibration
    p_calibration: np.ndarray  # calibrated out-of-fold probabilities of the calibration window's rows


def refit_winner(winner: Candidate, model: Pipeline, X_train: pd.DataFrame, y_train: np.ndarray,
                 X_cal: pd.DataFrame, y_cal: np.ndarray, cfg: ModelConfig, groups: np.ndarray | None = None) -> Refit:
    """Refit the winner's model (same settings, e.g. LightGBM's tree count) on the training and calibration windows.

    Its calibrator (the winner's method) is fitted on out-of-fold scores of the calibration window: the
    window is cut into folds (rows of one lead, as given by `groups`, stay in one fold, so that a lead's
    other snapshots cannot tell its label), and each fold is scored by a model fitted on everything else. Those scores
    look like the refitted model's scores of new leads, where its own scores of rows it learned from
    would be too confident. The out-of-fold probabilities are returned too, for anything else chosen on
    the calibration window (the cutoffs).
    """
    kind = winner.classifier.kind
    refitted = clone(model).fit(pd.concat([X_train, X_cal]), np.concatenate([y_train, y_cal]))
    scores = _held_out_scores(model, kind, X_train, y_train, X_cal, y_cal, groups, cfg.seed)
    calibrator = calibrate_scores(scores, y_cal, winner.calibration_method)
    classifier = CalibratedModel(refitted, kind, calibrator)
    p_calibration = calibrator.predict_proba(scores)[:, 1]
    loss = float(log_loss(y_cal, np.clip(p_calibration, EPS, 1 - EPS), labels=[0, 1]))
    candidate = Candidate(winner.name, classifier, winner.calibration_method, loss,
                          {**winner.details, "refit_rows": len(y_train) + len(y_cal)})
    return Refit(candidate, refitted, p_calibration)


def _held_out_scores(model: Pipeline, kind: str, X_train, y_train, X_cal, y_cal, groups, seed: int) -> np.ndarray:
    """Raw output for each calibration row, by a clone of `model` fitted on the training window and the other folds."""
    n_splits = max(2, min(_REFIT_FOLDS, int(np.bincount(y_cal).min())))
    if groups is not None and len(np.unique(groups)) < len(groups):
        folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_cal, y_cal, groups)
    else:
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_cal, y_cal)
    scores = np.empty((len(y_cal), 1))
    for fit_rows, held_rows in folds:
        fold_model = clone(model).fit(pd.concat([X_train, X_cal.iloc[fit_rows]]), np.concatenate([y_train, y_cal[fit_rows]]))
        scores[held_rows, 0] = model_kind(kind).raw_output(fold_model, X_cal.iloc[held_rows])
    return scores
