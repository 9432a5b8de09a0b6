"""Backtest and refit: rolling origins only ever fit on the past, the rolling backtest decides the tournament and
says when nothing beats the base rate, and the registered model is refitted on every row while the reported
figures come from a backtest model that never saw the test window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import build_config, make_snapshot, snapshot_config
from hypothesis import given
from hypothesis import strategies as st
from test_candidates import CFG, small_windows

from leadscore.reporting.metrics import probability_metrics
from leadscore.config import ModelConfig
from leadscore.training.candidates import RECENCY, candidate, fit_candidates
from leadscore.training.dataset import load_training_table
from leadscore.training.pipeline import BACKTEST_COLUMN, fit_table
from leadscore.training.tournament import (
    BLOCK,
    CONSTANT,
    ROLLING_ORIGINS,
    choose_by_backtest,
    rolling_backtest,
    rolling_origins,
)


@given(n=st.integers(200, 2000), distinct=st.integers(20, 400), horizon=st.one_of(st.none(), st.floats(0, 30)),
       seed=st.integers(0, 1000))
def test_rolling_origins_fit_on_the_past_calibrate_on_the_next_block_and_forecast_the_one_after(n, distinct, horizon, seed):
    # Given rows ranked by a time-like order with ties (several rows per snapshot) and labels of both classes,
    rng = np.random.default_rng(seed)
    order = rng.integers(0, distinct, n).astype(float)
    y = rng.binomial(1, 0.3, n)

    # when origins are cut,
    origins = rolling_origins(order, y, horizon=horizon)

    assert len(origins) <= ROLLING_ORIGINS
    for before, after in zip(origins, origins[1:]):
        assert len(after.fit_rows) >= len(before.fit_rows), "the fitting window expands"
    for origin in origins:
        fit, cal, test = (order[rows] for rows in (origin.fit_rows, origin.calibration_rows, origin.test_rows))
        # then every block is in time order: fit before calibration before forecast, with no shared snapshot,
        assert fit.max() < cal.min() and cal.max() < test.min(), "blocks follow each other in time"
        assert not set(origin.fit_rows) & set(origin.calibration_rows) and not set(origin.calibration_rows) & set(origin.test_rows)
        # no fitting row's label window reaches the calibration block,
        if horizon is not None:
            assert (fit + horizon <= cal.min()).all(), "purged: labels of fitting rows end before calibration starts"
        # and each block holds both classes.
        for rows in (origin.fit_rows, origin.calibration_rows, origin.test_rows):
            assert len(np.unique(y[rows])) == 2


def test_origins_without_both_classes_are_skipped():
    # Given rows whose later half never converts, when origins are cut, then none has a forecast block without conversions.
    order = np.arange(1000, dtype=float)
    y = np.r_[np.random.default_rng(0).binomial(1, 0.3, 500), np.zeros(500, dtype=int)]
    assert rolling_origins(order, y) == []


@pytest.fixture(scope="module")
def informative():
    """The small windows of `test_candidates` put end to end, their candidates and a rolling backtest over them."""
    data = small_windows()
    X = pd.concat([data["X_train"], data["X_cal"]])
    y = np.concatenate([data["y_train"], data["y_cal"]])
    fitted = fit_candidates(data["X_train"], data["y_train"], data["order"], CFG)
    origins = rolling_origins(np.arange(len(y), dtype=float), y)
    return data, fitted, rolling_backtest(fitted, X, y, origins, CFG)


def test_the_rolling_backtest_picks_the_lowest_mean_log_loss_and_states_its_noise(informative):
    data, fitted, backtest = informative
    losses, summary = backtest.losses, backtest.summary.set_index("option")

    # Every option and the constant are scored two ways at every origin,
    assert len(losses) == ROLLING_ORIGINS
    assert set(backtest.options) == {f"{n}/{m}" for n in fitted for m in ("sigmoid", "isotonic")}
    scored = [*backtest.options, CONSTANT]
    assert (losses[[*scored, *(f"{o}{BLOCK}" for o in scored)]] > 0).all().all()
    # the best-ranked candidate has the lowest mean ranking loss, and the winner is the simplest candidate within one
    # standard error of the per-origin differences from it (a simpler one is not), with the lowest forecast loss
    # of its own methods,
    ranking = losses[[f"{o}{BLOCK}" for o in backtest.options]].mean()
    assert ranking.idxmin().split("/")[0] == backtest.best_ranked
    order = sorted(backtest.candidates, key=lambda name: candidate(name).complexity)
    for name in order[:order.index(backtest.winner)]:
        differences = backtest.ranking_losses(name) - backtest.ranking_losses(backtest.best_ranked)
        assert differences.mean() > differences.std(ddof=1) / np.sqrt(len(differences)), f"{name} is simpler and within noise"
    mean, se = backtest.excess(backtest.winner)
    assert backtest.winner == backtest.best_ranked or mean <= se
    own = [o for o in backtest.options if o.startswith(f"{backtest.winner}/")]
    assert losses[own].mean().idxmin() == backtest.best
    # and the noise is the standard error across origins.
    for option in scored:
        for column, key in ((option, "log_loss"), (f"{option}{BLOCK}", "ranking_log_loss")):
            assert summary.loc[option, f"mean_{key}"] == pytest.approx(losses[column].mean())
            assert summary.loc[option, f"se_{key}"] == pytest.approx(losses[column].std(ddof=1) / np.sqrt(len(losses)))
    # The label follows the features: the winner beats the constant predictor beyond noise, and the verdict says so.
    assert backtest.any_beats_constant and backtest.beats_constant(backtest.best)
    assert "beats the constant" in backtest.verdict
    # Its metrics for the run carry mean and standard error per option.
    metrics = backtest.metrics()
    assert metrics["rolling_origins"] == ROLLING_ORIGINS
    assert {f"rolling_{o.replace('/', '_')}_{k}_{s}" for o in backtest.options for k in ("log_loss", "ranking_log_loss")
            for s in ("mean", "se")} <= set(metrics)

    # The tournament then calibrates each candidate with its own best method, and the backtest's winner wins.
    winner, candidates = choose_by_backtest(fitted, backtest, data["X_cal"], data["y_cal"])
    assert winner.name == backtest.winner and winner.calibration_method == backtest.method
    for c in candidates:
        assert c.calibration_method == backtest.method_of(c.name)
        assert c.calibration_log_loss == pytest.approx(summary.loc[f"{c.name}/{backtest.method_of(c.name)}", "mean_log_loss"])
        assert c.classifier.model is fitted[c.name], "calibration does not refit the candidate"


def test_when_the_features_say_nothing_the_backtest_says_no_candidate_beats_the_constant():
    # Given labels drawn independently of every feature,
    data = small_windows(seed=8)
    rng = np.random.default_rng(8)
    X = pd.concat([data["X_train"], data["X_cal"]])
    y = rng.binomial(1, 0.2, len(X))
    half = len(data["X_train"])
    # (two candidates: each added candidate is one more chance to beat the constant by luck, which the
    # per-option test at 2.5 % does not correct for; see `RollingBacktest.beats_constant`)
    cfg = CFG.model_copy(update={"candidates": ["lightgbm", "logistic"]})
    fitted = fit_candidates(X.iloc[:half], y[:half], np.arange(half), cfg)

    # when the rolling backtest runs,
    backtest = rolling_backtest(fitted, X, y, rolling_origins(np.arange(len(y), dtype=float), y), cfg)

    # then no option beats the constant beyond noise, and the verdict says so.
    assert not backtest.any_beats_constant, backtest.summary
    assert "No candidate beats the constant predictor" in backtest.verdict


@pytest.fixture(scope="module", params=["time", "random"])
def trained(request, tmp_path_factory):
    """A snapshot table trained with a time split and with a random one."""
    folder = tmp_path_factory.mktemp(f"refit_{request.param}")
    make_snapshot(3000, seed=4).to_csv(folder / "train.csv", index=False)
    raw = snapshot_config(folder / "train.csv")
    raw["split"] = {"method": request.param}
    cfg = build_config(raw)
    table = load_training_table(cfg)
    return table, cfg, fit_table(table, cfg)


@pytest.mark.slow
def test_the_registered_model_is_refitted_on_every_row_and_the_figures_are_the_backtests(trained):
    table, cfg, result = trained
    split, scorer, backtest = result.split, result.scorer, result.backtest
    X_test, y_test = split.test[table.feature_columns], split.test[table.label_column].to_numpy()

    # The registered model learned from every row, with the backtest's choices,
    assert result.winner.details["refit_rows"] == len(split.train) + len(split.calibration) + len(split.test)
    assert scorer.metadata["role"] == "deployed" and backtest.metadata["role"] == "backtest"
    assert scorer.classifier.kind == backtest.classifier.kind and scorer.classifier.method == backtest.classifier.method
    assert result.winner.name == result.selection.winner, "the rolling backtest chose the winner"
    # and it is another model than the backtest one, which never saw the test window.
    assert not np.allclose(scorer.classifier.raw_output(X_test), backtest.classifier.raw_output(X_test))

    # The reported figures are the backtest model's on the test window, and the logged test window carries its probabilities.
    p_backtest = backtest.predict_proba(X_test)
    assert result.metrics["leadscore"] == probability_metrics(y_test, p_backtest)
    np.testing.assert_allclose(result.test_frame[BACKTEST_COLUMN].to_numpy(), p_backtest)

    # The registered cutoffs come from the deployed model's out-of-fold probabilities of the test window (its own
    # band table there), and the backtest's from the calibration window.
    deployed_bands = result.tables["cutoff_bands_deployed"]
    assert deployed_bands["leads"].sum() == len(split.test)
    assert set(result.tables["cutoff_bands"]["window"]) == {"calibration", "test"}

    # The run says where its figures come from and that the registered model was refitted.
    tags = result.run_tags
    assert "backtest" in tags["metrics.source"] and "refitted on all" in tags["deployed.refit"]
    assert tags["tournament.beats_constant"] in ("true", "false") and tags["tournament.verdict"]
    assert result.run_metrics["deployed_rows"] == len(split.train) + len(split.calibration) + len(split.test)
    if split.method == "time":
        assert pd.Timestamp(tags["training.label_end"]) >= pd.to_datetime(split.test[table.time_column], utc=True).max()
    else:
        # Without time, the ids the registered model learned from are kept for promotion.
        assert len(result.tables["training_ids"]) == len(split.train) + len(split.calibration) + len(split.test)


@pytest.mark.slow
def test_the_refit_keeps_the_settings_found_on_the_training_window(trained):
    _, _, result = trained
    # The same tree count (LightGBM) or the same kind of model: nothing is searched again on the rows added.
    lightgbm = next(c for c in result.candidates if c.name == "lightgbm")
    if result.winner.name == "lightgbm":
        assert result.winner.details["n_trees"] == lightgbm.details["n_trees"]
        assert result.scorer.classifier.model[-1].n_estimators == lightgbm.details["n_trees"]


def _drifting(rows: int, flip: bool, seed: int = 11) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows in time order; conversion follows `a` and, with `flip`, follows `b` instead from halfway through."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "noise": rng.normal(size=rows)})
    late = np.arange(rows) >= rows // 2
    signal = np.where(late & flip, X["b"], X["a"]) * 2.5 - 1.5
    return X, rng.binomial(1, 1 / (1 + np.exp(-signal)))


def _backtest_with_variants(X: pd.DataFrame, y: np.ndarray):
    cfg = ModelConfig(seed=0, candidates=["lightgbm", "logistic"], recency_variants=True,
                      lightgbm={"n_estimators": 60, "early_stopping_rounds": 10})
    times = np.arange(len(y), dtype=float)
    train = int(len(y) * 0.6)
    fitted = fit_candidates(X.iloc[:train], y[:train], times[:train], cfg, times=times[:train])
    return rolling_backtest(fitted, X, y, rolling_origins(times, y), cfg, times=times)


@pytest.mark.slow
def test_a_recency_weighted_variant_wins_the_backtest_when_the_relation_flips():
    # Given rows whose conversion follows one column, then from halfway on another,
    X, y = _drifting(6000, flip=True)
    # when the candidates and their recency-weighted variants compete in the rolling backtest,
    backtest = _backtest_with_variants(X, y)
    # then a weighted variant ranks best by the backtest's own rule, and is a row of its summary.
    assert candidate(backtest.winner).recency, f"the backtest chose {backtest.winner}:\n{backtest.summary}"
    assert backtest.summary["option"].str.contains(RECENCY).any()
    assert any(key.startswith(f"rolling_{backtest.winner}_") for key in backtest.metrics()), "its figures are run metrics"


@pytest.mark.slow
def test_on_stationary_data_the_variant_competes_but_need_not_win():
    # Given rows whose relation never changes, then every option, weighted or not, is scored on the same origins
    X, y = _drifting(6000, flip=False)
    backtest = _backtest_with_variants(X, y)
    names = {option.split("/")[0] for option in backtest.options}
    assert names == {"lightgbm", "logistic", f"lightgbm{RECENCY}", f"logistic{RECENCY}"}
    assert backtest.beats_constant(backtest.best), "whichever wins still ranks beyond the base rate"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["time", "random"])
def test_recency_variants_compete_in_the_pipeline_only_where_rows_have_an_order(tmp_path, method):
    # Given a snapshot table trained with the variants on,
    make_snapshot(2500, seed=6).to_csv(tmp_path / "train.csv", index=False)
    raw = snapshot_config(tmp_path / "train.csv")
    raw["split"] = {"method": method}
    raw["model"] = {**raw.get("model", {}), "recency_variants": True}
    cfg = build_config(raw)
    result = fit_table(load_training_table(cfg), cfg)
    variants = [c.name for c in result.candidates if candidate(c.name).recency]
    if method == "random":
        # then with a random split there is no time to weight by, and nothing changes,
        assert not variants and "tournament.recency" not in result.run_tags
        return
    # and with a time split each candidate's variant is a row of the backtest, the winner is the backtest's choice,
    # and the run says that the variants competed and which kind won.
    assert sorted(variants) == sorted(f"{name}{RECENCY}" for name in cfg.model.candidates)
    assert result.selection.summary["option"].str.contains(RECENCY).sum() >= len(variants)
    assert result.winner.name == result.selection.winner
    assert result.winner.name in result.run_tags["tournament.recency"]
    assert all(c.details.get("recency") == "weighted" for c in result.candidates if c.name in variants)
