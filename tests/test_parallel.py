"""Independent fits run side by side give exactly what they give one by one: the candidates, the rolling
backtest and the refit with its held-out folds, on real LightGBM and scikit-learn fits in real worker processes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_candidates import CFG, small_windows

from leadscore.config import LightGBMConfig
from leadscore.training import parallel
from leadscore.training.candidates import fit_candidates, fit_workers
from leadscore.training.tournament import refit_winner, rolling_backtest, rolling_origins, run_tournament


@pytest.fixture
def side_by_side(monkeypatch):
    """Fits of any size go to two worker processes, whatever the machine's core count."""
    monkeypatch.setattr(parallel, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)


def _fits(data):
    X = pd.concat([data["X_train"], data["X_cal"]])
    y = np.concatenate([data["y_train"], data["y_cal"]])
    fitted = fit_candidates(data["X_train"], data["y_train"], data["order"], CFG)
    backtest = rolling_backtest(fitted, X, y, rolling_origins(np.arange(len(y), dtype=float), y), CFG)
    winner, _ = run_tournament(fitted, data["X_cal"], data["y_cal"], CFG)
    refit = refit_winner(winner, fitted[winner.name], data["X_train"], data["y_train"], data["X_cal"], data["y_cal"],
                         CFG, groups=data["ids"])
    raw = {name: model.predict_proba(data["X_cal"])[:, 1] for name, model in fitted.items()}
    return raw, backtest.losses, refit.p_calibration, refit.model.predict_proba(data["X_cal"])[:, 1]


@pytest.mark.slow
def test_fits_side_by_side_equal_fits_one_by_one(request):
    data = small_windows(rows=1600)
    one_by_one = _fits(data)
    assert fit_workers(CFG, len(data["y_train"])) == 1, "small windows fit one by one unless told otherwise"

    request.getfixturevalue("side_by_side")
    assert fit_workers(CFG, len(data["y_train"])) == 2
    together = _fits(data)

    for name in one_by_one[0]:
        np.testing.assert_array_equal(together[0][name], one_by_one[0][name], err_msg=f"candidate {name}")
    pd.testing.assert_frame_equal(together[1], one_by_one[1], check_exact=True)
    np.testing.assert_array_equal(together[2], one_by_one[2])
    np.testing.assert_array_equal(together[3], one_by_one[3])


def test_workers_only_where_each_fit_uses_one_core(monkeypatch):
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 4)
    assert parallel.workers_for(parallel.PARALLEL_ROWS - 1, 1) == 1, "below the threshold workers cost more than they save"
    assert parallel.workers_for(parallel.PARALLEL_ROWS, 1) == 4
    assert parallel.workers_for(parallel.PARALLEL_ROWS, 4) == 1, "LightGBM already uses every core"
    # A configured thread count for LightGBM turns the workers off; so does a window large enough for it to use all.
    assert fit_workers(CFG.model_copy(update={"lightgbm": LightGBMConfig(threads=2)}), 50_000) == 1
    assert fit_workers(CFG, 50_000) == 4
    assert fit_workers(CFG, 10_000_000) == 1


def test_results_come_back_in_the_tasks_order():
    tasks = [lambda k=k: k * k for k in range(7)]
    assert parallel.run_all(tasks, workers=2) == [k * k for k in range(7)]
    assert parallel.run_all(tasks, workers=1) == [k * k for k in range(7)]
