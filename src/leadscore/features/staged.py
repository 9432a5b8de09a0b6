"""Point-in-time features of an event log larger than memory: the activities staged on disk, DuckDB reading them.

The activities are read a chunk at a time (`load_event_log` with a sink): every chunk is checked as a whole
table is, so an error names its row in the whole file. Each chunk is then written as the feature query's
`activity_rows` (`leadscore.features.columnar`: the lead's row number, the time in microseconds, the type and
the filter columns) to a Parquet file in a temporary folder. DuckDB sums them per lead and snapshot interval
into a file per range of leads, then runs the rest of the query in parts (a snapshot and a range of leads at a
time; see `_parts`) within a memory limit, spilling to its own temporary folder past it; the rows stream out in
batches, the profile columns joined to each batch by row number.

So memory holds the leads table (only the columns the features need, its text columns as categories), the
outcomes, one chunk of activities and DuckDB's working set, never the activities: 270 million activities of 10
million leads are about 13 GB in pandas. The rows are those of `columnar.features_as_of` and
`columnar.training_rows` over the same log, in the same order (tested).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
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


def _parts(staged: StagedEventLog, spec: EventFeatureSpec, leads: pa.Table, snapshots: pa.Table,
           outcomes: pa.Table | None, sql: str, batch_rows: int, part_leads: int, memory_limit: str | None,
           threads: int | None) -> Iterator[pa.RecordBatch]:
    """`sql` (a `columnar.feature_sql(..., staged_intervals=True)`) over the staged log and the query's tables
    `lead_rows`, `snapshot_rows` and `outcome_rows` (training only), in batches of up to `batch_rows` rows in the
    query's order.

    Run whole, the query joins, aggregates and sorts every row at once: at a million leads it ran out of a 1 GB
    limit. So it runs in two steps, each a range of `part_leads` leads at a time. First the per-interval sums of
    the activities (`columnar.interval_sql`) are written to one Parquet file per range, each from the activities
    of its leads only (a filtered scan of the staged activities, cheap next to the sums). Sorting all the sums
    by lead into one file instead filled 54 GB of disk with the sort's spill at 10,000,000 leads; a range's sums
    fit in memory. The query then runs once per snapshot and range, reading that range's file and given that
    range's leads and outcomes only (`_by_range`). The parts in turn give the rows in the whole query's order,
    with the same values (a part sees every interval and outcome of its leads)."""
    firsts = range(0, leads.num_rows, part_leads)
    # Replaced by its slices, so that the unsorted outcomes are not kept (19 million rows at 10 million leads); and
    # before DuckDB's working set is taken, so that the sort's copy is not on top of it.
    outcomes = _by_range(outcomes, firsts) if outcomes is not None else None
    with tempfile.TemporaryDirectory(prefix="intervals-", dir=staged.activities.parent) as folder, \
            columnar.connect(threads, memory_limit) as con:
        activities = columnar.sql_text(str(staged.activities))
        con.register("snapshot_rows", snapshots)
        intervals = {}
        for first in firsts:
            intervals[first] = columnar.sql_text(str(Path(folder) / f"interval_rows_{first}.parquet"))
            con.execute(f"CREATE OR REPLACE VIEW activity_rows AS SELECT * FROM read_parquet({activities}) "
                        f"WHERE lead_row >= {first} AND lead_row < {first + part_leads}")
            con.execute(f"COPY ({columnar.interval_sql(spec)}) TO {intervals[first]} (FORMAT parquet)")
        for snapshot in range(snapshots.num_rows):
            con.register("snapshot_rows", snapshots.slice(snapshot, 1))  # registering again replaces the view
            for first in firsts:
                con.register("lead_rows", leads.slice(first, part_leads))
                if outcomes is not None:
                    con.register("outcome_rows", outcomes[first])
                con.execute(f"CREATE OR REPLACE VIEW interval_rows AS SELECT * FROM read_parquet({intervals[first]})")
                yield from columnar.arrow_batches(con, sql, batch_rows)


def _by_range(outcomes: pa.Table, firsts: range) -> dict[int, pa.Table]:
    """The outcome rows of each range of leads: slices of one copy sorted by lead. A part given every outcome
    would aggregate them all again (at 10,000,000 leads, 19 million outcomes in each of 540 parts)."""
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
    snapshots = columnar.snapshot_rows(pd.DatetimeIndex([as_of]))
    sql = columnar.feature_sql(spec, staged_intervals=True)
    for batch in _parts(staged, spec, columnar.lead_rows(leads, spec), snapshots, None, sql, batch_rows, part_leads,
                        memory_limit, threads):
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
    sql = columnar.feature_sql(spec, labels=log_cfg, staged_intervals=True)
    empty = True
    # The outcome rows are made in the call, so that only the parts hold them (and then only sorted).
    for batch in _parts(staged, spec, columnar.lead_rows(log.leads, spec), columnar.snapshot_rows(snapshots),
                        _outcome_rows(log, spec), sql, batch_rows, part_leads, memory_limit, threads):
        if batch.num_rows:
            empty = False
            yield staged.with_text(columnar.training_frame(batch, log.leads, spec, snapshots))
    if empty:
        raise no_open_lead(spec)
