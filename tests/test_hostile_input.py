"""Real CRM exports in, nothing leaked, nothing silently wrong (issue 13), checked one defect at a time.

Each test plants one hostile trait of real exports (German column names, personal values in innocent
columns, cp1252 text, `;` separators, leading-zero ids, ragged rows, oversized cells, formula cells, an
activity dated 2150, dates as text) and checks the behaviour the README promises for it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import CHAMPION, leads_to_score, read_output

from leadscore.config import DataConfig
from leadscore.data import sources
from leadscore.data.io import LocalFiles, remove_stale_temporaries
from leadscore.data.row_checks import SeenIds, UNREADABLE, split_rows
from leadscore.data.sources import UNREADABLE_ROWS, open_table, read_table
from leadscore.data.streams import TableWriter
from leadscore.errors import ConfigError, InputError
from leadscore.training.dataset import snapshot_table

MARKER = "QZXPLANT"


def snapshot(n: int = 200, seed: int = 0, **extra) -> pd.DataFrame:
    """A snapshot table with a text id, a label, a category and a count, plus `extra` columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "lead_id": [f"{i:06d}" for i in range(n)],
        "converted": rng.integers(0, 2, n),
        "company_size": rng.choice(["1-10", "11-50", "201+"], n),
        "visits": rng.poisson(3, n),
    })
    return frame.assign(**{k: (v(n) if callable(v) else v) for k, v in extra.items()})


def data_config(**overrides) -> DataConfig:
    return DataConfig(form="snapshot", path="x.csv", label_column="converted", **overrides)


# 1, 2: personal data by name (four languages, any casing) and by value; overruled by not_personal.
def test_personal_columns_in_four_languages_and_by_value_never_become_features(caplog):
    # Given an export with personal columns named in German, camel case, kebab and spaces, and personal values
    # in innocently named columns, and an opt-out flag whose name mentions e-mail
    frame = snapshot(
        **{"E-Mail-Adresse": lambda n: [f"{MARKER}{i}@example.de" for i in range(n)],
           "Telefonnummer": lambda n: [f"+49 170 {i:07d}" for i in range(n)],
           "Vorname": lambda n: [f"{MARKER}name{i % 40}" for i in range(n)],
           "Nachname": "Muster", "Straße": "Hauptstraße 1", "emailAddress": "a@b.de", "phoneNumber": "x",
           "linkedin_url": "x", "notes": "x",
           "source_detail": lambda n: ["webinar"] * (n - 1) + [f"{MARKER}@example.com"],
           "comment": lambda n: ["call back"] * (n - 1) + ["+49 30 1234 5678"],
           "Do Not Email": lambda n: np.arange(n) % 2})
    caplog.set_level(logging.INFO)

    # When the training table is made
    table = snapshot_table(frame, data_config())

    # Then none of them is a feature, the opt-out flag is, and every decision is kept and logged without values
    personal = {"E-Mail-Adresse", "Telefonnummer", "Vorname", "Nachname", "Straße", "emailAddress", "phoneNumber",
                "linkedin_url", "notes", "source_detail", "comment"}
    assert not personal & set(table.feature_columns), table.feature_columns
    assert personal <= set(table.dropped_personal)
    assert "Do Not Email" in table.feature_columns, "an opt-out flag is data, not personal"
    decided = {d.column: d for d in table.personal_decisions}
    assert decided["source_detail"].kind == "value" and decided["Vorname"].kind == "name"
    assert set(decided) == set(frame.columns), "one decision per column read"
    assert MARKER not in caplog.text and "+49" not in caplog.text, "decisions are logged without values"
    assert "source_detail" in caplog.text


def test_not_personal_overrules_a_false_positive():
    frame = snapshot(contact=lambda n: [f"{MARKER}{i}" for i in range(n)])
    table = snapshot_table(frame, data_config(not_personal=["contact"], categorical_columns=["contact"]))
    assert "contact" in table.feature_columns
    assert {d.column: d.kind for d in table.personal_decisions}["contact"] == "not_personal"


def test_a_personal_column_named_as_the_id_is_a_config_error():
    frame = snapshot(email=lambda n: [f"p{i}@example.com" for i in range(n)])
    with pytest.raises(ConfigError, match="data.id_column names 'email'.*Fix"):
        snapshot_table(frame, data_config(id_column="email"))


def test_free_text_is_not_learned_as_a_category_unless_declared():
    words = ["called", "about", "pricing", "and", "asked", "for", "a", "demo", "next", "week", "maybe", "later"]
    rng = np.random.default_rng(1)
    frame = snapshot(summary_text=lambda n: [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(n)])
    table = snapshot_table(frame, data_config())
    assert "summary_text" not in table.feature_columns and table.dropped_free_text == ["summary_text"]
    declared = snapshot_table(frame, data_config(categorical_columns=["summary_text"]))
    assert "summary_text" in declared.feature_columns


# 3: ids are text, byte-exact.
def test_leading_zero_ids_stay_text_and_0123_is_not_123(tmp_path):
    frame = snapshot(4).assign(lead_id=["0123", "123", "000001", "1"])
    frame.to_csv(tmp_path / "t.csv", index=False)
    read = read_table(tmp_path / "t.csv", text_columns=["lead_id"])
    table = snapshot_table(read, data_config())  # would fail as duplicate ids if read as numbers
    assert table.frame["lead_id"].tolist() == ["0123", "123", "000001", "1"]


def test_event_log_ids_keep_their_leading_zeros(tmp_path):
    from leadscore.features.events import EventLogLayout, load_event_log

    pd.DataFrame({"lead_id": ["000001", "000002"], "created_at": ["2025-01-01", "2025-01-02"]}).to_csv(
        tmp_path / "leads.csv", index=False)
    pd.DataFrame({"lead_id": ["000001"], "timestamp": ["2025-01-03"], "activity_type": ["visit"]}).to_csv(
        tmp_path / "activities.csv", index=False)
    log = load_event_log(tmp_path, EventLogLayout(), with_outcomes=False)
    assert log.leads["lead_id"].tolist() == ["000001", "000002"]
    assert log.activities["lead_id"].tolist() == ["000001"]


# 6, 7: encodings and separators, for every reader.
@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-8-sig", "utf-8"])
def test_encodings_are_detected_for_whole_reads_and_chunks(tmp_path, encoding):
    path = tmp_path / "t.csv"
    path.write_bytes("lead_id;Firmengröße;Straße\n0001;groß;Fußweg\n0002;klein;Öde\n".encode(encoding))
    frame = read_table(path, text_columns=["lead_id"])
    assert list(frame.columns) == ["lead_id", "Firmengröße", "Straße"]
    assert frame["Firmengröße"].tolist() == ["groß", "klein"]
    chunk = next(open_table(path).chunks(["lead_id", "Firmengröße"], 10))
    assert chunk["lead_id"].tolist() == ["0001", "0002"] and chunk["Firmengröße"].tolist() == ["groß", "klein"]


def test_a_wrong_separator_says_the_file_was_read_as_one_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("lead_id;age;visits\nL1;30;2\n")
    with pytest.raises(InputError, match="read as one column.*csv_separator"):
        read_table(path, csv_separator=",")
    assert list(read_table(path).columns) == ["lead_id", "age", "visits"], "detected when not declared"


def test_duplicate_column_names_are_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("lead_id,visits,visits\nL1,1,2\n")
    with pytest.raises(InputError, match="more than one column named 'visits'"):
        read_table(path)


# 8, 9: ragged rows and oversized cells are rejects with their row number; no row content in messages.
def test_ragged_rows_and_oversized_cells_become_unreadable_rows_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_MAX_CELL_BYTES", 200)
    monkeypatch.setattr(sources, "_CSV_BLOCK_BYTES", 256)
    lines = ["lead_id,email,visits"] + [f"L{i},p{i}@x.de,{i}" for i in range(1, 40)]
    lines[10] = f"L10,{MARKER}@x.de,1,extra"  # data row 10: one field too many
    lines[25] = f'L25,"{"y" * 400}",3'  # data row 25: a cell over the limit
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")

    chunks = list(open_table(path).chunks(["lead_id", "visits"], 7))
    frame = pd.concat(chunks, ignore_index=True)
    bad = {offset + position: why for offset, chunk in zip(np.cumsum([0] + [len(c) for c in chunks]), chunks)
           for position, why in chunk.attrs.get(UNREADABLE_ROWS, {}).items()}
    assert len(frame) == 39, "every row is still there, in place"
    assert sorted(bad) == [9, 24] and "4 fields" in bad[9] and "MB" in bad[24]
    assert MARKER not in " ".join(bad.values())
    assert frame.loc[8, "lead_id"] == "L9" and frame.loc[10, "lead_id"] == "L11"

    rows = np.arange(1, 8)
    chunk = chunks[1]
    valid, rejects = split_rows(chunk, rows + 7, "lead_id", ["visits"], SeenIds(), chunk.attrs.get(UNREADABLE_ROWS))
    assert rejects["row"].tolist() == [10] and rejects["reason"].tolist() == [UNREADABLE]


def test_a_parse_error_never_quotes_the_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(f"lead_id,email\nL1,a@b.de\nL2,{MARKER}@x.de,9\n")
    with pytest.raises(InputError) as error:
        read_table(path)
    assert MARKER not in str(error.value) and "line 3" in str(error.value)


# 5: formula cells in CSV outputs.
def test_formula_like_text_is_neutralised_in_csv_outputs_only(tmp_path):
    frame = pd.DataFrame({"lead_id": ["=cmd|' /C calc'!A0", "-0042", "@SUM(A1)", "+49 170 1", "ok", "\t=1"],
                          "reason_1": ["-3 points", "+HYPERLINK(x)", "fine", "=1+1", "x", "y"]})
    with TableWriter(tmp_path / "o.csv", ".csv") as writer:
        writer.write(frame)
    with TableWriter(tmp_path / "o.parquet", ".parquet") as writer:
        writer.write(frame)
    written = pd.read_csv(tmp_path / "o.csv", dtype=str, keep_default_na=False)
    for cell in [*written["lead_id"], *written["reason_1"]]:
        assert cell[:1] not in ("=", "+", "@", "\t", "\r") and not (cell.startswith("-") and cell != "-0042"), cell
    assert written["lead_id"].tolist()[1] == "-0042", "a plain number keeps its bytes"
    assert pd.read_parquet(tmp_path / "o.parquet").equals(frame), "Parquet is data: unchanged"


# 11: stale temporaries of killed jobs; the input may not be the output.
def test_the_next_job_removes_temporaries_of_killed_jobs_only(tmp_path):
    target = tmp_path / "scores.csv"
    dead = 2 ** 22 + 12345  # above the usual pid_max: no such process
    stale = tmp_path / f".scores.csv.{dead}-0123456789ab.tmp"
    stale.write_text("partial")
    alive = Path(LocalFiles().temporary(target))  # this process's own, still in use
    other = tmp_path / ".other.csv.1-0123456789ab.tmp"
    other.write_text("not ours")
    assert remove_stale_temporaries(target) == [stale]
    assert alive.exists() and other.exists()


def test_output_equal_to_input_is_refused_before_anything_is_written(tmp_path):
    from leadscore.scoring import score_file

    path = tmp_path / "leads.csv"
    leads_to_score(5, seed=1).to_csv(path, index=False)
    before = path.read_bytes()
    with pytest.raises(InputError, match="is the input"):
        score_file("models:/nothing@champion", path, path)
    assert path.read_bytes() == before


# 4: time.
def test_an_activity_dated_2150_does_not_move_the_scoring_time():
    from leadscore.scoring.events import scoring_time

    now = pd.Timestamp("2026-06-01", tz="UTC")
    times = pd.Series(pd.to_datetime(["2026-05-01", "2026-05-02", "2150-01-01"], utc=True))
    assert scoring_time(times, None, now=now) == pd.Timestamp("2026-05-02", tz="UTC") + pd.Timedelta(seconds=1)
    assert scoring_time(times, "2026-05-01T12:00:00Z") == pd.Timestamp("2026-05-01 12:00", tz="UTC")


def test_future_events_are_refused_with_their_count_unless_as_of_is_given(tmp_path):
    from leadscore.features.events import EventFeatureSpec, EventLogLayout, load_event_log
    from leadscore.scoring.events import recorded_times, refuse_future_events, scoring_time

    pd.DataFrame({"lead_id": ["1", "2"], "created_at": ["2025-01-01", "2025-01-02"]}).to_csv(tmp_path / "leads.csv", index=False)
    pd.DataFrame({"lead_id": ["1", "2", "2"], "timestamp": ["2025-01-03", "2150-01-01", "2025-01-04"],
                  "activity_type": ["visit"] * 3}).to_csv(tmp_path / "activities.csv", index=False)
    log = load_event_log(tmp_path, EventLogLayout(), with_outcomes=False)
    spec = EventFeatureSpec(layout=EventLogLayout(), terminal_stages=("won",), profile_columns=())
    moment = scoring_time(recorded_times(log, spec.layout), None)
    with pytest.raises(InputError, match="1 event\\(s\\) in activities are dated after") as error:
        refuse_future_events(log, spec, moment, None)
    assert error.value.rows == [2]
    refuse_future_events(log, spec, pd.Timestamp("2025-02-01", tz="UTC"), "2025-02-01")  # as of: allowed


def test_events_before_a_leads_creation_are_reported(tmp_path, caplog):
    from leadscore.features.events import EventLogLayout, load_event_log

    pd.DataFrame({"lead_id": ["1"], "created_at": ["2025-02-01"]}).to_csv(tmp_path / "leads.csv", index=False)
    pd.DataFrame({"lead_id": ["1", "1"], "timestamp": ["2025-01-01", "2025-03-01"],
                  "activity_type": ["visit"] * 2}).to_csv(tmp_path / "activities.csv", index=False)
    with caplog.at_level(logging.WARNING):
        load_event_log(tmp_path, EventLogLayout(), with_outcomes=False)
    assert "1 event(s) dated before their lead's creation" in caplog.text


def event_log_folder(folder: Path, late: list[str] = (), early: int = 0, **lead_columns) -> Path:
    """A small event log (40 leads over January 2025, visits, wins and losses by May) in `folder`; `late` adds
    activities at those times, `early` that many activities before their lead's creation, `lead_columns` add
    columns to the leads table."""
    n = 40
    created = pd.date_range("2025-01-01", periods=n, freq="18h", tz="UTC")
    leads = pd.DataFrame({"lead_id": [f"{i:05d}" for i in range(n)], "created_at": created.astype(str),
                          "segment": np.resize(["a", "b"], n)})
    leads = leads.assign(**{k: (v(n) if callable(v) else v) for k, v in lead_columns.items()})
    visits = pd.DataFrame({"lead_id": leads["lead_id"], "timestamp": (created + pd.Timedelta(days=3)).astype(str),
                           "activity_type": "visit"})
    extra = pd.DataFrame({"lead_id": leads["lead_id"][: len(late)], "timestamp": list(late), "activity_type": "visit"})
    before = pd.DataFrame({"lead_id": leads["lead_id"][:early], "timestamp": (created[:early] - pd.Timedelta(days=2)).astype(str),
                           "activity_type": "visit"})
    outcomes = pd.DataFrame({"lead_id": leads["lead_id"], "stage": np.resize(["won", "lost", "lost"], n),
                             "timestamp": (created + pd.Timedelta(days=50)).astype(str)})
    leads.to_csv(folder / "leads.csv", index=False)
    pd.concat([visits, extra, before]).to_csv(folder / "activities.csv", index=False)
    outcomes.to_csv(folder / "outcomes.csv", index=False)
    return folder


def event_log_config(folder: Path, **event_log):
    from leadscore.config import parse_config

    return parse_config({
        "data": {"form": "event_log", "path": str(folder)},
        "event_log": {"snapshots": {"first": "2025-01-20", "last": "2025-02-10", "every_days": 7},
                      "horizon_days": 30, **event_log},
    })


def test_training_refuses_activities_after_the_export_time_with_their_count(tmp_path):
    from leadscore.training.dataset import load_training_table

    # Given an event log with two activities dated 2150 (today is far earlier) and no declared export time
    folder = event_log_folder(tmp_path, late=["2150-01-01", "2150-01-02"])

    # When it is trained on, Then training stops with their count, their rows and the fix
    with pytest.raises(InputError, match="2 record\\(s\\) are dated after the export time.*2 in activities") as error:
        load_training_table(event_log_config(folder))
    assert len(error.value.rows) == 2 and "exported_at" in str(error.value), "rows and the fix are named"


def test_a_declared_export_time_refuses_later_events_unless_they_may_be_dropped(tmp_path, caplog):
    from leadscore.training.dataset import load_training_table

    # Given an export declared as taken on 2025-04-30, with one activity dated after it
    folder = event_log_folder(tmp_path, late=["2025-05-20"])

    # Then training refuses it, and leaves it out (counted in the log) only when told to
    with pytest.raises(InputError, match="1 record\\(s\\).*event_log.exported_at"):
        load_training_table(event_log_config(folder, exported_at="2025-04-30T00:00:00Z"))
    with caplog.at_level(logging.WARNING):
        table = load_training_table(event_log_config(folder, exported_at="2025-04-30", drop_events_after_export=True))
    assert "1 record(s) dated after the export time" in caplog.text and len(table.frame) > 0
    assert "2025-05-20" not in caplog.text, "counts, not the rows themselves"


def test_the_default_export_time_is_the_last_record_but_never_later_than_now():
    from leadscore.features.events import EventLog, EventLogLayout, export_time

    leads = pd.DataFrame({"lead_id": ["1"], "created_at": pd.to_datetime(["2025-01-01"], utc=True)})
    activities = pd.DataFrame({"lead_id": ["1", "1"], "timestamp": pd.to_datetime(["2025-02-01", "2150-01-01"], utc=True)})
    log = EventLog(leads, activities, None)
    now = pd.Timestamp("2026-11-30", tz="UTC")
    assert export_time(log, EventLogLayout(), None, now=now) == pd.Timestamp("2025-02-01", tz="UTC"), \
        "a time in the future never becomes the export time by default"
    declared = pd.Timestamp("2150-06-01", tz="UTC").to_pydatetime()
    assert export_time(log, EventLogLayout(), declared, now=now) == pd.Timestamp("2150-06-01", tz="UTC"), \
        "a declared export time is taken as it is"


def test_events_before_a_leads_creation_are_reported_at_training(tmp_path, caplog):
    from leadscore.training.dataset import load_training_table

    folder = event_log_folder(tmp_path, early=3)
    with caplog.at_level(logging.WARNING):
        table = load_training_table(event_log_config(folder))
    assert "3 event(s) dated before their lead's creation" in caplog.text
    assert any("3 activities dated before their lead's creation" in note for note in table.notes), table.notes


def test_date_columns_of_an_event_logs_leads_table_are_never_features(tmp_path, caplog):
    from leadscore.training.dataset import load_training_table

    # Given a leads table with a German-style text date and an ISO date beside a real category
    folder = event_log_folder(
        tmp_path, letzter_kontakt=lambda n: [f"{1 + i % 28:02d}.{1 + i % 12:02d}.2025" for i in range(n)],
        close_date=lambda n: ["2025-06-01"] * n)

    # When it is trained on
    with caplog.at_level(logging.INFO):
        table = load_training_table(event_log_config(folder))

    # Then the dates are dropped with a logged decision and a note, and the category stays
    assert "segment" in table.feature_columns
    assert not {"letzter_kontakt", "close_date"} & set(table.feature_columns), table.feature_columns
    assert {"letzter_kontakt", "close_date"} <= {c for c in ("letzter_kontakt", "close_date")
                                                 if any(f"'{c}'" in note for note in table.notes)}
    assert "'letzter_kontakt' holds dates and is not a feature" in caplog.text


# 10 (issue 12, item 5): dates are never categories.
def test_a_date_column_becomes_the_time_column_when_none_is_declared(caplog):
    frame = snapshot(signup=lambda n: [f"{1 + i % 28:02d}.{1 + i % 12:02d}.2025" for i in range(n)])
    with caplog.at_level(logging.WARNING):
        table = snapshot_table(frame, data_config())
    assert table.time_column == "signup" and table.inferred_time_column == "signup"
    assert "signup" not in table.feature_columns and "signup" in caplog.text
    assert pd.api.types.is_datetime64_any_dtype(table.frame["signup"])
    assert table.frame["signup"].iloc[12].day == 13, "31.12.2025 is read day first"


def test_a_second_date_column_stops_training_naming_the_fix():
    frame = snapshot(signup=lambda n: ["2025-01-02"] * n, last_call=lambda n: ["2025-03-04T10:00:00Z"] * n)
    with pytest.raises(InputError, match="hold dates.*Fix: declare"):
        snapshot_table(frame, data_config())


def test_month_names_are_not_dates():
    frame = snapshot(month=lambda n: np.resize(["Feb", "Mar", "may"], n))
    table = snapshot_table(frame, data_config())
    assert "month" in table.feature_columns and table.inferred_time_column is None


# 9: a struct in a category column; 6: serving errors are HTTP 400 without a traceback.
def test_a_struct_in_a_category_column_is_an_input_error():
    from leadscore.model.scorer import ScoringContract

    class Contract(ScoringContract):
        id_column, feature_columns = "lead_id", ["company_size", "visits"]
        numeric_columns = ["visits"]

    frame = pd.DataFrame({"lead_id": ["a", "b"], "company_size": ["1-10", {"size": 3}], "visits": [1.0, 2.0]})
    with pytest.raises(InputError, match="structured values") as error:
        Contract().validate(frame)
    assert error.value.column == "company_size" and error.value.rows == [2] and error.value.exit_code == 4


def test_a_contract_violation_is_an_mlflow_400_and_still_an_input_error():
    from mlflow.exceptions import MlflowException

    from leadscore.model.pyfunc import LeadScorerModel

    class Refusing:
        def predict(self, frame, reasons=True):
            raise InputError("non-numeric value (e.g. 'many')", column="visits", rows=[2], fix="give a number")

    with pytest.raises(MlflowException) as error:
        LeadScorerModel(Refusing()).predict(None, pd.DataFrame({"visits": ["many"]}))
    assert error.value.get_http_status_code() == 400
    assert "visits" in error.value.message and "many" in error.value.message
    assert isinstance(error.value, InputError) and error.value.exit_code == 4
    assert "stack_trace" not in error.value.serialize_as_json()


# 8: the same lead gets the same bits whatever the chunk size.
def test_the_logistic_raw_output_of_a_row_does_not_depend_on_its_batch():
    from leadscore.model.kinds import model_kind
    from leadscore.training.candidates import fit_logistic

    rng = np.random.default_rng(3)
    n = 3001
    X = pd.DataFrame({f"x{j}": rng.normal(size=n) for j in range(37)}).assign(
        size=rng.choice(["a", "b", "c"], n))
    y = rng.integers(0, 2, n)
    model = fit_logistic(X, y, 1.0, 5, 0)
    raw = model_kind("logistic").raw_output
    whole = raw(model, X)
    for rows, upto in ((1, 40), (7, n), (1000, n)):
        parts = np.concatenate([raw(model, X.iloc[i:min(i + rows, upto)]) for i in range(0, upto, rows)])
        assert whole[:upto].tobytes() == parts.tobytes(), f"chunks of {rows} rows give other bits"


# End to end on the session's champion: a German export scored as it comes.
def test_a_semicolon_cp1252_export_with_leading_zero_ids_scores_byte_exact(store, tmp_path):
    from leadscore.scoring import score_file

    leads = leads_to_score(60, seed=5).assign(lead_id=[f"{i:07d}" for i in range(60)])
    leads.loc[3, "company_size"] = "=HYPERLINK(\"http://x\")"
    path = tmp_path / "leads.csv"
    path.write_bytes(leads.to_csv(index=False, sep=";").encode("cp1252"))
    report = score_file(CHAMPION, path, tmp_path / "scores.csv")
    assert report.rows_scored == 60
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"lead_id": str})
    assert scores["lead_id"].tolist() == leads["lead_id"].tolist(), "ids byte-exact"

    comma = tmp_path / "comma.csv"
    leads.to_csv(comma, index=False)
    small = tmp_path / "small.csv"
    from leadscore.config import ScoringConfig

    score_file(CHAMPION, comma, small, settings=ScoringConfig(chunk_rows=7))
    assert pd.read_csv(small, dtype=str)["p_convert"].tolist() == pd.read_csv(tmp_path / "scores.csv", dtype=str)[
        "p_convert"].tolist(), "the same bits whatever the separator, encoding and chunk size"
    for column in pd.read_csv(tmp_path / "scores.csv", dtype=str, keep_default_na=False).select_dtypes("object"):
        cells = pd.read_csv(tmp_path / "scores.csv", dtype=str, keep_default_na=False)[column]
        assert not cells.str.match(r"^[=@+\t\r]").any(), column
    assert os.listdir(tmp_path) and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_ragged_row_in_a_scoring_file_is_one_reject_with_its_row_number(store, tmp_path):
    from leadscore.config import ScoringConfig
    from leadscore.scoring import score_file

    leads = leads_to_score(50, seed=6)
    text = leads.to_csv(index=False).splitlines()
    text[20] = text[20] + ",surplus"  # data row 20
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(text) + "\n")
    report = score_file(CHAMPION, path, tmp_path / "scores.csv", settings=ScoringConfig(max_reject_share=0.5))
    rejects = pd.read_csv(report.rejects)
    assert report.rows_read == 50 and report.rows_scored == 49
    assert rejects["row"].tolist() == [20] and rejects["reason"].tolist() == [UNREADABLE]
    assert "@example.com" not in rejects.to_csv()
    assert len(read_output(tmp_path / "scores.csv")) == 49
