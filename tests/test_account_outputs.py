"""The account outputs of a scoring run: the account table beside the scores and the account columns on every lead,
the same whether the input is scored in chunks, at once, through the pyfunc model or on Spark.

One small model with an account part is trained for the module (the synthetic funnel with accounts, a demo-like
config with an `accounts` section); the fresh leads to score are a later stretch of the same funnel, whose accounts
are runs of consecutive leads, so that chunks of a few hundred rows cut through accounts.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import (
    PROVENANCE,
    background_server,
    demo_config,
    free_port,
    needs_spark,
    read_output,
    run_cli,
    temporary_files,
    using_store,
)

from leadscore.config import ScoringConfig
from leadscore.errors import InputError
from leadscore.schema import ACCOUNT_COLUMNS, ACCOUNT_ID, LEAD_ACCOUNT_COLUMNS, STATUS_COLUMN
from leadscore.scoring.accounts import (
    MISSING_ACCOUNT,
    missing_accounts,
    top_accounts,
    with_account_columns,
)
from leadscore.scoring.job import accounts_path_of

slow = pytest.mark.slow  # the tests that use the module's trained model
AS_OF = "2026-11-01"
CHUNK_ROWS = 250
FRESH_LEADS = 1200


# -- the model and the leads to score ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small model with an account part, registered in a store of its own (the working folder and tracking URI
    for the module): its folder, URI and scorer."""
    from leadscore.api import train
    from leadscore.registry.loading import load_model
    from leadscore.synthetic.funnel import generate_to_dir

    folder = tmp_path_factory.mktemp("accounts")
    generate_to_dir(6000, 5, folder / "history", accounts=True)
    raw = demo_config(folder / "history", accounts={"column": "account_id", "role_column": "buying_role"})
    raw["model"].update(candidates=["lightgbm"], lightgbm={"n_estimators": 60, "learning_rate": 0.1})
    raw["event_log"]["snapshots"]["every_days"] = 56
    config = folder / "accounts.yaml"
    config.write_text(yaml.safe_dump(raw))
    with using_store(folder):
        trained = train(config)
        yield SimpleNamespace(folder=folder, uri=trained.uri, scorer=load_model(trained.uri).scorer)


@pytest.fixture(scope="module")
def fresh(model) -> Path:
    """Leads of the months before AS_OF, as an event-log folder with an accounts table."""
    from leadscore.synthetic.funnel import generate_to_dir

    folder = model.folder / "fresh"
    generate_to_dir(FRESH_LEADS, 8, folder, start="2026-06-01", days=150, accounts=True)
    return folder


@pytest.fixture(scope="module")
def features(model, fresh) -> pd.DataFrame:
    """The fresh leads' input rows as the job computes them (features as of AS_OF, with the account column)."""
    from leadscore.data.sources import open_source
    from leadscore.scoring.events import event_log_features

    frame, _ = event_log_features(model.scorer, open_source(fresh, model.scorer.read_options()), AS_OF)
    return frame


@pytest.fixture(scope="module")
def event_log_run(model, fresh):
    """The fresh event log scored by the pandas engine in chunks of CHUNK_ROWS, to Parquet, with the top 3."""
    from leadscore.scoring import score_file

    out = model.folder / "event_log_scores.parquet"
    report = score_file(model.uri, fresh, out, as_of=AS_OF, settings=ScoringConfig(chunk_rows=CHUNK_ROWS), top=3)
    return report, out


def model_inputs(scorer, frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[scorer.id_column, *scorer.feature_columns, scorer.accounts.account_column]]


def assert_same_table(ours: pd.DataFrame, theirs: pd.DataFrame, what: str, atol: float = 1e-12) -> None:
    """The same columns and rows: numbers within `atol` (a float sum merged over chunks may differ in its last
    bits, see `leadscore.model.accounts`), everything else equal as text, missing where missing."""
    assert list(ours.columns) == list(theirs.columns), f"{what}: columns {list(ours.columns)} != {list(theirs.columns)}"
    assert len(ours) == len(theirs), f"{what}: {len(ours)} rows, expected {len(theirs)}"
    for column in ours.columns:
        a, b = ours[column].reset_index(drop=True), theirs[column].reset_index(drop=True)
        if pd.api.types.is_float_dtype(b) and not pd.api.types.is_bool_dtype(a):
            np.testing.assert_allclose(a.astype("float64"), b.astype("float64"), rtol=0, atol=atol,
                                       err_msg=f"{what}: column {column}")
        else:
            same = (a.astype("string") == b.astype("string")).fillna(False) | (a.isna() & b.isna())
            assert same.all(), f"{what}: column {column} differs in {int((~same).sum())} row(s)"


def cuts_accounts(accounts: pd.Series, rows: int) -> int:
    """How many chunk boundaries of `rows` rows fall inside an account (its leads on both sides)."""
    values = accounts.astype("string").to_numpy()
    return sum(values[k - 1] == values[k] for k in range(rows, len(values), rows))


# -- the pandas engine -------------------------------------------------------------------------------------------
@slow
def test_the_job_builds_an_event_logs_features_out_of_core_as_in_memory(model, fresh):
    # Given the fresh event log, when the job builds its features out of core in batches,
    from leadscore.data.sources import open_source
    from leadscore.features import columnar
    from leadscore.scoring.events import event_log_feature_batches, event_log_features

    source = open_source(fresh, model.scorer.read_options())
    expected, status = event_log_features(model.scorer, source, AS_OF, build=columnar.features_as_of)
    batches = list(event_log_feature_batches(model.scorer, source, AS_OF, CHUNK_ROWS, memory_limit="100MB"))
    # then they are the in-memory rows of the same query, with the account column, in the leads' order,
    assert len(batches) > 1 and all(len(frame) <= CHUNK_ROWS for frame, _ in batches)
    pd.testing.assert_frame_equal(pd.concat([frame for frame, _ in batches], ignore_index=True), expected,
                                  check_exact=True)
    # and each lead has its status as of that time.
    assert (status != "open").any()
    assert np.concatenate([statuses for _, statuses in batches]).tolist() == status.tolist()


@slow
def test_an_activity_after_the_scoring_time_is_refused_with_its_row_out_of_core(model, fresh, tmp_path):
    from leadscore.data.sources import open_source
    from leadscore.scoring.events import event_log_feature_batches, event_log_features

    folder = tmp_path / "late"
    folder.mkdir()
    for path in fresh.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    activities = pd.read_parquet(fresh / "activities.parquet")
    row = len(activities) // 2
    activities.loc[row, "timestamp"] = pd.Timestamp("2150-01-01", tz="UTC")
    activities.to_parquet(folder / "activities.parquet", index=False)
    source = open_source(folder, model.scorer.read_options())
    with pytest.raises(InputError) as in_memory:
        event_log_features(model.scorer, source, None)
    with pytest.raises(InputError) as out_of_core:
        next(event_log_feature_batches(model.scorer, source, None, CHUNK_ROWS))
    assert out_of_core.value.column == in_memory.value.column == "timestamp"
    assert out_of_core.value.rows == in_memory.value.rows and row + 1 in out_of_core.value.rows
    assert str(out_of_core.value) == str(in_memory.value)


@slow
def test_chunked_scoring_gives_the_account_table_of_the_whole_input(model, features, event_log_run):
    # Given fresh leads whose accounts straddle the job's chunks
    scorer = model.scorer
    assert cuts_accounts(features[scorer.accounts.account_column], CHUNK_ROWS) > 0, "the chunks must cut accounts"

    # When the job scores them chunk by chunk
    report, out = event_log_run

    # Then its account table is the one of the whole input scored at once
    table = pd.read_parquet(report.accounts)
    assert report.accounts == accounts_path_of(out) and report.accounts.endswith("event_log_scores.accounts.parquet")
    whole = scorer.predict_accounts(model_inputs(scorer, features))
    assert_same_table(table, whole, "account table")
    assert list(table.columns[:len(ACCOUNT_COLUMNS)]) == list(ACCOUNT_COLUMNS), "the account columns first"
    # And every account of the scored leads appears once, each lead counted once
    assert table[ACCOUNT_ID].is_unique, "one row per account"
    assert set(table[ACCOUNT_ID]) == set(features[scorer.accounts.account_column]), "every account of the leads"
    assert table["contacts"].sum() == report.rows_scored == len(features), "every scored lead counted once"
    assert report.accounts_scored == len(table) and report.mqas == int(table["is_mqa"].sum()), "the report's counts"
    assert f"{len(table):,} account(s) scored" in report.summary() and report.accounts in report.summary()


@slow
def test_every_lead_row_carries_its_accounts_columns_from_the_whole_input(model, features, event_log_run):
    # Given the job's lead rows and the same leads scored at once
    scorer = model.scorer
    report, out = event_log_run
    leads = pd.read_parquet(out)
    whole = scorer.predict(model_inputs(scorer, features))

    # Then the columns come in the model's order (then provenance and status), with the account values of whole accounts
    assert list(leads.columns) == [*whole.columns, *PROVENANCE, STATUS_COLUMN], "the model's columns, in its order"
    assert leads[scorer.id_column].tolist() == whole[scorer.id_column].tolist(), "leads in input order"
    assert_same_table(leads[list(LEAD_ACCOUNT_COLUMNS)], whole[list(LEAD_ACCOUNT_COLUMNS)], "lead account columns")
    # And they agree with the account table
    table = pd.read_parquet(report.accounts).set_index(ACCOUNT_ID)
    np.testing.assert_array_equal(leads["p_account"], table.loc[leads[ACCOUNT_ID], "p_account"])
    # And the top leads shown carry their account's values too
    top = report.top.merge(leads[[scorer.id_column, "p_account"]], on=scorer.id_column, suffixes=("", "_file"))
    np.testing.assert_array_equal(top["p_account"], top["p_account_file"])


@slow
def test_the_top_accounts_are_the_highest_p_account(event_log_run):
    report, _ = event_log_run
    table = pd.read_parquet(report.accounts)
    expected = table.sort_values(["p_account", ACCOUNT_ID], ascending=[False, True]).head(3)
    assert report.top_accounts[ACCOUNT_ID].tolist() == expected[ACCOUNT_ID].tolist()


def snapshot_of(model, features: pd.DataFrame, name: str) -> tuple[pd.DataFrame, Path]:
    """The fresh leads' input rows as a snapshot table (CSV), with a bad value, a duplicate and a lead without
    an account planted in multi-contact accounts; the table and its path."""
    scorer = model.scorer
    account = scorer.accounts.account_column
    frame = model_inputs(scorer, features).astype({"days_since_last_activity": object}).reset_index(drop=True)
    shared = frame[account].duplicated(keep=False).to_numpy()
    bad, empty, copied = np.flatnonzero(shared)[[3, 10, 20]]
    frame.loc[bad, "days_since_last_activity"] = "seven"
    frame.loc[empty, account] = "   "
    duplicate = frame.iloc[[copied]].assign(**{account: frame.loc[bad, account]})  # counts for another account
    frame = pd.concat([frame.iloc[:copied + 5], duplicate, frame.iloc[copied + 5:]], ignore_index=True)
    path = model.folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return frame, path


@slow
def test_rejected_rows_never_count_towards_an_account(model, features):
    from leadscore.scoring import score_file

    # Given a snapshot table with a bad value, a duplicate row and a lead without an account
    scorer = model.scorer
    frame, path = snapshot_of(model, features, "planted")

    # When it is scored in chunks (to Parquet, which keeps an empty text apart from a missing one)
    out = model.folder / "planted_scores.parquet"
    report = score_file(model.uri, path, out, settings=ScoringConfig(chunk_rows=CHUNK_ROWS, max_reject_share=0.05))

    # Then the three rows are rejected, the empty account among them with its own reason
    rejects = pd.read_csv(report.rejects)
    assert sorted(rejects["reason"]) == sorted(["bad value", "duplicate id", MISSING_ACCOUNT]), rejects
    assert report.rejected[MISSING_ACCOUNT] == 1
    missing = rejects[rejects["reason"] == MISSING_ACCOUNT].iloc[0]
    assert missing["column"] == scorer.accounts.account_column
    # And the account table is that of the accepted rows alone
    accepted = features.loc[features[scorer.id_column].isin(pd.read_parquet(out)[scorer.id_column])]
    assert len(accepted) == len(features) - 2, "all but the bad and the account-less lead"
    table = pd.read_parquet(accounts_path_of(out))
    whole = scorer.predict_accounts(model_inputs(scorer, accepted))
    assert_same_table(table, whole, "account table of the accepted rows")
    assert table["contacts"].sum() == report.rows_scored


@slow
def test_a_failed_run_publishes_no_account_table(model, features):
    from leadscore.scoring import score_file

    # Given a previous account table beside the output, and an input with rejected rows
    _, path = snapshot_of(model, features, "failing")
    out = model.folder / "failing_scores.csv"
    previous = Path(accounts_path_of(out))
    previous.write_text("account_id\nfrom an earlier run\n")

    # When the job fails on the reject limit
    with pytest.raises(InputError, match="rows rejected"):
        score_file(model.uri, path, out, settings=ScoringConfig(chunk_rows=CHUNK_ROWS, max_reject_share=0.0))

    # Then neither scores nor a new account table were published, and nothing is left aside
    assert not out.exists(), "no scores"
    assert previous.read_text() == "account_id\nfrom an earlier run\n", "the previous account table untouched"
    assert not temporary_files(model.folder), "no temporary left behind"


@slow
def test_a_snapshot_without_the_account_column_is_refused_before_any_work(model, features):
    from leadscore.scoring import score_file

    scorer = model.scorer
    path = model.folder / "no_accounts.csv"
    model_inputs(scorer, features).drop(columns=[scorer.accounts.account_column]).to_csv(path, index=False)
    out = model.folder / "no_accounts_scores.csv"
    with pytest.raises(InputError) as error:
        score_file(model.uri, path, out)
    assert error.value.column == scorer.accounts.account_column and "accounts" in error.value.fix
    assert not out.exists() and not Path(accounts_path_of(out)).exists()


@slow
def test_the_command_line_prints_the_account_table_and_top_accounts_and_history_holds_leads(model, fresh, tmp_path):
    # Given a score history folder
    history = tmp_path / "history"
    out = tmp_path / "scores.csv"

    # When the command line scores the fresh leads with --top and --history
    code, printed, err = run_cli("score", "--model", model.uri, "--input", fresh, "--as-of", AS_OF, "--output", out,
                                 "--top", 2, "--history", history, "--chunk-rows", 400)

    # Then it says where the account table went and shows the two best accounts
    assert code == 0, err
    assert accounts_path_of(out) in printed and "MQA" in printed, printed
    assert "top 2 accounts:" in printed and "roles_missing" in printed and "account_reason_1" in printed, printed
    best = pd.read_csv(accounts_path_of(out)).sort_values(["p_account", ACCOUNT_ID], ascending=[False, True])
    assert best[ACCOUNT_ID].iloc[0] in printed.split("top 2 accounts:")[1]
    # And the history records leads only, as without accounts
    (recorded,) = list(history.rglob("*.parquet"))
    columns = set(pd.read_parquet(recorded).columns)
    assert not columns & (set(LEAD_ACCOUNT_COLUMNS) | set(ACCOUNT_COLUMNS)), columns


# -- the pyfunc model (what `mlflow models serve` and Spark run) -------------------------------------------------
@slow
def test_pyfunc_answers_accounts_as_the_job_writes_them(model, features, event_log_run):
    import mlflow.pyfunc

    # Given the registered model loaded as MLflow loads it to serve
    pyfunc = mlflow.pyfunc.load_model(model.uri)
    scorer = model.scorer
    signature = pyfunc.metadata.signature
    assert {p.name: p.default for p in signature.params.params} == {"reasons": True, "output": "leads"}
    assert scorer.accounts.account_column in signature.inputs.input_names(), "the account column is an input"

    # When it is asked for the accounts of the leads
    inputs = model_inputs(scorer, features)
    accounts = pyfunc.predict(inputs, params={"output": "accounts"})

    # Then it answers the job's account table
    report, _ = event_log_run
    assert_same_table(accounts, pd.read_parquet(report.accounts), "pyfunc accounts vs the job's")
    # And by default one row per lead with the account columns; without reasons on request
    leads = pyfunc.predict(inputs)
    assert len(leads) == len(inputs) and set(LEAD_ACCOUNT_COLUMNS) <= set(leads.columns)
    lean = pyfunc.predict(inputs, params={"output": "accounts", "reasons": False})
    assert list(lean.columns) == list(ACCOUNT_COLUMNS)
    np.testing.assert_array_equal(lean["p_account"], accounts["p_account"])


@slow
def test_pyfunc_refuses_an_unknown_output_and_accounts_of_a_model_without_them(model, features):
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from leadscore.model.pyfunc import ContractViolation, LeadScorerModel

    inputs = model_inputs(model.scorer, features).head(20)
    with pytest.raises(MlflowException, match="unknown output 'account'") as error:
        mlflow.pyfunc.load_model(model.uri).predict(inputs, params={"output": "account"})
    assert "leads" in error.value.fix and "accounts" in error.value.fix

    without = LeadScorerModel(dataclasses.replace(model.scorer, accounts=None))
    with pytest.raises(ContractViolation, match="no account part") as error:
        without.predict(None, inputs, params={"output": "accounts"})
    assert "retrain" in error.value.fix and "accounts" in error.value.fix


@slow
def test_mlflow_models_serve_answers_the_accounts_of_a_request(model, features, event_log_run):
    import requests

    # Given the registered model served by `mlflow models serve`
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["mlflow", "models", "serve", "-m", model.uri, "--env-manager", "local", "--host", "127.0.0.1",
            "--port", url.rsplit(":", 1)[1]]
    rows = json.loads(model_inputs(model.scorer, features).to_json(orient="split", index=False))
    with background_server(argv, f"{url}/ping", model.folder / "serve.log"):
        # When the leads are posted asking for their accounts, and for an output that does not exist
        answer = requests.post(f"{url}/invocations", timeout=120,
                               json={"dataframe_split": rows, "params": {"output": "accounts"}})
        refused = requests.post(f"{url}/invocations", timeout=120,
                                json={"dataframe_split": rows, "params": {"output": "companies"}})

    # Then it answers the job's account table, and refuses the unknown output with the fix
    assert answer.status_code == 200, answer.text
    served = pd.DataFrame(answer.json()["predictions"])
    table = pd.read_parquet(event_log_run[0].accounts)
    assert served[ACCOUNT_ID].tolist() == table[ACCOUNT_ID].tolist()
    np.testing.assert_allclose(served["p_account"], table["p_account"], rtol=0, atol=1e-9)
    for column in ("account_grade", "is_mqa", "roles_missing", "account_reason_1"):
        assert served[column].astype("string").tolist() == table[column].astype("string").tolist(), column
    assert refused.status_code == 400 and "unknown output 'companies'" in refused.text, refused.text


# -- Spark -------------------------------------------------------------------------------------------------------
@slow
@needs_spark
def test_spark_gives_the_pandas_account_table_and_lead_columns(model, fresh, event_log_run, local_spark):
    from leadscore.scoring import score_file

    # Given the fresh leads scored by the pandas engine
    report, out = event_log_run

    # When the spark engine scores them
    spark_out = model.folder / "spark_scores.parquet"
    spark_report = score_file(model.uri, fresh, spark_out, as_of=AS_OF, settings=ScoringConfig(engine="spark"), top=3)

    # Then it writes the same account table (a folder of parts, as its scores), whole accounts in each row
    pandas_table = pd.read_parquet(report.accounts)
    spark_table = read_output(Path(spark_report.accounts)).sort_values(ACCOUNT_ID).reset_index(drop=True)
    assert list(spark_table.columns) == list(pandas_table.columns)
    assert spark_table[ACCOUNT_ID].tolist() == pandas_table[ACCOUNT_ID].tolist(), "the same accounts, once each"
    np.testing.assert_allclose(spark_table["p_account"], pandas_table["p_account"], rtol=0, atol=1e-9)
    assert_same_table(spark_table, pandas_table, "spark vs pandas account table", atol=1e-9)
    assert (spark_report.accounts_scored, spark_report.mqas) == (report.accounts_scored, report.mqas)
    assert spark_report.top_accounts[ACCOUNT_ID].tolist() == report.top_accounts[ACCOUNT_ID].tolist()
    # And the same account columns on every lead
    id_column = model.scorer.id_column
    pandas_leads = pd.read_parquet(out)
    spark_leads = read_output(spark_out).set_index(id_column).loc[pandas_leads[id_column]].reset_index()
    assert list(spark_leads.columns) == list(pandas_leads.columns), "the same columns, in the same order"
    assert_same_table(spark_leads[list(LEAD_ACCOUNT_COLUMNS)], pandas_leads[list(LEAD_ACCOUNT_COLUMNS)],
                      "spark vs pandas lead account columns", atol=1e-9)


# -- the plumbing, on small frames -------------------------------------------------------------------------------
def lead_columns_of(ids, p) -> pd.DataFrame:
    p = np.asarray(p, dtype="float64")
    return pd.DataFrame({ACCOUNT_ID: pd.array(ids, dtype="string"), "p_account": p, "account_score": 100 * p,
                         "account_grade": ["A" if v > 0.5 else "D" for v in p], "is_mqa": p > 0.5})


def test_account_columns_are_joined_by_account_id_in_the_models_order():
    # Given staged lead rows (the account id, no values yet) and one row per account
    rows = pd.DataFrame({"lead_id": ["1", "2", "3", "4"], "p_convert": [0.1, 0.2, 0.3, 0.4],
                         ACCOUNT_ID: ["b", "a", "b", "c"], "model_name": "m"})
    accounts = lead_columns_of(["a", "b", "c"], [0.7, 0.2, 0.4])
    order = ["lead_id", "p_convert", *LEAD_ACCOUNT_COLUMNS, "model_name"]

    # When the account columns are added
    joined = with_account_columns(rows, accounts, order)

    # Then every lead has its own account's values, in the order asked for, rows untouched
    assert list(joined.columns) == order
    assert joined["lead_id"].tolist() == ["1", "2", "3", "4"]
    assert joined["p_account"].tolist() == [0.2, 0.7, 0.2, 0.4]
    assert joined["is_mqa"].tolist() == [False, True, False, False]


def test_an_account_id_is_matched_as_text_and_a_missing_one_gets_no_values():
    rows = pd.DataFrame({"lead_id": [1, 2], ACCOUNT_ID: pd.array(["7", None], dtype="string"),
                         "p_account": [0.9, 0.9]})  # values from one chunk: replaced
    joined = with_account_columns(rows, lead_columns_of(["7"], [0.3]))
    assert joined["p_account"].iloc[0] == 0.3 and pd.isna(joined["p_account"].iloc[1])
    assert list(joined.columns) == ["lead_id", ACCOUNT_ID, *LEAD_ACCOUNT_COLUMNS[1:]], "values last without an order"


def test_an_account_table_with_an_account_twice_is_a_bug_not_a_join():
    rows = pd.DataFrame({"lead_id": [1], ACCOUNT_ID: ["a"]})
    with pytest.raises(RuntimeError, match="more than one row"):
        with_account_columns(rows, lead_columns_of(["a", "a"], [0.1, 0.2]))


def test_top_accounts_break_ties_by_account_id():
    table = lead_columns_of(["c", "b", "a", "d"], [0.5, 0.9, 0.5, 0.1])
    assert top_accounts(table, 3)[ACCOUNT_ID].tolist() == ["b", "a", "c"]


def test_the_account_table_sits_beside_the_output_in_its_format():
    assert accounts_path_of("out/scores.csv") == "out/scores.accounts.csv"
    assert accounts_path_of("/data/run.2026.parquet") == "/data/run.2026.accounts.parquet"


def test_an_empty_or_blank_account_id_is_missing():
    values = pd.Series(["A1", "", "  ", None, np.nan, "0"], dtype=object)
    assert missing_accounts(values).tolist() == [False, True, True, True, True, False]


def test_the_staged_rows_stream_into_the_output_with_their_account_columns(tmp_path):
    # Given staged lead rows in Parquet (five leads, three accounts) and the account values
    from leadscore.data.streams import TableWriter
    from leadscore.scoring.pandas_engine import _add_account_columns

    staged = tmp_path / "staged.parquet"
    rows = pd.DataFrame({"lead_id": ["001", "002", "003", "004", "005"], "score": [1.0, 2.0, 3.0, 4.0, 5.0],
                         ACCOUNT_ID: ["a", "b", "a", "c", "b"], "reason_1": ["=cmd", None, "x", "y", "z"]})
    with TableWriter(staged, ".parquet") as writer:
        writer.write(rows.iloc[:2])
        writer.write(rows.iloc[2:])
    order = ["lead_id", "score", *LEAD_ACCOUNT_COLUMNS, "reason_1"]
    job = SimpleNamespace(fmt=".csv", output=str(tmp_path / "out.csv"), settings=SimpleNamespace(chunk_rows=2))

    # When they pass through the join, two rows at a time, into CSV
    _add_account_columns(str(staged), job.output, job, lead_columns_of(["a", "b", "c"], [0.6, 0.2, 0.4]), order)

    # Then the output holds every row in order, ids as text, the account values, and formulas neutralised
    out = pd.read_csv(job.output, dtype={"lead_id": str})
    assert list(out.columns) == order
    assert out["lead_id"].tolist() == ["001", "002", "003", "004", "005"]
    assert out["p_account"].tolist() == [0.6, 0.2, 0.6, 0.4, 0.2]
    assert out["is_mqa"].tolist() == [True, False, True, False, False]
    assert out["reason_1"].iloc[0] == "'=cmd", "CSV cells that look like formulas are neutralised"
    json.dumps(out.to_dict())  # plain values


@slow
def test_a_lead_of_an_account_is_explained_from_an_event_log(model, fresh, features):
    # Given a lead of the fresh event log
    lead = features[model.scorer.id_column].iloc[7]

    # When the command line explains it
    code, printed, err = run_cli("explain", "--model", model.uri, "--input", fresh, "--as-of", AS_OF, "--lead", lead)

    # Then the lead's input rows carry its account, which the model's predict needs
    assert code == 0, err
    assert lead in printed
