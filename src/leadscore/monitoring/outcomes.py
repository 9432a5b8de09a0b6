"""Past scores labelled with what happened since: converted within the horizon after being scored, or censored.

A score is issued at the moment its features describe: its run's `as_of` when the history records one (an event
log scored as of a chosen time), else `scored_at`. The label is training's
(`leadscore.features.events.training_rows`): a score issued at `t` is positive when its lead first reached the
conversion stage at or after `t` and before `t + horizon`.

Every score of the window is accounted for, in exactly one of:
- `labelled`: its label window ended by the observation time; it enters every figure;
- `censored`: its label window ends after the observation time. It is left out, never a negative: its lead
  may still convert (counting it as a negative would make every recent score look too high);
- `closed_before`: its lead had reached a closing stage (won or lost) before it was scored; training leaves
  such leads out too;
- `unknown_lead`: its lead is not in the export (event-log folder only: not in the leads table);
- `repeat`: a later score of a lead already scored earlier in the window. One score per lead, its earliest:
  scores of one lead on several days share one outcome, and binomial intervals need independent rows; the
  earliest is chosen because it depends on the past alone (a latest score would be chosen by the outcome,
  since a converted lead stops being scored).

The observation time is the export time: given, else the last recorded time (for an event-log folder: lead
creation, activity or outcome; for an outcomes table: the last outcome) not later than now. Outcomes dated after
it are ignored, and counted. With an outcomes table alone, a lead without an outcome row is open: not converted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.data.sources import ReadOptions, open_table, read_rows
from leadscore.data.validation import (
    parse_timestamps,
    require_columns,
    require_not_null,
    row_numbers,
)
from leadscore.errors import InputError
from leadscore.features.events import EventLogLayout, export_time, load_event_log

log = logging.getLogger(__name__)

# The columns of the score history (`leadscore.history.store.read_history`) that monitoring needs.
HISTORY_COLUMNS = ("lead_id", "scored_at", "model_name", "model_version", "p_convert")
LABEL = "converted"
ISSUED = "issued_at"  # as_of when recorded, else scored_at: the moment the score's features describe
VERSION_KEY = ("model_name", "model_version")
DEFAULT_LAYOUT = EventLogLayout()  # the column names `leadscore generate` and the default config use
ACCOUNTS = ("labelled", "censored", "closed_before", "unknown_lead", "repeat")


@dataclass(frozen=True)
class Outcomes:
    """What happened to each lead up to `observed_until`: first conversion and first closing time per lead id."""

    converted_at: pd.Series  # index: lead id (text); first time at the conversion stage
    closed_at: pd.Series  # index: lead id (text); first time at any closing stage
    observed_until: pd.Timestamp
    known_leads: pd.Index | None = None  # every lead id of the export; None: only an outcomes table was given
    ignored_after: int = 0  # outcome rows dated after `observed_until`
    conversion_stage: str = "won"


@dataclass(frozen=True)
class LabelledScores:
    """The labelled scores of a window (one per lead) and how every score of the window was accounted for."""

    frame: pd.DataFrame  # history columns plus `converted` (0/1) and `horizon_days`
    counts: dict[str, int]  # per account of ACCOUNTS, plus `window` (all scores of the window)
    counts_by_version: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)


def outcomes_from_frame(outcomes: pd.DataFrame, layout: EventLogLayout = DEFAULT_LAYOUT, *,
                        conversion_stage: str = "won", closing_stages: tuple[str, ...] = ("won", "lost"),
                        observed_until: datetime | pd.Timestamp | None = None, known_leads=None,
                        now: pd.Timestamp | None = None, default_until: pd.Timestamp | None = None) -> Outcomes:
    """The outcomes of an outcomes table (lead id, stage, timestamp: `layout` names the columns).

    `observed_until` is the export time; else `default_until` (the caller's export time), else the last outcome
    not later than `now` (default: the clock). Outcome rows after it are ignored and counted."""
    ids, stage_col, ts_col = layout.id_column, layout.stage_column, layout.timestamp_column
    require_columns(outcomes, [ids, stage_col, ts_col], "the outcomes",
                    "give the outcomes table with the lead id, the stage and its timestamp (or the event-log folder)")
    for column in (ids, stage_col, ts_col):
        require_not_null(outcomes, column, "the outcomes", "fill the value or remove the outcome row")
    times = parse_timestamps(outcomes, ts_col, "the outcomes")
    until = _utc(observed_until) if observed_until is not None else default_until
    if until is None:
        now = now if now is not None else pd.Timestamp(datetime.now(timezone.utc))
        recorded = times[times <= now]
        if recorded.empty:
            raise InputError("no outcome is dated up to now, so nothing can be observed yet", column=ts_col,
                             fix="give the export time (--observed-until) if the outcomes are dated in the future")
        until = recorded.max()
    after = (times > until).to_numpy()
    if after.any():
        log.warning("%d outcome row(s) dated after the observation time %s are ignored", int(after.sum()), until)
    table = pd.DataFrame({"lead": outcomes[ids].astype("string").to_numpy(),
                          "stage": outcomes[stage_col].astype("string").to_numpy(), "when": times.to_numpy()})
    table = table.loc[~after].assign(when=lambda t: pd.to_datetime(t["when"], utc=True))
    converted_at = table.loc[table["stage"] == conversion_stage].groupby("lead")["when"].min()
    closed_at = table.loc[table["stage"].isin(list(closing_stages))].groupby("lead")["when"].min()
    known = None if known_leads is None else pd.Index(pd.Series(known_leads).astype("string").to_numpy())
    return Outcomes(converted_at, closed_at, until, known, int(after.sum()), conversion_stage)


def read_outcomes(location: str | os.PathLike, layout: EventLogLayout = DEFAULT_LAYOUT, *,
                  conversion_stage: str = "won", closing_stages: tuple[str, ...] = ("won", "lost"),
                  observed_until: datetime | pd.Timestamp | None = None, now: pd.Timestamp | None = None) -> Outcomes:
    """Read the outcomes of an event-log folder (its leads, activities and outcomes; the export time from all
    three) or of one outcomes table (CSV or Parquet: lead id, stage, timestamp)."""
    path = Path(location)
    if not path.exists():
        raise InputError(f"outcomes not found: {path}", fix="give an event-log folder or an outcomes table (CSV or Parquet)")
    if path.is_dir() and _is_event_log(path, layout):
        event_log = load_event_log(path, layout)
        if event_log.outcomes is None:
            raise InputError(f"the event log in {path} has no outcomes table", fix="export the outcomes with the log")
        until = _utc(observed_until) if observed_until is not None else export_time(event_log, layout, now=now)
        return outcomes_from_frame(event_log.outcomes, layout, conversion_stage=conversion_stage,
                                   closing_stages=closing_stages, known_leads=event_log.leads[layout.id_column],
                                   default_until=until)
    table = read_rows(open_table(path, ReadOptions(text_columns=(layout.id_column,))))
    return outcomes_from_frame(table, layout, conversion_stage=conversion_stage, closing_stages=closing_stages,
                               observed_until=observed_until, now=now)


def _is_event_log(path: Path, layout: EventLogLayout) -> bool:
    stems = {p.stem for p in path.iterdir()}
    return layout.leads_table in stems and layout.outcomes_table in stems


def validate_history(history: pd.DataFrame) -> pd.DataFrame:
    """The score history with typed columns: ids and versions as text, `scored_at` in UTC, `p_convert` a
    probability; an `InputError` naming the column and rows otherwise."""
    fix = "give the score history as `leadscore.history.store.read_history` returns it"
    require_columns(history, HISTORY_COLUMNS, "the score history", fix)
    history = history.reset_index(drop=True)
    if history.empty:
        raise InputError("the score history has no rows", fix="score leads with history on, or widen the window")
    for column in ("lead_id", "scored_at", "p_convert"):
        require_not_null(history, column, "the score history", "drop the rows or score them again")
    p = pd.to_numeric(history["p_convert"], errors="coerce")
    bad = (p.isna() | (p < 0) | (p > 1)).to_numpy()
    if bad.any():
        raise InputError("p_convert is not a probability between 0 and 1", column="p_convert",
                         rows=row_numbers(history, bad), fix="give the scores as written by `leadscore score`")
    scored = parse_timestamps(history, "scored_at", "the score history")
    issued = scored
    if "as_of" in history.columns:
        text = history["as_of"].astype("string").str.strip()
        given = (text.notna() & (text != "")).to_numpy(dtype=bool)
        if given.any():
            as_of = parse_timestamps(history.assign(as_of=text.where(given, None)), "as_of", "the score history")
            issued = as_of.where(given, scored)
    return history.assign(
        **{ISSUED: issued},
        lead_id=history["lead_id"].astype("string"),
        model_name=history["model_name"].astype("string").fillna(""),
        model_version=history["model_version"].astype("string").fillna(""),
        scored_at=scored,
        p_convert=p.astype("float64"),
    )


def select_window(history: pd.DataFrame, *, observed_until: pd.Timestamp, issued_days_ago: int | None = None,
                  since: datetime | pd.Timestamp | None = None, until: datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """The scores issued in the window: on the UTC day `issued_days_ago` days before the observation time, or
    from `since` (inclusive) to `until` (exclusive), or all. An empty window is an `InputError` that names the
    scoring days present."""
    scored = history[ISSUED]
    if issued_days_ago is not None:
        day = (observed_until - pd.Timedelta(days=issued_days_ago)).normalize()
        since, until, said = day, day + pd.Timedelta(days=1), f"the day {day.date()} ({issued_days_ago} days before {observed_until})"
    else:
        said = f"from {since or 'the first score'} to {until or 'the last score'}"
    keep = np.ones(len(history), dtype=bool)
    if since is not None:
        keep &= (scored >= _utc(since)).to_numpy()
    if until is not None:
        keep &= (scored < _utc(until)).to_numpy()
    if not keep.any():
        days = scored.dt.normalize()
        raise InputError(
            f"no score was issued in the window, {said}; the history holds scores from {days.min().date()} to "
            f"{days.max().date()}", column="scored_at",
            fix="choose --issued-days-ago or --since/--until inside that range (scores are placed at their run's "
            "as_of when it has one)",
        )
    return history.loc[keep]


def label_scores(history: pd.DataFrame, outcomes: Outcomes, horizon_days: float | Mapping[tuple[str, str], float]) -> LabelledScores:
    """Label the earliest score per lead of `history` (validated, one window) with conversion within the horizon.

    `horizon_days` is one horizon, or one per (model_name, model_version). See the module docstring for how each
    score is accounted for; no lead of the history in the outcomes at all is an `InputError` (ids that do not
    match, e.g. leading zeros lost)."""
    _require_overlap(history, outcomes)
    ordered = history.sort_values([ISSUED, "model_name", "model_version"], kind="stable")
    first = ~ordered["lead_id"].duplicated(keep="first").to_numpy()
    horizon = _horizons(ordered, horizon_days)
    lead = ordered["lead_id"]
    scored = ordered[ISSUED]
    converted_at = lead.map(outcomes.converted_at)
    closed_at = lead.map(outcomes.closed_at)
    window_end = scored + pd.to_timedelta(horizon, unit="D")

    account = np.full(len(ordered), "labelled", dtype=object)
    censored = (window_end > outcomes.observed_until).to_numpy()
    closed = (closed_at < scored).fillna(False).to_numpy(dtype=bool)
    unknown = (~lead.isin(outcomes.known_leads).to_numpy()) if outcomes.known_leads is not None else np.zeros(len(ordered), bool)
    account[censored] = "censored"
    account[closed] = "closed_before"
    account[unknown] = "unknown_lead"
    account[~first] = "repeat"
    ordered = ordered.assign(_account=account, horizon_days=horizon)
    labelled = ordered.loc[account == "labelled"].copy()
    conv = converted_at[account == "labelled"]
    end = window_end[account == "labelled"]
    labelled[LABEL] = ((conv >= labelled[ISSUED]) & (conv < end)).fillna(False).astype("int8").to_numpy()
    counts = _count(ordered)
    by_version = {key: _count(group) for key, group in ordered.groupby(list(VERSION_KEY), sort=True)}
    return LabelledScores(labelled.drop(columns="_account").reset_index(drop=True), counts,
                          {(str(k[0]), str(k[1])): v for k, v in by_version.items()})


def _count(frame: pd.DataFrame) -> dict[str, int]:
    counts = {name: int((frame["_account"] == name).sum()) for name in ACCOUNTS}
    counts["window"] = len(frame)
    return counts


def _horizons(history: pd.DataFrame, horizon_days: float | Mapping[tuple[str, str], float]) -> np.ndarray:
    if not isinstance(horizon_days, Mapping):
        return np.full(len(history), float(horizon_days))
    keys = list(zip(history["model_name"], history["model_version"]))
    missing = sorted({k for k in keys if k not in horizon_days})
    if missing:
        raise InputError(f"no horizon is known for model version(s) {', '.join(f'{n} {v}' for n, v in missing)}",
                         column="model_version", fix="give the model (--model) or the horizon (--horizon-days)")
    return np.array([float(horizon_days[k]) for k in keys])


def _require_overlap(history: pd.DataFrame, outcomes: Outcomes) -> None:
    leads = outcomes.known_leads if outcomes.known_leads is not None else \
        outcomes.closed_at.index.union(outcomes.converted_at.index)
    if not history["lead_id"].isin(leads).any():
        source = "the export's leads table" if outcomes.known_leads is not None else "the outcomes"
        raise InputError(
            f"no lead of the score history appears in {source}, so no score can be checked", column="lead_id",
            fix="give the outcomes of the same CRM as the scores (ids compared as text: leading zeros count)",
        )


def _utc(moment) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
