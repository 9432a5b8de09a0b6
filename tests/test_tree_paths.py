"""TreeSHAP by groups of rows (`leadscore.model.tree_paths`) equals LightGBM's own `pred_contrib`."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from leadscore.model.kinds import TreeContributions
from leadscore.model.tree_paths import TreePathExplainer, frame_matrix

CATEGORIES = [f"k{i}" for i in range(12)]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "amount": rng.normal(size=n),
        "visits": rng.poisson(1.0, n).astype("float64"),  # many exact zeros
        "level": rng.choice([0.0, 1.0, 2.5], n),
        "industry": pd.Categorical.from_codes(rng.integers(-1, len(CATEGORIES), n), categories=CATEGORIES),
        "region": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=list("pqr")),
    })
    frame.loc[rng.random(n) < 0.1, "amount"] = np.nan
    frame.loc[rng.random(n) < 0.05, "visits"] = np.nan
    return frame


def _model(params: dict, seed: int = 0) -> tuple[lgb.LGBMClassifier, pd.DataFrame]:
    frame = _frame(4000, seed)
    rng = np.random.default_rng(seed + 1)
    industry = frame["industry"].cat.codes
    logit = (frame["amount"].fillna(1.0) + 0.5 * frame["visits"].fillna(-1.0) + (industry % 3 == 1) - frame["level"]
             + (frame["region"].cat.codes == 2) * frame["amount"].fillna(0.0))
    label = (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)
    model = lgb.LGBMClassifier(n_estimators=60, min_child_samples=10, min_data_per_group=5, cat_smooth=1.0,
                               verbose=-1, random_state=seed, deterministic=True, **params)
    return model.fit(frame, label), frame


def _awkward_rows(explainer: TreePathExplainer, n: int, seed: int) -> pd.DataFrame:
    """Rows with values exactly on thresholds, next to them, LightGBM's near-zero band, and unseen categories."""
    rng = np.random.default_rng(seed)
    rows = _frame(n, seed + 100)
    cuts = explainer._bins[0].cuts
    on = rng.random(n) < 0.3
    rows.loc[on, "amount"] = rng.choice(cuts, on.sum())
    beside = rng.random(n) < 0.1
    rows.loc[beside, "amount"] = np.nextafter(rng.choice(cuts, beside.sum()), np.inf)
    tiny = rng.random(n) < 0.05
    rows.loc[tiny, "amount"] = rng.choice([1e-36, -1e-36, 1e-35, -1e-35, -0.0], tiny.sum())
    return rows


_MODEL = _model({"num_leaves": 15}, seed=3)


@pytest.mark.parametrize("params", [
    {"num_leaves": 4},
    {"num_leaves": 15},
    {"num_leaves": 31, "max_cat_to_onehot": 8},
    {"num_leaves": 15, "zero_as_missing": True},
    {"num_leaves": 15, "use_missing": False},
], ids=["4 leaves", "15 leaves", "31 leaves one-hot categories", "zero as missing", "no missing handling"])
def test_equals_lightgbm_pred_contrib_on_awkward_values(params):
    booster = _model(params)[0].booster_
    explainer = TreePathExplainer(booster)
    rows = _awkward_rows(explainer, 3000, seed=5)
    expected = booster.predict(rows, pred_contrib=True)
    got = explainer.contributions(frame_matrix(rows))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12,
                               err_msg="grouped TreeSHAP must give LightGBM's own values")


@given(seed=st.integers(0, 10_000), size=st.integers(1, 40))
def test_a_rows_values_do_not_depend_on_the_rows_scored_with_it(seed, size):
    booster = _MODEL[0].booster_
    explainer = TreePathExplainer(booster)
    matrix = frame_matrix(_awkward_rows(explainer, size, seed))
    together = explainer.contributions(matrix)
    alone = np.vstack([explainer.contributions(matrix[[i]]) for i in range(size)])
    assert np.array_equal(together, alone), "a lead's reasons would change with the chunk it is scored in"



def test_no_rows_give_an_empty_table():
    booster = _MODEL[0].booster_
    explainer = TreePathExplainer(booster)
    assert explainer.contributions(np.empty((0, booster.num_feature()))).shape == (0, booster.num_feature() + 1)


def test_a_model_of_single_leaf_trees_gives_only_its_base_value():
    frame = _frame(200, 0)
    booster = lgb.LGBMClassifier(n_estimators=3, min_child_samples=1000, verbose=-1).fit(frame, np.arange(200) % 2).booster_
    got = TreePathExplainer(booster).contributions(frame_matrix(frame))
    np.testing.assert_allclose(got, booster.predict(frame, pred_contrib=True), rtol=0, atol=1e-12)
    assert not got[:, :-1].any()


def test_the_scorer_pickles_without_the_groups_and_rebuilds_them():
    model, frame = _MODEL
    pipeline = Pipeline([("encode", FunctionTransformer().fit(frame)), ("model", model)])
    contributions = TreeContributions(base_raw=0.0)
    before = contributions(pipeline, frame.head(50))
    np.testing.assert_allclose(before, model.booster_.predict(frame.head(50), pred_contrib=True)[:, :-1], rtol=0, atol=1e-12)
    restored = pickle.loads(pickle.dumps(contributions))
    assert restored._paths is None, "the explainer's groups are rebuilt from the booster, not stored"
    assert np.array_equal(restored(pipeline, frame.head(50)), before)
