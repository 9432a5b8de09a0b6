"""The training pipeline: data -> windows -> tournament -> calibrated scorer -> evaluation.

Pure wiring of the stage modules, and the one place that reads the whole `Config`: each stage gets its
own section. Every part of the scorer is fitted first; the scorer is then built whole, in one call, and
not changed after. MLflow logging lives in `leadscore.registry`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.isotonic import IsotonicRegression

from leadscore import __version__
from leadscore.config import Config
from leadscore.model.drift import build_reference
from leadscore.model.explainer import build_explainer
from leadscore.model.rules import PointsScorer, points_fallback, points_score
from leadscore.model.scorer import LeadScorer
from leadscore.reporting.dimensions import report_dimensions
from leadscore.reporting.metrics import (
    decile_table,
    probability_metrics,
    ranking_metrics,
)
from leadscore.reporting.plots import calibration_figure, gains_figure, score_histogram
from leadscore.schema import probability_to_score
from leadscore.training.candidates import (
    check_candidates,
    fit_candidates,
    logistic_pipeline,
)
from leadscore.training.cutoffs import choose_cutoffs
from leadscore.training.dataset import (
    TrainingTable,
    load_training_table,
    too_few_conversions,
)
from leadscore.training.dimensions import fit_dimensions
from leadscore.training.leakage import LeakageReport, guard
from leadscore.training.preflight import check_against_data
from leadscore.training.split import Split, split_frame
from leadscore.training.tournament import Candidate, refit_winner, run_tournament

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    """A trained scorer with everything measured about it."""

    scorer: LeadScorer | PointsScorer
    table: TrainingTable
    split: Split
    winner: Candidate
    candidates: list[Candidate]
    metrics: dict[str, dict[str, float]]
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure] = field(default_factory=dict)
    fingerprint: str = ""
    leakage: LeakageReport | None = None  # the leakage guard's evidence and flagged columns

    @property
    def test_frame(self) -> pd.DataFrame:
        """The test window's ids, features and label (no personal columns): what promotion compares on."""
        t = self.table
        return self.split.test[[t.id_column, *t.feature_columns, t.label_column]]


def train(cfg: Config) -> TrainingResult:
    """Run the whole training pipeline described by `cfg`."""
    return fit_table(load_training_table(cfg), cfg)


def fit_table(table: TrainingTable, cfg: Config) -> TrainingResult:
    """Fit a scorer on a loaded training table (see `leadscore.training.dataset`), as `cfg` describes."""
    check_against_data(cfg, table)  # every config mistake the data reveals, before anything is fitted
    check_candidates(cfg.model.candidates)  # an unknown candidate stops training before anything is fitted
    # Before anything is fitted: warn about (in strict mode, refuse) columns that may be known only after the outcome.
    leaks = guard(table.frame, table.feature_columns, table.label_column, cfg.leakage,
                  cfg.data.post_outcome_columns, seed=cfg.model.seed)
    horizon = cfg.event_log.horizon_days if cfg.event_log else None
    if table.conversions < cfg.model.min_conversions:
        if cfg.model.fallback == "points":
            return replace(_train_points_fallback(cfg, table, horizon), leakage=leaks)
        raise too_few_conversions(table, cfg.model.min_conversions)
    split = split_frame(
        table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
        horizon_days=horizon, seed=cfg.model.seed,
    )
    features, label = table.feature_columns, table.label_column
    X_train, y_train = split.train[features], split.train[label].to_numpy()
    X_cal, y_cal = split.calibration[features], split.calibration[label].to_numpy()
    X_test = split.test[features]

    validation_order = _validation_order(split, table, cfg.model.seed)
    fitted = fit_candidates(X_train, y_train, validation_order, cfg.model)
    winner, candidates = run_tournament(fitted, X_cal, y_cal, cfg.model)
    refit = refit_winner(winner, fitted[winner.name], X_train, y_train, X_cal, y_cal, cfg.model,
                         groups=split.calibration[table.id_column].to_numpy())
    winner = refit.candidate
    dimensions = fit_dimensions(split.windows(), label, validation_order, cfg.model, cfg.groups, cfg.stage,
                                cfg.data.form, features)
    cutoffs = choose_cutoffs(refit.p_calibration, y_cal, cfg.cutoffs)
    # The refitted model learned from both windows: its contributions are measured against them.
    explainer = build_explainer(winner.classifier, pd.concat([X_train, X_cal]), features, cfg.groups, cfg.reasons,
                                table.event_spec)
    p_test = winner.classifier.predict_proba(X_test)[:, 1]  # the test window's probabilities, for every measure below
    encoder = refit.model["encode"]  # every candidate's pipeline starts with it (see `training.candidates`)
    scorer = LeadScorer(
        classifier=winner.classifier,
        encoder=encoder,
        id_column=table.id_column,
        feature_columns=features,
        event_spec=table.event_spec,
        metadata=_metadata(winner.name, winner.calibration_method, split.method, horizon),
        dimensions=dimensions,
        cutoffs=cutoffs,
        reference=build_reference(X_train, encoder.categories_, p_test),
        explainer=explainer,
        na_values=tuple(cfg.data.na_values),
    )
    result = TrainingResult(
        scorer=scorer, table=table, split=split, winner=winner, candidates=candidates,
        metrics={}, tables={}, fingerprint=fingerprint(table.frame[[table.id_column, *features, label]]), leakage=leaks,
    )
    _evaluate(result, cfg, X_train, y_train, p_test)
    result.tables["leakage_screen"] = leaks.table()
    report = report_dimensions(scorer, split.windows(), label, cfg.stage, p_test)
    result.metrics.update(report.metrics)
    result.tables.update(report.tables)
    result.figures.update(report.figures)
    return result


def _train_points_fallback(cfg: Config, table: TrainingTable, horizon: float | None) -> TrainingResult:
    """Cold start: the hand-set rules as the scorer, measured on every labelled row (nothing was fitted)."""
    numeric = [c for c in table.feature_columns if pd.api.types.is_numeric_dtype(table.frame[c])]
    scorer = points_fallback(cfg.points_baseline, cfg.points_cutoffs, cfg.groups, cfg.data.na_values,
                             table.id_column, table.feature_columns, numeric, table.event_spec,
                             _metadata("points fallback", "none", "none", horizon))
    y = table.frame[table.label_column].to_numpy()
    points = points_score(table.frame, cfg.points_baseline)
    metrics = {"conversions": float(y.sum()), "rows": float(len(y))}
    if 0 < y.sum() < len(y):
        metrics.update(ranking_metrics(y, points))
    everything = Split(table.frame.iloc[:0], table.frame.iloc[:0], table.frame, "none (points fallback)", 0, {})
    return TrainingResult(
        scorer=scorer, table=table, split=everything,
        winner=Candidate("points fallback", None, "none", float("nan"), {}), candidates=[],
        metrics={"leadscore": metrics}, tables={"deciles_points": decile_table(y, points)},
        fingerprint=fingerprint(table.frame[[table.id_column, *table.feature_columns, table.label_column]]),
    )


def _metadata(model: str, calibration: str, split: str, horizon: float | None) -> dict:
    return {
        "leadscore_version": __version__,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "calibration": calibration,
        "split": split,
        "horizon_days": horizon,
    }


def _validation_order(split: Split, table: TrainingTable, seed: int) -> np.ndarray:
    """Rank of each training row for early stopping: latest rows last, or random without time."""
    if split.method == "time":
        return split.train[table.time_column].rank(method="first").to_numpy()
    if split.method == "row_order":
        return np.arange(len(split.train))
    return np.random.default_rng(seed).permutation(len(split.train))


def _evaluate(result: TrainingResult, cfg: Config, X_train: pd.DataFrame, y_train: np.ndarray, p_test: np.ndarray) -> None:
    """Test-window metrics of the scorer (`p_test`: its probabilities there), every candidate and the baselines, plus figures."""
    table, split = result.table, result.split
    test, y_test = split.test, split.test[table.label_column].to_numpy()
    metrics = {"leadscore": probability_metrics(y_test, p_test)}
    for candidate in result.candidates:
        p = candidate.classifier.predict_proba(test[table.feature_columns])[:, 1]
        metrics[f"candidate_{candidate.name}"] = {
            **probability_metrics(y_test, p), "calibration_oof_log_loss": candidate.calibration_log_loss,
        }

    # The plain logistic regression a data scientist would try first: one-hot and scaling, no calibration.
    plain = logistic_pipeline(cfg.model.min_category_count, 1.0, cfg.model.seed, signed_log=False).fit(X_train, y_train)
    p_plain = plain.predict_proba(test[table.feature_columns])[:, 1]
    metrics["baseline_logistic"] = probability_metrics(y_test, p_plain)
    probabilities = {"leadscore": p_test, "plain logistic": p_plain}
    scores = {"leadscore": p_test, "plain logistic": p_plain}
    result.tables["deciles_leadscore"] = decile_table(y_test, probability_to_score(p_test))

    if cfg.points_baseline:
        # Points are not probabilities: rank metrics use them as they are; the probability metrics use
        # the conversion rate per points level learned on the calibration window (isotonic).
        points_cal = points_score(split.calibration, cfg.points_baseline)
        points_test = points_score(test, cfg.points_baseline)
        to_probability = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
            points_cal, split.calibration[table.label_column].to_numpy()
        )
        p_points = to_probability.predict(points_test)
        metrics["baseline_points"] = {**probability_metrics(y_test, p_points), **ranking_metrics(y_test, points_test)}
        scores["points baseline"] = points_test
        probabilities["points baseline"] = p_points
        result.tables["deciles_baseline_points"] = decile_table(y_test, points_test)

    result.metrics = metrics
    result.figures = {
        "calibration_curve.png": calibration_figure(y_test, probabilities),
        "cumulative_gains.png": gains_figure(y_test, scores),
        "score_histogram.png": score_histogram(y_test, probability_to_score(p_test)),
    }


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the training rows, to tell whether two runs saw the same data."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]
