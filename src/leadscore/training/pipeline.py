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
from leadscore.model.rules import PointsScorer, points_fallback, points_score
from leadscore.model.scorer import LeadScorer
from leadscore.progress import stage
from leadscore.reporting.dimensions import report_dimensions
from leadscore.reporting.metrics import (
    decile_table,
    probability_metrics,
    ranking_metrics,
)
from leadscore.reporting.plots import calibration_figure, gains_figure, score_histogram
from leadscore.schema import probability_to_score
from leadscore.training.accounts import AccountsResult, check_accounts, fit_accounts
from leadscore.training.candidates import (
    candidate,
    check_candidates,
    fit_candidates,
    logistic_pipeline,
)
from leadscore.training.cutoffs import band_table
from leadscore.training.dataset import (
    TrainingTable,
    load_training_table,
    too_few_conversions,
)
from leadscore.training.dimensions import fit_dimensions
from leadscore.training.leakage import LeakageReport, guard
from leadscore.training.preflight import check_against_data
from leadscore.training.segments import fit_segments, segment_report, segment_tags
from leadscore.training.split import Split, split_frame
from leadscore.training.tournament import (
    Candidate,
    RollingBacktest,
    choose_by_backtest,
    refit_winner,
    rolling_backtest,
    rolling_origins,
    run_tournament,
)

log = logging.getLogger(__name__)

BACKTEST_COLUMN = "backtest_p_convert"  # the backtest's probability, beside each row of the logged test window


def _tree_text(candidate: Candidate) -> str:
    return f", {candidate.details['n_trees']} trees" if "n_trees" in candidate.details else ""


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
    # The backtest: the same pipeline fitted without the test window. `metrics` measure it on that window;
    # `scorer` (what is registered) is refitted on every row. None for the points fallback (nothing was fitted).
    backtest: LeadScorer | None = None
    selection: RollingBacktest | None = None  # the rolling-origin backtest that chose the winner and its calibration
    p_backtest: np.ndarray | None = None  # the backtest's probabilities of the test window's rows
    accounts: AccountsResult | None = None  # account scores' options, choice and parts (`training.accounts`)

    @property
    def test_frame(self) -> pd.DataFrame:
        """The test window's ids, time (when there is one), features, label and the backtest's probability
        (`BACKTEST_COLUMN`), without personal columns: what promotion compares on."""
        t = self.table
        columns = [t.id_column, *([t.time_column] if t.time_column and t.time_column not in t.feature_columns else []),
                   *t.feature_columns, t.label_column]
        frame = self.split.test[columns]
        if self.p_backtest is not None:
            frame = frame.assign(**{BACKTEST_COLUMN: self.p_backtest})
        return frame

    @property
    def label_end(self) -> pd.Timestamp | None:
        """With a time split: the end of the latest label window the deployed model learned from (time of its latest
        row plus the horizon). A row at or after it shares no outcome with any row the model was fitted on."""
        t = self.table
        if self.split.method != "time" or self.backtest is None:
            return None
        horizon = self.scorer.metadata.get("horizon_days") or 0
        return pd.to_datetime(t.frame[t.time_column], utc=True).max() + pd.Timedelta(days=horizon)

    @property
    def run_tags(self) -> dict[str, str]:
        """What the run records about where its figures come from, how the deployed model was fitted and chosen."""
        sampled = self.table.sample.tags if self.table.sample is not None else {}
        if self.backtest is None:
            return {"deployed.model": "points fallback: nothing was fitted; metrics are measured on every labelled row",
                    **sampled}
        rows = len(self.split.train) + len(self.split.calibration) + len(self.split.test)
        tags = {
            "metrics.source": ("backtest: the test_* metrics, figures and cutoff bands come from a backtest model fitted "
                               "on the training and calibration windows only, never on the test window"),
            "deployed.refit": (f"the registered model was refitted on all {rows:,} rows (train + calibration + test) with "
                               f"the backtest's choices ({self.winner.name}, {self.winner.calibration_method} calibration"
                               f"{_tree_text(self.winner)}), calibrated on out-of-fold scores of the test window, "
                               "where its cutoffs were chosen"),
            "tournament.rule": ("rolling origins: the candidate of lowest mean ranking log loss (recalibrated within the "
                                "forecast block), the calibration method of lowest mean forecast log loss; noise = "
                                "standard error across origins; beats the constant when a one-sided t-test of the "
                                "per-origin ranking gains rejects at 2.5 %"
                                if self.selection is not None else
                                "too few rows for rolling origins: out-of-fold log loss within the calibration window"),
        }
        if self.selection is not None:
            tags["tournament.verdict"] = self.selection.verdict
            tags["tournament.beats_constant"] = str(self.selection.any_beats_constant).lower()
        if any(candidate(c.name).recency for c in self.candidates):
            tags["tournament.recency"] = (
                f"every candidate also competed weighted by recency (<name>-recency: weights halving every third of "
                f"the fitted rows' span); the rolling backtest chose "
                f"{'a weighted' if candidate(self.winner.name).recency else 'an unweighted'} model: {self.winner.name}")
        notes = {f"calibration.note.{c.name}": c.details["calibration_note"]
                 for c in self.candidates if "calibration_note" in c.details}
        if self.scorer.classifier.note:
            notes["calibration.note.deployed"] = self.scorer.classifier.note
        if self.backtest.classifier.note:
            notes["calibration.note.backtest"] = self.backtest.classifier.note
        tags.update(notes)
        tags.update(segment_tags(self.tables.get("segments", pd.DataFrame())))
        if self.label_end is not None:
            tags["training.label_end"] = self.label_end.isoformat()
            tags["time_column"] = self.table.time_column
        if self.accounts is not None:
            tags.update(self.accounts.tags)
        return {**tags, **sampled}

    @property
    def run_metrics(self) -> dict[str, float]:
        """The rolling-origin backtest's figures, and the size of the deployed model's training set."""
        sampled = self.table.sample.metrics if self.table.sample is not None else {}
        if self.backtest is None:
            return sampled
        metrics = {**sampled, "deployed_rows": float(len(self.split.train) + len(self.split.calibration) + len(self.split.test)),
                   "deployed_test_oof_log_loss": self.winner.calibration_log_loss}
        if self.selection is not None:
            metrics.update(self.selection.metrics())
        if self.accounts is not None:
            metrics.update(self.accounts.run_metrics)
        return metrics


def train(cfg: Config) -> TrainingResult:
    """Run the whole training pipeline described by `cfg`."""
    return fit_table(load_training_table(cfg), cfg)


def fit_table(table: TrainingTable, cfg: Config) -> TrainingResult:
    """Fit a scorer on a loaded training table (see `leadscore.training.dataset`), as `cfg` describes."""
    stage("checks")
    check_against_data(cfg, table)  # every config mistake the data reveals, before anything is fitted
    check_accounts(cfg, table)
    check_candidates(cfg.model.candidates)  # an unknown candidate stops training before anything is fitted
    # Before anything is fitted: warn about (in strict mode, refuse) columns that may be known only after the outcome.
    leaks = guard(table.frame, table.feature_columns, table.label_column, cfg.leakage,
                  cfg.data.post_outcome_columns, seed=cfg.model.seed)
    horizon = cfg.event_log.horizon_days if cfg.event_log else None
    if table.conversions < cfg.model.min_conversions:
        if cfg.model.fallback == "points":
            return replace(_train_points_fallback(cfg, table, horizon), leakage=leaks)
        raise too_few_conversions(table, cfg.model.min_conversions)
    stage("split")
    split = split_frame(
        table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
        horizon_days=horizon, seed=cfg.model.seed,
    )
    features, label = table.feature_columns, table.label_column
    earlier = pd.concat([split.train, split.calibration])  # every row before the test window, in order
    everything = pd.concat([earlier, split.test])
    X_train, y_train = split.train[features], split.train[label].to_numpy()
    X_cal, y_cal = split.calibration[features], split.calibration[label].to_numpy()
    X_test, y_test = split.test[features], split.test[label].to_numpy()

    stage("tournament")
    validation_order = _validation_order(split.train, split.method, table, cfg.model.seed)
    # Days or positions of every row (train, calibration, test in turn), for recency-weighted variants; None at random.
    times = _recency_times(everything, split.method, table)
    n_train, n_earlier = len(split.train), len(earlier)
    fitted = fit_candidates(X_train, y_train, validation_order, cfg.model, times=_head(times, n_train))
    order, purge_horizon = _rolling_order(earlier, split.method, table, horizon, cfg)
    origins = rolling_origins(order, earlier[label].to_numpy(), horizon=purge_horizon)
    if origins:
        # `earlier` starts with the training window: an origin fitting just those rows reuses the candidates as fitted.
        selection = rolling_backtest(fitted, earlier[features], earlier[label].to_numpy(), origins, cfg.model,
                                     times=_head(times, n_earlier), fitted_rows=np.arange(n_train))
        winner, candidates = choose_by_backtest(fitted, selection, X_cal, y_cal)
    else:  # too few rows or conversions for any origin: the calibration window alone decides, and the run says so
        selection = None
        # A recency-weighted variant is chosen by the rolling backtest only: without one, it does not compete.
        fitted = {name: model for name, model in fitted.items() if not candidate(name).recency}
        winner, candidates = run_tournament(fitted, X_cal, y_cal, cfg.model)

    # The backtest: the pipeline as it would have run without the test window, measured on it.
    stage("calibration")
    refit = refit_winner(winner, fitted[winner.name], X_train, y_train, X_cal, y_cal, cfg.model,
                         groups=split.calibration[table.id_column].to_numpy(), times=_head(times, n_earlier))
    stage("dimensions")
    backtest_dimensions = fit_dimensions(split.windows(), label, validation_order, cfg.model, cfg.groups, cfg.stage,
                                         cfg.data.form, features)

    # The deployed model: the same choices (candidate, its settings, calibration method) refitted on every row,
    # calibrated on out-of-fold scores of the latest window; cutoffs, dimensions, explanations and the drift
    # reference are its own.
    stage("refit on all rows")
    deployed = refit_winner(refit.candidate, fitted[winner.name], earlier[features], earlier[label].to_numpy(),
                            X_test, y_test, cfg.model, groups=split.test[table.id_column].to_numpy(), times=times)
    # With `segments`: each segment's own model where the data allows, in the backtest and the deployed model
    # alike (`training.segments`); without, the global classifiers as they are.
    if cfg.segments is not None:
        stage("segments")
    segments = fit_segments(cfg, split, features, label, table.id_column, winner, fitted[winner.name],
                            validation_order, refit, deployed)
    stage("cutoffs")
    backtest = LeadScorer(
        classifier=segments.backtest, encoder=refit.model["encode"], id_column=table.id_column,
        feature_columns=features, event_spec=table.event_spec,
        metadata=_metadata(winner.name, refit.candidate.calibration_method, split.method, horizon, role="backtest"),
        dimensions=backtest_dimensions,
        cutoffs=segments.cutoffs(segments.p_calibration, y_cal, split.calibration, cfg, deployed=False),
        reference=None, explainer=None, na_values=tuple(cfg.data.na_values), decimal=cfg.data.decimal,
    )
    deployed_windows = {"train": earlier, "calibration": split.test}
    # The backtest's dimension models, their settings kept, refitted on every row before the test window.
    dimensions = fit_dimensions(deployed_windows, label, _validation_order(earlier, split.method, table, cfg.model.seed),
                                cfg.model, cfg.groups, cfg.stage, cfg.data.form, features,
                                previous=backtest_dimensions)
    cutoffs = segments.cutoffs(segments.p_latest, y_test, split.test, cfg, deployed=True)
    stage("explanations")
    # The deployed model learned from every row: its contributions are measured against them.
    explainer = segments.build_explainer(segments.deployed, everything[features], features, cfg.groups, cfg.reasons,
                                         table.event_spec)
    p_test = backtest.predict_proba(X_test)  # the backtest's probabilities of the test window, for every measure below
    accounts = None
    if cfg.accounts is not None:
        stage("accounts")
        # The lead probabilities the roll-ups are built from: out of fold, each lead's segment model where it has one.
        accounts = fit_accounts(cfg, table, split, p_calibration=segments.p_calibration, p_test=p_test,
                                p_deployed=segments.p_latest, lead_mql=cutoffs.mql)
    stage("evaluation")
    encoder = deployed.model["encode"]  # every candidate's pipeline starts with it (see `training.candidates`)
    scorer = LeadScorer(
        classifier=segments.deployed,
        encoder=encoder,
        id_column=table.id_column,
        feature_columns=features,
        event_spec=table.event_spec,
        metadata=_metadata(winner.name, deployed.candidate.calibration_method, split.method, horizon, role="deployed"),
        dimensions=dimensions,
        cutoffs=cutoffs,
        # New leads are compared with what the model learned from, and their scores with its out-of-fold scores
        # of the latest window (how it scores leads it has not seen).
        reference=build_reference(everything[features], encoder.categories_, segments.p_latest),
        explainer=explainer,
        na_values=tuple(cfg.data.na_values),
        decimal=cfg.data.decimal,
        accounts=accounts.deployed if accounts else None,
    )
    result = TrainingResult(
        scorer=scorer, table=table, split=split, winner=deployed.candidate, candidates=candidates,
        metrics={}, tables={}, fingerprint=fingerprint(table.frame[[table.id_column, *features, label]]), leakage=leaks,
        backtest=backtest, selection=selection, p_backtest=p_test, accounts=accounts,
    )
    _evaluate(result, cfg, earlier[features], earlier[label].to_numpy(), p_test)
    result.tables["leakage_screen"] = leaks.table()
    report = report_dimensions(backtest, split.windows(), label, cfg.stage, p_test)
    result.metrics.update(report.metrics)
    result.tables.update(report.tables)
    result.figures.update(report.figures)
    result.tables["cutoff_bands_deployed"] = band_table(segments.p_latest, y_test, cutoffs, "test (out of fold)",
                                                        split.test)
    segment_metrics, segment_table = segment_report(segments, refit.candidate.classifier, split.test, features, label)
    result.metrics.update(segment_metrics)
    if not segment_table.empty:
        result.tables["segments"] = segment_table
    if selection is not None:
        result.tables["rolling_backtest"] = selection.losses
        result.tables["rolling_backtest_summary"] = selection.summary
    if split.method != "time":
        # Without time, promotion tells rows this model never learned from by their ids (see `registry.promotion`).
        result.tables["training_ids"] = everything[[table.id_column]]
    if accounts is not None:  # every account option's test figures, logged with the run like the lead model's
        result.metrics.update(accounts.metrics)
        result.tables.update(accounts.tables)
    return result


def _train_points_fallback(cfg: Config, table: TrainingTable, horizon: float | None) -> TrainingResult:
    """Cold start: the hand-set rules as the scorer, measured on every labelled row (nothing was fitted)."""
    numeric = [c for c in table.feature_columns if pd.api.types.is_numeric_dtype(table.frame[c])]
    scorer = points_fallback(cfg.points_baseline, cfg.points_cutoffs, cfg.groups, cfg.data.na_values,
                             table.id_column, table.feature_columns, numeric, table.event_spec,
                             _metadata("points fallback", "none", "none", horizon), decimal=cfg.data.decimal)
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


def _metadata(model: str, calibration: str, split: str, horizon: float | None, role: str = "deployed") -> dict:
    return {
        "leadscore_version": __version__,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "calibration": calibration,
        "split": split,
        "horizon_days": horizon,
        # deployed: refitted on every row; backtest: fitted without the test window, to measure the pipeline
        "role": role,
    }


def _validation_order(rows: pd.DataFrame, method: str, table: TrainingTable, seed: int) -> np.ndarray:
    """Rank of each row for early stopping: latest rows last, or random without time."""
    if method == "time":
        return rows[table.time_column].rank(method="first").to_numpy()
    if method == "row_order":
        return np.arange(len(rows))
    return np.random.default_rng(seed).permutation(len(rows))


def _recency_times(rows: pd.DataFrame, method: str, table: TrainingTable) -> np.ndarray | None:
    """When each row happened, for recency weights: days since the first row, row positions, or None at random."""
    if method == "time":
        times = pd.to_datetime(rows[table.time_column], utc=True)
        return ((times - times.min()) / pd.Timedelta(days=1)).to_numpy(dtype="float64")
    if method == "row_order":
        return np.arange(len(rows), dtype="float64")
    return None


def _head(times: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if times is None else times[:n]


def _rolling_order(rows: pd.DataFrame, method: str, table: TrainingTable, horizon: float | None,
                   cfg: Config) -> tuple[np.ndarray, float | None]:
    """The order the rolling-origin backtest cuts `rows` in (days since the first row, row positions, or a random
    permutation without time) and, for a purged time split, the label horizon in the same units."""
    if method == "time":
        times = pd.to_datetime(rows[table.time_column], utc=True)
        days = ((times - times.min()) / pd.Timedelta(days=1)).to_numpy(dtype="float64")
        return days, (horizon if cfg.split.purge else None)
    if method == "row_order":
        return np.arange(len(rows), dtype="float64"), None
    return np.random.default_rng(cfg.model.seed).permutation(len(rows)).astype("float64"), None


def _evaluate(result: TrainingResult, cfg: Config, X_train: pd.DataFrame, y_train: np.ndarray, p_test: np.ndarray) -> None:
    """Test-window metrics of the backtest model (`p_test`: its probabilities there), every candidate and the
    baselines, plus figures; `X_train`, `y_train` are the rows the backtest model learned from."""
    table, split = result.table, result.split
    test, y_test = split.test, split.test[table.label_column].to_numpy()
    metrics = {"leadscore": probability_metrics(y_test, p_test)}
    for entry in result.candidates:
        p = entry.classifier.predict_proba(test[table.feature_columns])[:, 1]
        metrics[f"candidate_{entry.name}"] = {
            **probability_metrics(y_test, p), "calibration_oof_log_loss": entry.calibration_log_loss,
        }

    # The plain logistic regression a data scientist would try first: one-hot and scaling, no calibration, fitted
    # on the same rows as the backtest model, so that the comparison is of methods, not of data.
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
