"""The candidate registry and the tournament: every candidate fits and explains its own raw output
exactly, an unknown name is refused before anything is fitted, the winner has the lowest out-of-fold
log loss, and the refitted winner is calibrated on out-of-fold scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from helpers import build_config, make_snapshot, snapshot_config

from leadscore.config import ModelConfig
from leadscore.errors import ConfigError
from leadscore.model.kinds import MODEL_KINDS
from leadscore.training.calibration import calibrate_scores
from leadscore.training.candidates import (
    CANDIDATES,
    RECENCY,
    candidate,
    check_candidates,
    fit_candidates,
    recency_weights,
)
from leadscore.training.dataset import load_training_table
from leadscore.training.pipeline import fit_table
from leadscore.training.tournament import refit_winner, run_tournament

FEATURES = ["company_size", "visits", "channel"]
CFG = ModelConfig(seed=0, lightgbm={"n_estimators": 60, "early_stopping_rounds": 10})


def small_windows(rows: int = 2400, seed: int = 3) -> dict[str, object]:
    """A seeded snapshot with a numeric, a categorical and a sparse categorical column (missing values in
    each), cut in half by row order into a training and a calibration window."""
    frame = make_snapshot(rows, seed=seed)
    rng = np.random.default_rng(seed)
    frame["visits"] = frame["visits"].astype("float64").mask(rng.random(rows) < 0.05)
    frame["channel"] = pd.Series(rng.choice(["ads", "email", "event", None], rows, p=[0.4, 0.3, 0.2, 0.1]), dtype=object)
    half = rows // 2
    train, calibration = frame.iloc[:half], frame.iloc[half:]
    return {
        "X_train": train[FEATURES], "y_train": train["converted"].to_numpy(), "order": np.arange(half),
        "X_cal": calibration[FEATURES], "y_cal": calibration["converted"].to_numpy(),
        "ids": calibration["lead_id"].to_numpy(),
    }


@pytest.fixture(scope="module")
def data():
    return small_windows()


@pytest.fixture(scope="module")
def fitted(data):
    return fit_candidates(data["X_train"], data["y_train"], data["order"], CFG)


def test_every_candidate_names_a_model_kind():
    # Given the registry, then each entry points to a kind the scoring artifact knows how to read.
    for name, spec in CANDIDATES.items():
        assert spec.kind in MODEL_KINDS, f"candidate {name} names model kind {spec.kind!r}, which is not registered"


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_every_candidate_fits_and_explains_its_raw_output_exactly(data, name):
    # Given a registered candidate, when it is fitted through its registry entry,
    spec = candidate(name)
    model = spec.fit(data["X_train"], data["y_train"], data["order"], CFG)
    kind = MODEL_KINDS[spec.kind]

    # then its contributions plus its base value are its raw output, for rows it never saw,
    contributions = kind.contributions(model, data["X_train"], FEATURES)
    phi = contributions(model, data["X_cal"])
    raw = kind.raw_output(model, data["X_cal"])
    assert phi.shape == (len(data["X_cal"]), len(FEATURES)), "one contribution per feature column"
    np.testing.assert_allclose(contributions.base_raw + phi.sum(axis=1), raw, atol=1e-6,
                               err_msg=f"{name}: base + contributions is the raw output")
    assert np.ptp(raw) > 0, f"{name}: the model learned something"
    # the raw output is on the log-odds scale of the model's own probability,
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), model.predict_proba(data["X_cal"])[:, 1], rtol=0, atol=1e-9,
                               err_msg=f"{name}: the raw output is the log-odds of the model's probability")
    # and its details for the run are a plain dict.
    assert isinstance(spec.details(model), dict)


def test_an_unknown_candidate_is_refused_naming_the_known_ones(data, monkeypatch):
    # Given a config naming one known and one unknown candidate, and a registry that records fitting,
    calls = []
    for name, spec in list(CANDIDATES.items()):
        monkeypatch.setitem(CANDIDATES, name, replace(spec, fit=lambda *args, name=name: calls.append(name)))
    cfg = CFG.model_copy(update={"candidates": ["lightgbm", "xgboost"]})

    # when the candidates are fitted, then the unknown name is a ConfigError listing every known name,
    with pytest.raises(ConfigError) as raised:
        fit_candidates(data["X_train"], data["y_train"], data["order"], cfg)
    message = str(raised.value)
    assert "xgboost" in message and all(name in message for name in CANDIDATES), message
    # and nothing was fitted, not even the known candidate listed before it.
    assert calls == [], f"fitted {calls} before refusing the unknown name"
    with pytest.raises(ConfigError, match="known candidates"):
        candidate("xgboost")
    check_candidates(list(CANDIDATES))  # every known name passes


def test_training_refuses_an_unknown_candidate_before_fitting(tmp_path, monkeypatch):
    # Given a training table and a config whose candidates name an unknown one (set past validation),
    path = tmp_path / "leads.csv"
    make_snapshot(600, seed=1).to_csv(path, index=False)
    cfg = build_config(snapshot_config(path))
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"candidates": ["logistic", "catboost"]})})
    table = load_training_table(cfg)
    fitted = []
    monkeypatch.setattr("leadscore.training.pipeline.fit_candidates", lambda *args: fitted.append(args))

    # when the table is fitted, then training stops with a ConfigError naming the known candidates, having fitted nothing.
    with pytest.raises(ConfigError, match="catboost.*known candidates: " + ", ".join(CANDIDATES)):
        fit_table(table, cfg)
    assert not fitted, "no candidate was fitted"


def test_the_winner_has_the_lowest_out_of_fold_log_loss(data, fitted):
    # When every fitted candidate is calibrated in the tournament,
    winner, candidates = run_tournament(fitted, data["X_cal"], data["y_cal"], CFG)

    # then each is there once, calibrated by a chosen method, and the winner has the lowest out-of-fold loss.
    assert [c.name for c in candidates] == list(CFG.candidates), "every configured candidate took part"
    assert winner.calibration_log_loss == min(c.calibration_log_loss for c in candidates)
    for c in candidates:
        assert c.calibration_method in ("sigmoid", "isotonic"), c
        assert c.classifier.kind == CANDIDATES[c.name].kind, "the calibrated model knows its kind"
        assert c.classifier.model is fitted[c.name], "calibration does not refit the model"
        assert np.isfinite(c.calibration_log_loss) and c.calibration_log_loss > 0
    lightgbm = next(c for c in candidates if c.name == "lightgbm")
    assert 1 <= lightgbm.details["n_trees"] <= CFG.lightgbm.n_estimators, "the tree count found by early stopping"


@pytest.mark.parametrize("name", ["lightgbm", "logistic"])
def test_the_refit_is_calibrated_on_out_of_fold_scores(data, fitted, name):
    # Given a calibrated candidate (refitted here whether or not it won),
    _, candidates = run_tournament(fitted, data["X_cal"], data["y_cal"], CFG)
    chosen = next(c for c in candidates if c.name == name)

    # when it is refitted on the training and calibration windows,
    refit = refit_winner(chosen, fitted[name], data["X_train"], data["y_train"], data["X_cal"], data["y_cal"], CFG,
                         groups=data["ids"])
    model = refit.candidate.classifier

    # then it is a new model that learned from both windows, calibrated with the chosen method,
    assert model.model is refit.model and refit.model is not fitted[name]
    assert model.method == chosen.calibration_method and model.kind == chosen.classifier.kind
    assert refit.candidate.details["refit_rows"] == len(data["y_train"]) + len(data["y_cal"])
    assert not np.allclose(model.raw_output(data["X_cal"]), chosen.classifier.raw_output(data["X_cal"])), \
        "the refitted model differs from the one fitted on the training window alone"
    # its out-of-fold probabilities of the calibration window are probabilities, one per row,
    assert refit.p_calibration.shape == data["y_cal"].shape
    assert ((refit.p_calibration >= 0) & (refit.p_calibration <= 1)).all()
    # and its calibrator is not the one its own (in-sample) scores of the calibration window would give.
    in_sample_scores = model.raw_output(data["X_cal"])
    in_sample = calibrate_scores(in_sample_scores, data["y_cal"], model.method)
    grid = np.quantile(in_sample_scores, np.linspace(0.01, 0.99, 50)).reshape(-1, 1)
    difference = np.abs(model.calibrator.predict_proba(grid)[:, 1] - in_sample.predict_proba(grid)[:, 1]).max()
    assert difference > 1e-3, f"{name}: the refit calibrator matches an in-sample one (max difference {difference:.2g})"


def test_recency_weights_halve_every_third_of_the_span_and_only_differences_count():
    # Given rows at increasing times, when they are weighted by recency
    times = np.array([0.0, 10.0, 20.0, 30.0])
    weights = recency_weights(times)
    # then the latest row weighs 1, each third of the span halves the weight, and shifting time changes nothing
    np.testing.assert_allclose(weights, [0.125, 0.25, 0.5, 1.0], err_msg="three half-lives over the span")
    np.testing.assert_allclose(recency_weights(times + 1000), weights, err_msg="only differences in time count")
    assert (recency_weights(np.full(5, 7.0)) == 1).all(), "rows at one time weigh the same"


def test_a_recency_variant_is_its_candidate_weighted_and_enters_only_when_asked_with_an_order(data):
    # Given every registered candidate, then its variant is the same kind of model, marked as weighted by recency
    for name, spec in CANDIDATES.items():
        variant = candidate(f"{name}{RECENCY}")
        assert variant.recency and not spec.recency and variant.kind == spec.kind
    with pytest.raises(ConfigError, match="known candidates"):
        candidate(f"xgboost{RECENCY}")
    cfg = CFG.model_copy(update={"candidates": ["logistic"], "recency_variants": True})
    order = np.arange(len(data["y_train"]), dtype=float)
    # When candidates are fitted with the variants on and rows in order, the variant enters beside its candidate
    fitted = fit_candidates(data["X_train"], data["y_train"], data["order"], cfg, times=order)
    assert list(fitted) == ["logistic", f"logistic{RECENCY}"]
    plain, weighted = (m["model"].coef_ for m in fitted.values())
    assert not np.allclose(plain, weighted), "the variant is fitted with its weights"
    # and without an order (a random split) or with the variants off, it does not
    assert list(fit_candidates(data["X_train"], data["y_train"], data["order"], cfg)) == ["logistic"]
    off = cfg.model_copy(update={"recency_variants": False})
    assert list(fit_candidates(data["X_train"], data["y_train"], data["order"], off, times=order)) == ["logistic"]
