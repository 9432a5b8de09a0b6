"""The account part of the scoring artifact (`leadscore.model.accounts`) on small frames built here.

Given lead rows of a few hand-made accounts, when they are aggregated, scored and explained, then the aggregates are
the expected ones, chunks merge into the whole, the reasons' points add up to the account score, the buying group's
missing roles are named, and a lead without an account is refused with its row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadscore.config import LightGBMConfig
from leadscore.errors import InputError
from leadscore.model.accounts import (
    AccountFeatures,
    AccountScorer,
    RollUp,
    build_account_model,
    rollup_raw,
)
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.kinds import model_kind
from leadscore.schema import ACCOUNT_COLUMNS, LEAD_ACCOUNT_COLUMNS
from leadscore.training.calibration import fit_calibrator
from leadscore.training.candidates import fit_lightgbm, fit_logistic

ROLES = ("decision_maker", "finance", "technical", "user")


def definitions(**changes) -> AccountFeatures:
    """Account features of lead rows with a role, activity recency, one signal and a company size."""
    values = dict(
        account_column="account", id_column="lead_id", role_column="buying_role",
        roles=tuple((r, f"engaged__{r}") for r in ROLES), buying_group=ROLES, active_days=14.0,
        recency_column="days_since_last_activity", signals=("demo_request",),
        summed=("demo_request_count", "demo_request_decayed"), firmographics=("company_size",), lead_mql=0.3,
    )
    return AccountFeatures(**{**values, **changes})


def hand_leads() -> pd.DataFrame:
    """Two accounts: A1 has three contacts (two active, one of them a decision maker), A2 one inactive contact."""
    return pd.DataFrame({
        "lead_id": ["L1", "L2", "L3", "L4"],
        "account": ["A1", "A1", "A1", "A2"],
        "buying_role": ["decision_maker", "technical", "technical", "finance"],
        "days_since_last_activity": [3.0, 10.0, 40.0, np.nan],
        "demo_request_count": [1.0, 2.0, 0.0, 0.0],
        "demo_request_decayed": [0.9, 1.5, 0.0, 0.0],
        "company_size": ["201-1000", None, "201-1000", "1-10"],
    })


def random_leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """`n` lead rows over about n / 3 accounts, and their lead probabilities."""
    rng = np.random.default_rng(seed)
    accounts = rng.integers(0, max(1, n // 3), n)
    sizes = np.array(["1-10", "11-50", "201-1000"])[accounts % 3]
    leads = pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)],
        "account": [f"A{a:04d}" for a in accounts],
        "buying_role": rng.choice(ROLES, n),
        "days_since_last_activity": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(20, n)),
        "demo_request_count": rng.poisson(0.5, n).astype(float),
        "demo_request_decayed": rng.exponential(0.3, n),
        "company_size": np.where(rng.random(n) < 0.1, None, sizes),
    })
    return leads, rng.beta(1, 6, n)


def test_partials_of_a_hand_built_frame_are_the_expected_aggregates():
    # Given two hand-built accounts and their lead probabilities
    features = definitions()
    p = np.array([0.5, 0.2, 0.1, 0.4])
    # When they are aggregated
    combined = features.partials(hand_leads(), p).set_index("account_id")
    # Then every aggregate is the one counted by hand
    a1, a2 = combined.loc["A1"], combined.loc["A2"]
    assert (a1["contacts"], a1["active_contacts"], a2["contacts"], a2["active_contacts"]) == (3, 2, 1, 0), \
        "contacts and contacts active within 14 days"
    assert (a1["engaged__decision_maker"], a1["engaged__technical"], a1["engaged__finance"]) == (1, 1, 0), \
        "engaged contacts count active contacts of each role only (L3 is technical but inactive)"
    assert a2["engaged__finance"] == 0, "an inactive finance contact is not engaged"
    assert (a1["with__demo_request"], a1["sum__demo_request_count"], a1["max__demo_request_count"]) == (2, 3, 2)
    assert a1["sum__demo_request_decayed"] == pytest.approx(2.4) and a1["max__demo_request_decayed"] == 1.5
    assert a1["min_days_since_last_activity"] == 3 and np.isnan(a2["min_days_since_last_activity"]), \
        "the latest activity, missing where no contact was ever active"
    assert (a1["firm__company_size"], a2["firm__company_size"]) == ("201-1000", "1-10"), \
        "a firmographic is its value within the account, a missing copy ignored"
    assert a1["_p_sum"] == pytest.approx(0.8) and a1["_p_max"] == 0.5 and a1["best_lead_id"] == "L1"
    assert a1["_p_sum_log1m"] == pytest.approx(np.log(0.5 * 0.8 * 0.9)), "sum of log(1 - p): the noisy-OR's state"
    assert a1["_p_above_mql"] == 1 and a2["_p_above_mql"] == 1, "contacts at or above the lead MQL cutoff 0.3"
    # And the model features add the buying group's coverage
    X = features.features(combined.reset_index()).set_axis(["A1", "A2"])
    assert X.loc["A1", "buying_group_coverage"] == 0.5 and X.loc["A2", "buying_group_coverage"] == 0.0, \
        "A1 has decision maker and technical of the four roles; A2 none engaged"
    assert "lead_id" not in X.columns and "account" not in X.columns, "ids are never account features"


@given(n=st.integers(1, 60), seed=st.integers(0, 10_000), cuts=st.lists(st.floats(0, 1), min_size=1, max_size=2))
def test_partials_of_chunks_combine_into_the_partials_of_the_whole(n, seed, cuts):
    # Given lead rows cut into two or three chunks at random places
    features = definitions()
    leads, p = random_leads(n, seed)
    bounds = [0, *sorted(int(c * n) for c in cuts), n]
    # When each chunk's partials are merged
    chunks = [features.partials(leads.iloc[a:b], p[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    merged = features.combine(pd.concat(chunks, ignore_index=True))
    # Then they are the whole frame's partials (sums of floats to rounding of their order)
    whole = features.partials(leads, p)
    pd.testing.assert_frame_equal(merged, whole, check_exact=False, rtol=1e-12, atol=1e-12)


def test_a_lead_without_an_account_is_refused_naming_the_column_and_rows():
    leads = hand_leads()
    leads.loc[[1, 3], "account"] = [None, "  "]
    with pytest.raises(InputError) as error:
        definitions().partials(leads, np.full(4, 0.1))
    assert error.value.column == "account" and error.value.rows == [2, 4], "the column and the 1-based rows"
    assert "Fix:" in str(error.value) and "A1" not in str(error.value), "the fix, and no cell of the rows"


def fitted_scorer(kind: str, seed: int = 0) -> tuple[AccountScorer, pd.DataFrame]:
    """An account scorer whose account model (`kind`) is fitted on random account rows, and combined partials of
    other accounts to score."""
    features = definitions()
    leads, p = random_leads(900, seed)
    combined = features.partials(leads, p)
    X = features.features(combined)
    rng = np.random.default_rng(seed)
    small = (X["firm__company_size"] == "1-10").fillna(False).astype(float)
    logit = -1.5 + 0.8 * X["active_contacts"] + 0.7 * X["with__demo_request"] - 0.5 * small
    y = rng.binomial(1, 1 / (1 + np.exp(-logit.to_numpy())))
    if kind == "lightgbm":
        model = fit_lightgbm(X, y, np.arange(len(y)), LightGBMConfig(n_estimators=40), seed, 5)
    else:
        model = fit_logistic(X, y, 1.0, 5, seed)
    raw = model_kind(kind).raw_output(model, X)
    classifier = CalibratedModel(model, kind, fit_calibrator(raw, y, "sigmoid").calibrator)
    scorer = AccountScorer(account_column="account", features=features, method=build_account_model(classifier, X),
                           cutoff=0.4, cutoff_policy="test", base_rate=float(y.mean()))
    other, p_other = random_leads(120, seed + 1)
    return scorer, features.partials(other, p_other)


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_account_model_reasons_add_up_to_the_account_score(kind):
    # Given an account model of either kind
    scorer, combined = fitted_scorer(kind)
    # When its accounts are explained and scored
    base, points = scorer.explain(combined)
    table = scorer.score(combined)
    # Then base plus every field's points is the account score, exactly
    np.testing.assert_allclose(base + points.sum(axis=1).to_numpy(), 100 * table["p_account"].to_numpy(),
                               rtol=0, atol=1e-8, err_msg="points add up to 100 p_account")
    # And each listed reason carries its field's points, largest first, in words with the points shown
    for i, row in table.iterrows():
        entries = json.loads(row["account_reasons"])
        ranked = [e for e in entries if e["field"] != "roles_missing"]
        assert [abs(e["points"]) for e in ranked] == sorted((abs(e["points"]) for e in ranked), reverse=True)
        for entry in ranked:
            assert entry["points"] == pytest.approx(points.iloc[i][entry["field"]], abs=0.051)
        if entries:
            if entries[0]["field"] != "roles_missing":  # the strongest field, its points shown after its text
                assert row["account_reason_1"].startswith(entries[0]["text"] + " (") and \
                    row["account_reason_1"].endswith(")")


def test_account_table_contract_grades_and_lead_columns():
    scorer, combined = fitted_scorer("logistic")
    table = scorer.score(combined)
    assert list(table.columns[:len(ACCOUNT_COLUMNS)]) == list(ACCOUNT_COLUMNS)
    reasons = ["account_reasons", *(f"account_reason_{k}" for k in (1, 2, 3))]
    assert list(table.columns[len(ACCOUNT_COLUMNS):]) == reasons
    assert table["account_id"].is_monotonic_increasing and table["account_id"].is_unique, "one row per account, by id"
    assert table["p_account"].between(0, 1).all() and table["buying_group_coverage"].between(0, 1).all()
    assert (table["is_mqa"] == (table["p_account"] >= scorer.cutoff)).all()
    grade_a = table["account_grade"] == "A"
    assert (table.loc[grade_a, "p_account"] >= 2 * scorer.base_rate).all() and table.loc[grade_a, "is_mqa"].all()
    assert (table["account_grade"].isin(["A", "B", "C"]) == table["is_mqa"]).all(), "A, B and C are the MQAs"
    assert (table.loc[table["account_grade"] == "B", "p_account"] >= scorer.base_rate).all()
    assert (table.loc[table["account_grade"] == "C", "p_account"] < scorer.base_rate).all()
    lead_columns = scorer.lead_columns(table)
    assert list(lead_columns.columns) == list(LEAD_ACCOUNT_COLUMNS) and len(lead_columns) == len(table)


def test_roles_missing_and_coverage_of_a_hand_built_account():
    # Given A1 with an active decision maker and technical contact, and A2 with an inactive finance contact
    scorer, _ = fitted_scorer("logistic")
    table = scorer.score_leads(hand_leads(), pd.DataFrame({"lead_id": list("1234"), "p_convert": [0.5, 0.2, 0.1, 0.4],
                                                           "score": [50.0, 20.0, 10.0, 40.0]}))
    a1, a2 = table.set_index("account_id").loc["A1"], table.set_index("account_id").loc["A2"]
    # Then the engaged roles, the missing ones and the coverage are the buying group's
    assert (a1["roles_engaged"], a1["roles_missing"], a1["buying_group_coverage"]) == (
        "decision_maker;technical", "finance;user", 0.5)
    assert (a2["roles_engaged"], a2["roles_missing"], a2["buying_group_coverage"]) == ("", ";".join(ROLES), 0.0)
    # And the reasons say so in words
    assert any("no one from finance" in (a1[f"account_reason_{k}"] or "") for k in (1, 2, 3)), \
        "a missing buying-group role is among the reasons"
    assert a1["best_lead_id"] == "L1" and a1["best_lead_score"] == 50.0 and a1["active_contacts"] == 2


def test_a_roll_up_scores_its_best_contacts_and_merges_like_the_partials():
    # Given a noisy-OR roll-up calibrated on random accounts
    features = definitions()
    leads, p = random_leads(600, 3)
    combined = features.partials(leads, p)
    y = np.random.default_rng(3).binomial(1, np.clip(-np.expm1(combined["_p_sum_log1m"]), 0, 1))
    rollup = RollUp("noisy_or", fit_calibrator(rollup_raw("noisy_or", combined), y, "sigmoid").calibrator)
    scorer = AccountScorer(account_column="account", features=features, method=rollup, cutoff=0.5,
                           cutoff_policy="test", base_rate=float(y.mean()))
    scores = pd.DataFrame({"lead_id": leads["lead_id"], "p_convert": p, "score": 100 * p})
    # When scored whole and in two chunks
    whole = scorer.score_leads(leads, scores)
    parts = [scorer.partials(leads.iloc[a:b], scores.iloc[a:b]) for a, b in ((0, 250), (250, 600))]
    chunked = scorer.score(scorer.combine(pd.concat(parts, ignore_index=True)))
    # Then the account tables agree, and the probability rises with the noisy-OR
    pd.testing.assert_frame_equal(chunked, whole, check_exact=False, rtol=1e-9)
    noisy_or = -np.expm1(combined.set_index("account_id")["_p_sum_log1m"]).reindex(whole["account_id"]).to_numpy()
    assert np.all(np.diff(whole["p_account"].to_numpy()[np.argsort(noisy_or, kind="stable")]) >= -1e-12)
    # And the reasons name the best contact, without points (a roll-up is not a sum of features)
    first = whole.iloc[0]
    assert first["account_reason_1"] == f"contact {first['best_lead_id']} scores {first['best_lead_score']:g}"
    assert all(e["points"] is None for e in json.loads(first["account_reasons"]))
