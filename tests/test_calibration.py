"""Calibration: a `CalibratedModel` is its calibrator applied to its model's raw output, the method is chosen
by out-of-fold log loss on the calibration window, and the same object maps a raw output to a probability."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from test_candidates import CFG, small_windows

from leadscore.model.calibrated import CalibratedModel
from leadscore.training.calibration import (
    calibrate,
    calibrate_scores,
    direction_problem,
    fit_calibrator,
    out_of_fold_log_loss,
)
from leadscore.training.candidates import CANDIDATES, fit_candidates

METHODS = ("sigmoid", "isotonic")


@pytest.fixture(scope="module")
def data():
    return small_windows(seed=5)


@pytest.fixture(scope="module")
def calibrated(data) -> dict[tuple[str, str], CalibratedModel]:
    """Every candidate, calibrated with each method on the calibration window."""
    fitted = fit_candidates(data["X_train"], data["y_train"], data["order"], CFG)
    return {(name, method): calibrate(model, CANDIDATES[name].kind, data["X_cal"], data["y_cal"], method, CFG.seed)[0]
            for name, model in fitted.items() for method in METHODS}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(CANDIDATES))
def test_probabilities_are_the_calibrator_of_the_models_raw_output(data, calibrated, name, method):
    model = calibrated[name, method]
    X = data["X_cal"]

    # When leads are scored,
    p = model.predict_proba(X)

    # then each row is a probability pair,
    assert p.shape == (len(X), 2)
    assert ((p >= 0) & (p <= 1)).all(), "probabilities lie in [0, 1]"
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    # the converting one is exactly the calibrator applied to the model's own raw output,
    direct = model.calibrator.predict_proba(model.raw_output(X).reshape(-1, 1))[:, 1]
    np.testing.assert_array_equal(p[:, 1], direct)
    # and mapping the raw output through the same object gives the same probabilities (what the explainer uses).
    np.testing.assert_array_equal(model.probability_of_raw(model.raw_output(X)), p[:, 1])
    # The model itself is the one fitted on the training window, not refitted by calibration.
    assert model.model is calibrated[name, "isotonic" if method == "sigmoid" else "sigmoid"].model
    assert model.method == method


@given(raw=st.lists(st.floats(-40, 40, allow_nan=False), min_size=1, max_size=50))
@pytest.mark.parametrize("name", list(CANDIDATES))
def test_the_probability_of_a_raw_output_is_a_probability_that_never_falls_as_it_rises(calibrated, name, raw):
    for method in METHODS:
        ordered = np.sort(np.asarray(raw))
        p = calibrated[name, method].probability_of_raw(ordered)
        assert ((p >= 0) & (p <= 1)).all(), f"{name}/{method}: a probability"
        assert (np.diff(p) >= -1e-12).all(), f"{name}/{method}: the calibration is non-decreasing in the raw output"


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_auto_picks_the_method_with_the_lower_out_of_fold_log_loss(data, calibrated, name):
    model = calibrated[name, "sigmoid"].model
    kind = CANDIDATES[name].kind
    scores = calibrated[name, "sigmoid"].raw_output(data["X_cal"])

    # When the method is left to the data,
    chosen, method, loss = calibrate(model, kind, data["X_cal"], data["y_cal"], "auto", CFG.seed)

    # then it is the method with the lower out-of-fold log loss on the calibration window, and the loss reported is its own.
    losses = {m: out_of_fold_log_loss(scores, data["y_cal"], m, CFG.seed) for m in METHODS}
    assert method in METHODS and chosen.method == method
    assert loss == losses[method] == min(losses.values()), losses
    # A method given in the config is used as it is.
    assert calibrate(model, kind, data["X_cal"], data["y_cal"], "isotonic", CFG.seed)[1] == "isotonic"


def test_out_of_fold_loss_is_worse_than_the_in_sample_loss_of_a_flexible_calibrator():
    # Given pure-noise scores, an isotonic calibrator fitted on them fits noise: out of fold, it must pay for it.
    rng = np.random.default_rng(0)
    scores, y = rng.normal(size=600), rng.binomial(1, 0.2, 600)
    in_sample = calibrate_scores(scores, y, "isotonic").predict_proba(scores.reshape(-1, 1))[:, 1]
    clipped = np.clip(in_sample, 1e-6, 1 - 1e-6)
    in_sample_loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    assert out_of_fold_log_loss(scores, y, "isotonic", seed=0) > in_sample_loss


def test_calibrators_of_given_raw_outputs_are_the_plain_regressions_of_the_labels_on_them():
    # Given raw outputs and labels drawn from a known logistic rule,
    rng = np.random.default_rng(1)
    scores = rng.normal(scale=2, size=800)
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.5 * scores - 1))))
    grid = np.linspace(-6, 6, 25)

    # when calibrators are fitted on them, then isotonic is scikit-learn's isotonic regression of y on the scores,
    isotonic = calibrate_scores(scores, y, "isotonic").predict_proba(grid.reshape(-1, 1))[:, 1]
    expected = IsotonicRegression(out_of_bounds="clip").fit(scores, y).predict(grid)
    np.testing.assert_allclose(isotonic, expected, atol=1e-12)
    # and sigmoid is a logistic curve in the raw output, increasing where the rule is.
    sigmoid = calibrate_scores(scores, y, "sigmoid").predict_proba(grid.reshape(-1, 1))[:, 1]
    log_odds = np.log(sigmoid / (1 - sigmoid))
    slope = np.diff(log_odds) / np.diff(grid)
    np.testing.assert_allclose(slope, slope[0], rtol=1e-9, err_msg="linear in the raw output on the log-odds scale")
    assert 0.3 < slope[0] < 0.7, f"the slope {slope[0]:.2f} recovers the rule's 0.5"


def test_a_calibrated_model_survives_pickling_unchanged(data, calibrated):
    # The registered artifact is pickled: a calibrated model must score the same after a round trip.
    for key, model in calibrated.items():
        again = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(again.predict_proba(data["X_cal"]), model.predict_proba(data["X_cal"]), err_msg=str(key))


def _inverted_window(seed: int = 2, n: int = 1500, strength: float = 1.0):
    """Raw outputs of a model and labels from a calibration window where conversion *falls* as the raw output rises."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=1.5, size=n)
    y = rng.binomial(1, 1 / (1 + np.exp(-(-strength * scores - 1.5))))
    return scores, y


def test_a_sigmoid_fitted_on_an_inverted_window_is_replaced_and_the_model_is_never_inverted():
    # Given a calibration window whose labels fall as the model's raw output rises,
    scores, y = _inverted_window()
    grid = np.quantile(scores, np.linspace(0.01, 0.99, 50))
    # (a plain sigmoid fit would learn the inverted slope: that is what the guard is for)
    plain = calibrate_scores(scores, y, "sigmoid").predict_proba(grid.reshape(-1, 1))[:, 1]
    assert plain[-1] < plain[0], "the unguarded sigmoid inverts the model on this window"

    # when the guarded calibrator is fitted with sigmoid asked for,
    fitted = fit_calibrator(scores, y, "sigmoid")
    p = fitted.calibrator.predict_proba(grid.reshape(-1, 1))[:, 1]

    # then it never falls as the raw output rises, uses isotonic instead, and says why.
    assert (np.diff(p) >= -1e-12).all(), "the guarded calibration is non-decreasing"
    assert fitted.method == "isotonic" and fitted.calibrator.method == "isotonic"
    assert "sigmoid" in fitted.note and "fell" in fitted.note, fitted.note
    # On a window with nothing but an inverted relation, the non-decreasing fit is flat: the window's base rate.
    np.testing.assert_allclose(p, y.mean(), atol=1e-9, err_msg="every lead gets the base rate")
    assert "base rate" in fitted.note


def test_a_calibrator_that_rises_with_the_raw_output_is_kept_as_it_is():
    # Given raw outputs that rank the calibration window the right way round,
    scores, y = _inverted_window(seed=3)
    scores = -scores
    for method in METHODS:
        # when calibrated, then the method asked for is used, with no note, and the fit is the plain one.
        fitted = fit_calibrator(scores, y, method)
        assert fitted.method == method and fitted.note == "", fitted.note
        grid = np.linspace(scores.min(), scores.max(), 40).reshape(-1, 1)
        np.testing.assert_array_equal(fitted.calibrator.predict_proba(grid), calibrate_scores(scores, y, method).predict_proba(grid))
        assert direction_problem(fitted.calibrator, scores) is None


@given(seed=st.integers(0, 10_000), strength=st.floats(-3, 3))
def test_scikit_learns_isotonic_calibration_never_falls(seed, strength):
    # Whatever the window's relation (right way round, inverted or none), isotonic calibration is non-decreasing:
    # the guard relies on it (and raises if it ever were not).
    scores, y = _inverted_window(seed=seed, n=300, strength=strength)
    if len(np.unique(y)) < 2:
        return
    calibrator = calibrate_scores(scores, y, "isotonic")
    grid = np.sort(np.concatenate([scores, np.linspace(-10, 10, 50)])).reshape(-1, 1)
    assert (np.diff(calibrator.predict_proba(grid)[:, 1]) >= -1e-12).all()
    direction_problem(calibrator, scores)  # never raises for scikit-learn's fit


def test_a_calibrated_model_on_an_inverted_window_records_why(data, calibrated):
    # Given a fitted model and a calibration window whose labels are turned round (a model that ranks it backwards),
    model = calibrated["logistic", "sigmoid"].model
    y_inverted = 1 - data["y_cal"]

    # when it is calibrated with sigmoid,
    chosen, method, _ = calibrate(model, CANDIDATES["logistic"].kind, data["X_cal"], y_inverted, "sigmoid", CFG.seed)

    # then the calibrated model never ranks leads the other way round from its raw output, and carries the reason.
    raw = np.sort(chosen.raw_output(data["X_cal"]))
    assert (np.diff(chosen.probability_of_raw(raw)) >= -1e-12).all()
    assert method == "isotonic" == chosen.method and chosen.note, chosen.note
