"""Scoring from an event log: each lead's features as of a moment, and its status then.

An event log is featurised in memory (a lead's point-in-time features need its whole history, which a
row stream does not give), with the feature definition stored in the model (`LeadScorer.event_spec`),
so that scoring computes exactly what training computed.

The scoring time. With `--as-of`, the leads are scored as they were at that moment and later events are
ignored, as in training: that is what a backtest asks for. Without it, the scoring time is the export's
cut-off: one second after the last recorded time (lead creation, activity or outcome), but never later than now (the job's clock). Events
dated after it can then only be errors (a typo such as 2150, a clock gone wrong): they are refused with
their count and rows (exit 4) instead of silently moving every lead's "now" (and with it every recency and
every MQL). Giving `--as-of` explicitly is what allows them. Events before a lead's creation are reported.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone

import pandas as pd

from leadscore.data.sources import (
    EVENT_LOG,
    SNAPSHOT,
    EventLogFolder,
    ReadOptions,
    TableSource,
    open_source,
    read_rows,
)
from leadscore.errors import InputError
from leadscore.features.events import EventFeatureSpec, EventLog, features_as_of, load_event_log

log = logging.getLogger(__name__)


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
            raise InputError(
                f"{int(late.sum())} event(s) in {table} are dated after the scoring time {moment} (the last "
                "recorded time up to now), e.g. in the future", column=layout.timestamp_column,
                rows=[int(i) + 1 for i in late.nonzero()[0]],
                fix="correct those timestamps in the export, or give --as-of to score as of a chosen moment "
                "(later events are then ignored)",
            )


def event_log_features(scorer, source: EventLogFolder, as_of: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """Features as of `as_of` (default: the last recorded event) for every lead in the log, and each
    lead's status then: its last terminal stage before that moment, else "open"."""
    spec = event_spec_of(scorer, source.location)
    layout = spec.layout
    event_log = load_event_log(source.location, layout, with_outcomes=source.has_table(layout.outcomes_table))
    moment = scoring_time(recorded_times(event_log, layout), as_of)
    refuse_future_events(event_log, spec, moment, as_of)
    late = event_log.leads[layout.created_column] > moment
    if late.any():
        raise InputError(
            f"leads created after the scoring time {moment}", column=layout.created_column,
            rows=[int(i) + 1 for i in late.to_numpy().nonzero()[0]], fix="score as of a later time (--as-of)",
        )
    features = features_as_of(event_log.leads, event_log.activities, moment, spec)
    status = pd.Series("open", index=features.index)
    if event_log.outcomes is not None:
        outcomes = event_log.outcomes[event_log.outcomes[layout.timestamp_column] < moment]
        closing = outcomes[outcomes[layout.stage_column].isin(spec.terminal_stages)]
        final = closing.sort_values(layout.timestamp_column).groupby(layout.id_column)[layout.stage_column].last()
        status = features[layout.id_column].map(final).fillna("open").astype("string")
    return features, status


def lead_rows(scorer, location: str | os.PathLike, lead_id: str, as_of: str | None) -> pd.DataFrame:
    """The input rows of one lead, as the scoring job would score them: its rows in a table of leads, or its
    features in an event log as of `as_of` (default: just after the last recorded event). Empty when the
    lead is not there."""
    # The id is text, as the scoring job reads it: lead 0004711 is not lead 4711.
    source = open_source(location, ReadOptions(text_columns=(scorer.id_column,)))
    return _LEAD_ROWS[source.form](scorer, source, lead_id, as_of)


def _lead_in_table(scorer, source: TableSource, lead_id: str, as_of: str | None) -> pd.DataFrame:
    frame = read_rows(source)
    if scorer.id_column not in frame.columns:  # tables without ids are numbered from 1, as in scoring
        frame = scorer.validate(frame)
    return frame[frame[scorer.id_column].astype(str) == lead_id].reset_index(drop=True)


def _lead_in_event_log(scorer, source: EventLogFolder, lead_id: str, as_of: str | None) -> pd.DataFrame:
    spec = event_spec_of(scorer, source.location)
    event_log = load_event_log(source.location, spec.layout, with_outcomes=False)
    moment = scoring_time(recorded_times(event_log, spec.layout), as_of)
    refuse_future_events(event_log, spec, moment, as_of)
    leads = event_log.leads[event_log.leads[spec.layout.id_column].astype(str) == lead_id]
    return features_as_of(leads, event_log.activities, moment, spec)


_LEAD_ROWS = {SNAPSHOT: _lead_in_table, EVENT_LOG: _lead_in_event_log}
