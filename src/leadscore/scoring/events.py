"""Scoring from an event log: each lead's features as of a moment, and its status then.

A lead's point-in-time features need its whole history, which a row stream does not give; the feature
definition is stored in the model (`LeadScorer.event_spec`), so that scoring computes exactly what training
computed. The pandas engine builds them out of core (`event_log_feature_batches`: the activities staged on
disk a chunk at a time, DuckDB's query over them, the rows streaming out), so that a log larger than memory is
scored; `leadscore explain` and the API read the log into memory and use the pandas builder; the spark engine
passes its own builder (`leadscore.features.spark`, the same query as DuckDB's). Everything else here (the
scoring time, refusals, statuses) is shared.

The scoring time. With `--as-of`, the leads are scored as they were at that moment and later events are
ignored, as in training: that is what a backtest asks for. Without it, the scoring time is the export's
cut-off: one second after the last recorded time (lead creation, activity or outcome), but never later than now (the job's clock). Events
dated after it can then only be errors (a typo such as 2150, a clock gone wrong): they are refused with
their count and rows (exit 4) instead of silently moving every lead's "now" (and with it every recency and
every MQL). Giving `--as-of` explicitly is what allows them. Events before a lead's creation are reported.

Looking up leads in a table (`lead_rows`, `table_rows`: what `leadscore explain` explains) reads it as the
pandas engine does: in chunks of text, with only the model's columns, each row checked by
`leadscore.data.row_checks.split_rows`. A lead is explained from the row the job would score, or refused for
the reason the job would reject that row, with its row number; a bad row elsewhere in the file (ragged, a
cell over 16 MB, a bad value) concerns another lead and does not stop the explanation.
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from leadscore.config import ScoringConfig
from leadscore.data.row_checks import BAD_VALUE, REJECT_COLUMNS, UNREADABLE, SeenIds, split_rows
from leadscore.data.sources import (
    EVENT_LOG,
    SNAPSHOT,
    UNREADABLE_ROWS,
    EventLogFolder,
    TableSource,
    open_source,
    resolve,
)
from leadscore.errors import InputError
from leadscore.features import staged
from leadscore.features.events import EventFeatureSpec, EventLog, features_as_of, load_event_log
from leadscore.scoring.accounts import account_inputs
from leadscore.scoring.job import require_input_columns

log = logging.getLogger(__name__)
# Features of `leads` as of a moment from `activities`, as `leadscore.features.events.features_as_of` computes them.
FeaturesAsOf = Callable[[pd.DataFrame, pd.DataFrame, pd.Timestamp, EventFeatureSpec], pd.DataFrame]


def event_spec_of(scorer, folder: str | os.PathLike) -> EventFeatureSpec:
    """How the model computes features from an event log; an input error for a model trained on a snapshot table."""
    if scorer.event_spec is None:
        raise InputError(
            f"{os.fspath(folder)} is a folder (event log), but this model was trained on a snapshot table",
            fix="give a CSV or Parquet file with the model's feature columns",
        )
    return scorer.event_spec


def scoring_time(activity_times: pd.Series, as_of: str | None, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The moment an event log is scored at: `as_of` (UTC unless it names a zone), or else the export's
    cut-off: one second after the last of `activity_times` up to `now` (default: the clock), else `now`."""
    if not as_of:
        now = now if now is not None else pd.Timestamp(datetime.now(timezone.utc))
        last = activity_times[activity_times <= now].max() if len(activity_times) else pd.NaT
        return now if pd.isna(last) else min(last + pd.Timedelta(seconds=1), now)
    try:
        moment = pd.Timestamp(as_of)
    except ValueError:
        raise InputError(f"--as-of {as_of!r} is not a time", fix="give an ISO 8601 time such as 2026-03-01T00:00:00Z") from None
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def recorded_times(event_log: EventLog, layout) -> pd.Series:
    """Every time the export records: lead creations, activities and outcomes."""
    parts = [event_log.leads[layout.created_column], event_log.activities[layout.timestamp_column]]
    if event_log.outcomes is not None:
        parts.append(event_log.outcomes[layout.timestamp_column])
    return pd.concat(parts, ignore_index=True)


def refuse_future_events(event_log: EventLog, spec: EventFeatureSpec, moment: pd.Timestamp, as_of: str | None) -> None:
    """Without `as_of`, events after the scoring time (the export's cut-off) are errors: refuse them with their
    count and rows. With `as_of` they are simply not seen yet, as in training."""
    if as_of:
        return
    layout = spec.layout
    for table, events in (("activities", event_log.activities), ("outcomes", event_log.outcomes)):
        if events is None:
            continue
        late = (events[layout.timestamp_column] >= moment).to_numpy()
        if late.any():
            raise _future_events(table, [int(i) + 1 for i in late.nonzero()[0]], moment, layout)


def _future_events(table: str, rows: list[int], moment: pd.Timestamp, layout) -> InputError:
    return InputError(
        f"{len(rows)} event(s) in {table} are dated after the scoring time {moment} (the last "
        "recorded time up to now), e.g. in the future", column=layout.timestamp_column, rows=rows,
        fix="correct those timestamps in the export, or give --as-of to score as of a chosen moment "
        "(later events are then ignored)",
    )


def _refuse_late_leads(leads: pd.DataFrame, moment: pd.Timestamp, layout) -> None:
    late = leads[layout.created_column] > moment
    if late.any():
        raise InputError(
            f"leads created after the scoring time {moment}", column=layout.created_column,
            rows=[int(i) + 1 for i in late.to_numpy().nonzero()[0]], fix="score as of a later time (--as-of)",
        )


def _final_stages(outcomes: pd.DataFrame, spec: EventFeatureSpec, moment: pd.Timestamp) -> pd.Series:
    """Each closed lead's last terminal stage before `moment`, by lead id."""
    layout = spec.layout
    outcomes = outcomes[outcomes[layout.timestamp_column] < moment]
    closing = outcomes[outcomes[layout.stage_column].isin(spec.terminal_stages)]
    return closing.sort_values(layout.timestamp_column).groupby(layout.id_column)[layout.stage_column].last()


def event_log_features(scorer, source: EventLogFolder, as_of: str | None,
                       build: FeaturesAsOf = features_as_of) -> tuple[pd.DataFrame, pd.Series]:
    """Features as of `as_of` (default: the last recorded event) for every lead in the log, and each
    lead's status then: its last terminal stage before that moment, else "open". With an account part, each
    row also holds its lead's account column from the leads table (not a feature: the account part reads it).

    `build` computes the features (`leadscore.features.events.features_as_of`, the pandas builder, unless an
    engine gives its own, such as Spark's); reading the log, the scoring time and the statuses are the same.
    The whole log is read into memory: `event_log_feature_batches` is the same out of core."""
    spec = event_spec_of(scorer, source.location)
    layout = spec.layout
    event_log = load_event_log(source.location, layout, with_outcomes=source.has_table(layout.outcomes_table),
                               read_options=scorer.read_options())
    moment = scoring_time(recorded_times(event_log, layout), as_of)
    refuse_future_events(event_log, spec, moment, as_of)
    _refuse_late_leads(event_log.leads, moment, layout)
    features = with_account_column(scorer, build(event_log.leads, event_log.activities, moment, spec),
                                   event_log.leads, layout.id_column)
    status = pd.Series("open", index=features.index)
    if event_log.outcomes is not None:
        final = _final_stages(event_log.outcomes, spec, moment)
        status = features[layout.id_column].map(final).fillna("open").astype("string")
    return features, status


def event_log_feature_batches(scorer, source: EventLogFolder, as_of: str | None, batch_rows: int,
                              memory_limit: str | None = None) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """`event_log_features` out of core, `batch_rows` leads at a time in the order of the leads table.

    The activities are read a chunk at a time and staged on disk, and DuckDB builds the features from there
    within `memory_limit` (`leadscore.features.staged`): the rows of `columnar.features_as_of`, the query
    training builds its rows with. The same checks and refusals as `event_log_features`, with the same rows
    named; an activity dated after the clock's reading when it was read is the one that is late."""
    spec = event_spec_of(scorer, source.location)
    layout = spec.layout
    now = pd.Timestamp(datetime.now(timezone.utc))
    with staged.staged_event_log(source.location, spec, read_options=scorer.read_options(),
                                 with_outcomes=source.has_table(layout.outcomes_table),
                                 lead_columns=account_inputs(scorer), late_after=now) as staged_log:
        event_log, seen = staged_log.log, staged_log.log.activities_seen
        recorded = [event_log.leads[layout.created_column]]
        if seen.last_recorded is not None:
            recorded.append(pd.Series([seen.last_recorded]))
        if event_log.outcomes is not None:
            recorded.append(event_log.outcomes[layout.timestamp_column])
        moment = scoring_time(pd.concat(recorded, ignore_index=True), as_of, now)
        if not as_of and seen.late_rows:
            raise _future_events("activities", list(seen.late_rows), moment, layout)
        refuse_future_events(event_log, spec, moment, as_of)
        _refuse_late_leads(event_log.leads, moment, layout)
        leads, account_columns = account_lead_columns(scorer, event_log.leads)
        status = pd.Series("open", index=leads.index, dtype="category")
        if event_log.outcomes is not None:
            final = _final_stages(event_log.outcomes, spec, moment)
            status = leads[layout.id_column].map(final).fillna("open").astype("category")
        batches = staged.features_as_of(replace(staged_log, log=replace(event_log, leads=leads)), moment, spec,
                                        batch_rows, lead_columns=account_columns, memory_limit=memory_limit)
        for positions, features in batches:
            yield features, status.take(positions).astype("string").to_numpy()


def account_lead_columns(scorer, leads: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The leads table with the columns a model's account part reads, named as the part names them, and their
    names (none without an account part)."""
    columns = account_inputs(scorer)
    if not columns:
        return leads, []
    # The leads table names the account column as the layout says (the config's accounts.column, as the part's).
    layout_column = scorer.event_spec.layout.account_column
    part_column = scorer.accounts.account_column
    if layout_column and layout_column != part_column and layout_column in leads.columns:
        leads = leads.assign(**{part_column: leads[layout_column].to_numpy()})
    missing = [c for c in columns if c not in leads.columns]
    if missing:
        raise InputError(
            f"the leads table lacks the account column '{missing[0]}', which this model's account scores need",
            column=missing[0], fix=f"export each lead's account id as the column '{missing[0]}' of the leads table "
            "(leads without an account may leave it empty), or score with a model trained without an `accounts` section",
        )
    return leads, columns


def with_account_column(scorer, features: pd.DataFrame, leads: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """Feature rows with their lead's account column from the leads table, for a model with an account part (the
    account id is never a feature, so the feature builders leave it out); unchanged without one."""
    leads, columns = account_lead_columns(scorer, leads)
    if not columns:
        return features
    # By id, not by position: a feature builder need not keep the leads table's order.
    by_id = leads.set_index(leads[id_column].to_numpy())[columns]
    found = by_id.reindex(features[id_column].to_numpy())
    return features.assign(**{c: found[c].to_numpy() for c in columns})


def lead_rows(scorer, location: str | os.PathLike, lead_id: str, as_of: str | None) -> pd.DataFrame:
    """The input rows of one lead, as the scoring job would score them: its row in a table of leads (read and
    checked as the job reads and checks it, see the module docstring), or its features in an event log as of
    `as_of` (default: just after the last recorded event). Empty when the lead is not there; an input error
    naming the lead's row number when the job would reject its row."""
    # Opened as the scoring job opens it: the same separator and encoding detection, the model's read options.
    source = open_source(location, scorer.read_options())
    return _LEAD_ROWS[source.form](scorer, source, lead_id, as_of)


@dataclass(frozen=True)
class TableRows:
    """Rows of a table as the pandas engine reads and checks them.

    `valid`: the rows it would score (the id and feature columns, numeric features as float64); `rejects`:
    the rows it would reject (`leadscore.data.row_checks.REJECT_COLUMNS`, row numbers from 1); `unreadable`:
    every row of the table that could not be read (row number: why), whether selected or not.
    """

    valid: pd.DataFrame
    rejects: pd.DataFrame
    unreadable: dict[int, str]


def table_rows(scorer, source: TableSource, keep: Callable[[pd.Series], np.ndarray] | None = None,
               chunk_rows: int = ScoringConfig().chunk_rows) -> TableRows:
    """The rows of `source` whose ids `keep` selects (all when None), read and checked as the scoring job does.

    The table is streamed in chunks of text with the model's columns only; tables without an id column number
    their rows from 1, and those numbers are the ids `keep` sees. The selected rows are then checked together
    by `split_rows`, so a repeated id is a duplicate of its first row, as in the job. A missing column stops
    before any row is read, as in the job.
    """
    require_input_columns(scorer, source.columns)
    id_column = scorer.id_column
    # With an account part the account column too, as the job reads it: the model's `predict` needs it.
    columns = [c for c in (id_column, *scorer.feature_columns, *account_inputs(scorer)) if c in source.columns]
    kept: list[pd.DataFrame] = []
    numbers: list[np.ndarray] = []
    kept_unreadable: dict[int, str] = {}  # by position among the kept rows, as split_rows takes them
    unreadable: dict[int, str] = {}
    rows_read = rows_kept = 0
    for chunk in source.chunks(columns, chunk_rows):
        bad = chunk.attrs.get(UNREADABLE_ROWS) or {}
        rows = np.arange(rows_read + 1, rows_read + len(chunk) + 1)
        rows_read += len(chunk)
        unreadable.update({int(rows[position]): why for position, why in bad.items()})
        if id_column not in chunk.columns:  # a model without ids: the row number is the id
            chunk = chunk.assign(**{id_column: rows})
        picked = np.arange(len(chunk)) if keep is None else np.flatnonzero(keep(chunk[id_column]))
        if not len(picked):
            continue
        for position, why in bad.items():
            at = int(np.searchsorted(picked, position))
            if at < len(picked) and picked[at] == position:
                kept_unreadable[rows_kept + at] = why
        part = chunk.iloc[picked].reset_index(drop=True)
        part.attrs = {}
        kept.append(part)
        numbers.append(rows[picked])
        rows_kept += len(picked)
    if not kept:
        names = [id_column, *(c for c in columns if c != id_column)]
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        return TableRows(empty, pd.DataFrame(columns=list(REJECT_COLUMNS)), unreadable)
    frame = pd.concat(kept, ignore_index=True) if len(kept) > 1 else kept[0]
    valid, rejects = split_rows(frame, np.concatenate(numbers), id_column, scorer.numeric_columns, SeenIds(),
                                kept_unreadable, scorer.decimal)
    return TableRows(valid.reset_index(drop=True), rejects, unreadable)


def _lead_in_table(scorer, source: TableSource, lead_id: str, as_of: str | None) -> pd.DataFrame:
    # Ids are compared as text, as the job reads them: lead 0004711 is not lead 4711.
    found = table_rows(scorer, source, keep=lambda ids: (ids.astype("string") == lead_id).fillna(False).to_numpy(bool))
    if not found.valid.empty:
        if found.unreadable:
            log.info("explaining lead '%s': %d other row(s) of %s could not be read (leadscore score rejects them "
                     "with their row numbers)", lead_id, len(found.unreadable), source.location)
        return found.valid.head(1)
    if len(found.rejects):  # the row the job would score for this lead is rejected
        raise _rejected_lead(lead_id, source.location, found.rejects.iloc[0])
    if found.unreadable and scorer.id_column in source.columns:  # else their ids, their row numbers, are known
        own = _unreadable_rows_holding(source, scorer.id_column, lead_id, found.unreadable)
        if own:
            raise _rejected_lead(lead_id, source.location, pd.Series(
                {"row": own[0], "column": None, "reason": UNREADABLE, "detail": found.unreadable[own[0]]}))
        rows = sorted(found.unreadable)
        raise InputError(
            f"lead '{lead_id}' is not among the readable rows of {source.location}, and {len(rows)} row(s) could "
            "not be read", rows=rows,
            fix="if the lead is on one of those rows, repair it (a separator inside an unquoted cell? a cell over "
            "16 MB?) or export the file again; else give the id of a lead in the input",
        )
    return found.valid


def _rejected_lead(lead_id: str, location: str, reject: pd.Series) -> InputError:
    """Why a lead cannot be explained: the scoring job rejects its row. Never quotes the row's cells."""
    row = int(reject["row"])
    if reject["reason"] == UNREADABLE:
        return InputError(
            f"lead '{lead_id}' is on data row {row} of {location}, which cannot be read ({reject['detail']})",
            rows=[row],
            fix="repair that row (a separator inside an unquoted cell? a cell over 16 MB?) or export the file "
            "again; leadscore score rejects it with the same row number and scores the other leads",
        )
    kind = str(reject["detail"]).split(":", 1)[0]  # "not a number", without the cell itself
    what = f"holds a value that is {kind}" if reject["reason"] == BAD_VALUE else f"is rejected ({reject['reason']})"
    return InputError(
        f"lead '{lead_id}' on data row {row} of {location} {what}", column=reject["column"], rows=[row],
        fix="correct the cell or leave it empty (list placeholders such as 'n/a' in data.na_values); "
        "leadscore score rejects the row for the same reason",
    )


def _unreadable_rows_holding(source: TableSource, id_column: str, lead_id: str, rows: Collection[int]) -> list[int]:
    """Which of the unreadable data `rows` of a CSV table hold `lead_id` at the id column's place in the header.

    A streamed chunk gives an unreadable row no cells, so the id is taken from the raw record here, read as
    the table's reader reads it (its separator and encoding). A ragged row whose id is not at its place is
    not found (the caller then lists every unreadable row). The cells are compared, never shown.
    """
    if resolve(source.location).name != "csv":  # only CSV rows can be unreadable
        return []
    encoding = "utf-8-sig" if codecs.lookup(source.encoding).name == "utf-8" else source.encoding
    wanted, last, hits = set(rows), max(rows), []
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # the row may hold a cell over the reader's limit
    try:
        with open(source.location, encoding=encoding, newline="") as f:
            records = (r for r in csv.reader(f, delimiter=source.separator, quotechar='"', doublequote=True) if r)
            header = next(records, [])
            if id_column not in header:
                return []
            at = header.index(id_column)
            for number, record in enumerate(records, start=1):
                if number in wanted and len(record) > at and record[at] == lead_id:
                    hits.append(number)
                if number >= last:
                    break
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    finally:
        csv.field_size_limit(limit)
    return hits


def _lead_in_event_log(scorer, source: EventLogFolder, lead_id: str, as_of: str | None) -> pd.DataFrame:
    spec = event_spec_of(scorer, source.location)
    event_log = load_event_log(source.location, spec.layout, with_outcomes=False, read_options=scorer.read_options())
    moment = scoring_time(recorded_times(event_log, spec.layout), as_of)
    refuse_future_events(event_log, spec, moment, as_of)
    leads = event_log.leads[event_log.leads[spec.layout.id_column].astype(str) == lead_id]
    return with_account_column(scorer, features_as_of(leads, event_log.activities, moment, spec), leads,
                               spec.layout.id_column)


_LEAD_ROWS = {SNAPSHOT: _lead_in_table, EVENT_LOG: _lead_in_event_log}
