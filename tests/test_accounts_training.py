"""Account scores trained by the pipeline (`leadscore.training.accounts`) on the synthetic funnel with accounts.

Given the synthetic B2B funnel (10,000 leads in accounts of 1 to 8 contacts that buy together) and the demo config
with an `accounts` section, when the pipeline trains, then every account option's test figures and the choice are
recorded, the chosen account score predicts account conversion better than the best single lead of each account
(beyond its standard error), ranks accounts by their true intent, and reaches the lead and account tables."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from helpers import build_config, demo_config, snapshot_config
from scipy.stats import spearmanr

from leadscore.cli import _training_summary
from leadscore.errors import ConfigError, InputError
from leadscore.model.accounts import AccountModel
from leadscore.reporting.model_card import model_card
from leadscore.schema import ACCOUNT_COLUMNS, LEAD_ACCOUNT_COLUMNS
from leadscore.synthetic.funnel import generate_funnel, write_funnel
from leadscore.training.accounts import OPTIONS, account_features, account_rows, check_accounts
from leadscore.training.dataset import load_training_table
from leadscore.training.pipeline import fit_table

pytestmark = pytest.mark.slow

LEADS, SEED = 10_000, 11
ACCOUNTS = {"column": "account_id", "role_column": "buying_role", "table": "accounts"}


@pytest.fixture(scope="module")
def funnel(tmp_path_factory):
    """The synthetic funnel with accounts, written as an event log."""
    folder = tmp_path_factory.mktemp("accounts") / "history"
    data = generate_funnel(LEADS, SEED, accounts=True)
    write_funnel(data, folder)
    return folder, data


def accounts_config(folder, **accounts):
    # One candidate keeps the test within its time on a shared machine; the account model still competes.
    raw = demo_config(folder, accounts={**ACCOUNTS, **accounts})
    raw["model"]["candidates"] = ["logistic"]
    raw["event_log"]["snapshots"]["every_days"] = 42
    return build_config(raw)


@pytest.fixture(scope="module")
def trained(funnel):
    folder, _ = funnel
    cfg = accounts_config(folder)
    return fit_table(load_training_table(cfg), cfg), cfg


def test_training_records_every_option_and_the_choice(trained):
    result, cfg = trained
    accounts = result.accounts
    table = result.tables["accounts_backtest"]
    assert set(table["option"]) == set(OPTIONS), "the account model and every roll-up were compared"
    for option in OPTIONS:
        figures = result.metrics[f"accounts_{option}"]
        assert {"log_loss", "roc_auc", "brier", "log_loss_minus_chosen_se"} <= figures.keys()
    losses = table.set_index("option")["log_loss"]
    assert accounts.method == losses.idxmin(), "the option of lowest test log loss is chosen"
    assert result.run_tags["accounts.method"].startswith(accounts.method) and "lowest log loss" in \
        result.run_tags["accounts.method"], "the run says which option and by which rule"
    assert result.scorer.accounts is accounts.deployed and accounts.deployed.method.name == accounts.method
    assert 0 < result.run_metrics["accounts_mqa_cutoff"] < 1
    assert result.table.account_column == "account_id" and "account_id" not in result.table.feature_columns
    assert "buying_role" in result.table.feature_columns, "the role stays a lead feature"
    card = model_card(result, cfg)
    assert "## Accounts" in card and f"{accounts.method} (chosen)" in card and "MQA: p_account >=" in card
    # What `leadscore train` prints: every option's row of figures, and the MQA in words (never a row of blanks).
    summary = _training_summary(result)
    assert all(f"accounts_{option} " in summary for option in OPTIONS)
    assert f"accounts: p_account by {accounts.method}; MQA p_account >= " in summary and "nan" not in summary


def test_the_account_score_beats_the_best_single_lead_of_each_account(trained):
    result, _ = trained
    chosen = result.metrics[f"accounts_{result.accounts.method}"]
    # Paired per account row on the test window; the standard error is clustered by account.
    gain, se = chosen["gain_over_max"], chosen["gain_over_max_se"]
    part = result.scorer.accounts
    print(f"\naccount options on the test window:\n{result.tables['accounts_backtest'].to_string()}\nchosen: "
          f"{result.accounts.method}; MQA cutoff p_account >= {part.cutoff:.4f} ({part.cutoff_policy}); "
          f"MQA on the test window (backtest): {result.metrics['accounts_mqa']}")
    assert result.accounts.method != "max", "the best single lead is not the account score"
    assert gain > 2 * se, f"log-loss gain over the max roll-up {gain:.4f} is within two standard errors ({se:.4f})"
    assert chosen["roc_auc"] > result.metrics["accounts_max"]["roc_auc"]


def scored_as_of(result, when: str) -> pd.DataFrame:
    """The leads open at the first snapshot at or after `when`, with their features (training rows of that time)."""
    frame, time = result.table.frame, result.table.time_column
    snapshot = frame.loc[frame[time] >= pd.Timestamp(when, tz="UTC"), time].min()
    return frame[frame[time] == snapshot].reset_index(drop=True)


def test_account_scores_recover_the_true_account_intent(trained, funnel):
    result, _ = trained
    _, data = funnel
    leads = scored_as_of(result, "2026-09-01")  # in the test window
    table = result.scorer.predict_accounts(leads, reasons=False)
    truth = data.truth_accounts.set_index("account_id").reindex(table["account_id"])
    rho, p_value = spearmanr(table["p_account"], truth["p_convert_life"])
    in_market, p_in_market = spearmanr(table["p_account"], truth["in_market"].astype(float))
    print(f"\n{len(table)} accounts scored as of the snapshot: Spearman with p_convert_life {rho:.3f} "
          f"(p = {p_value:.2g}), with in_market {in_market:.3f} (p = {p_in_market:.2g})")
    assert rho > 0 and p_value < 0.01, f"rank correlation with the true account intent {rho:.3f} (p = {p_value:.2g})"
    assert in_market > 0 and p_in_market < 0.01


def test_lead_rows_carry_their_account_and_the_account_table_its_buying_group(trained):
    result, _ = trained
    scorer = result.scorer
    leads = scored_as_of(result, "2026-10-01")
    out = scorer.predict(leads)
    assert list(out.columns[:2]) == ["lead_id", "p_convert"] and set(LEAD_ACCOUNT_COLUMNS) <= set(out.columns)
    assert (out["account_id"].to_numpy() == leads["account_id"].to_numpy()).all(), "each lead row its own account"
    table = scorer.predict_accounts(leads)
    assert list(table.columns[:len(ACCOUNT_COLUMNS)]) == list(ACCOUNT_COLUMNS)
    assert table["account_id"].is_unique and set(table["account_id"]) == set(leads["account_id"])
    assert table["contacts"].sum() == len(leads), "every lead counted in its account"
    by_account = table.set_index("account_id")
    np.testing.assert_array_equal(out["p_account"].to_numpy(),
                                  by_account.loc[out["account_id"], "p_account"].to_numpy())
    assert table["buying_group_coverage"].between(0, 1).all()
    group = set(scorer.accounts.features.buying_group)
    for engaged, missing in zip(table["roles_engaged"], table["roles_missing"]):
        named_missing = set(filter(None, missing.split(";")))
        assert named_missing <= group and not named_missing & set(engaged.split(";"))
    gaps = table[table["roles_missing"].str.contains("finance")]
    says_so = gaps["account_reasons"].map(lambda r: any(e["text"].startswith("no one from") and "finance" in e["text"]
                                                        for e in json.loads(r)))
    assert not gaps.empty and says_so.all(), "an account without finance says so among its reasons"
    if isinstance(scorer.accounts.method, AccountModel):  # exact points only for the account model
        base, points = scorer.accounts.explain(scorer.accounts.combine(scorer.accounts.partials(
            leads, out[["lead_id", "p_convert", "score"]])))
        np.testing.assert_allclose(base + points.sum(axis=1), 100 * table["p_account"], atol=1e-8)


def test_account_config_mistakes_stop_training_before_fitting(funnel):
    folder, _ = funnel
    cfg = accounts_config(folder, buying_group=["decision_maker", "procurement"])
    table = load_training_table(cfg)
    with pytest.raises(ConfigError, match="procurement"):
        check_accounts(cfg, table)
    with pytest.raises(ConfigError, match="role_column"):
        check_accounts(accounts_config(folder, role_column="job_level"), table)
    emptied = dataclasses.replace(table, frame=table.frame.assign(account_id=pd.NA))
    with pytest.raises(InputError, match="no training row has an account id") as error:
        check_accounts(cfg, emptied)
    assert error.value.column == "account_id" and "accounts section" in error.value.fix


def test_leads_without_an_account_are_left_out_of_the_account_rows(funnel):
    folder, _ = funnel
    cfg = accounts_config(folder)
    table = load_training_table(cfg)
    window = table.frame[table.frame["snapshot_at"] == table.frame["snapshot_at"].max()].reset_index(drop=True)
    features = account_features(cfg, table, lead_mql=None)
    whole = account_rows(features, window, table, None)
    alone = window["account_id"] == window["account_id"].iloc[0]
    emptied = window.assign(account_id=window["account_id"].mask(alone, "  "))
    rows = account_rows(features, emptied, table, None)
    assert rows.combined["contacts"].sum() == len(window) - alone.sum(), "every lead with an account, and no other"
    assert len(rows.y) == len(whole.y) - 1 and window["account_id"].iloc[0] not in set(rows.accounts)


def snapshot_with_accounts(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A snapshot table of leads in accounts whose size and buying intent every contact shares."""
    rng = np.random.default_rng(seed)
    account = np.sort(rng.integers(0, n // 3, n))
    intent = rng.normal(0, 1, n // 3)[account]
    size = np.array(["1-10", "11-50", "201+"])[account % 3]
    visits = rng.poisson(np.exp(0.8 + 0.5 * intent))
    logit = -3.0 + 1.2 * intent + 0.2 * visits + np.where(size == "201+", 0.7, 0.0)
    return pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)],
        "account": [f"C{a:04d}" for a in account],
        "created_at": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC").astype(str),
        "role": rng.choice(["decision_maker", "finance", "user"], n),
        "company_size": size,
        "visits": visits,
        "converted": rng.binomial(1, 1 / (1 + np.exp(-logit))),
    })


def test_a_snapshot_table_trains_account_scores_on_its_numbers_and_firmographics(tmp_path):
    # Given a snapshot table whose rows name their account, and an accounts section
    snapshot_with_accounts().to_csv(tmp_path / "train.csv", index=False)
    raw = snapshot_config(tmp_path / "train.csv")
    raw["model"]["candidates"] = ["logistic"]
    raw["groups"] = {"fit": ["company_size"], "engagement": ["visits"]}
    raw["accounts"] = {"column": "account", "role_column": "role", "buying_group": ["decision_maker", "finance"]}
    cfg = build_config(raw)
    # When the pipeline trains
    table = load_training_table(cfg)
    result = fit_table(table, cfg)
    # Then the account column is carried, never learned, and the account features aggregate the table's own columns
    assert table.account_column == "account" and "account" not in table.feature_columns
    features = result.scorer.accounts.features
    assert features.recency_column is None and features.summed == ("visits",)
    assert features.firmographics == ("company_size",), "company size is the same for every contact of an account"
    assert set(result.tables["accounts_backtest"]["option"]) == set(OPTIONS)
    accounts = result.scorer.predict_accounts(result.split.test)
    assert accounts["active_contacts"].isna().all(), "no activity recency in a snapshot table: left empty"
    assert set(accounts["roles_missing"].str.split(";").explode()) <= {"", "decision_maker", "finance"}
