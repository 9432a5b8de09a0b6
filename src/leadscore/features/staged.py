"""Point-in-time features of an event log larger than memory: the activities staged on disk, DuckDB reading them.

The activities are read a chunk at a time (`load_event_log` with a sink): every chunk is checked as a whole
table is, so an error names its row in the whole file. Each chunk is then written as the feature query's
`activity_rows` (`leadscore.features.columnar`: the lead's row number, the time in microseconds, the type and
the filter columns) to a Parquet file in a temporary folder. DuckDB sums them per lead and snapshot interval
and adds the intervals up in each lead's snapshot order, into a file per range of leads, then runs the rest of
the query in parts (a snapshot and a range of leads at a time; see `_parts`) within a memory limit, spilling to
its own temporary folder past it; the rows stream out in batches, the profile columns joined to each batch by
row number, while DuckDB computes the next part (`_ahead`).

So memory holds the leads table (only the columns the features need, its text columns as categories), the
outcomes, one chunk of activities and DuckDB's working set, never the activities: 270 million activities of 10
million leads are about 13 GB in pandas. The rows are those of `columnar.features_as_of` and
`columnar.training_rows` over the same log, in the same order (tested).
"""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.config import EventLogConfig
from leadscore.data.sources import ReadOptions
from leadscore.features import columnar
from leadscore.features.events import (
    ACTIVITY_CHUNK_ROWS,
    EventFeatureSpec,
    EventLog,
    LeadPositions,
    check_label_windows,
    load_event_log,
    no_open_lead,
)


@dataclass(frozen=True)
class StagedEventLog:
    """An event log read for a build out of core: `log` holds the leads, the outcomes and what was seen of every
    activity (`log.activities_seen`); the activities themselves are in the Parquet file `activities`.

    The leads' text profile columns are held as categories (`text_dtypes`: each one's own dtype, given back to
    the rows built): a CRM's profile columns repeat a few values, and as text the id and profile columns of
    a million leads took 158 MB."""

    log: EventLog
    activities: Path
    text_dtypes: dict[str, object] = field(default_factory=dict)

    def with_text(self, rows: pd.DataFrame) -> pd.DataFrame:
        """`rows` built from the log with its profile columns in their own dtypes again."""
        return rows.astype({column: dtype for column, dtype in self.text_dtypes.items() if column in rows.columns})


class _TextAsCategories:
    """Holds the leads table's text `columns` as categories (`load_event_log`'s `on_leads`), noting each one's
    own dtype in `dtypes`."""

    def __init__(self, columns: Sequence[str]):
        self.columns, self.dtypes = columns, {}

    def __call__(self, leads: pd.DataFrame) -> pd.DataFrame:
        self.dtypes = {c: leads[c].dtype for c in self.columns if isinstance(leads[c].dtype, pd.StringDtype)}
        return leads.astype({c: "category" for c in self.dtypes})


class _ActivityWriter:
    """Writes each checked chunk of activities as the query's `activity_rows` to one Parquet file."""

    def __init__(self, path: Path, spec: EventFeatureSpec):
        self.path, self.spec = path, spec
        self._writer: pq.ParquetWriter | None = None

    def __call__(self, chunk: pd.DataFrame, positions: np.ndarray, late: np.ndarray) -> None:
        rows = columnar.activity_rows(chunk, pa.array(positions, type=pa.int64()), self.spec)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, rows.schema)
        self._writer.write_table(rows)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@contextmanager
def staged_event_log(folder, spec: EventFeatureSpec, *, read_options: ReadOptions | None = None,
                     with_outcomes: bool = True, lead_columns: Sequence[str] = (), late_after: pd.Timestamp | None = None,
                     chunk_rows: int = ACTIVITY_CHUNK_ROWS) -> Iterator[StagedEventLog]:
    """The event log in `folder` read and checked, its activities staged in a temporary folder (removed on exit).

    Of the leads table only the id, creation time, account id, `spec`'s profile columns and `lead_columns` are
    read. `late_after` is the moment after which an activity is late (`ActivitiesSeen.bound`; default now)."""
    with tempfile.TemporaryDirectory(prefix="leadscore-staged-") as work:
        writer = _ActivityWriter(Path(work) / "activity_rows.parquet", spec)
        text = _TextAsCategories(spec.profile_columns)
        try:
            log = load_event_log(folder, spec.layout, read_options=read_options, with_outcomes=with_outcomes,
                                 sink=writer, lead_columns=[*spec.profile_columns, *lead_columns],
                                 late_after=late_after, chunk_rows=chunk_rows, on_leads=text)
        finally:
            writer.close()
        yield StagedEventLog(log=log, activities=writer.path, text_dtypes=text.dtypes)


PART_LEADS = 500_000  # leads per part of the query (see `_parts`); parts of 1,000,000 fitted in a 1 GB limit


def _parts(staged: StagedEventLog, spec: EventFeatureSpec, snapshots: pa.Table, labels: EventLogConfig | None,
           batch_rows: int, part_leads: int, memory_limit: str | None, threads: int | None) -> Iterator[pa.RecordBatch]:
    """The rows of `columnar.feature_sql(spec, labels=labels)` over the staged log at the snapshots of
    `snapshots` (the query's `snapshot_rows`), in batches of up to `batch_rows` rows in the query's order. With
    `labels` (training) the log's outcomes are the query's `outcome_rows`.

    Run whole, the query joins, aggregates and sorts every row at once: at a million leads it ran out of a 1 GB
    limit. So it runs in two steps, each a range of `part_leads` leads at a time. First each range's running
    sums (`columnar.cumulative_sql`) and, for training, lead states (`columnar.lead_state_sql`) are written to
    Parquet files of its own, the sums from the activities of its leads only (a filtered scan of the staged
    activities, cheap next to the sums). Sorting all the sums by lead into one file instead filled 54 GB of disk
    with the sort's spill at 10,000,000 leads; a range's sums fit in memory. The query (`staged=True`) then runs
    once per snapshot and range, reading that range's files. The parts in turn give the rows in the whole
    query's order, with the same values (a part sees every interval and outcome of its leads)."""
    leads = columnar.lead_rows(staged.log.leads, spec)
    firsts = range(0, leads.num_rows, part_leads)
    # Only the slices are kept, not the unsorted outcome rows (19 million at 10 million leads); and they are made
    # before DuckDB's working set is taken, so that the sort's copy is not on top of it.
    outcomes = _by_range(_outcome_rows(staged.log, spec), firsts) if labels is not None else None
    sql = columnar.feature_sql(spec, labels=labels, staged=True)
    with tempfile.TemporaryDirectory(prefix="cumulative-", dir=staged.activities.parent) as folder, \
            columnar.connect(threads, memory_limit) as con:
        activities = columnar.sql_text(str(staged.activities))
        con.register("snapshot_rows", snapshots)
        def range_file(table: str, first: int) -> str:
            return columnar.sql_text(str(Path(folder) / f"{table}_{first}.parquet"))

        sums, states = {}, {}
        for first in firsts:
            sums[first] = range_file("cumulative_rows", first)
            con.execute(f"CREATE OR REPLACE VIEW activity_rows AS SELECT * FROM read_parquet({activities}) "
                        f"WHERE lead_row >= {first} AND lead_row < {first + part_leads}")
            # In snapshot order, so that a part's scan skips the row groups of later intervals.
            con.execute(f"COPY ({columnar.cumulative_sql(spec)} ORDER BY snapshot_row) TO {sums[first]} (FORMAT parquet)")
            if outcomes is not None:
                states[first] = range_file("lead_state_rows", first)
                con.register("lead_rows", leads.slice(first, part_leads))
                con.register("outcome_rows", outcomes.pop(first))
                con.execute(f"COPY ({columnar.lead_state_sql(spec, labels)}) TO {states[first]} (FORMAT parquet)")
        if outcomes is not None:
            con.unregister("outcome_rows")
        for snapshot in range(snapshots.num_rows):
            con.register("snapshot_rows", snapshots.slice(snapshot, 1))  # registering again replaces the view
            for first in firsts:
                if outcomes is None:
                    con.register("lead_rows", leads.slice(first, part_leads))
                else:
                    con.execute(f"CREATE OR REPLACE VIEW lead_state_rows AS SELECT * FROM read_parquet({states[first]})")
                # Only the sums valid at this snapshot: the query's own condition, given as constants so that the
                # scan skips the other rows.
                con.execute(f"CREATE OR REPLACE VIEW cumulative_rows AS SELECT * FROM read_parquet({sums[first]}) "
                            f"WHERE snapshot_row <= {snapshot} AND (next_row IS NULL OR next_row > {snapshot})")
                yield from columnar.arrow_batches(con, sql, batch_rows)


class _Failed:
    """An error raised while computing ahead, to be raised again where the rows are read."""

    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def _ahead(batches: Generator[pa.RecordBatch, None, None]) -> Iterator[pa.RecordBatch]:
    """`batches`, computed in a thread of their own one batch ahead of the reader.

    DuckDB and Arrow release the GIL, so the next part's query runs while the reader turns the last batch into
    rows and writes them out, instead of one waiting for the other. The thread starts on a batch only once the
    reader has taken the one before, so memory holds one batch more, not a queue of them. The generator (and so
    its DuckDB connection and temporary folders) is run, and closed, in that thread only. An error there is raised
    here; a reader that stops early stops it after the part it is in."""
    ready: queue.Queue = queue.Queue()
    stopped = threading.Event()

    def compute() -> None:
        try:
            for batch in batches:
                ready.put(batch)
                ready.join()  # until the reader has taken it
                if stopped.is_set():
                    return
            ready.put(_END)
        except BaseException as error:  # raised again in the reader's thread
            ready.put(_Failed(error))
        finally:
            batches.close()

    worker = threading.Thread(target=compute, name="leadscore-staged-parts", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            ready.task_done()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stopped.set()
        while worker.is_alive():  # take a batch it may be waiting to hand over, so that it ends
            try:
                ready.get(timeout=0.1)
                ready.task_done()
            except queue.Empty:
                pass
        worker.join()


def _by_range(outcomes: pa.Table, firsts: range) -> dict[int, pa.Table]:
    """The outcome rows of each range of leads: slices of one copy sorted by lead. A range given every outcome
    would aggregate them all again (at 10,000,000 leads, 19 million outcomes for each of 20 ranges)."""
    ordered = outcomes.sort_by("lead_row")  # outcomes of no known lead (null, or -1) last or first: in no part
    known = ordered.column("lead_row").slice(0, ordered.num_rows - ordered.column("lead_row").null_count).to_numpy()
    starts = np.searchsorted(known, [*firsts, firsts.stop], side="left")
    return {first: ordered.slice(start, stop - start) for first, start, stop in zip(firsts, starts, starts[1:])}


def features_as_of(staged: StagedEventLog, as_of: pd.Timestamp, spec: EventFeatureSpec, batch_rows: int, *,
                   lead_columns: Sequence[str] = (), part_leads: int = PART_LEADS, memory_limit: str | None = None,
                   threads: int | None = None) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Every lead's features as of `as_of`, `batch_rows` leads at a time in the order of the leads table: each
    batch with its leads' positions in that table. `lead_columns` of the leads table are added to the rows."""
    leads = staged.log.leads
    snapshots = columnar.snapshot_rows(pd.DatetimeIndex([as_of]), spec)
    for batch in _ahead(_parts(staged, spec, snapshots, None, batch_rows, part_leads, memory_limit, threads)):
        if batch.num_rows:
            yield batch.column("lead_row").to_numpy(), staged.with_text(columnar.feature_frame(batch, leads, spec,
                                                                                               lead_columns))


def _outcome_rows(log: EventLog, spec: EventFeatureSpec) -> pa.Table:
    """The query's `outcome_rows` of the log, each outcome keyed by its lead's row."""
    positions = LeadPositions(log.leads, spec.layout).positions(log.outcomes[spec.layout.id_column])
    return columnar.outcome_rows(log.outcomes, pa.array(positions, type=pa.int64()), spec)


def training_rows(staged: StagedEventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                  observed_until: pd.Timestamp, batch_rows: int, *, part_leads: int = PART_LEADS,
                  memory_limit: str | None = None, threads: int | None = None) -> Iterator[pd.DataFrame]:
    """The training rows of the staged log (`columnar.training_rows`' rows, in its order), `batch_rows` at a time."""
    log = staged.log
    if log.outcomes is None:
        raise ValueError("training rows need the outcomes: stage the log with_outcomes")
    snapshots = pd.DatetimeIndex(check_label_windows(log, spec, log_cfg, observed_until))
    empty = True
    for batch in _ahead(_parts(staged, spec, columnar.snapshot_rows(snapshots, spec), log_cfg, batch_rows, part_leads,
                               memory_limit, threads)):
        if batch.num_rows:
            empty = False
            yield staged.with_text(columnar.training_frame(batch, log.leads, spec, snapshots))
    if empty:
        raise no_open_lead(spec)
