"""Segment models (`segments`): one model per segment where the data allows, the global model elsewhere.

The segment column (`segments.column`, e.g. product line or region) is a feature column: it stays a feature of
the global model, which therefore already gives each segment its own level; a segment's own model adds what
the segment does differently (its interactions with the other columns). How a segment's model is built and
scored is in `leadscore.model.segments`: a LightGBM booster fitted on the segment's rows starting from the
global model's raw output (`init_score`), so it shrinks toward the global model, early stopping on the
segment's latest training rows deciding how far it moves away.

Which segments get their own model (`fit_segments`), for each value of the column in the training window:
1. eligibility: at least `segments.min_conversions` conversions in the training window, and at least
   `MIN_CALIBRATION_CLASS` conversions and as many non-conversions in the calibration window (where the
   backtest's segment model is calibrated) and in the test window (where the deployed one is);
2. evidence: the booster is fitted on the segment's training rows on top of the tournament's winner as fitted
   there. On the segment's calibration-window rows, the two options are compared as they would score its leads,
   each calibrated out of fold as the tournament compares candidates (`leadscore.training.calibration`, with the
   winner's calibration method): the global model calibrated on the whole calibration window, and the segment
   model (global plus booster) calibrated on the segment's rows alone, whose calibrator is noisier for having
   fewer rows; that noise is part of what a segment model costs. The segment keeps its own model
   only when its log loss is lower by more than one standard error of the per-row differences (paired: the
   same rows score both), the one-standard-error rule the tournament and early stopping decide by: a booster
   that early stopping left at a tree or two would otherwise win or lose by noise. Both losses are recorded.
Otherwise the segment falls back to the global model, with the reason recorded. Values never seen in
training and missing values use the global model.

A kept segment's model is then refitted like the lead model (`leadscore.training.tournament.refit_winner`):
the booster, with the tree count found above, on the segment's rows of an earlier and a latest part (training +
calibration windows for the backtest model, every row for the deployed one), starting from the refitted
global model's raw output; its calibrator is fitted on out-of-fold scores of the latest part: the global
model's out-of-fold raw output of each row (from the refit) plus the raw output of a booster fitted without
that row's fold. The backtest measures the chosen setup on the test window per segment (`segment_report`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore.config import Config, CutoffsConfig, ModelConfig
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.cutoffs import Cutoffs, SegmentCutoffs
from leadscore.model.encoding import FrameEncoder
from leadscore.model.explainer import build_explainer
from leadscore.model.kinds import model_kind
from leadscore.model.encoding import segment_codes
from leadscore.model.segments import SegmentedModel, SegmentModel, build_segmented_explainer
from leadscore.training.calibration import EPS, fit_calibrator, out_of_fold_probabilities
from leadscore.training.candidates import StopWithinNoise, lightgbm_classifier, lightgbm_threads
from leadscore.training.cutoffs import choose_cutoffs
from leadscore.training.split import Split
from leadscore.training.tournament import Candidate, Refit

MIN_CALIBRATION_CLASS = 10  # conversions, and non-conversions, a window needs to calibrate a segment's model on
_REFIT_FOLDS = 3
OTHER = "(other or missing)"  # the report's row for leads of no segment seen in training


@dataclass(frozen=True)
class SegmentDecision:
    """One segment value of the training window: its counts, whether it got its own model, and why."""

    segment: str
    train_rows: int
    train_conversions: int
    calibration_rows: int
    calibration_conversions: int
    own: bool
    reason: str
    n_trees: int = 0  # the booster's tree count (early stopping), 0 when none was fitted
    own_log_loss: float = float("nan")  # calibration window, out of fold: global model plus the segment's booster
    global_log_loss: float = float("nan")  # calibration window, out of fold: the global model alone


@dataclass(frozen=True)
class Segmentation:
    """The classifiers the scorers carry (segmented, or the global ones as they are without `segments`), the
    out-of-fold probabilities their cutoffs are chosen on, and the decision for each segment."""

    backtest: CalibratedModel | SegmentedModel
    deployed: CalibratedModel | SegmentedModel
    p_calibration: np.ndarray  # the backtest classifier's out-of-fold probabilities of the calibration window
    p_latest: np.ndarray  # the deployed classifier's out-of-fold probabilities of the test window
    decisions: tuple[SegmentDecision, ...] = ()
    column: str | None = None

    @property
    def build_explainer(self) -> Callable:
        """The explainer builder for the deployed classifier (`build_explainer`'s arguments)."""
        return build_segmented_explainer if isinstance(self.deployed, SegmentedModel) else build_explainer

    def cutoffs(self, p: np.ndarray, y: np.ndarray, frame: pd.DataFrame, cfg: Config, deployed: bool) -> Cutoffs:
        """MQL/SQL cutoffs chosen on probabilities `p` of the window `frame` (labels `y`): one pair for every lead,
        and with `segments.per_segment_cutoffs` one pair per segment with its own model, chosen on its rows."""
        overall = choose_cutoffs(p, y, cfg.cutoffs)
        model = self.deployed if deployed else self.backtest
        if cfg.segments is None or not cfg.segments.per_segment_cutoffs or not isinstance(model, SegmentedModel):
            return overall
        route = model.route(frame)
        own = {key: _segment_cutoffs(p[route == code], y[route == code], cfg.cutoffs, key)
               for code, key in enumerate(model.keys)}
        return SegmentCutoffs(**vars(overall), column=model.column, segments=own)


def _segment_cutoffs(p: np.ndarray, y: np.ndarray, cfg: CutoffsConfig, key: str) -> Cutoffs:
    """A segment's own cutoffs, its warnings saying which segment they concern."""
    chosen = choose_cutoffs(p, y, cfg)
    return Cutoffs(chosen.mql, chosen.sql, chosen.mql_policy, chosen.sql_policy, chosen.notes,
                   tuple(f"segment {key}: {w}" for w in chosen.warnings))


def fit_segments(cfg: Config, split: Split, features: list[str], label: str, id_column: str, winner: Candidate,
                 trained: Pipeline, validation_order: np.ndarray, backtest: Refit, deployed: Refit) -> Segmentation:
    """Decide, fit and refit the segments' own models (see the module docstring); without `cfg.segments`, the
    global classifiers as they are.

    `trained` is the winner's pipeline fitted on the training window (`validation_order` ranks those rows for
    early stopping), `backtest` and `deployed` the winner refitted without and with the test window."""
    if cfg.segments is None:
        return Segmentation(backtest.candidate.classifier, deployed.candidate.classifier, backtest.p_calibration,
                            deployed.p_calibration)
    column, minimum = cfg.segments.column, cfg.segments.min_conversions
    train, calibration, test = split.train, split.calibration, split.test
    method = winner.details.get("chosen_calibration", winner.calibration_method)
    kind = model_kind(winner.classifier.kind)
    counts = train[column].dropna().astype(str).value_counts()
    keys = tuple(sorted(counts.index))
    codes = {name: segment_codes(window[column], keys) for name, window in split.windows().items()}
    y = {name: window[label].to_numpy() for name, window in split.windows().items()}

    # The global model as a segment's leads would get it: calibrated on the whole calibration window, out of fold.
    global_raw = np.asarray(kind.raw_output(trained, calibration[features]), dtype="float64")
    global_p = out_of_fold_probabilities(global_raw, y["calibration"], method, cfg.model.seed)
    decisions, boosters = [], {}
    for code, key in enumerate(keys):
        rows = {name: codes[name] == code for name in codes}
        counted = dict(train_rows=int(rows["train"].sum()), train_conversions=int(y["train"][rows["train"]].sum()),
                       calibration_rows=int(rows["calibration"].sum()),
                       calibration_conversions=int(y["calibration"][rows["calibration"]].sum()))
        reason = _ineligible(counted, y, rows, minimum)
        if reason:
            decisions.append(SegmentDecision(key, **counted, own=False, reason=reason))
            continue
        X_seg, y_seg = train.loc[rows["train"], features], y["train"][rows["train"]]
        booster = _early_stopped_booster(X_seg, y_seg, np.asarray(kind.raw_output(trained, X_seg)),
                                         validation_order[rows["train"]], cfg.model)
        if booster is None:
            decisions.append(SegmentDecision(key, **counted, own=False, reason=(
                "the latest training rows of the segment hold one outcome only: nothing to stop early on")))
            continue
        X_cal, y_cal = calibration.loc[rows["calibration"], features], y["calibration"][rows["calibration"]]
        own_raw = global_raw[rows["calibration"]] + np.asarray(model_kind("lightgbm").raw_output(booster, X_cal))
        global_losses = _row_losses(y_cal, global_p[rows["calibration"]])
        own_losses = _row_losses(y_cal, out_of_fold_probabilities(own_raw, y_cal, method, cfg.model.seed))
        gain = global_losses - own_losses
        noise = float(gain.std(ddof=1) / np.sqrt(len(gain)))
        own = bool(gain.mean() > noise)
        global_loss, own_loss = float(global_losses.mean()), float(own_losses.mean())
        trees = int(booster[-1].n_estimators)
        model = f"{trees} tree{'s' if trees != 1 else ''} on top of the global model"
        reason = (f"own model ({model}): calibration-window log loss {own_loss:.4f} against the global model's "
                  f"{global_loss:.4f} (out of fold), lower by more than its standard error {noise:.4f}" if own else
                  f"its own model ({model}) did not beat the global model beyond noise on the calibration window: "
                  f"log loss {own_loss:.4f} against {global_loss:.4f} (out of fold; standard error of the "
                  f"difference {noise:.4f})")
        decisions.append(SegmentDecision(key, **counted, own=own, reason=reason, n_trees=trees,
                                         own_log_loss=own_loss, global_log_loss=global_loss))
        if own:
            boosters[key] = booster

    kept = tuple(boosters)

    def segmented(refit: Refit, early: pd.DataFrame, late: pd.DataFrame, late_name: str
                  ) -> tuple[SegmentedModel, np.ndarray]:
        """The refit's classifier with each kept segment's model refitted on `early` + `late` and calibrated out of
        fold on `late`; the out-of-fold probabilities of `late`'s rows."""
        overall = refit.candidate.classifier
        p = refit.p_calibration.copy()
        early_codes = segment_codes(early[column], keys)
        late_codes = codes[late_name]
        parts = {}
        for key in kept:
            code = keys.index(key)
            e, lt = early_codes == code, late_codes == code
            parts[key], p[lt] = _refit_segment(
                boosters[key], early.loc[e, features], early.loc[e, label].to_numpy(), late.loc[lt, features],
                late.loc[lt, label].to_numpy(), overall, refit.raw_calibration[lt], late.loc[lt, id_column].to_numpy(),
                method, cfg.model.seed)
        return SegmentedModel(column, overall, parts), p

    earlier = pd.concat([train, calibration])
    backtest_model, p_calibration = segmented(backtest, train, calibration, "calibration")
    deployed_model, p_latest = segmented(deployed, earlier, test, "test")
    return Segmentation(backtest_model, deployed_model, p_calibration, p_latest, tuple(decisions), column)


def _row_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each row's log loss."""
    p = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def _ineligible(counted: dict, y: dict[str, np.ndarray], rows: dict[str, np.ndarray], minimum: int) -> str:
    """Why a segment cannot have its own model (too few conversions to learn or to calibrate on), or ""."""
    if counted["train_conversions"] < minimum:
        return (f"{counted['train_conversions']} conversions in training, fewer than segments.min_conversions "
                f"{minimum}")
    for window, role in (("calibration", "the backtest model"), ("test", "the deployed model")):
        outcomes = y[window][rows[window]]
        conversions, others = int(outcomes.sum()), int(len(outcomes) - outcomes.sum())
        if min(conversions, others) < MIN_CALIBRATION_CLASS:
            return (f"{window} window has {conversions} conversions and {others} non-conversions, fewer than "
                    f"{MIN_CALIBRATION_CLASS} of each to calibrate {role} on")
    return ""


def _booster(cfg: ModelConfig, n_trees: int, rows: int, **extra) -> Pipeline:
    """An unfitted segment booster: the segment's own encoding, then LightGBM with the configured settings."""
    classifier = lightgbm_classifier(cfg.lightgbm, n_trees, cfg.seed, lightgbm_threads(cfg.lightgbm, rows), **extra)
    return Pipeline([("encode", FrameEncoder(cfg.min_category_count)), ("model", classifier)])


def _early_stopped_booster(X: pd.DataFrame, y: np.ndarray, init: np.ndarray, validation_order: np.ndarray,
                           cfg: ModelConfig) -> Pipeline | None:
    """A booster fitted on a segment's rows starting from the global model's raw output `init`, its tree count
    found by early stopping (the one-standard-error rule of `StopWithinNoise`) on the latest
    `lightgbm.validation_fraction` of the rows, then refitted on all of them; None when that slice holds one
    outcome only."""
    n_validation = max(1, int(len(X) * cfg.lightgbm.validation_fraction))
    is_validation = np.zeros(len(X), dtype=bool)
    is_validation[np.argsort(validation_order, kind="stable")[-n_validation:]] = True
    if len(np.unique(y[is_validation])) < 2:
        return None
    stop = StopWithinNoise(cfg.lightgbm.early_stopping_rounds)
    probe = _booster(cfg, cfg.lightgbm.n_estimators, len(X), metric="None")
    encoder = probe["encode"].fit(X)
    encoded = encoder.transform(X)
    # The validation rows start from the global model's output too: early stopping measures what the booster adds.
    probe[-1].fit(encoded[~is_validation], y[~is_validation], init_score=init[~is_validation],
                  eval_X=(encoded[is_validation],), eval_y=(y[is_validation],), eval_init_score=[init[is_validation]],
                  eval_metric=stop.metric, callbacks=[stop])
    return _booster(cfg, stop.best_trees, len(X)).fit(X, y, model__init_score=init)


def _refit_segment(booster: Pipeline, X_early: pd.DataFrame, y_early: np.ndarray, X_late: pd.DataFrame,
                   y_late: np.ndarray, overall: CalibratedModel, oof_late: np.ndarray, groups: np.ndarray,
                   method: str, seed: int) -> tuple[SegmentModel, np.ndarray]:
    """A kept segment's booster (same settings) refitted on its early and late rows from `overall`'s raw output, and
    calibrated on out-of-fold scores of the late rows: `overall`'s out-of-fold raw output (`oof_late`, from its own
    refit) plus a booster fitted without the row's fold. Returns the segment model and those rows' probabilities."""
    init_early = overall.raw_output(X_early)
    init_late = overall.raw_output(X_late)

    def fit(late_rows: np.ndarray) -> Pipeline:
        return clone(booster).fit(pd.concat([X_early, X_late.iloc[late_rows]]),
                                  np.concatenate([y_early, y_late[late_rows]]),
                                  model__init_score=np.concatenate([init_early, init_late[late_rows]]))

    n_splits = max(2, min(_REFIT_FOLDS, int(np.bincount(y_late).min())))
    if len(np.unique(groups)) < len(groups):  # a lead's snapshots stay in one fold (see `refit_winner`)
        folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_late, y_late, groups)
    else:
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_late, y_late)
    scores = np.asarray(oof_late, dtype="float64").copy()
    for fit_rows, held_rows in folds:
        scores[held_rows] += model_kind("lightgbm").raw_output(fit(fit_rows), X_late.iloc[held_rows])
    calibrated = fit_calibrator(scores, y_late, method)
    whole = fit(np.arange(len(y_late)))
    p = calibrated.calibrator.predict_proba(scores.reshape(-1, 1))[:, 1]
    return SegmentModel(whole, calibrated.calibrator, calibrated.note), p


def segment_report(segmentation: Segmentation, overall: CalibratedModel, test: pd.DataFrame, features: list[str],
                   label: str) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """The backtest's chosen setup per segment on the test window, beside the global backtest model alone.

    Returns run metrics (`segment_<value>`: test rows, conversions, log loss and ROC AUC of the chosen setup and of
    the global model, whether the segment has its own model; logged as `segment_<value>_test_<key>`) and the
    `segments` table (one row per segment of the training window, plus one for the test leads of no such segment)."""
    if segmentation.column is None:
        return {}, pd.DataFrame()
    X, y = test[features], test[label].to_numpy()
    chosen = segmentation.backtest.predict_proba(X)[:, 1]
    alone = overall.predict_proba(X)[:, 1]
    keys = tuple(d.segment for d in segmentation.decisions)
    route = segment_codes(test[segmentation.column], keys)
    metrics, rows = {}, []
    for code, decision in [*enumerate(segmentation.decisions), (-1, None)]:
        members = route == code
        if decision is None and not members.any():
            continue
        measured = _measures(y[members], chosen[members], alone[members])
        row = {"segment": decision.segment if decision else OTHER,
               "model": "own" if decision and decision.own else "global",
               "reason": decision.reason if decision else "never seen in training, or missing: the global model",
               "train_rows": decision.train_rows if decision else 0,
               "train_conversions": decision.train_conversions if decision else 0,
               "calibration_oof_log_loss_own": decision.own_log_loss if decision else float("nan"),
               "calibration_oof_log_loss_global": decision.global_log_loss if decision else float("nan"),
               **{f"test_{k}": v for k, v in measured.items()}}
        rows.append(row)
        if decision is not None:
            metrics[f"segment_{metric_key(decision.segment)}"] = {
                **{k: float(v) for k, v in measured.items() if np.isfinite(v)}, "own_model": float(decision.own)}
    return metrics, pd.DataFrame(rows)


def _measures(y: np.ndarray, chosen: np.ndarray, alone: np.ndarray) -> dict[str, float]:
    """Rows, conversions, and log loss and ROC AUC of the chosen setup and of the global model on a segment's rows."""
    out = {"rows": float(len(y)), "conversions": float(y.sum())}
    for name, p in (("", chosen), ("_global", alone)):
        out[f"log_loss{name}"] = float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])) if len(y) else float("nan")
        out[f"roc_auc{name}"] = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return out


def metric_key(value: str) -> str:
    """A segment value as MLflow accepts it in a metric or tag key."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", value)[:200] or "_"


def segment_tags(table: pd.DataFrame) -> dict[str, str]:
    """Run tags: the rule, and per segment its model (own or global) and why."""
    if table.empty:
        return {}
    tags = {"segments.rule": (
        "own model when the training window holds segments.min_conversions conversions, the calibration and test "
        f"windows {MIN_CALIBRATION_CLASS} of each outcome, and the segment's booster on top of the global model "
        "lowers the out-of-fold log loss of the segment's calibration-window rows by more than one standard error; "
        "else the global model")}
    for row in table.itertuples():
        tags[f"segments.{metric_key(row.segment)}"] = f"{row.model}: {row.reason}"[:5000]
    return tags
