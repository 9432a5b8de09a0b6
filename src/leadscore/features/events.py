"""Point-in-time features and labels from an event log.

A training row is a lead *as it looked at a snapshot time*: only events strictly before the
snapshot are used, the label is whether the lead converted within the horizon after it, and
leads that had already reached a terminal stage (won or lost) before the snapshot are left out.
With a transition target (`event_log.from_stage`, e.g. MQL → SQL) a lead has a row only once it has
reached `from_stage` before the snapshot and not yet `conversion_stage`, and the label is whether it
reaches `conversion_stage` within the horizon.
Changing or deleting events after the snapshot therefore changes no feature.

Lead ids are read as text in every table (`000123` stays `000123`). Events dated before their lead's
creation are counted and reported (a warning naming the table and the count), since they usually mean
a merged or re-created lead; they are used as they are.

Accounts (`accounts` in the config): the leads table names each lead's account in `accounts.column`, which is
never a feature (a lead not matched to an account leaves it empty). With `accounts.table` the folder also holds
an accounts table (the account id and firmographics): its ids must be filled and unique, every account a lead
names must be in it, and its columns that the leads table lacks are joined onto the leads (a column in both
keeps the lead's own value; a lead without an account gets them empty).

The export time (`export_time`): `event_log.exported_at` when declared, else the last recorded time (lead
creation, activity, outcome), but never later than now. Nothing in an export can happen after it was
taken, so at training events and leads dated later (a typo such as 2150, a clock gone wrong) are refused
with their count and rows (`after_export`), or left out with their count logged when
`event_log.drop_events_after_export` says so. Labels are observed up to the export time.

This module's `features_as_of` and `training_rows` are the pandas builder, the reference; training builds
its rows with the engine `event_log.engine` names (`leadscore.features.engines`), by default DuckDB
(`leadscore.features.columnar`: the same rows from one SQL query over all snapshots).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadscore.config import Config, EventLogConfig, Signal
from leadscore.data.row_checks import missing_ids
from leadscore.data.sources import ReadOptions, open_event_log, read_rows
from leadscore.data.validation import (
    check_ids,
    is_date_column,
    parse_timestamps,
    require_columns,
    require_not_null,
    row_numbers,
)
from leadscore.errors import ConfigError, InputError

log = logging.getLogger(__name__)
_log = log  # for functions whose event-log argument is named `log`

SNAPSHOT_COLUMN = "snapshot_at"
LABEL_COLUMN = "converted"
DAYS_TO_CONVERSION = "days_to_conversion"  # label-side information: never a feature
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class ActivitiesSeen:
    """What a chunk-by-chunk read of the activities saw of every row, kept or not (`load_event_log` with `keep`):
    the facts the export-time rules need of the whole table, where only the kept leads' rows stay in memory."""

    bound: pd.Timestamp  # the declared export time, else the moment of reading: later rows are late
    last_recorded: pd.Timestamp | None  # the latest activity time at or before `bound`
    late_rows: tuple[int, ...]  # 1-based rows of the table dated after `bound` (kept only without `drop_late`)
    before_creation: int  # rows dated before their lead's creation
    activity_types: tuple[str, ...]  # every activity type, sorted


@dataclass(frozen=True)
class EventLog:
    """Validated event-log tables with UTC timestamps.

    With a training sample (`load_event_log`'s `keep`, `leadscore.training.sampling`, whose other leads are left
    out next), `leads` holds every lead's id, creation time and account (and the accounts table's columns),
    which the rules about the whole export need, and `sampled_leads` every column of the sampled leads;
    `activities_seen` is set when only some leads' activities were kept while reading: it holds what the rules
    about the whole table need."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    outcomes: pd.DataFrame | None
    activities_seen: ActivitiesSeen | None = None
    sampled_leads: pd.DataFrame | None = None


@dataclass(frozen=True)
class EventLogLayout:
    """Table and column names of an event log."""

    id_column: str = "lead_id"
    created_column: str = "created_at"
    timestamp_column: str = "timestamp"
    activity_type_column: str = "activity_type"
    stage_column: str = "stage"
    leads_table: str = "leads"
    activities_table: str = "activities"
    outcomes_table: str = "outcomes"
    # Defaults, so that a layout pickled inside a model trained before accounts still loads (as no accounts).
    accounts_table: str | None = None  # the accounts table in the folder, joined onto the leads
    account_column: str | None = None  # each lead's account id (empty: none), as in the accounts table; never a feature

    @classmethod
    def from_config(cls, cfg: Config) -> EventLogLayout:
        """The layout the config declares (`event_log`, `data.id_column` and `accounts`)."""
        log_cfg = cfg.event_log
        accounts = cfg.accounts
        return cls(
            id_column=cfg.data.id_column or "lead_id", created_column=log_cfg.created_column,
            timestamp_column=log_cfg.timestamp_column, activity_type_column=log_cfg.activity_type_column,
            stage_column=log_cfg.stage_column, leads_table=log_cfg.leads_table,
            activities_table=log_cfg.activities_table, outcomes_table=log_cfg.outcomes_table,
            accounts_table=accounts.table if accounts is not None else None,
            account_column=accounts.column if accounts is not None else None,
        )


@dataclass(frozen=True)
class EventFeatureSpec:
    """How to turn an event log into one feature row per lead; stored inside the scorer."""

    layout: EventLogLayout
    terminal_stages: tuple[str, ...]
    profile_columns: tuple[str, ...]
    signals: dict[str, Signal] = field(default_factory=dict)
    half_life_days: float = 30.0

    @property
    def feature_columns(self) -> list[str]:
        derived = [f"{name}_{kind}" for name in self.signals for kind in ("count", "decayed", "days_since")]
        return [*self.profile_columns, "lead_age_days", "days_since_last_activity", *derived]


# Activities read at a time when they are not all kept: memory holds one chunk, not the table.
ACTIVITY_CHUNK_ROWS = 1_000_000
# Given the leads and outcomes, which leads to keep (a mask over the leads), or None for every lead.
KeepLeads = Callable[[pd.DataFrame, pd.DataFrame | None], "np.ndarray | None"]
# Takes each checked chunk of activities as it is read, with the position of each one's lead in the leads table and
# which of them are dated after the bound (`ActivitiesSeen.bound`).
ActivitySink = Callable[[pd.DataFrame, np.ndarray, np.ndarray], None]


def load_event_log(folder, layout: EventLogLayout, *, na_values=(), with_outcomes=True,
                   read_options: ReadOptions | None = None, keep: KeepLeads | None = None,
                   sink: ActivitySink | None = None, lead_columns: Sequence[str] | None = None,
                   late_after: pd.Timestamp | None = None, drop_late: bool = False,
                   chunk_rows: int | None = None,
                   on_leads: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> EventLog:
    """Read and validate leads, activities and (optionally) outcomes from a folder.

    `na_values` are cell texts that mean "missing" in the leads table (the profile columns); `read_options`
    give the CSV separator and encoding (default: detected). Ids are read as text in every table. With
    `layout.account_column` the leads table must have that column; with `layout.accounts_table` that table is
    read too and its columns the leads lack are joined onto them (`join_accounts`). `lead_columns` (scoring:
    the model's) reads only those columns of the leads table besides the id, creation time and account id;
    the personal columns of an export are then never read.

    The activities are read whole, unless they are not all to be kept: then they are read `chunk_rows` (default
    `ACTIVITY_CHUNK_ROWS`) at a time, every chunk checked as a whole table is (errors name rows of the whole
    table), and `late_after` (the declared export time, else now) and `drop_late` apply the export-time rule to
    every activity as it is read (`ActivitiesSeen`, used by `export_time`, `after_export` and
    `events_before_creation`). That is so with
    - `keep` (a training sample): given the validated leads (their id, creation time and account) and outcomes,
      a mask of the leads to keep, or None for all. Only the kept leads' activities stay in memory, and only
      their other columns are read (`EventLog.sampled_leads`: the personal columns of the others never are);
      the leads' keys and the outcomes stay whole: the caller leaves out the other leads once the export-time
      rules have seen every row;
    - `sink` (a build out of core, `leadscore.features.staged`): every checked chunk is handed to it and none is
      kept (the log's activities are then empty).

    `on_leads` replaces the checked leads table before the activities are read (a build out of core holds its
    text columns as categories, so that the reading's peak memory does not hold them as text)."""
    base = read_options or ReadOptions()
    ids = (layout.id_column, *((layout.account_column,) if layout.account_column else ()))
    plain = replace(base, na_values=(), text_columns=(*ids, *base.text_columns))
    source = open_event_log(folder, plain)
    lead_table = source.table(layout.leads_table, replace(plain, na_values=tuple(na_values) or base.na_values))
    header = lead_table.columns
    wanted = [c for c in header if lead_columns is None or c in {*ids, layout.created_column, *lead_columns}]
    keys = [c for c in wanted if c in {*ids, layout.created_column}]
    # With a sample the leads table is read in two passes: first what the sample and the rules about the whole
    # export need of every lead (`keys`), then the other columns of the sampled leads alone.
    leads = read_rows(lead_table, keys if keep is not None else (None if lead_columns is None else wanted))
    activity_table = source.table(layout.activities_table)
    outcomes = read_rows(source.table(layout.outcomes_table)) if with_outcomes else None

    lead_fix = "export the leads table with its id and creation time"
    require_columns(leads, [layout.id_column, layout.created_column], "leads", lead_fix)
    check_ids(leads, layout.id_column, "leads")
    require_not_null(leads, layout.created_column, "leads", "give every lead its creation time")
    leads = leads.assign(**{layout.created_column: parse_timestamps(leads, layout.created_column, "leads")})
    if layout.account_column is not None:
        require_columns(leads, [layout.account_column], "leads",
                        f"export the leads table with each lead's account id in '{layout.account_column}', or name "
                        "the column that holds it in accounts.column")
    if layout.accounts_table is not None:
        with_na = replace(plain, na_values=tuple(na_values) or base.na_values)
        accounts = read_rows(source.table(layout.accounts_table, with_na))
        leads = join_accounts(leads, accounts, layout, header)

    if outcomes is not None:
        outcomes = _validate_events(outcomes, "outcomes", layout, layout.stage_column, leads)
    kept = keep(leads, outcomes) if keep is not None else None
    sampled = None
    if keep is not None:
        rest = [c for c in wanted if c not in keys]
        if kept is None:
            leads = _beside(leads, read_rows(lead_table, rest), header) if rest else leads
        else:
            kept = np.asarray(kept, bool)
            picked = leads[kept].reset_index(drop=True)
            sampled = _beside(picked, lead_table.read(rest, rows=kept), header) if rest else picked
    if on_leads is not None:
        leads = on_leads(leads)
    if kept is None and sink is None:
        activities = _validate_events(read_rows(activity_table), "activities", layout, layout.activity_type_column,
                                      leads)
        return EventLog(leads=leads, activities=activities, outcomes=outcomes)
    bound = late_after if late_after is not None else pd.Timestamp(datetime.now(timezone.utc))
    parts: list[pd.DataFrame] = []
    if sink is None:

        def sink(chunk: pd.DataFrame, positions: np.ndarray, late: np.ndarray) -> None:
            parts.append(chunk[kept[positions] & ~(late & drop_late)])

    seen = read_activities(activity_table, layout, LeadPositions(leads, layout), bound, sink,
                           chunk_rows or ACTIVITY_CHUNK_ROWS)
    activities = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=activity_table.columns)
    return EventLog(leads=leads, activities=activities, outcomes=outcomes, activities_seen=seen, sampled_leads=sampled)


def _beside(leads: pd.DataFrame, others: pd.DataFrame, header: Sequence[str]) -> pd.DataFrame:
    """`others` (more columns of the same leads, in the same order) beside `leads`, the table's columns in its
    order, then those the accounts table added."""
    merged = pd.concat([leads, others.set_axis(leads.index)], axis=1)
    return merged[[c for c in header if c in merged.columns] + [c for c in leads.columns if c not in header]]


def read_activities(table, layout: EventLogLayout, lookup: LeadPositions, bound: pd.Timestamp, sink: ActivitySink,
                    chunk_rows: int) -> ActivitiesSeen:
    """Every activity of `table`, read and checked chunk by chunk and handed to `sink`; what was seen of every row."""
    ts = layout.timestamp_column
    late_rows, types = [], set()
    last, before_creation, first_row = None, 0, 0
    for chunk in table.chunks(table.columns, chunk_rows):
        chunk, positions = _checked_events(chunk, "activities", layout, layout.activity_type_column, lookup, first_row)
        late = (chunk[ts] > bound).to_numpy(bool)
        late_rows += [first_row + int(i) + 1 for i in np.flatnonzero(late)]
        on_time = chunk[ts][~late]
        if len(on_time):
            last = on_time.max() if last is None else max(last, on_time.max())
        before_creation += int(lookup.before_creation(chunk[ts], positions).sum())
        types.update(chunk[layout.activity_type_column].astype("string").unique())
        sink(chunk, positions, late)
        first_row += len(chunk)
    if not first_row:
        raise InputError(f"{table.location} has no rows", fix="export the table again with data")
    return ActivitiesSeen(bound=bound, last_recorded=last, late_rows=tuple(late_rows),
                          before_creation=before_creation, activity_types=tuple(sorted(types)))


class LeadPositions:
    """Each event's lead, as its position in the leads table, and the lead's creation time.

    One hash table of the lead ids serves every event table and every chunk of one: pandas' `isin` and `map`
    build theirs anew on every call, which took 300 of 380 s when 27 million activities of 1 million leads
    were read a million at a time. Ids are looked up by a 64-bit hash of their text, and every match is
    then compared as text, so that an id whose hash another id shares never matches it. Ids are made Python
    strings a million at a time (`id_texts`), never all at once."""

    def __init__(self, leads: pd.DataFrame, layout: EventLogLayout):
        hashes, texts = [], []
        for text in id_texts(leads[layout.id_column]):  # a Python string per lead is the costly part: once each
            hashes.append(pd.util.hash_array(text, categorize=False))
            texts.append(pa.array(text, type=pa.large_string()))
        self._ids = pa.concat_arrays(texts) if texts else pa.array([], type=pa.large_string())
        hashes = pd.Index(np.concatenate(hashes) if hashes else np.empty(0, "uint64"))
        # Two leads sharing a 64-bit hash (about one chance in 10**11 for a million ids): look up the text itself.
        self._by_text = not hashes.is_unique
        self._index = pd.Index(self._ids.to_numpy(zero_copy_only=False)) if self._by_text else hashes
        self.created = leads[layout.created_column].reset_index(drop=True)

    def positions(self, ids: pd.Series) -> np.ndarray:
        """The position of each id's lead in the leads table, -1 for an id no lead has."""
        return np.concatenate([self._positions(text) for text in id_texts(ids)] or [np.empty(0, "intp")])

    def _positions(self, text: np.ndarray) -> np.ndarray:
        found = self._index.get_indexer(text if self._by_text else pd.util.hash_array(text, categorize=False))
        hit = np.flatnonzero(found >= 0)
        if len(hit) and not self._by_text:
            same = pc.equal(self._ids.take(pa.array(found[hit])), pa.array(text[hit], type=pa.large_string()))
            found[hit[~same.to_numpy(zero_copy_only=False)]] = -1
        return found

    def before_creation(self, times: pd.Series, positions: np.ndarray) -> np.ndarray:
        """Whether each event (of a known lead) is dated before its lead's creation."""
        created = self.created.take(np.maximum(positions, 0)).reset_index(drop=True)
        return times.reset_index(drop=True).lt(created).to_numpy(bool) & (positions >= 0)


_ID_TEXT_ROWS = 1_000_000  # ids made Python strings at a time (all at once, a million ids took 250 MB more)


def id_texts(ids: pd.Series) -> Iterator[np.ndarray]:
    """The ids as Python strings (missing ones empty), `_ID_TEXT_ROWS` at a time."""
    for first in range(0, len(ids), _ID_TEXT_ROWS):
        yield ids.iloc[first:first + _ID_TEXT_ROWS].astype("string").fillna("").to_numpy(dtype=object)


def join_accounts(leads: pd.DataFrame, accounts: pd.DataFrame, layout: EventLogLayout,
                  header: Sequence[str] | None = None) -> pd.DataFrame:
    """`leads` with the columns of the accounts table that it lacks, each lead getting its account's values.

    The accounts table's ids (`layout.account_column`) must be filled and unique and hold every account a lead
    names (`InputError`s naming the column and the rows); a lead with an empty account id has no account and gets
    the joined columns empty. A column in both tables (`header`: the leads table's columns, when only some were
    read) keeps the lead's own value: a CRM copies company fields onto its leads, and the lead's copy is what
    scoring sees. Rows and their order are kept."""
    column, table = layout.account_column, layout.accounts_table
    require_columns(accounts, [column], table, f"export the {table} table with the account id in '{column}', the "
                    "column the leads name their account in")
    ids = accounts[column]
    empty = missing_ids(ids)
    if empty.any():
        raise InputError(f"account id is empty in {table}", column=column, rows=row_numbers(accounts, empty),
                         fix="give every account its id, or remove the rows")
    duplicated = ids.duplicated(keep=False)
    if duplicated.any():
        raise InputError(f"duplicate account ids in {table}", column=column, rows=row_numbers(accounts, duplicated),
                         fix="keep one row per account (deduplicate the export)")
    # Compare as text, so that an id the two tables were exported with in different types still matches.
    index = pd.Index(ids.astype("string"))
    wanted = leads[column].astype("string").mask(missing_ids(leads[column]))
    unknown = wanted.notna() & ~wanted.isin(index)
    if unknown.any():
        raise InputError(f"leads name account ids that are not in the {table} table", column=column,
                         rows=row_numbers(leads, unknown),
                         fix=f"export the {table} table with every account the leads name, or correct the leads' "
                         "account ids")
    own = set(leads.columns) | set(header or ())  # the leads table's columns, read now or not
    shared = [c for c in accounts.columns if c != column and c in own]
    if shared:
        log.info("%s: column(s) %s are in the leads table too; each lead keeps its own value", table,
                 ", ".join(f"'{c}'" for c in shared))
    added = [c for c in accounts.columns if c != column and c not in own]
    without = int(wanted.isna().sum())
    if without:
        log.info("leads: %d lead(s) name no account; the %s columns stay empty for them", without, table)
    joined = accounts[added].set_axis(index).reindex(wanted.to_numpy()).set_axis(leads.index)
    return pd.concat([leads, joined], axis=1)


def _validate_events(events, table, layout: EventLogLayout, kind_column, leads) -> pd.DataFrame:
    """`events` checked against `leads` and their timestamps parsed."""
    return _checked_events(events, table, layout, kind_column, LeadPositions(leads, layout))[0]


def _checked_events(events, table, layout: EventLogLayout, kind_column, lookup: LeadPositions,
                    first_row: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """`events` checked and their timestamps parsed, and the position of each one's lead (`lookup`); `first_row`
    rows of the table come before them (a chunk), so that every row an error or warning names is a row of the
    whole table."""
    id_column, timestamp_column = layout.id_column, layout.timestamp_column
    try:
        require_columns(events, [id_column, timestamp_column, kind_column], table, f"export {table} with these columns")
        for column in (id_column, timestamp_column, kind_column):
            require_not_null(events, column, table, "fill the value or remove the event")
        events = events.assign(**{timestamp_column: parse_timestamps(events, timestamp_column, table)})
    except InputError as error:
        if not first_row:
            raise
        raise InputError(error.problem, column=error.column, rows=[first_row + r for r in error.rows],
                         fix=error.fix) from None
    positions = lookup.positions(events[id_column])
    unknown = positions < 0
    if unknown.any():
        raise InputError(
            f"{table} refer to lead ids that are not in the leads table", column=id_column,
            rows=[first_row + r for r in row_numbers(events, unknown)], fix="export the leads and their events together",
        )
    early = lookup.before_creation(events[timestamp_column], positions)
    if early.any():
        log.warning("%s: %d event(s) dated before their lead's creation (first rows: %s); they are used as they are",
                    table, int(early.sum()), ", ".join(str(first_row + r) for r in row_numbers(events, early)[:10]))
    return events, positions


def events_before_creation(log: EventLog, layout: EventLogLayout) -> dict[str, int]:
    """How many activities and outcomes are dated before their lead's creation, by table."""
    counts = {}
    lookup = LeadPositions(log.leads, layout)
    for table, events in (("activities", log.activities), ("outcomes", log.outcomes)):
        if events is not None:
            positions = lookup.positions(events[layout.id_column])
            counts[table] = int(lookup.before_creation(events[layout.timestamp_column], positions).sum())
    if log.activities_seen is not None:  # every activity was counted while reading, kept or not
        counts["activities"] = log.activities_seen.before_creation
    return counts


def declared_export_time(declared: datetime | None) -> pd.Timestamp | None:
    """`event_log.exported_at` as a UTC timestamp (a time without zone is UTC), or None when not declared."""
    if declared is None:
        return None
    moment = pd.Timestamp(declared)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def export_time(log: EventLog, layout: EventLogLayout, declared: datetime | None = None,
                now: pd.Timestamp | None = None) -> pd.Timestamp:
    """When the export was taken: `declared` (event_log.exported_at), else the last recorded time up to `now`
    (default: the clock), so that a time in the future never becomes the export time by default."""
    if declared is not None:
        return declared_export_time(declared)
    seen = log.activities_seen
    if now is None:  # activities read with only some leads kept were checked against the moment they were read
        now = seen.bound if seen is not None else pd.Timestamp(datetime.now(timezone.utc))
    parts = [log.leads[layout.created_column],
             log.activities[layout.timestamp_column] if seen is None else pd.Series([seen.last_recorded])]
    if log.outcomes is not None:
        parts.append(log.outcomes[layout.timestamp_column])
    recorded = pd.concat([part.dropna() for part in parts], ignore_index=True)
    last = recorded[recorded <= now].max() if len(recorded) else pd.NaT
    return now if pd.isna(last) else last


def after_export(log: EventLog, layout: EventLogLayout, exported: pd.Timestamp, *, drop: bool = False,
                 declared: bool = False) -> EventLog:
    """The log without anything dated after `exported`: refused (an `InputError` with the count and rows of
    the first table holding any) unless `drop`, when they are left out with their counts logged. A lead
    created after the export is left out with its events. Activities read with only some leads kept were
    checked as they were read (`ActivitiesSeen`), every row of the table."""
    seen = log.activities_seen
    late = {"leads": (log.leads[layout.created_column] > exported).to_numpy(),
            "activities": (log.activities[layout.timestamp_column] > exported).to_numpy()}
    if log.outcomes is not None:
        late["outcomes"] = (log.outcomes[layout.timestamp_column] > exported).to_numpy()
    counts = {table: int(mask.sum()) for table, mask in late.items() if mask.any()}
    rows = {table: [int(i) + 1 for i in mask.nonzero()[0]] for table, mask in late.items()}
    if seen is not None:
        counts.pop("activities", None)
        if seen.late_rows:
            counts = _in_table_order({**counts, "activities": len(seen.late_rows)})
            rows["activities"] = list(seen.late_rows)
    if not counts:
        return log
    if not drop:
        table = next(iter(counts))
        raise _late_records(counts, exported, declared, layout, table, rows[table])
    said = ", ".join(f"{n} in {table}" for table, n in counts.items())
    _log.warning("%d record(s) dated after the export time %s are left out (event_log.drop_events_after_export): %s",
                 sum(counts.values()), exported, said)
    leads = log.leads[~late["leads"]]
    kept = leads[layout.id_column]

    def keep(events, table):
        return events[~late[table] & events[layout.id_column].isin(kept).to_numpy()].reset_index(drop=True)

    return replace(log, leads=leads.reset_index(drop=True), activities=keep(log.activities, "activities"),
                   outcomes=keep(log.outcomes, "outcomes") if log.outcomes is not None else None)


def _in_table_order(counts: dict[str, int]) -> dict[str, int]:
    return {table: counts[table] for table in ("leads", "activities", "outcomes") if table in counts}


def _late_records(counts: dict[str, int], exported: pd.Timestamp, declared: bool, layout: EventLogLayout, table: str,
                  rows: list[int]) -> InputError:
    said = ", ".join(f"{n} in {name}" for name, n in counts.items())
    source = "event_log.exported_at" if declared else "the last recorded time up to now"
    return InputError(
        f"{sum(counts.values())} record(s) are dated after the export time {exported} ({source}): {said}; "
        "nothing in an export can happen after it was taken", column=layout.created_column if table == "leads"
        else layout.timestamp_column, rows=rows,
        fix="correct those timestamps in the export; declare when it was taken in event_log.exported_at if the "
        "data really reach past today (a simulation); or set event_log.drop_events_after_export: true to leave "
        "them out",
    )


def profile_dates(log: EventLog, layout: EventLogLayout, profile, declared_categorical=()) -> list[str]:
    """The leads columns among `profile` that hold dates (typed, or text that is nearly all dates), which are
    never features; each is logged. `declared_categorical` columns are kept as the config says.

    Why not an age in days at the snapshot: a leads-table date is as the export saw it, not as of the snapshot
    (`last_activity_date`, `close_date`, `last_modified`), so its age would tell the model the future; and as a
    category a date is one level per day. A moment that matters belongs in the activities table, where a signal
    counts it as of each snapshot."""
    dated = [c for c in profile if c not in declared_categorical and is_date_column(log.leads[c])]
    for column in dated:
        _log.info("leads: column '%s' holds dates and is not a feature (a date in the leads table is as of the "
                  "export, not of the snapshot); record such moments as activities to count them with a signal",
                  column)
    return dated


def feature_spec(log: EventLog, cfg: Config, hidden: list[str] | None = None) -> EventFeatureSpec:
    """Decide the profile columns and signals from the training log and the config.

    `hidden` are the leads columns that may never be features: the personal and free-text ones decided
    on reading (`leadscore.training.dataset`); without it they are decided here, by the same rules."""
    log_cfg = cfg.event_log
    layout = EventLogLayout.from_config(cfg)
    if hidden is None:
        from leadscore.data.personal import find_personal_columns

        hidden = find_personal_columns(log.leads.drop(columns=[layout.id_column, layout.created_column]),
                                       cfg.data.personal_columns, cfg.data.not_personal)
    hidden = set(hidden) | set(cfg.data.exclude_columns)
    # The account id names a company, not a trait of the lead: as a feature it would memorise accounts.
    never = {layout.id_column, layout.created_column} | ({layout.account_column} if layout.account_column else set())
    profile = [c for c in log.leads.columns if c not in never | hidden]
    dated = profile_dates(log, layout, profile, cfg.data.categorical_columns)
    profile = [c for c in profile if c not in dated]
    types = (log.activities_seen.activity_types if log.activities_seen is not None
             else sorted(log.activities[layout.activity_type_column].unique()))
    signals = dict(log_cfg.signals) or {str(kind): Signal(activity_type=str(kind)) for kind in types}
    for name, signal in signals.items():
        missing = [key for key in signal.where if key not in log.activities.columns]
        if missing:
            raise ConfigError(f"signal '{name}' filters on {missing}, which the activities table does not have")
    return EventFeatureSpec(
        layout=layout,
        terminal_stages=tuple(log_cfg.terminal_stages),
        profile_columns=tuple(profile),
        signals=signals,
        half_life_days=log_cfg.half_life_days,
    )


def features_as_of(leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp, spec: EventFeatureSpec) -> pd.DataFrame:
    """One row per lead in `leads`: profile columns and activity features from events before `as_of`."""
    ids = leads[spec.layout.id_column]
    before = activities[(activities[spec.layout.timestamp_column] < as_of) & activities[spec.layout.id_column].isin(ids)]
    age_days = (as_of - before[spec.layout.timestamp_column]) / _DAY
    weight = np.power(0.5, age_days.to_numpy() / spec.half_life_days)

    out = leads[[spec.layout.id_column, *spec.profile_columns]].reset_index(drop=True)
    out["lead_age_days"] = ((as_of - leads[spec.layout.created_column]) / _DAY).to_numpy()
    last_seen = age_days.groupby(before[spec.layout.id_column].to_numpy()).min()
    out["days_since_last_activity"] = out[spec.layout.id_column].map(last_seen).astype("float64")

    for name, signal in spec.signals.items():
        mask = (before[spec.layout.activity_type_column] == signal.activity_type).to_numpy(dtype=bool, copy=True)
        for key, value in signal.where.items():
            mask &= (before[key].astype("string") == value).fillna(False).to_numpy(dtype=bool)
        grouped = pd.DataFrame({"w": weight[mask], "age": age_days.to_numpy()[mask]}).groupby(
            before[spec.layout.id_column].to_numpy()[mask]
        )
        stats = grouped.agg(count=("w", "size"), decayed=("w", "sum"), days_since=("age", "min"))
        mapped = {kind: out[spec.layout.id_column].map(stats[kind]) for kind in ("count", "decayed", "days_since")}
        out[f"{name}_count"] = mapped["count"].fillna(0).astype("float64")
        out[f"{name}_decayed"] = mapped["decayed"].fillna(0.0).astype("float64")
        out[f"{name}_days_since"] = mapped["days_since"].astype("float64")
    return out


def snapshot_times(log_cfg: EventLogConfig) -> list[pd.Timestamp]:
    """The configured as-of times, at midnight UTC."""
    first = pd.Timestamp(datetime.combine(log_cfg.snapshots.first, time(), tzinfo=timezone.utc))
    last = pd.Timestamp(datetime.combine(log_cfg.snapshots.last, time(), tzinfo=timezone.utc))
    return list(pd.date_range(first, last, freq=f"{log_cfg.snapshots.every_days}D"))


def check_label_windows(log: EventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                        observed_until: pd.Timestamp | None = None) -> list[pd.Timestamp]:
    """The snapshot times, once it is checked that the last one's label window ends by `observed_until` (the
    export time; default: the last activity or outcome); a `ConfigError` naming the latest possible one if not."""
    if observed_until is None:
        observed_until = max(log.activities[spec.layout.timestamp_column].max(),
                             log.outcomes[spec.layout.timestamp_column].max())
    snapshots = snapshot_times(log_cfg)
    horizon = pd.Timedelta(days=log_cfg.horizon_days)
    if snapshots[-1] + horizon > observed_until:
        latest = (observed_until - horizon).date()
        raise ConfigError(
            f"the label window of the last snapshot ({snapshots[-1].date()} + {log_cfg.horizon_days} days) ends after "
            f"the last recorded event ({observed_until.date()}), so its labels would be censored; "
            f"set event_log.snapshots.last to {latest} or earlier"
        )
    return snapshots


def check_target_stages(log: EventLog, layout: EventLogLayout, log_cfg: EventLogConfig) -> None:
    """For a transition target (`event_log.from_stage`), fail unless both of its stages occur in the outcomes.

    A stage name that the export spells otherwise would give no row (from_stage) or no conversion at all; the
    `ConfigError` lists the stages the outcomes hold."""
    if log_cfg.from_stage is None or log.outcomes is None:
        return
    seen = sorted(log.outcomes[layout.stage_column].astype("string").dropna().unique())
    absent = [f"event_log.{key}: '{name}'" for key, name in (("from_stage", log_cfg.from_stage),
                                                              ("conversion_stage", log_cfg.conversion_stage))
              if name not in seen]
    if absent:
        raise ConfigError(f"the transition target names stage(s) the outcomes never hold ({'; '.join(absent)}); "
                          f"stages seen in the {layout.outcomes_table} table: {', '.join(repr(s) for s in seen) or 'none'}")


def label_text(log_cfg: EventLogConfig) -> str:
    """What the label (and so p_convert) means for an event log, in one sentence for people."""
    if log_cfg.from_stage is not None:
        return (f"a lead that had reached stage `{log_cfg.from_stage}` but not yet `{log_cfg.conversion_stage}` or a "
                f"terminal stage reaches `{log_cfg.conversion_stage}` within {log_cfg.horizon_days} days after the "
                f"snapshot: p_convert is the probability of the transition {log_cfg.from_stage} → "
                f"{log_cfg.conversion_stage}")
    return f"the lead reached stage `{log_cfg.conversion_stage}` within {log_cfg.horizon_days} days after the snapshot"


def no_open_lead(spec: EventFeatureSpec) -> InputError:
    """The error when no lead is open at any snapshot time."""
    return InputError(
        "no lead was open at any snapshot time", column=spec.layout.created_column,
        fix="move event_log.snapshots into the period covered by the leads' creation times",
    )


def rows_per_lead(leads: pd.DataFrame, outcomes: pd.DataFrame, layout: EventLogLayout, terminal_stages,
                  snapshots: list[pd.Timestamp]) -> pd.Series:
    """How many training rows each lead gives (the snapshots at which it is open), by lead id, in the order of the
    leads table: counted from its creation and closing times alone, without building a feature.

    Exact for a conversion target; for a transition target (`event_log.from_stage`) an upper bound, since a lead
    must also have entered the stage, which only narrows its snapshots."""
    ids = leads[layout.id_column]
    terminal = outcomes[layout.stage_column].astype("string").isin(terminal_stages).fillna(False).to_numpy(bool)
    # Outcomes are matched to leads by position, not grouped and mapped by id: that made every id a Python string
    # at once, 2 GB more at 10,000,000 leads.
    lead = LeadPositions(leads, layout).positions(outcomes[layout.id_column][terminal])
    closed_at = outcomes[layout.timestamp_column][terminal].reset_index(drop=True)[lead >= 0]
    closed = closed_at.groupby(lead[lead >= 0]).min().reindex(np.arange(len(leads)))
    times = pd.DatetimeIndex(snapshots)
    # Open at snapshot s: created < s <= closed (never closed: every later snapshot).
    first = times.searchsorted(leads[layout.created_column], side="right")
    last = np.where(closed.isna(), len(times), times.searchsorted(closed.fillna(times[-1]), side="right"))
    return pd.Series(np.clip(last - first, 0, None), index=pd.Index(ids.array), name="rows")


def training_rows(log: EventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                  observed_until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Stack point-in-time rows over the snapshot schedule, with label and snapshot time.

    `observed_until` is the export time, up to which a label window is observed (default: the last event)."""
    outcomes = log.outcomes
    stage = outcomes[spec.layout.stage_column].astype("string")
    ts = outcomes[spec.layout.timestamp_column]
    closed_at = ts[stage.isin(spec.terminal_stages)].groupby(outcomes[spec.layout.id_column]).min()
    converted_at = ts[stage == log_cfg.conversion_stage].groupby(outcomes[spec.layout.id_column]).min()
    horizon = pd.Timedelta(days=log_cfg.horizon_days)
    snapshots = check_label_windows(log, spec, log_cfg, observed_until)

    created = log.leads[spec.layout.created_column]
    closed = log.leads[spec.layout.id_column].map(closed_at)
    conversion = log.leads[spec.layout.id_column].map(converted_at)
    entered = None
    if log_cfg.from_stage is not None:
        entered_at = ts[stage == log_cfg.from_stage].groupby(outcomes[spec.layout.id_column]).min()
        entered = log.leads[spec.layout.id_column].map(entered_at)
    rows = []
    for as_of in snapshots:
        open_now = (created < as_of) & ~(closed < as_of).fillna(False)
        if entered is not None:
            # A transition target: the lead reached from_stage before the snapshot and has not converted yet.
            open_now &= (entered < as_of).fillna(False) & ~(conversion < as_of).fillna(False)
        if not open_now.any():
            continue
        frame = features_as_of(log.leads[open_now], log.activities, as_of, spec)
        converts = conversion[open_now]
        frame[LABEL_COLUMN] = ((converts >= as_of) & (converts < as_of + horizon)).fillna(False).astype("int8").to_numpy()
        frame[DAYS_TO_CONVERSION] = ((converts - as_of) / _DAY).to_numpy(dtype="float64", na_value=np.nan)
        frame[SNAPSHOT_COLUMN] = as_of
        rows.append(frame)
    if not rows:
        raise no_open_lead(spec)
    return pd.concat(rows, ignore_index=True)
