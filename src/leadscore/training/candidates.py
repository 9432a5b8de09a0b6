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

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from leadscore.config import LightGBMConfig, ModelConfig
from leadscore.model.encoding import FrameEncoder


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
