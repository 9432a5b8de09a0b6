"""Input sources: each kind reads its locations, whole or in chunks, and anything else is refused by name."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadscore.data.sources import (
    EVENT_LOG,
    SNAPSHOT,
    ReadOptions,
    open_event_log,
    open_source,
    open_table,
    read_table,
    resolve,
    source_kinds,
)
from leadscore.errors import InputError


def leads(n: int = 25) -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": [f"L{i:03d}" for i in range(n)],
        "visits": [i % 7 for i in range(n)],
        "company_size": [("1-10", "11-50", None)[i % 3] for i in range(n)],
    })


def write(frame: pd.DataFrame, path, **csv):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False, **csv)
    else:
        frame.to_parquet(path, index=False)
    return path


def parquet_folder(frame: pd.DataFrame, folder, parts: int = 3):
    """A folder of Parquet part files, as Spark writes one (with its bookkeeping files beside them)."""
    folder.mkdir()
    size = -(-len(frame) // parts)
    for i in range(parts):
        frame.iloc[i * size:(i + 1) * size].to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000.parquet.crc").write_text("checksum")
    return folder


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells as the text they hold, missing as None: how a CSV stream and a typed read can be compared."""
    return frame.astype("string").astype(object).where(frame.notna(), None).reset_index(drop=True)


@pytest.mark.parametrize("name", ["leads.csv", "leads.parquet", "folder.parquet"])
def test_each_table_kind_reads_its_rows_and_columns(tmp_path, name):
    # Given the same leads as a CSV file, a Parquet file and a folder of Parquet parts
    expected = leads()
    path = tmp_path / name
    parquet_folder(expected, path) if name == "folder.parquet" else write(expected, path)

    # When it is opened and read
    table = open_table(path)
    frame = read_table(path)

    # Then its kind is a table, its header is the columns, and the rows are the leads, in order
    assert table.form == SNAPSHOT and resolve(path).form == SNAPSHOT
    assert table.columns == list(expected.columns), "the header, read without the rows"
    assert table.total_rows in (None, len(expected)), "a row count is exact when the format records it"
    assert frame["lead_id"].tolist() == expected["lead_id"].tolist()
    pd.testing.assert_frame_equal(as_text(frame), as_text(expected), check_dtype=False)


def test_an_event_log_folder_reads_its_tables(tmp_path):
    # Given an event log with leads as CSV and activities as Parquet, and no outcomes
    folder = tmp_path / "log"
    folder.mkdir()
    write(leads(5), folder / "leads.csv")
    activities = pd.DataFrame({"lead_id": ["L000", "L001"], "timestamp": ["2025-01-01", "2025-01-02"],
                               "activity_type": ["page_view", "email_open"]})
    write(activities, folder / "activities.parquet")

    # When it is opened
    source = open_source(folder)

    # Then it is an event log whose tables are found by name, whatever their format
    assert source.form == EVENT_LOG and open_event_log(folder).location == str(folder)
    assert source.has_table("leads") and source.has_table("activities") and not source.has_table("outcomes")
    assert source.table("activities").read()["activity_type"].tolist() == ["page_view", "email_open"]
    assert source.table("leads").columns == ["lead_id", "visits", "company_size"]
    with pytest.raises(InputError, match="event log table 'outcomes' not found") as missing:
        source.table("outcomes")
    assert "outcomes.parquet" in str(missing.value) and "outcomes.csv" in str(missing.value), "the fix names the files"


def test_an_unsupported_location_names_itself_and_the_supported_kinds(tmp_path):
    path = tmp_path / "leads.xlsx"
    path.write_bytes(b"not a table leadscore reads")
    with pytest.raises(InputError) as refused:
        open_source(path)
    message = str(refused.value)
    assert str(path) in message, message
    for kind in source_kinds():
        assert kind.description in message, f"{kind.name} missing from: {message}"


def test_a_missing_location_and_the_wrong_form_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        open_source(tmp_path / "nowhere.csv")
    with pytest.raises(InputError, match="file not found"):
        open_source(tmp_path / "nowhere")
    folder = tmp_path / "log"
    folder.mkdir()
    with pytest.raises(InputError, match="a table of leads is needed"):
        open_table(folder)
    with pytest.raises(InputError, match="event log folder not found"):
        open_event_log(tmp_path / "absent")


def test_empty_tables_are_refused_clearly(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="is empty"):
        read_table(empty)
    with pytest.raises(InputError, match="is empty"):
        open_table(empty).columns
    header_only = write(leads(0), tmp_path / "header.csv")
    with pytest.raises(InputError, match="has no rows"):
        read_table(header_only)


def test_csv_separator_and_missing_markers_are_honoured_whole_and_in_chunks(tmp_path):
    # Given a semicolon-separated export that writes "unknown" for a missing size
    frame = leads(6).assign(company_size=["1-10", "unknown", "11-50", "unknown", "1-10", "11-50"])
    path = write(frame, tmp_path / "semi.csv", sep=";")

    # When read with that separator and marker
    whole = read_table(path, csv_separator=";", na_values=["unknown"])
    table = open_table(path, ReadOptions(csv_separator=";", na_values=("unknown",)))
    streamed = pd.concat(table.chunks(["lead_id", "company_size"], 4), ignore_index=True)

    # Then both reads see the same columns and the markers as missing
    assert list(whole.columns) == ["lead_id", "visits", "company_size"] == table.columns
    assert whole["company_size"].isna().sum() == 2 and streamed["company_size"].isna().sum() == 2


@given(n=st.integers(1, 60), rows=st.integers(1, 25), name=st.sampled_from(["t.csv", "t.parquet", "parts.parquet"]))
def test_chunks_hold_the_same_rows_as_a_whole_read(tmp_path_factory, n, rows, name):
    # Given a table of n leads in one of the table kinds
    expected = leads(n)
    path = tmp_path_factory.mktemp("chunks") / name
    parquet_folder(expected, path) if name == "parts.parquet" else write(expected, path)

    # When it is read in chunks of `rows` rows with chosen columns
    columns = ["lead_id", "company_size", "visits"]
    chunks = list(open_table(path).chunks(columns, rows))

    # Then every chunk but the last is full, and together they are the whole read, row for row
    assert all(len(c) == rows for c in chunks[:-1]) and 0 < len(chunks[-1]) <= rows
    streamed = pd.concat(chunks, ignore_index=True)
    assert list(streamed.columns) == columns, "only the columns asked for, in that order"
    pd.testing.assert_frame_equal(as_text(streamed), as_text(read_table(path)[columns]), check_dtype=False)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_reading_selected_rows_gives_those_rows_of_the_whole_table(tmp_path, monkeypatch, suffix):
    import numpy as np

    from leadscore.data import sources

    # A cell holding the separator, a quote and a line break: a CSV row is a record, not a line.
    frame = pd.DataFrame({"id": [f"L{i:03d}" for i in range(50)],
                          "note": [f'says "hi",\nthen {i}' if i % 7 == 0 else f"plain {i}" for i in range(50)],
                          "n": [float(i) / 4 for i in range(50)]})
    path = tmp_path / f"leads{suffix}"
    frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
    monkeypatch.setattr(sources, "_SELECTED_ROWS_BATCH", 8)  # Parquet batches that the selection cuts across
    table = open_table(str(path), ReadOptions(text_columns=("id",)))
    whole = table.read()
    for rows in (np.arange(50) % 3 == 0, np.arange(50) >= 45, np.zeros(50, bool)):
        got = table.read(["id", "note", "n"], rows=rows)
        # the rows selected, in order, with the values the whole read gives them
        assert list(got.columns) == ["id", "note", "n"] and len(got) == int(rows.sum())
        pd.testing.assert_frame_equal(got.astype("string"), whole[rows].reset_index(drop=True).astype("string"))
