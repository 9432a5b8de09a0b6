"""The accounts table of an event log: read, checked and joined onto the leads; the account id is never a feature."""

from __future__ import annotations

import copyreg
import logging
import pickle

import pandas as pd
import pytest

from leadscore.config import parse_config
from leadscore.errors import InputError
from leadscore.features.events import EventLogLayout, feature_spec, load_event_log
from leadscore.synthetic.funnel import generate_to_dir

LAYOUT = EventLogLayout(accounts_table="accounts", account_column="account_id")
SECRET = "ACME-CONFIDENTIAL"  # an account id that must never show in an error


def config(accounts: dict | None = None):
    raw = {
        "data": {"form": "event_log", "path": "unused"},
        "event_log": {"snapshots": {"first": "2025-03-01", "last": "2025-06-01", "every_days": 30}},
    }
    return parse_config(raw | ({"accounts": accounts} if accounts else {}))


ACCOUNTS_CONFIG = {"column": "account_id", "table": "accounts", "role_column": "buying_role"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A funnel with accounts written as CSV, so that ids and numbers go through the text reader."""
    folder = tmp_path_factory.mktemp("accounts_funnel")
    generate_to_dir(2300, 3, folder, fmt="csv", chunk_size=1000, accounts=True)
    return folder


def write_log(folder, leads: pd.DataFrame, accounts: pd.DataFrame | None) -> None:
    """A tiny event log: the given leads and accounts, one page view per lead, no outcomes needed."""
    folder.mkdir(parents=True, exist_ok=True)
    leads.to_csv(folder / "leads.csv", index=False)
    pd.DataFrame({"lead_id": leads["lead_id"], "timestamp": "2025-02-01T10:00:00Z",
                  "activity_type": "page_view"}).to_csv(folder / "activities.csv", index=False)
    if accounts is not None:
        accounts.to_csv(folder / "accounts.csv", index=False)


def tiny_leads(**changes) -> pd.DataFrame:
    frame = pd.DataFrame({
        "lead_id": ["L1", "L2", "L3", "L4"],
        "created_at": ["2025-01-01T00:00:00Z"] * 4,
        "account_id": ["A1", "A2", "A1", "A2"],
        "industry": ["Software", None, "Software", "Retail"],
    })
    return frame.assign(**changes)


def tiny_accounts(**changes) -> pd.DataFrame:
    frame = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "industry": ["Software", "Retail", "Education"],
                          "employees": [120, 4000, 12]})
    return frame.assign(**changes)


def load(folder, layout=LAYOUT):
    return load_event_log(folder, layout, with_outcomes=False)


# Joining --------------------------------------------------------------------------------------------


def test_the_generated_accounts_table_joins_onto_every_lead(generated):
    # Given a generated funnel with accounts and a layout naming its accounts table
    raw_leads = pd.read_csv(generated / "leads.csv", dtype=str)
    accounts = pd.read_csv(generated / "accounts.csv", dtype={"account_id": str})
    # When it is read
    leads = load(generated).leads
    # Then every lead has its account's head count, in the leads' own order and number
    assert list(leads["lead_id"]) == list(raw_leads["lead_id"]), "rows reordered, added or lost"
    assert leads["employees"].notna().all(), "a lead without its account's employees"
    expected = raw_leads["account_id"].map(accounts.set_index("account_id")["employees"])
    assert (leads["employees"].to_numpy() == expected.to_numpy()).all(), "a lead got another account's value"
    # ... and the columns the leads have already keep the lead's value (missing where the lead hides it)
    assert leads["company_size"].isna().sum() == raw_leads["company_size"].isna().sum()


def test_a_column_in_both_tables_keeps_the_leads_value_and_is_logged_by_name(tmp_path, caplog):
    write_log(tmp_path, tiny_leads(), tiny_accounts())
    with caplog.at_level(logging.INFO, logger="leadscore.features.events"):
        leads = load(tmp_path).leads
    assert leads["industry"].isna().tolist() == [False, True, False, False], "the lead's own value was replaced"
    assert leads["employees"].tolist() == [120, 4000, 120, 4000]
    said = " ".join(record.getMessage() for record in caplog.records)
    assert "'industry'" in said, "the kept column is not named"
    assert "Retail" not in said and "Software" not in said, "a cell's content was logged"


def test_ids_read_as_text_match_across_tables(tmp_path):
    # Ids that look like numbers keep their leading zeros in both tables, so they still match.
    write_log(tmp_path, tiny_leads(account_id=["007", "010", "007", "010"]),
              tiny_accounts(account_id=["007", "010", "011"]))
    leads = load(tmp_path).leads
    assert leads["account_id"].tolist() == ["007", "010", "007", "010"]
    assert leads["employees"].tolist() == [120, 4000, 120, 4000]


def test_without_accounts_in_the_layout_nothing_is_joined(tmp_path):
    write_log(tmp_path, tiny_leads(), tiny_accounts())
    leads = load(tmp_path, EventLogLayout()).leads
    assert "employees" not in leads.columns


# Refused input ------------------------------------------------------------------------------------


def test_a_lead_naming_an_unknown_account_is_refused_with_its_rows(tmp_path):
    write_log(tmp_path, tiny_leads(account_id=["A1", SECRET, "A1", SECRET]), tiny_accounts())
    with pytest.raises(InputError) as error:
        load(tmp_path)
    assert error.value.column == "account_id" and error.value.rows == [2, 4]
    assert "accounts" in error.value.fix and SECRET not in str(error.value)


def test_a_duplicate_account_id_is_refused_with_its_rows(tmp_path):
    write_log(tmp_path, tiny_leads(), tiny_accounts(account_id=["A1", "A2", "A1"]))
    with pytest.raises(InputError) as error:
        load(tmp_path)
    assert error.value.column == "account_id" and error.value.rows == [1, 3]
    assert error.value.fix and "A1" not in str(error.value).replace("account_id", "")


def test_an_empty_account_id_is_refused_in_the_accounts_table(tmp_path):
    write_log(tmp_path, tiny_leads(), tiny_accounts(account_id=["A1", "A2", None]))
    with pytest.raises(InputError) as error:
        load(tmp_path)
    assert error.value.column == "account_id" and error.value.rows == [3] and error.value.fix


def test_a_lead_without_an_account_keeps_its_row_with_the_account_columns_empty(tmp_path):
    # A lead not matched to any account (empty or blank id) has no account, which is not an error.
    write_log(tmp_path, tiny_leads(account_id=["A1", None, " ", "A2"]), tiny_accounts())
    leads = load(tmp_path).leads
    assert leads["lead_id"].tolist() == ["L1", "L2", "L3", "L4"]
    assert leads["employees"].isna().tolist() == [False, True, True, False]


def test_a_missing_accounts_table_is_refused_naming_it(tmp_path):
    write_log(tmp_path, tiny_leads(), None)
    with pytest.raises(InputError) as error:
        load(tmp_path)
    assert "'accounts'" in str(error.value) and "accounts.csv" in error.value.fix


def test_a_missing_account_column_is_refused_naming_it(tmp_path):
    write_log(tmp_path / "leads", tiny_leads().drop(columns="account_id"), tiny_accounts())
    with pytest.raises(InputError) as error:
        load(tmp_path / "leads")
    assert error.value.column == "account_id" and "leads" in str(error.value) and error.value.fix
    write_log(tmp_path / "accounts", tiny_leads(), tiny_accounts().rename(columns={"account_id": "id"}))
    with pytest.raises(InputError) as error:
        load(tmp_path / "accounts")
    assert error.value.column == "account_id" and "accounts" in str(error.value) and error.value.fix


# Layout and features ------------------------------------------------------------------------------


def test_the_layout_takes_the_accounts_from_the_config():
    layout = EventLogLayout.from_config(config(ACCOUNTS_CONFIG))
    assert (layout.accounts_table, layout.account_column) == ("accounts", "account_id")
    plain = EventLogLayout.from_config(config())
    assert (plain.accounts_table, plain.account_column) == (None, None)


def test_a_layout_pickled_before_accounts_still_loads(monkeypatch):
    # Given a layout pickled without the account fields, as inside a model trained before them
    def old_reduce(layout):
        state = {k: v for k, v in vars(layout).items() if k not in {"accounts_table", "account_column"}}
        return copyreg.__newobj__, (EventLogLayout,), state

    monkeypatch.setattr(EventLogLayout, "__reduce__", old_reduce, raising=False)
    monkeypatch.setattr(EventLogLayout, "__reduce_ex__", lambda self, protocol: old_reduce(self), raising=False)
    stored = pickle.dumps(EventLogLayout(leads_table="people"))
    monkeypatch.undo()
    # Then it loads, without accounts
    layout = pickle.loads(stored)
    assert layout.leads_table == "people"
    assert (layout.accounts_table, layout.account_column) == (None, None)


def test_the_account_id_is_never_a_feature_but_the_role_and_joined_columns_are(generated):
    cfg = config(ACCOUNTS_CONFIG)
    log = load(generated)
    spec = feature_spec(log, cfg, hidden=[])
    assert "account_id" not in spec.profile_columns and "account_id" not in spec.feature_columns
    assert {"buying_role", "employees", "company_size"} <= set(spec.profile_columns)
    assert spec.layout.account_column == "account_id"
