"""The training pipeline: data -> windows -> tournament -> calibrated scorer -> evaluation.

Pure wiring of the stage modules; MLflow logging lives in `leadscore.tracking`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.isotonic import IsotonicRegression

from leadscore import __version__
from leadscore.config import Config
from leadscore.dataset import TrainingTable, load_training_table
from leadscore.evaluation import decile_table, probability_metrics, ranking_metrics
from leadscore.models import Candidate, fit_candidates, logistic_pipeline, run_tournament
from leadscore.plots import calibration_figure, gains_figure, score_histogram
from leadscore.points import points_score
from leadscore.scorer import LeadScorer, probability_to_score
from leadscore.split import Split, split_frame


@dataclass
class TrainingResult:
    """A trained scorer with everything measured about it."""

    scorer: LeadScorer
    table: TrainingTable
    split: Split
    winner: Candidate
    candidates: list[Candidate]
    metrics: dict[str, dict[str, float]]
    deciles: dict[str, pd.DataFrame]
    figures: dict[str, Figure] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def test_frame(self) -> pd.DataFrame:
        """The test window's ids, features and label (no personal columns): what promotion compares on."""
        t = self.table
        return self.split.test[[t.id_column, *t.feature_columns, t.label_column]]


def train(cfg: Config) -> TrainingResult:
    """Run the whole training pipeline described by `cfg`."""
    table = load_training_table(cfg)
    horizon = cfg.event_log.horizon_days if cfg.event_log else None
    split = split_frame(
        table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
        horizon_days=horizon, seed=cfg.model.seed,
    )
    features, label = table.feature_columns, table.label_column
    X_train, y_train = split.train[features], split.train[label].to_numpy()
    X_cal, y_cal = split.calibration[features], split.calibration[label].to_numpy()

    fitted = fit_candidates(X_train, y_train, _validation_order(split, table, cfg.model.seed), cfg.model)
    winner, candidates = run_tournament(fitted, X_cal, y_cal, cfg.model)
    scorer = LeadScorer(
        classifier=winner.classifier,
        encoder=fitted[winner.name]["encode"],
        id_column=table.id_column,
        feature_columns=features,
        event_spec=table.event_spec,
        metadata={
            "leadscore_version": __version__,
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": winner.name,
            "calibration": winner.calibration_method,
            "split": split.method,
            "horizon_days": horizon,
        },
    )
    result = TrainingResult(
        scorer=scorer, table=table, split=split, winner=winner, candidates=candidates,
        metrics={}, deciles={}, fingerprint=fingerprint(table.frame[[table.id_column, *features, label]]),
    )
    _evaluate(result, cfg, X_train, y_train)
    return result


def _validation_order(split: Split, table: TrainingTable, seed: int) -> np.ndarray:
    """Rank of each training row for early stopping: latest rows last, or random without time."""
    if split.method == "time":
        return split.train[table.time_column].rank(method="first").to_numpy()
    if split.method == "row_order":
        return np.arange(len(split.train))
    return np.random.default_rng(seed).permutation(len(split.train))


def _evaluate(result: TrainingResult, cfg: Config, X_train: pd.DataFrame, y_train: np.ndarray) -> None:
    """Test-window metrics of the scorer, every candidate and the baselines, plus figures."""
    table, split = result.table, result.split
    test, y_test = split.test, split.test[table.label_column].to_numpy()
    p_test = result.scorer.predict_proba(test)
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
    result.deciles["leadscore"] = decile_table(y_test, probability_to_score(p_test))

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
        result.deciles["baseline_points"] = decile_table(y_test, points_test)

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
