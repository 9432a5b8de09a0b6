"""The model tournament: every registered candidate (`leadscore.training.candidates`), each calibrated.

Every candidate is calibrated on the calibration window; the calibration method (sigmoid or isotonic)
and the winning candidate are chosen by out-of-fold log loss *within* the calibration window, so the
choice never sees the test window and a calibrator is never scored on the rows it was fitted on.

The winner is then refitted on the training and calibration windows together (`refit_winner`): the
calibration window holds the latest labelled rows before the test window, and a model that never learns
from them misses whatever changed lately (new campaigns, a new kind of lead, a new conversion level).

Rolling-origin backtest (`rolling_backtest`)
--------------------------------------------
The pipeline's own choices (which candidate, which calibration method) are made by more than one window:
the rows before the test window are put in order (by time, by row order, or at random when there is no
time) and cut at `ROLLING_ORIGINS` origins into expanding blocks. At each origin every candidate, with the
settings found on the training window (e.g. LightGBM's early-stopped tree count, so no origin searches
again), is fitted on the rows before the calibration block (with a time split, only rows whose label window
ends before that block starts), and its raw outputs of the next block are scored two ways:
- the *forecast loss*: calibrated on the calibration block (each method; the guard of
  `leadscore.training.calibration` applies), log loss on the next block. Fit on the past, calibrate on the
  latest, forecast what comes next, as the deployed model does; it includes the drift of the base rate;
- the *ranking loss*: recalibrated out of fold within the next block, as the deployed model is recalibrated
  on its latest window; it leaves out the base rate's drift (the same for every candidate and no candidate's
  merit) and measures what the candidate's ranking adds.
The decision rule, with the noise of every mean its standard error across origins:
- each candidate is scored by its mean ranking loss over the origins (with the calibration method of its
  lower mean ranking loss); the *best-ranked* candidate has the lowest;
- the winner is the simplest candidate (the registry's `simplicity`: linear, then logistic, then LightGBM; a
  recency variant after its plain form) whose mean ranking loss exceeds the best-ranked one's by at most one
  standard error of their per-origin differences: the one-standard-error rule (Hastie, Tibshirani and
  Friedman, *The Elements of Statistical Learning*, 7.10), on paired differences because every candidate
  is scored on the same blocks. A more flexible model has to rank better beyond the noise to be chosen;
  where it does not, the simpler one ranks as well on this data and has less to go wrong on the next
  period's leads (the bank benchmark's rolling origins put logistic and linear 0.0008 apart with a
  standard error of 0.0008, and out of time linear ranks better);
- the winner is calibrated with the method of lower mean forecast loss.
A recency-weighted variant (`leadscore.training.candidates`, `<name>-recency`) is one more candidate here, refitted
at each origin with weights over that origin's own fitting rows: it is chosen only when this rule picks it.
The constant predictor is scored the same two ways (the calibration block's base rate; the base rate of the
other folds); an option beats it when its mean ranking loss is lower beyond noise (a one-sided t-test of the
per-origin differences at 2.5 %, see `RollingBacktest.beats_constant`). When none does, the run and the model
card say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore.config import ModelConfig
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.kinds import model_kind
from leadscore.training.calibration import EPS, calibrate, fit_calibrator, out_of_fold_log_loss
from leadscore.training.candidates import candidate, fit_workers, refit
from leadscore.training.parallel import run_all


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
    raw_calibration: np.ndarray  # the out-of-fold raw outputs behind them (what a segment model adds to)


def refit_winner(winner: Candidate, model: Pipeline, X_train: pd.DataFrame, y_train: np.ndarray,
                 X_cal: pd.DataFrame, y_cal: np.ndarray, cfg: ModelConfig, groups: np.ndarray | None = None,
                 times: np.ndarray | None = None) -> Refit:
    """Refit the winner's model (same settings, e.g. LightGBM's tree count) on an earlier and a latest part together.

    The parts are the training and calibration windows for the backtest model (the pipeline measured on the
    test window it never saw), and the training + calibration windows and the test window for the deployed
    model (every row). `X_cal`, `y_cal` is the latest part. The tree count is not scaled with the larger row
    count: the parts add 25-70 % more rows, the best count grows slower than the rows, and too many trees
    overfit where too few only smooth.

    Its calibrator (the winner's method, guarded against inversion) is fitted on out-of-fold scores of the latest part: the
    part is cut into folds (rows of one lead, as given by `groups`, stay in one fold, so that a lead's
    other snapshots cannot tell its label), and each fold is scored by a model fitted on everything else. Those scores
    look like the refitted model's scores of new leads, where its own scores of rows it learned from
    would be too confident. The out-of-fold probabilities are returned too, for anything else chosen on
    the calibration window (the cutoffs). `times` (days or positions of the training rows, then of the latest part's)
    weigh the rows of a recency-weighted winner, each fit by its own rows' span.
    """
    kind = winner.classifier.kind
    # The refit and the held-out folds' fits are independent: they run side by side (`training.parallel`).
    refitted, scores = _refit_and_held_out_scores(model, winner.name, kind, X_train, y_train, X_cal, y_cal, groups,
                                                  cfg, times)
    # The method the tournament chose, guarded again on these scores: a fallback forced by one window's fit
    # (noted in `details`) need not hold for another.
    fitted = fit_calibrator(scores, y_cal, winner.details.get("chosen_calibration", winner.calibration_method))
    classifier = CalibratedModel(refitted, kind, fitted.calibrator, fitted.note)
    p_calibration = fitted.calibrator.predict_proba(scores)[:, 1]
    loss = float(log_loss(y_cal, np.clip(p_calibration, EPS, 1 - EPS), labels=[0, 1]))
    details = {**winner.details, "refit_rows": len(y_train) + len(y_cal)}
    details.pop("calibration_note", None)  # the candidate's own fallback, not this calibrator's
    if fitted.note:
        details["calibration_note"] = fitted.note
    candidate = Candidate(winner.name, classifier, fitted.method, loss, details)
    return Refit(candidate, refitted, p_calibration, scores[:, 0])


def _refit_and_held_out_scores(model: Pipeline, name: str, kind: str, X_train, y_train, X_cal, y_cal, groups,
                               cfg: ModelConfig, times: np.ndarray | None) -> tuple[Pipeline, np.ndarray]:
    """A clone of `model` fitted on both parts, and the raw output for each row of the latest part by a clone
    fitted on the earlier part and the latest part's other folds."""
    seed = cfg.seed
    n_splits = max(2, min(_REFIT_FOLDS, int(np.bincount(y_cal).min())))
    if groups is not None and len(np.unique(groups)) < len(groups):
        folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_cal, y_cal, groups)
    else:
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X_cal, y_cal)
    folds = list(folds)

    def whole() -> Pipeline:
        return refit(model, name, pd.concat([X_train, X_cal]), np.concatenate([y_train, y_cal]), times)

    def held_out(fit_rows: np.ndarray, held_rows: np.ndarray) -> Callable[[], np.ndarray]:
        def score() -> np.ndarray:
            fold_times = None if times is None else np.concatenate([times[:len(y_train)], times[len(y_train):][fit_rows]])
            fold_model = refit(model, name, pd.concat([X_train, X_cal.iloc[fit_rows]]),
                               np.concatenate([y_train, y_cal[fit_rows]]), fold_times)
            return np.asarray(model_kind(kind).raw_output(fold_model, X_cal.iloc[held_rows]))
        return score

    refitted, *fold_scores = run_all([whole, *(held_out(f, h) for f, h in folds)],
                                     fit_workers(cfg, len(y_train) + len(y_cal)))
    scores = np.empty((len(y_cal), 1))
    for (_, held_rows), held_scores in zip(folds, fold_scores, strict=True):
        scores[held_rows, 0] = held_scores
    return refitted, scores


ROLLING_ORIGINS = 3
_FIRST_FIT_SHARE = 0.4  # the rows before the first calibration block; the rest is cut in equal blocks
CONSTANT = "constant"
BLOCK = "@block"  # suffix of the ranking loss: recalibrated out of fold within the forecast block


@dataclass(frozen=True)
class Origin:
    """One origin of a rolling backtest: positions of the rows to fit on, to calibrate on and to forecast."""

    fit_rows: np.ndarray
    calibration_rows: np.ndarray
    test_rows: np.ndarray


@dataclass(frozen=True)
class RollingBacktest:
    """Log loss of every option (candidate/method, and the constant) at every origin, two ways, and the choice made.

    Column `<option>`: the forecast loss (calibrated on the calibration block, scored on the next block), what a
    deployed model recalibrated on its latest window would have scored, base-rate drift included. Column
    `<option>@block`: the ranking loss (recalibrated out of fold *within* the next block), which leaves out the drift
    of the base rate, the same for every candidate, and measures what the candidate adds to the base rate.
    """

    losses: pd.DataFrame  # one row per origin: origin, rows of each block, then the two losses of every option
    options: list[str]  # the options that could win, "<candidate>/<method>"

    @property
    def summary(self) -> pd.DataFrame:
        """Per option (constant included): mean and standard error over the origins of the forecast loss and of the
        ranking loss, and of the ranking loss's improvement over the constant; best ranking first."""
        rows = []
        for option in [*self.options, CONSTANT]:
            forecast, ranking = self.losses[option].to_numpy(), self.losses[f"{option}{BLOCK}"].to_numpy()
            gain = self.losses[f"{CONSTANT}{BLOCK}"].to_numpy() - ranking
            rows.append({"option": option, "mean_log_loss": forecast.mean(), "se_log_loss": _standard_error(forecast),
                         "mean_ranking_log_loss": ranking.mean(), "se_ranking_log_loss": _standard_error(ranking),
                         "mean_gain_over_constant": gain.mean(), "se_gain_over_constant": _standard_error(gain)})
        return pd.DataFrame(rows).sort_values("mean_ranking_log_loss", kind="stable").reset_index(drop=True)

    @property
    def candidates(self) -> list[str]:
        """The competing candidates' names, in the order they were fitted."""
        return list(dict.fromkeys(option.split("/")[0] for option in self.options))

    def ranking_losses(self, name: str) -> np.ndarray:
        """Candidate `name`'s ranking loss at each origin, with its method of lower mean ranking loss."""
        own = [f"{o}{BLOCK}" for o in self.options if o.split("/")[0] == name]
        return self.losses[own[int(np.argmin(self.losses[own].mean().to_numpy()))]].to_numpy()

    @property
    def best_ranked(self) -> str:
        """The candidate with the lowest mean ranking loss over the origins."""
        return min(self.candidates, key=lambda name: self.ranking_losses(name).mean())

    def excess(self, name: str) -> tuple[float, float]:
        """Mean and standard error over the origins of candidate `name`'s ranking loss minus the best-ranked one's."""
        differences = self.ranking_losses(name) - self.ranking_losses(self.best_ranked)
        return float(differences.mean()), _standard_error(differences)

    @property
    def winner(self) -> str:
        """The simplest candidate ranking within one standard error of the best-ranked (see the module docstring);
        with one origin the noise is unknown and the best-ranked wins."""
        best = self.best_ranked
        for name in sorted(self.candidates, key=lambda n: candidate(n).complexity):
            mean, se = self.excess(name)
            if name == best or (len(self.losses) > 1 and mean <= se):
                return name
        raise AssertionError("the best-ranked candidate is always within its own noise")

    @property
    def method(self) -> str:
        """The winner's calibration method."""
        return self.method_of(self.winner)

    @property
    def best(self) -> str:
        """The winning option, `<candidate>/<method>`."""
        return f"{self.winner}/{self.method}"

    def method_of(self, name: str) -> str:
        """The calibration method with the lower mean forecast loss for candidate `name` (calibration is what
        meets the drift from the calibration window to the next one)."""
        own = [o for o in self.options if o.split("/")[0] == name]
        return str(self.losses[own].mean().idxmin()).split("/")[1]

    def beats_constant(self, option: str) -> bool:
        """Whether `option` ranks beyond noise: its mean ranking-loss improvement over the constant exceeds
        `t * standard error` of the per-origin improvements, t the 97.5 % quantile of Student's t with origins - 1
        degrees of freedom (a one-sided test at 2.5 %; with few origins the standard error is itself uncertain,
        which a fixed two would ignore). With one origin the noise is unknown and nothing beats the constant.

        The test is per option, not corrected for the number of options: with three origins (two degrees of
        freedom) a Bonferroni correction for six options asks for t > 10.9, which a model that cuts the log
        loss by 0.07 at every origin of a synthetic set with a clear signal fails. More candidates are thus
        more chances to beat the constant by luck; the run records every option's figures to judge that."""
        gain = self.losses[f"{CONSTANT}{BLOCK}"].to_numpy() - self.losses[f"{option}{BLOCK}"].to_numpy()
        if len(gain) < 2:
            return False
        return bool(gain.mean() > student_t.ppf(0.975, len(gain) - 1) * _standard_error(gain))

    @property
    def any_beats_constant(self) -> bool:
        """Whether any option beats the constant predictor beyond noise."""
        return any(self.beats_constant(o) for o in self.options)

    @property
    def verdict(self) -> str:
        """The decision and its noise, in one paragraph for the run and the model card."""
        table = self.summary.set_index("option")
        best, constant = table.loc[self.best], table.loc[CONSTANT]
        text = (f"{self.winner} wins over {len(self.losses)} rolling origins: ranking log loss "
                f"{best.mean_ranking_log_loss:.4f} (standard error {best.se_ranking_log_loss:.4f}) against the "
                f"constant's {constant.mean_ranking_log_loss:.4f}; {self.method} calibration forecasts the next block "
                f"best, log loss {best.mean_log_loss:.4f} (standard error {best.se_log_loss:.4f}; the calibration "
                f"block's base rate: {constant.mean_log_loss:.4f}).")
        if self.winner != self.best_ranked:
            mean, se = self.excess(self.winner)
            text += (f" {self.best_ranked} ranks better by {mean:.4f}, within one standard error ({se:.4f}) of the "
                     f"per-origin differences, so the simpler {self.winner} is chosen.")
        if self.any_beats_constant:
            return text + (f" It beats the constant by {best.mean_gain_over_constant:.4f} "
                           f"(standard error {best.se_gain_over_constant:.4f}).")
        return text + (" No candidate beats the constant predictor beyond noise (a one-sided t-test of the per-origin "
                       "differences at 2.5 %): on this data the "
                       "model's ranking adds little to the base rate, and its probabilities should be read as such.")

    def metrics(self) -> dict[str, float]:
        """The summary as flat run metrics, `rolling_<option>_log_loss_mean` / `_se` (forecast) and
        `rolling_<option>_ranking_log_loss_mean` / `_se`, plus the origin count."""
        out = {"rolling_origins": float(len(self.losses))}
        for row in self.summary.itertuples():
            key = row.option.replace("/", "_")
            out[f"rolling_{key}_log_loss_mean"] = float(row.mean_log_loss)
            out[f"rolling_{key}_log_loss_se"] = float(row.se_log_loss)
            out[f"rolling_{key}_ranking_log_loss_mean"] = float(row.mean_ranking_log_loss)
            out[f"rolling_{key}_ranking_log_loss_se"] = float(row.se_ranking_log_loss)
        return {k: v for k, v in out.items() if np.isfinite(v)}


def _standard_error(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def rolling_origins(order: np.ndarray, y: np.ndarray, *, horizon: float | None = None,
                    n_origins: int = ROLLING_ORIGINS) -> list[Origin]:
    """Expanding-window origins over rows ranked by `order` (numbers: days, positions or a random permutation).

    Blocks are cut at values of `order`, so rows with the same value (one snapshot) stay in one block. With
    `horizon` (in the units of `order`: the label window of a time order), fitting rows whose label window
    reaches the calibration block are left out.
    An origin without both classes in each of its blocks is skipped.
    """
    values = np.asarray(order, dtype="float64")
    y = np.asarray(y)
    ranked = np.sort(values, kind="stable")
    n = len(ranked)
    step = (1 - _FIRST_FIT_SHARE) / (n_origins + 1)
    cuts = [ranked[min(int(n * (_FIRST_FIT_SHARE + i * step)), n - 1)] for i in range(n_origins + 1)]
    origins = []
    for k in range(n_origins):
        start, middle = cuts[k], cuts[k + 1]
        end_rows = values >= cuts[k + 2] if k + 2 <= n_origins else np.zeros(n, dtype=bool)
        fit = values < start
        if horizon is not None:
            fit &= values + horizon <= start
        calibration = (values >= start) & (values < middle)
        test = (values >= middle) & ~end_rows
        blocks = [np.flatnonzero(rows) for rows in (fit, calibration, test)]
        if all(len(np.unique(y[rows])) == 2 and np.bincount(y[rows]).min() >= 2 for rows in blocks):
            origins.append(Origin(*blocks))
    return origins


def rolling_backtest(fitted: dict[str, Pipeline], X: pd.DataFrame, y: np.ndarray, origins: list[Origin],
                     cfg: ModelConfig, times: np.ndarray | None = None,
                     fitted_rows: np.ndarray | None = None) -> RollingBacktest:
    """Score every fitted candidate (its settings, refitted at each origin) with each calibration method, and the
    constant predictor, by log loss on each origin's forecast block (see the module docstring). `times` (days or
    positions of `X`'s rows) weigh a recency-weighted candidate's fitting rows at each origin.

    `fitted_rows` (positions in `X` of the rows `fitted` learned from, e.g. the training window): an origin that
    fits exactly those rows uses the fitted models as they are, since refitting them would give the same models
    (same rows, settings, weights and seed); a purged time split often cuts an origin at the training window's end."""
    methods = ["sigmoid", "isotonic"] if cfg.calibration == "auto" else [cfg.calibration]

    def score(origin: Origin, name: str) -> Callable[[], dict[str, float]]:
        same = fitted_rows is not None and np.array_equal(origin.fit_rows, fitted_rows)
        return lambda: _origin_losses(fitted[name], name, X, y, origin, methods, cfg.seed, times,
                                      already_fitted=same)

    # Every candidate at every origin is one independent fit: they run side by side (`training.parallel`).
    tasks = [score(origin, name) for origin in origins for name in fitted]
    losses = iter(run_all(tasks, fit_workers(cfg, max(len(o.fit_rows) for o in origins))))
    rows = []
    for number, origin in enumerate(origins, start=1):
        y_cal, y_test = y[origin.calibration_rows], y[origin.test_rows]
        row = {"origin": number, "fit_rows": len(origin.fit_rows), "calibration_rows": len(y_cal),
               "test_rows": len(y_test), CONSTANT: _log_loss(y_test, np.full(len(y_test), y_cal.mean())),
               # A calibrator that cannot rise (the raw output is the same for every lead) is the base rate of its folds.
               f"{CONSTANT}{BLOCK}": out_of_fold_log_loss(np.zeros(len(y_test)), y_test, "isotonic", cfg.seed)}
        for _ in fitted:
            row.update(next(losses))
        rows.append(row)
    options = [f"{name}/{method}" for name in fitted for method in methods]
    return RollingBacktest(pd.DataFrame(rows), options)


def _origin_losses(model: Pipeline, name: str, X: pd.DataFrame, y: np.ndarray, origin: Origin, methods: list[str],
                   seed: int, times: np.ndarray | None, already_fitted: bool = False) -> dict[str, float]:
    """Candidate `name` refitted at one origin (or `model` itself when it was `already_fitted` on the origin's rows):
    its forecast and ranking losses with each calibration method."""
    kind = model_kind(candidate(name).kind)
    at_origin = model if already_fitted else refit(model, name, X.iloc[origin.fit_rows], y[origin.fit_rows],
                                                   None if times is None else times[origin.fit_rows])
    y_cal, y_test = y[origin.calibration_rows], y[origin.test_rows]
    raw_cal = np.asarray(kind.raw_output(at_origin, X.iloc[origin.calibration_rows]))
    raw_test = np.asarray(kind.raw_output(at_origin, X.iloc[origin.test_rows])).reshape(-1, 1)
    losses = {}
    for method in methods:
        calibrator = fit_calibrator(raw_cal, y_cal, method).calibrator
        losses[f"{name}/{method}"] = _log_loss(y_test, calibrator.predict_proba(raw_test)[:, 1])
        losses[f"{name}/{method}{BLOCK}"] = out_of_fold_log_loss(raw_test, y_test, method, seed)
    return losses


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))


def choose_by_backtest(fitted: dict[str, Pipeline], backtest: RollingBacktest, X_cal: pd.DataFrame, y_cal: np.ndarray,
                       ) -> tuple[Candidate, list[Candidate]]:
    """The tournament decided by a rolling backtest: every candidate calibrated on the calibration window with its
    own best method; `calibration_log_loss` is its mean rolling log loss; the winner is the backtest's."""
    summary = backtest.summary.set_index("option")
    candidates = []
    for name, model in fitted.items():
        spec = candidate(name)
        method = backtest.method_of(name)
        scores = np.asarray(model_kind(spec.kind).raw_output(model, X_cal))
        calibrated = fit_calibrator(scores, y_cal, method)
        row = summary.loc[f"{name}/{method}"]
        details = {**spec.details(model), **({"recency": "weighted"} if spec.recency else {}),
                   "chosen_calibration": method, "rolling_log_loss_se": float(row.se_log_loss),
                   "beats_constant": backtest.beats_constant(f"{name}/{method}")}
        if calibrated.note:
            details["calibration_note"] = calibrated.note
        candidates.append(Candidate(name, CalibratedModel(model, spec.kind, calibrated.calibrator, calibrated.note),
                                    calibrated.method, float(row.mean_log_loss), details))
    winner = next(c for c in candidates if c.name == backtest.winner)
    return winner, candidates
