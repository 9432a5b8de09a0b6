"""The tournament's candidates: a registry of model families, each a scikit-learn pipeline on the raw feature frame.

A candidate is one entry in `CANDIDATES`: how to fit it on the training window, the kind of model it
makes (an entry of `leadscore.model.kinds.MODEL_KINDS`, which tells the scoring artifact how to read its
raw output and exact contributions) and what about a fitted one is worth recording with the run.
Adding a candidate is one entry here (plus one in `MODEL_KINDS` when it is a new kind of model).

- `lightgbm`: LightGBM on native categoricals, the tree count found by early stopping on the latest part
  of the training window, then refitted on all of it.
- `logistic`: an L2 logistic regression (one-hot, median imputation with missing indicators, signed-log
  numerics, scaling).

Recency-weighted variants (`model.recency_variants`): with rows in time or row order, every candidate can
also enter as `<name>-recency`, the same model fitted with sample weights that halve every third of the
fitted rows' span (the oldest rows count an eighth of the latest). Such a variant answers drift: when what
converts changes over time, the latest rows say more about the next leads. It is never chosen by a setting,
only when the rolling-origin backtest (`leadscore.training.tournament`) ranks it first; without time or
row order (a random split) there is nothing to weight and no variant enters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from leadscore.config import LightGBMConfig, ModelConfig
from leadscore.errors import ConfigError
from leadscore.model import encoding
from leadscore.model.encoding import (
    FrameEncoder,
    categorical_columns,
    numeric_columns,
)
from leadscore.training.parallel import run_all, workers_for


@dataclass(frozen=True)
class CandidateSpec:
    """One model family of the tournament.

    `fit(X, y, validation_order, cfg, sample_weight)` fits it on the training window (`validation_order` ranks
    the rows by time, latest last, for early stopping; `sample_weight` is None or one weight per row); `kind`
    names its entry in `leadscore.model.kinds.MODEL_KINDS`; `details(model)` says what about a fitted one is
    recorded with the run; `recency` marks the recency-weighted variant of a registered candidate; `simplicity`
    orders the families from the simplest (0) for the backtest's tie rule (`leadscore.training.tournament`):
    among candidates that rank alike within noise, the simplest wins.
    Every fitted pipeline ends in a step named `model`, which takes the sample weights when it is refitted.
    """

    fit: Callable[..., Pipeline]
    kind: str
    details: Callable[[Pipeline], dict]
    simplicity: int
    recency: bool = False

    @property
    def complexity(self) -> tuple[int, bool]:
        """The sort key of the tie rule: simpler families first, and a recency variant after its plain form
        (its weights are one more thing fitted to the data)."""
        return self.simplicity, self.recency


def _fit_lightgbm_candidate(X, y, validation_order, cfg: ModelConfig, sample_weight=None) -> Pipeline:
    return fit_lightgbm(X, y, validation_order, cfg.lightgbm, cfg.seed, cfg.min_category_count,
                        sample_weight=sample_weight)


def _fit_logistic_candidate(X, y, validation_order, cfg: ModelConfig, sample_weight=None) -> Pipeline:
    return fit_logistic(X, y, cfg.logistic_c, cfg.min_category_count, cfg.seed, sample_weight=sample_weight)


def _fit_linear_candidate(X, y, validation_order, cfg: ModelConfig, sample_weight=None) -> Pipeline:
    return fit_logistic(X, y, cfg.logistic_c, cfg.min_category_count, cfg.seed, sample_weight=sample_weight,
                        signed_log=False)


def _lightgbm_details(model: Pipeline) -> dict:
    return {"n_trees": int(model[-1].n_estimators)}


def _no_details(model: Pipeline) -> dict:
    return {}


CANDIDATES: dict[str, CandidateSpec] = {
    "lightgbm": CandidateSpec(fit=_fit_lightgbm_candidate, kind="lightgbm", details=_lightgbm_details, simplicity=2),
    # The regression with one more fitted-by-hand step (the signed log) than `linear`: it tames long tails.
    "logistic": CandidateSpec(fit=_fit_logistic_candidate, kind="logistic", details=_no_details, simplicity=1),
    # The same regression on numbers as they are: it extrapolates linearly, which wins when later leads
    # take values never seen in training (indicators of a changing market), where the signed log flattens them.
    "linear": CandidateSpec(fit=_fit_linear_candidate, kind="logistic", details=_no_details, simplicity=0),
}


def check_candidates(names: list[str]) -> None:
    """Refuse candidate names that are not in the registry, naming the known ones."""
    unknown = [name for name in names if name not in CANDIDATES]
    if unknown:
        raise ConfigError(
            f"model.candidates: no candidate named {', '.join(repr(n) for n in unknown)}; "
            f"known candidates: {', '.join(CANDIDATES)}. Fix: list known names only in model.candidates "
            "(a new candidate is one entry of leadscore.training.candidates.CANDIDATES)"
        )


RECENCY = "-recency"  # suffix of a candidate's recency-weighted variant
_RECENCY_HALF_LIVES = 3  # half-lives in the span of the fitted rows: the oldest row weighs 1/8 of the latest


def candidate(name: str) -> CandidateSpec:
    """The registry entry of one candidate, or of its recency-weighted variant (`<name>-recency`); an unknown
    name is a `ConfigError` listing the known ones."""
    if name.endswith(RECENCY) and name.removesuffix(RECENCY) in CANDIDATES:
        return replace(CANDIDATES[name.removesuffix(RECENCY)], recency=True)
    check_candidates([name])
    return CANDIDATES[name]


def recency_weights(times: np.ndarray) -> np.ndarray:
    """Sample weights exponential in time: 1 for the latest row, halving every third of the rows' time span.

    `times` are days (a time split) or row positions (row order); only differences count, so any origin works.
    """
    times = np.asarray(times, dtype="float64")
    span = float(times.max() - times.min()) if len(times) else 0.0
    if span <= 0:
        return np.ones(len(times))
    return 0.5 ** ((times.max() - times) / (span / _RECENCY_HALF_LIVES))


def fit_weights(name: str, times: np.ndarray | None) -> np.ndarray | None:
    """The sample weights candidate `name` is fitted with on rows at `times`: None unless it is a recency variant."""
    if times is None or not candidate(name).recency:
        return None
    return recency_weights(times)


def refit(model: Pipeline, name: str, X: pd.DataFrame, y: np.ndarray, times: np.ndarray | None = None) -> Pipeline:
    """A clone of candidate `name`'s fitted `model` (same settings) fitted on other rows, with the variant's weights."""
    weights = fit_weights(name, times)
    return clone(model).fit(X, y, **({} if weights is None else {"model__sample_weight": weights}))


def fit_candidates(train: pd.DataFrame, y_train: np.ndarray, validation_order: np.ndarray, cfg: ModelConfig,
                   times: np.ndarray | None = None) -> dict[str, Pipeline]:
    """Fit every configured candidate on the training window (every name is checked before any is fitted).

    `validation_order` ranks training rows by time (or at random); LightGBM stops early on the
    latest `validation_fraction` of them, then is refitted on the whole window with that many trees.
    With `cfg.recency_variants` and `times` (the rows' days or positions; None for a random split), every
    candidate's recency-weighted variant is fitted too.
    """
    check_candidates(cfg.candidates)
    names = list(cfg.candidates)
    if cfg.recency_variants and times is not None:
        names += [f"{name}{RECENCY}" for name in cfg.candidates]

    def fit(name: str) -> Callable[[], Pipeline]:
        return lambda: candidate(name).fit(train, y_train, validation_order, cfg, sample_weight=fit_weights(name, times))

    fitted = run_all([fit(name) for name in names], fit_workers(cfg, len(train)))
    return dict(zip(names, fitted, strict=True))


def fit_workers(cfg: ModelConfig, rows: int) -> int:
    """How many fits of this many rows run side by side (`leadscore.training.parallel`)."""
    return workers_for(rows, lightgbm_threads(cfg.lightgbm, rows))


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


class StopWithinNoise:
    """Early stopping that counts an improvement of the validation log loss only beyond its noise.

    LightGBM's own early stopping counts any improvement, however small: near its minimum the validation loss
    of a small learning rate is flat, and changes the validation slice cannot tell from noise keep resetting
    the patience (on a 30,000-lead event log the plain rule kept 800 trees where this one keeps 575, at the
    same log loss within its noise). Here a tree count is the new best only when its validation log loss is
    below the best one's by more than one standard error of the per-row differences between the two (paired:
    the same rows score both), the one-standard-error rule the tournament also decides by
    (`leadscore.training.tournament`); training stops when `rounds` trees in a row bring no such improvement,
    and the model keeps `best_trees` trees: the smallest count that later trees did not beat beyond noise.
    Scale-free: the threshold follows the validation slice's own noise, whatever the row count, conversion
    rate or learning rate. Where the loss still falls beyond noise, training goes on to `n_estimators`.

    `metric` is the probe's `eval_metric` (it keeps the per-row losses of the latest tree count) and the
    object itself its callback; one instance serves one fit.
    """

    def __init__(self, rounds: int):
        self.rounds = rounds
        self.best_trees = 0
        self._latest: np.ndarray | None = None
        self._best: np.ndarray | None = None
        self._best_result: list | None = None
        self.order = 30  # after LightGBM's own callbacks (which record the evaluation), as its early stopping

        # A plain function, not a method: LightGBM deep-copies `eval_metric`, which would copy a bound method's
        # object, and the callback would never see the losses; a function is copied as itself.
        def metric(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[str, float, bool]:
            p = np.clip(y_pred, 1e-15, 1 - 1e-15)
            self._latest = -(y_true * np.log(p) + (1 - y_true) * np.log1p(-p))
            return "binary_logloss", float(self._latest.mean()), False

        self.metric = metric

    def __call__(self, env) -> None:
        losses, trees = self._latest, env.iteration + 1
        if self._best is None or _improves_beyond_noise(self._best - losses):
            self._best, self.best_trees, self._best_result = losses, trees, env.evaluation_result_list
        elif trees - self.best_trees >= self.rounds:
            raise lgb.callback.EarlyStopException(self.best_trees - 1, self._best_result)


def _improves_beyond_noise(gain: np.ndarray) -> bool:
    """Whether the mean of per-row loss reductions `gain` exceeds one standard error."""
    return bool(gain.mean() > gain.std(ddof=1) / np.sqrt(len(gain)))


def fit_lightgbm(X, y, validation_order, cfg: LightGBMConfig, seed: int, min_category_count: int,
                 sample_weight: np.ndarray | None = None, **extra) -> Pipeline:
    """LightGBM on native categoricals, with the tree count found by early stopping.

    `sample_weight` (one per row, or None) weighs the fitted rows, not the early-stopping loss;
    `extra` goes to LightGBM as it is (e.g. `monotone_constraints`)."""
    encoder = FrameEncoder(min_category_count).fit(X)
    encoded = encoder.transform(X)
    n_validation = max(1, int(len(X) * cfg.validation_fraction))
    is_validation = np.zeros(len(X), dtype=bool)
    is_validation[np.argsort(validation_order, kind="stable")[-n_validation:]] = True
    threads = lightgbm_threads(cfg, len(X))
    if len(np.unique(y[is_validation])) == 2:
        stop = StopWithinNoise(cfg.early_stopping_rounds)
        # The built-in metric is off: the stopping rule computes the validation log loss itself, per row.
        probe = lightgbm_classifier(cfg, cfg.n_estimators, seed, threads, metric="None", **extra)
        probe.fit(
            encoded[~is_validation], y[~is_validation],
            sample_weight=None if sample_weight is None else sample_weight[~is_validation],
            eval_X=(encoded[is_validation],), eval_y=(y[is_validation],), eval_metric=stop.metric,
            callbacks=[stop],
        )
        n_trees = stop.best_trees
    else:  # too few conversions in the validation slice to stop early: keep the configured bound
        n_trees = cfg.n_estimators
    model = lightgbm_classifier(cfg, n_trees, seed, threads, **extra).fit(encoded, y, sample_weight=sample_weight)
    return Pipeline([("encode", encoder), ("model", model)])


def logistic_pipeline(min_category_count: int, c: float, seed: int, *, signed_log: bool) -> Pipeline:
    """One-hot + impute + scale + L2 logistic regression, on the raw feature frame."""
    numeric_steps = [SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)]
    if signed_log:
        numeric_steps.append(FunctionTransformer(encoding.signed_log, feature_names_out="one-to-one"))
    numeric_steps.append(StandardScaler())
    prepare = ColumnTransformer(
        [
            ("numeric", make_pipeline(*numeric_steps), numeric_columns),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical_columns),
        ]
    )
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    return Pipeline([("encode", FrameEncoder(min_category_count)), ("prepare", prepare), ("model", model)])


def fit_logistic(X, y, c: float, min_category_count: int, seed: int, sample_weight: np.ndarray | None = None, *,
                 signed_log: bool = True) -> Pipeline:
    """A regularised logistic candidate (signed-log numerics unless `signed_log` is false), its rows weighed by
    `sample_weight` when given."""
    pipeline = logistic_pipeline(min_category_count, c, seed, signed_log=signed_log)
    return pipeline.fit(X, y, **({} if sample_weight is None else {"model__sample_weight": sample_weight}))
