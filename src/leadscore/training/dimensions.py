"""Fitting the dimension models (fit, engagement, buying stage) on the training and calibration windows.

What each dimension predicts, and how stage and grade are read, is in `leadscore.model.dimensions`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.config import FeatureGroups, ModelConfig, StageConfig
from leadscore.features.events import DAYS_TO_CONVERSION
from leadscore.model.dimensions import (
    DIMENSIONS,
    DimensionModel,
    DimensionScorer,
    resolve_group,
    stage_target,
)
from leadscore.training.calibration import calibrate
from leadscore.training.candidates import candidate, fit_candidates, fit_lightgbm
from leadscore.training.tournament import run_tournament


def dimension_columns(groups: FeatureGroups, form: str, feature_columns: list[str]) -> dict[str, list[str]]:
    """The columns each dimension model uses: its group's columns; for an event log (`form`), engagement
    keeps only the decayed activity columns (see `leadscore.model.dimensions`)."""
    columns = {name: resolve_group(getattr(groups, name), feature_columns) for name in DIMENSIONS}
    if form == "event_log":
        columns["engagement"] = [c for c in columns["engagement"] if c.endswith("_decayed")]
    return columns


def fit_dimensions(windows: dict[str, pd.DataFrame], label_column: str, validation_order: np.ndarray,
                   model_cfg: ModelConfig, groups: FeatureGroups, stage_cfg: StageConfig, form: str,
                   feature_columns: list[str]) -> DimensionScorer:
    """Train and calibrate every dimension that has columns, report the others as absent, and read the
    stage average and the grade quartiles on the calibration window."""
    train, calibration = windows["train"], windows["calibration"]
    models, absent = {}, {}
    for name, columns in dimension_columns(groups, form, feature_columns).items():
        if not columns:
            absent[name] = f"groups.{name} names no feature column"
            continue
        target = (lambda w: stage_target(w, label_column, stage_cfg)) if name == "stage" else (lambda w: w[label_column].to_numpy())
        y_train, y_cal = target(train), target(calibration)
        if min(np.bincount(y_train, minlength=2).min(), np.bincount(y_cal, minlength=2).min()) < 2:
            absent[name] = "too few conversions in the train or calibration window for its target"
            continue
        models[name] = _fit_one(name, columns, train, y_train, calibration, y_cal, validation_order, model_cfg, stage_cfg, form)
    p_cal = {name: model.predict_proba(calibration) for name, model in models.items()}
    return DimensionScorer(
        models=models, absent=absent,
        stage_average=float(p_cal["stage"].mean()) if "stage" in p_cal else None,
        stage_lifts=(stage_cfg.consideration_lift, stage_cfg.decision_lift),
        quartiles={name: np.quantile(p, [0.25, 0.5, 0.75]) for name, p in p_cal.items() if name != "stage"},
    )


def _fit_one(name, columns, train, y_train, calibration, y_cal, validation_order, model_cfg: ModelConfig,
             stage_cfg: StageConfig, form: str) -> DimensionModel:
    target = (f"conversion within {stage_cfg.horizon_days} days" if name == "stage" and DAYS_TO_CONVERSION in train.columns
              else "conversion within the horizon")
    if name == "engagement" and form == "event_log":
        # Monotone in every decayed count, so that the same activities further in the past never score higher.
        pipeline = fit_lightgbm(
            train[columns], y_train, validation_order, model_cfg.lightgbm, model_cfg.seed, model_cfg.min_category_count,
            monotone_constraints=[1] * len(columns),
        )
        classifier, _, _ = calibrate(pipeline, candidate("lightgbm").kind, calibration[columns], y_cal,
                                     model_cfg.calibration, model_cfg.seed)
        return DimensionModel(name, columns, classifier, target, "lightgbm (monotone)")
    fitted = fit_candidates(train[columns], y_train, validation_order, model_cfg)
    winner, _ = run_tournament(fitted, calibration[columns], y_cal, model_cfg)
    return DimensionModel(name, columns, winner.classifier, target, winner.name)
