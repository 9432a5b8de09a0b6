"""Fitting the dimension models (fit, engagement, buying stage) on the training and calibration windows.

What each dimension predicts, which of its group's columns it uses and whether its model is constrained is
its entry in `leadscore.model.dimensions.DIMENSION_SPECS`; this module only fits what the entries say.

For the backtest, an unconstrained dimension is chosen by a tournament of every configured (unweighted)
candidate on its own columns, calibrated on the calibration window; a monotone one is LightGBM under its
constraint. The deployed scorer's dimensions (`previous`: the backtest's) keep the backtest's choices and
settings (family, LightGBM's early-stopped tree count) and are refitted on more rows, as the main model is
(`leadscore.training.tournament.refit_winner`): nothing is searched twice. (A dimension's family may differ
from the main winner's: on the bank data the main model is linear while LightGBM ranks the engagement
columns better, 0.63 against 0.58 ROC AUC on the test window.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from leadscore.config import FeatureGroups, ModelConfig, StageConfig
from leadscore.model.dimensions import (
    DIMENSION_SPECS,
    DimensionModel,
    DimensionScorer,
    DimensionSpec,
    resolve_group,
)
from leadscore.training.calibration import calibrate
from leadscore.training.candidates import candidate, fit_candidates, fit_lightgbm
from leadscore.training.tournament import run_tournament

MONOTONE = "lightgbm (monotone)"  # what a monotone dimension's model is called in the run and the model card


def dimension_columns(groups: FeatureGroups, form: str, feature_columns: list[str]) -> dict[str, list[str]]:
    """The columns each dimension model uses: those of its group that its registry entry keeps for data form `form`."""
    return {name: spec.columns(resolve_group(groups.patterns(name), feature_columns), form)
            for name, spec in DIMENSION_SPECS.items()}


def fit_dimensions(windows: dict[str, pd.DataFrame], label_column: str, validation_order: np.ndarray,
                   model_cfg: ModelConfig, groups: FeatureGroups, stage_cfg: StageConfig, form: str,
                   feature_columns: list[str], previous: DimensionScorer | None = None) -> DimensionScorer:
    """Train and calibrate every dimension that has columns, report the others as absent, and read the
    stage average and the grade quartiles on the calibration window.

    With `previous` (the backtest's dimensions), a dimension it holds is refitted with that model's settings on
    these windows instead of being chosen afresh."""
    train, calibration = windows["train"], windows["calibration"]
    models, absent = {}, {}
    for name, columns in dimension_columns(groups, form, feature_columns).items():
        spec = DIMENSION_SPECS[name]
        if not columns:
            absent[name] = f"groups.{name} names no feature column"
            continue
        y_train, y_cal = (spec.target(w, label_column, stage_cfg) for w in (train, calibration))
        if min(np.bincount(y_train, minlength=2).min(), np.bincount(y_cal, minlength=2).min()) < 2:
            absent[name] = "too few conversions in the train or calibration window for its target"
            continue
        earlier = previous.models.get(name) if previous is not None else None
        models[name] = _fit_one(spec, columns, train, y_train, calibration, y_cal, validation_order, model_cfg,
                                stage_cfg, form, earlier)
    p_cal = {name: model.predict_proba(calibration) for name, model in models.items()}
    return DimensionScorer(
        models=models, absent=absent,
        stage_average=float(p_cal["stage"].mean()) if "stage" in p_cal else None,
        stage_lifts=(stage_cfg.consideration_lift, stage_cfg.decision_lift),
        quartiles={name: np.quantile(p, [0.25, 0.5, 0.75]) for name, p in p_cal.items() if name != "stage"},
    )


def _fit_one(spec: DimensionSpec, columns, train, y_train, calibration, y_cal, validation_order,
             model_cfg: ModelConfig, stage_cfg: StageConfig, form: str,
             previous: DimensionModel | None) -> DimensionModel:
    target = spec.target_text(train, stage_cfg)
    if previous is not None and previous.columns == columns:
        # The backtest's model of this dimension, its settings kept (e.g. the tree count), refitted on these rows.
        pipeline = clone(previous.classifier.model).fit(train[columns], y_train)
        kind, name = previous.classifier.kind, previous.model
    elif spec.monotone(form):
        # Rising in every column: e.g. the same activities further in the past never score higher.
        pipeline = fit_lightgbm(
            train[columns], y_train, validation_order, model_cfg.lightgbm, model_cfg.seed, model_cfg.min_category_count,
            monotone_constraints=[1] * len(columns),
        )
        kind, name = candidate("lightgbm").kind, MONOTONE
    else:
        fitted = fit_candidates(train[columns], y_train, validation_order, model_cfg)
        winner, _ = run_tournament(fitted, calibration[columns], y_cal, model_cfg)
        return DimensionModel(spec.name, columns, winner.classifier, target, winner.name)
    classifier, _, _ = calibrate(pipeline, kind, calibration[columns], y_cal, model_cfg.calibration, model_cfg.seed)
    return DimensionModel(spec.name, columns, classifier, target, name)
