"""Training at a sensible cost: early stopping that stops once later trees improve only within noise, OpenMP
threads that wait passively, dimension models chosen once (for the backtest) and refitted with their settings
for the deployed model, and no search repeated for the deployed model."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from helpers import build_config, make_snapshot, snapshot_config
from test_candidates import CFG, small_windows

from leadscore.config import FeatureGroups, LightGBMConfig, ModelConfig, StageConfig
from leadscore.training import tournament
from leadscore.training.candidates import StopWithinNoise, fit_candidates, fit_lightgbm
from leadscore.training.dataset import load_training_table
from leadscore.training.dimensions import MONOTONE, fit_dimensions
from leadscore.training.pipeline import fit_table
from leadscore.training.tournament import rolling_backtest, rolling_origins


def _feed(stop: StopWithinNoise, losses: list[np.ndarray]) -> int | None:
    """Per-row log losses of successive tree counts (every label 1, so a row's loss is -log p) through the
    rule as LightGBM calls it; the 0-based best iteration it stops at, or None if it never stops."""
    for iteration, loss in enumerate(losses):
        y = np.ones(len(loss))
        result = stop.metric(y, np.exp(-loss))
        try:
            stop(SimpleNamespace(iteration=iteration, evaluation_result_list=[("valid_0", *result)]))
        except lgb.callback.EarlyStopException as stopped:
            return stopped.best_iteration
    return None


def test_improvements_within_noise_do_not_keep_training():
    # Given a validation loss that falls clearly once, then by a millionth per tree with per-row noise of 1 %:
    # every tree count is a new lowest mean loss, so counting any improvement never stops,
    rng = np.random.default_rng(0)
    first, clear = 1.0 + 0.01 * rng.standard_normal(2000), 0.5 + 0.01 * rng.standard_normal(2000)
    drifting = []
    for k in range(1, 60):
        noise = 0.01 * rng.standard_normal(2000)
        drifting.append(clear + noise - noise.mean() - 1e-6 * k)
    means = [loss.mean() for loss in [first, clear, *drifting]]
    assert all(b < a for a, b in zip(means, means[1:])), "each tree count lowers the mean loss"

    # when the rule sees them with a patience of 10 trees,
    stop = StopWithinNoise(rounds=10)
    best = _feed(stop, [first, clear, *drifting])

    # then it stops 10 trees after the last improvement beyond noise, and keeps that many trees.
    assert best == 1 and stop.best_trees == 2


def test_a_clear_improvement_resets_the_patience():
    rng = np.random.default_rng(1)
    losses = [1.0 - 0.05 * k + 0.01 * rng.standard_normal(500) for k in range(15)]  # clear gains, tree after tree
    stop = StopWithinNoise(rounds=5)
    assert _feed(stop, losses) is None and stop.best_trees == 15


def test_early_stopping_stops_well_below_the_bound_on_a_synthetic_table():
    # Given a table with a smooth, noisy signal and the default settings (learning rate 0.03, at most 2,000 trees),
    rng = np.random.default_rng(0)
    n = 20_000
    X = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(5)})
    logit = -2.5 + X.x0 + 0.5 * np.sin(2 * X.x1) + 0.3 * X.x2 ** 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    cfg = LightGBMConfig()

    # when LightGBM is fitted with its tree count found by early stopping,
    model = fit_lightgbm(X, y, np.arange(n), cfg, seed=0, min_category_count=5)

    # then it keeps well under the bound, and more than a stump.
    assert 10 < model[-1].n_estimators < cfg.n_estimators / 4


def _openmp_report(env: dict) -> str:
    code = "import leadscore.training.candidates"  # loads LightGBM and scikit-learn, hence the OpenMP runtime(s)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    # GNU OpenMP reports its settings when it loads; GOMP_SPINCOUNT 0 is the passive policy in effect.
    report = _openmp_report({**env, "OMP_DISPLAY_ENV": "VERBOSE"})
    spins = [line.split("=")[1].strip() for line in report.splitlines() if "GOMP_SPINCOUNT" in line]
    if not spins:
        pytest.skip("the OpenMP runtime is not GNU OpenMP: it does not report its spin count")
    assert spins and all(s == "'0'" for s in spins), f"every OpenMP runtime waits passively: {spins}"
    # A policy the user set is kept.
    report = _openmp_report({**env, "OMP_DISPLAY_ENV": "VERBOSE", "OMP_WAIT_POLICY": "ACTIVE"})
    assert all("ACTIVE" in line for line in report.splitlines() if "OMP_WAIT_POLICY" in line)
    kept = subprocess.run([sys.executable, "-c", "import os, leadscore; print(os.environ['OMP_WAIT_POLICY'])"],
                          env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True, check=True)
    assert kept.stdout.strip() == "ACTIVE"


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """A snapshot table trained with LightGBM the only candidate, every LightGBM fit recorded (all in this process:
    the windows are below the size where fits go to worker processes)."""
    folder = tmp_path_factory.mktemp("cost")
    make_snapshot(3000, seed=4).to_csv(folder / "train.csv", index=False)
    raw = snapshot_config(folder / "train.csv")
    raw["model"]["candidates"] = ["lightgbm"]
    cfg = build_config(raw)
    table = load_training_table(cfg)
    fits, original = [], lgb.LGBMClassifier.fit

    def fit(self, X, y, *args, **kwargs):
        fits.append({"rows": len(y), "columns": list(X.columns), "probe": kwargs.get("eval_X") is not None})
        return original(self, X, y, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lgb.LGBMClassifier, "fit", fit)
        result = fit_table(table, cfg)
    return table, result, fits


@pytest.mark.slow
def test_dimension_models_are_chosen_once_and_never_searched_twice(counted):
    table, result, fits = counted
    backtest, deployed = result.backtest.dimensions.models, result.scorer.dimensions.models
    assert set(backtest) == set(deployed) == {"fit", "engagement"}
    # Each dimension is chosen among the configured candidates (here LightGBM alone),
    assert all(model.model == "lightgbm" for model in backtest.values())
    # early stopping searches the tree count once per model: the main candidate, and each backtest dimension;
    probes = [f for f in fits if f["probe"]]
    assert len(probes) == 1 + len(backtest), f"early-stopping probes: {probes}"
    assert sorted(len(p["columns"]) for p in probes) == sorted(
        [len(table.feature_columns), *(len(m.columns) for m in backtest.values())])
    # and the deployed dimensions keep the backtest's settings, refitted on every row before the test window.
    rows = len(result.split.train) + len(result.split.calibration)
    for name, model in deployed.items():
        settings = model.classifier.model[-1].get_params()
        assert settings == backtest[name].classifier.model[-1].get_params(), name
        assert any(f["rows"] == rows and f["columns"] == model.columns for f in fits), name


def test_monotone_dimensions_keep_their_constraint(tmp_path):
    # Given the dimension fitting of an event-log form, where engagement is monotone (DIMENSION_SPECS),
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({"visits_decayed": rng.exponential(1, n), "size": rng.choice(["a", "b", "c"], n)})
    frame["converted"] = (rng.random(n) < 1 / (1 + np.exp(2.5 - frame.visits_decayed))).astype(int)
    groups = FeatureGroups(fit=["size"], engagement=["visits_*"], stage=[])
    windows = {"train": frame.iloc[:1200], "calibration": frame.iloc[1200:]}
    cfg = ModelConfig(lightgbm={"n_estimators": 100})
    scorer = fit_dimensions(windows, "converted", np.arange(1200), cfg, groups, StageConfig(), "event_log",
                            ["visits_decayed", "size"])
    # then engagement is LightGBM rising in every column, fit the candidate its tournament chose,
    engagement, fit = scorer.models["engagement"], scorer.models["fit"]
    assert engagement.model == MONOTONE
    assert engagement.classifier.model[-1].get_params()["monotone_constraints"] == [1]
    assert fit.model in cfg.candidates
    # and refitted from the backtest's models, each keeps its kind and settings.
    again = fit_dimensions({"train": frame.iloc[:1600], "calibration": frame.iloc[1600:]}, "converted",
                           np.arange(1600), cfg, groups, StageConfig(), "event_log", ["visits_decayed", "size"],
                           previous=scorer)
    assert again.models["engagement"].model == MONOTONE and again.models["fit"].model == fit.model
    assert (again.models["engagement"].classifier.model[-1].get_params()
            == engagement.classifier.model[-1].get_params())


def test_an_origin_on_the_fitted_rows_reuses_the_fitted_models(monkeypatch):
    # Given candidates fitted on exactly the rows one origin of the rolling backtest fits on,
    data = small_windows(rows=1600)
    X = pd.concat([data["X_train"], data["X_cal"]])
    y = np.concatenate([data["y_train"], data["y_cal"]])
    origins = rolling_origins(np.arange(len(y), dtype=float), y)
    rows = origins[-1].fit_rows
    fitted = fit_candidates(X.iloc[rows], y[rows], np.arange(len(rows)), CFG)
    refits = []
    real_refit = tournament.refit
    monkeypatch.setattr(tournament, "refit", lambda *args, **kwargs: refits.append(1) or real_refit(*args, **kwargs))

    # when the backtest is told which rows they learned from,
    reused = rolling_backtest(fitted, X, y, origins, CFG, fitted_rows=rows)
    fits_reused, refits[:] = len(refits), []
    refitted = rolling_backtest(fitted, X, y, origins, CFG)

    # then that origin fits nothing again, and every figure is the same as refitting there.
    assert fits_reused == len(refits) - len(fitted)
    pd.testing.assert_frame_equal(reused.losses, refitted.losses, check_exact=True)
