"""Event-log features out of core (`leadscore.features.staged`): the activities read a chunk at a time and staged
on disk, DuckDB's query over them in parts within a memory limit, the rows streaming out in batches.

Given an event log in Parquet or CSV, when its features are built out of core, then they are exactly the rows of
the in-memory DuckDB builder, in its order, whatever the chunk, part and batch sizes; the leads table is read
without the columns the features do not need (the personal ones); and a bad activity in a later chunk stops the
build naming its row in the whole file, as the in-memory read does."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
from test_event_features_columnar import funnel_spec, log_config, ts

from leadscore.errors import InputError
from leadscore.features import columnar, staged
from leadscore.features.events import export_time, load_event_log
from leadscore.synthetic.funnel import generate_funnel, write_funnel

CHUNK_ROWS = 7_000  # activities read at a time: the funnel's are several chunks
BATCH_ROWS = 5_000  # rows out at a time
PART_LEADS = 400  # leads per part of the query: the funnel's 1,500 are four parts


@pytest.fixture(scope="module", params=["parquet", "csv"])
def folder(request, tmp_path_factory):
    """A small synthetic funnel written as Parquet or CSV files."""
    out = tmp_path_factory.mktemp(f"staged_{request.param}") / "history"
    write_funnel(generate_funnel(1500, 6), out, fmt=request.param)
    return out


@pytest.mark.parametrize("transition", [None, ("MQL", "SQL")], ids=["won", "MQL to SQL"])
def test_staged_training_rows_are_the_in_memory_rows(folder, transition):
    spec, cfg = funnel_spec(), log_config("2025-03-01", "2026-06-01")
    if transition:  # a transition target: the lead states add the time each lead entered the first stage
        cfg = cfg.model_copy(update={"from_stage": transition[0], "conversion_stage": transition[1]})
    log = load_event_log(folder, spec.layout)
    exported = export_time(log, spec.layout)
    expected = columnar.training_rows(log, spec, cfg, exported)
    with staged.staged_event_log(folder, spec, chunk_rows=CHUNK_ROWS) as staged_log:
        batches = list(staged.training_rows(staged_log, spec, cfg, exported, BATCH_ROWS,
                                                  part_leads=PART_LEADS, memory_limit="100MB"))
        seen = staged_log.log.activities_seen
    assert len(log.activities) > 2 * CHUNK_ROWS and len(batches) > 1 and expected["converted"].any()
    assert all(len(batch) <= BATCH_ROWS for batch in batches)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), expected, check_exact=True)
    # What the chunks saw of every activity is what the export-time rules need of the whole table.
    times = log.activities["timestamp"]
    assert seen.last_recorded == times[times <= seen.bound].max()
    assert list(seen.late_rows) == [int(i) + 1 for i in (times > seen.bound).to_numpy().nonzero()[0]]


def test_staged_features_as_of_are_the_in_memory_features_with_their_leads_positions(folder):
    spec, as_of = funnel_spec(), ts("2026-02-11 13:30")
    log = load_event_log(folder, spec.layout)
    expected = columnar.features_as_of(log.leads, log.activities, as_of, spec)
    with staged.staged_event_log(folder, spec, chunk_rows=CHUNK_ROWS, lead_columns=["company_size"]) as staged_log:
        batches = list(staged.features_as_of(staged_log, as_of, spec, 300, lead_columns=["company_size"],
                                              part_leads=PART_LEADS))
        lead_columns = list(staged_log.log.leads.columns)
        held, own = staged_log.log.leads.dtypes, staged_log.text_dtypes
    positions = pd.Series([p for batch, _ in batches for p in batch])
    assert positions.tolist() == list(range(len(log.leads)))
    got = pd.concat([frame for _, frame in batches], ignore_index=True)
    pd.testing.assert_frame_equal(got.drop(columns="company_size"), expected, check_exact=True)
    pd.testing.assert_series_equal(got["company_size"], log.leads["company_size"], check_exact=True)
    # Only the columns the features need are read: never the personal ones.
    assert set(lead_columns) == {"lead_id", "created_at", *spec.profile_columns, "company_size"}
    assert {"email", "first_name"} <= set(log.leads.columns)
    # Text profile columns are held as categories while staged, and the rows get the read dtype back.
    text = [c for c in spec.profile_columns if isinstance(log.leads[c].dtype, pd.StringDtype)]
    assert text and set(own) == set(text)
    assert all(isinstance(held[c], pd.CategoricalDtype) and own[c] == log.leads[c].dtype == got[c].dtype for c in text)


def test_a_bad_activity_in_a_later_chunk_is_named_by_its_row_in_the_whole_file(folder, tmp_path):
    activities = _table(folder, "activities")
    row = 2 * CHUNK_ROWS + 123  # 0-based, in the third chunk
    activities.loc[row, "lead_id"] = "NO-SUCH-LEAD"
    broken = _copy(folder, tmp_path / "broken", activities)
    with pytest.raises(InputError) as whole:
        load_event_log(broken, funnel_spec().layout)
    with pytest.raises(InputError) as chunked, staged.staged_event_log(broken, funnel_spec(), chunk_rows=CHUNK_ROWS):
        pass
    assert chunked.value.column == whole.value.column == "lead_id"
    assert chunked.value.rows == whole.value.rows == [row + 1]


def _table(folder, name: str) -> pd.DataFrame:
    path = next(folder.glob(f"{name}.*"))
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)


def _copy(folder, target, activities: pd.DataFrame):
    """`folder`'s event log in `target`, with `activities` as its activities table."""
    target.mkdir()
    for path in folder.iterdir():
        if not path.name.startswith("activities."):
            (target / path.name).write_bytes(path.read_bytes())
        elif path.suffix == ".parquet":
            activities.to_parquet(target / path.name, index=False)
        else:
            activities.to_csv(target / path.name, index=False)
    return target


@pytest.mark.parametrize("colliding", [False, True], ids=["hashes", "every-hash-the-same"])
def test_lead_positions_in_pieces_are_a_plain_lookup(monkeypatch, colliding):
    """Ids are hashed a few at a time; the positions are those of a dictionary of the ids, unknown and missing
    ids -1, also when hashes collide (then the text itself is looked up)."""
    from leadscore.features import events

    monkeypatch.setattr(events, "_ID_TEXT_ROWS", 3)
    if colliding:
        monkeypatch.setattr(pd.util, "hash_array", lambda values, categorize=False: np.zeros(len(values), "uint64"))
    leads = pd.DataFrame({"lead_id": pd.array([f"L{i}" for i in range(10)], dtype="str"),
                          "created_at": pd.date_range("2025-01-01", periods=10, tz="UTC")})
    lookup = events.LeadPositions(leads, funnel_spec().layout)
    ids = pd.Series(["L9", "L0", "nobody", None, "L4", "L4", "L10", "L1"], dtype="str")
    where = {lead: i for i, lead in enumerate(leads["lead_id"])}
    assert lookup.positions(ids).tolist() == [where.get(i, -1) for i in ids.fillna("")]
    assert lookup.positions(ids.iloc[:0]).tolist() == []


def test_parts_computed_ahead_keep_their_order_errors_and_cleanup():
    closed_in, started = [], []

    def parts(fail_after=None):
        try:
            for i in range(5):
                started.append(i)
                if i == fail_after:
                    raise InputError("part failed")
                yield i
        finally:
            closed_in.append(threading.current_thread().name)

    # every part, in order, each computed off the reader's thread
    assert list(staged._ahead(parts())) == [0, 1, 2, 3, 4]
    # an error in a part is raised to the reader, after the parts before it
    got = []
    with pytest.raises(InputError, match="part failed"):
        for part in staged._ahead(parts(fail_after=2)):
            got.append(part)
    assert got == [0, 1]
    # a reader that stops early closes the parts (their connection and folders) in their own thread; while it
    # holds a part, at most the next one is computed (memory holds one batch more, not a queue)
    started.clear()
    reader = staged._ahead(parts())
    assert next(reader) == 0
    time.sleep(0.3)
    assert max(started) <= 1
    reader.close()
    assert closed_in == ["leadscore-staged-parts"] * 3
