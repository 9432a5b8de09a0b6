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

import os
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.metaestimators import available_if

from leadscore.config import LightGBMConfig, ModelConfig
from leadscore.encoding import FrameEncoder

_EPS = 1e-6


@dataclass(frozen=True)
class Candidate:
    """One calibrated candidate and how it did on the calibration window."""

    name: str
    classifier: CalibratedClassifierCV | None  # None for the points fallback, which is not a classifier
    calibration_method: str
    calibration_log_loss: float
    details: dict


def fit_candidates(train: pd.DataFrame, y_train: np.ndarray, validation_order: np.ndarray, cfg: ModelConfig) -> dict[str, Pipeline]:
    """Fit every configured candidate on the training window.

    `validation_order` ranks training rows by time (or at random); LightGBM stops early on the
    latest `validation_fraction` of them, then is refitted on the whole window with that many trees.
    """
    fitted = {}
    for name in cfg.candidates:
        if name == "lightgbm":
            fitted[name] = fit_lightgbm(train, y_train, validation_order, cfg.lightgbm, cfg.seed, cfg.min_category_count)
        else:
            fitted[name] = fit_logistic(train, y_train, cfg.logistic_c, cfg.min_category_count, cfg.seed)
    return fitted


_MULTITHREAD_ROWS = 100_000


def lightgbm_threads(cfg: LightGBMConfig, rows: int) -> int:
    """The configured thread count, else one thread for small windows and every core for large ones.

    On tens of thousands of rows a tree takes milliseconds, and LightGBM's threads spend more time
    waiting for each other than working: measured on 2 cores, 33,000 rows fitted 3-5 times faster on
    one thread, and up to 10 times faster when other work kept the second core busy.
    """
    if cfg.threads is not None:
        return cfg.threads
    return 1 if rows < _MULTITHREAD_ROWS else (os.cpu_count() or 1)


def lightgbm_classifier(cfg: LightGBMConfig, n_estimators: int, seed: int, threads: int | None = None,
                        **extra) -> lgb.LGBMClassifier:
    """A deterministic LightGBM classifier with the configured parameters (plus `extra` ones).

    `threads` applies to training only: given as LightGBM's `num_threads`, it takes precedence over
    `n_jobs` when fitting, while `predict` takes its threads from `n_jobs`, left at every core, so
    that batch scoring of millions of rows keeps using the whole machine.
    """
    if threads is not None:
        extra["num_threads"] = threads
    return lgb.LGBMClassifier(
        n_estimators=n_estimators, learning_rate=cfg.learning_rate, num_leaves=cfg.num_leaves,
        min_child_samples=cfg.min_child_samples, subsample=cfg.subsample, subsample_freq=1,
        colsample_bytree=cfg.colsample_bytree, reg_lambda=cfg.reg_lambda, random_state=seed,
        deterministic=True, force_row_wise=True, verbose=-1, **extra,
    )


def fit_lightgbm(X, y, validation_order, cfg: LightGBMConfig, seed: int, min_category_count: int, **extra) -> Pipeline:
    """LightGBM on native categoricals, with the tree count found by early stopping.

    `extra` goes to LightGBM as it is (e.g. `monotone_constraints`)."""
    encoder = FrameEncoder(min_category_count).fit(X)
    encoded = encoder.transform(X)
    n_validation = max(1, int(len(X) * cfg.validation_fraction))
    is_validation = np.zeros(len(X), dtype=bool)
    is_validation[np.argsort(validation_order, kind="stable")[-n_validation:]] = True
    threads = lightgbm_threads(cfg, len(X))
    probe = lightgbm_classifier(cfg, cfg.n_estimators, seed, threads, **extra)
    if len(np.unique(y[is_validation])) == 2:
        probe.fit(
            encoded[~is_validation], y[~is_validation],
            eval_X=(encoded[is_validation],), eval_y=(y[is_validation],), eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
        )
        n_trees = max(1, probe.best_iteration_ or cfg.n_estimators)
    else:  # too few conversions in the validation slice to stop early: keep the configured bound
        n_trees = cfg.n_estimators
    model = lightgbm_classifier(cfg, n_trees, seed, threads, **extra).fit(encoded, y)
    return Pipeline([("encode", encoder), ("model", model)])


def _signed_log(values):
    # Counts and recencies are heavy-tailed; a signed log keeps order and sign while taming outliers.
    return np.sign(values) * np.log1p(np.abs(values))


def logistic_pipeline(min_category_count: int, c: float, seed: int, *, signed_log: bool) -> Pipeline:
    """One-hot + impute + scale + L2 logistic regression, on the raw feature frame."""
    numeric_steps = [SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)]
    if signed_log:
        numeric_steps.append(FunctionTransformer(_signed_log, feature_names_out="one-to-one"))
    numeric_steps.append(StandardScaler())
    prepare = ColumnTransformer(
        [
            ("numeric", make_pipeline(*numeric_steps), _numeric_selector),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), _categorical_selector),
        ]
    )
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    return Pipeline([("encode", FrameEncoder(min_category_count)), ("prepare", prepare), ("model", model)])


def _numeric_selector(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not isinstance(frame[c].dtype, pd.CategoricalDtype)]


def _categorical_selector(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]


def fit_logistic(X, y, c: float, min_category_count: int, seed: int) -> Pipeline:
    """The regularised logistic candidate (signed-log numerics)."""
    return logistic_pipeline(min_category_count, c, seed, signed_log=True).fit(X, y)


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


def run_tournament(fitted: dict[str, Pipeline], X_cal, y_cal, cfg: ModelConfig) -> tuple[Candidate, list[Candidate]]:
    """Calibrate every candidate; the winner has the lowest out-of-fold calibration log loss."""
    candidates = []
    for name, model in fitted.items():
        classifier, method, loss = calibrate(model, X_cal, y_cal, cfg.calibration, cfg.seed)
        details = {"n_trees": int(model[-1].n_estimators)} if name == "lightgbm" else {}
        candidates.append(Candidate(name, classifier, method, loss, details))
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
    refitted = clone(model).fit(pd.concat([X_train, X_cal]), np.concatenate([y_train, y_cal]))
    scores = _held_out_scores(model, X_train, y_train, X_cal, y_cal, groups, cfg.seed)
    calibrator = _calibrate_scores(scores, y_cal, winner.calibration_method, _response(model))
    classifier = CalibratedClassifierCV(FrozenEstimator(refitted), method=winner.calibration_method).fit(X_cal, y_cal)
    # Fitted on X_cal, the calibrator above saw the refitted model's own (in-sample) scores; it is
    # replaced by the one fitted on out-of-fold scores, which maps the same kind of raw output.
    classifier.calibrated_classifiers_[0].calibrators[0] = calibrator.calibrated_classifiers_[0].calibrators[0]
    p_calibration = calibrator.predict_proba(scores)[:, 1]
    loss = float(log_loss(y_cal, np.clip(p_calibration, _EPS, 1 - _EPS), labels=[0, 1]))
    candidate = Candidate(winner.name, classifier, winner.calibration_method, loss,
                          {**winner.details, "refit_rows": len(y_train) + len(y_cal)})
    return Refit(candidate, refitted, p_calibration)


def _held_out_scores(model: Pipeline, X_train, y_train, X_cal, y_cal, groups, seed: int) -> np.ndarray:
    """Raw scores of each calibration row by a clone of `model` fitted on the training window and the other folds."""
    n_splits = max(2, min(_REFIT_FOLDS, int(np.bincount(y_cal).min())))
    if groups is not None and len(np.unique(groups)) < len(groups):
        folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_cal, y_cal, groups)
    else:
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_cal, y_cal)
    scores = np.empty((len(y_cal), 1))
    for fit_rows, held_rows in folds:
        fold_model = clone(model).fit(pd.concat([X_train, X_cal.iloc[fit_rows]]), np.concatenate([y_train, y_cal[fit_rows]]))
        scores[held_rows] = _raw_scores(fold_model, X_cal.iloc[held_rows])
    return scores
