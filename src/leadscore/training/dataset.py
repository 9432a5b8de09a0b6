"""Turn the configured input (snapshot table or event log) into one validated training table.

Personal data is decided right after reading, before anything else sees the rows
(`leadscore.data.personal.personal_decisions`: declared, by name in four languages, by values in a sample,
overruled by `data.not_personal`). Every decision is logged (names and rule words, never a value) and kept
on the table (`TrainingTable.personal_decisions`) for the model card. The id column may not be personal:
it is written beside every score.

Free text (long, mostly distinct text: notes, "source detail") is dropped unless `data.categorical_columns`
declares it: learned as a category it would be one level per lead, every one of them pickled with the model.
The drop is a logged decision on the table (kind `free_text`), not an error, because CRM exports nearly
always carry such a column and it can never be a useful category.

Date columns (a date learned as a 290-value category): a text column whose cells are nearly all dates
(`2025-03-01`, `31.12.2025`, `03/01/2025`; month names alone are not dates) is never a feature. When no
`data.time_column` is declared and there is exactly one, it becomes the time column (logged, and kept as
`TrainingTable.inferred_time_column`), so the split is out of time; otherwise training stops naming the
columns and the fix (declare the time column, list the others in `data.exclude_columns`). In an event log's
leads table, date columns are never features either: they are dropped with a logged decision and a note
(`leadscore.features.events.profile_dates` says why not an age), as the time comes from the events.

Numbers and their decimal mark (`data.decimal`, "." or ","): a text column whose filled cells are nearly all
numbers written with the other mark (`3,5` under ".", `3.5` under ",") stops training naming the column, the
rows (never a cell) and the fix, instead of being learned as a category. Under "," the reader takes whole
columns of `3,5` and `1.234,5` as numbers (`leadscore.data.sources`); declared categories and the id stay text.

Time in an event log: nothing may be dated after the export time (`event_log.exported_at`, else the last
recorded time up to now); such records are refused with their count, or left out when
`event_log.drop_events_after_export` says so (`leadscore.features.events.after_export`). Events dated before
their lead's creation are counted in a warning and in the table's notes, as at scoring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import pandas as pd

from leadscore.config import Config, DataConfig
from leadscore.data.personal import PersonalDecision, personal_decisions
from leadscore.data.sources import ReadOptions, read_table
from leadscore.data.validation import (
    binary_label,
    check_ids,
    parse_dates,
    parse_timestamps,
    read_numbers,
    require_columns,
    row_numbers,
    validate_numeric,
)
from leadscore.errors import ConfigError, InputError
from leadscore.features.engines import training_rows
from leadscore.features.events import (
    LABEL_COLUMN,
    SNAPSHOT_COLUMN,
    EventFeatureSpec,
    EventLogLayout,
    after_export,
    check_target_stages,
    declared_export_time,
    events_before_creation,
    export_time,
    feature_spec,
    label_text,
    load_event_log,
)
from leadscore.progress import stage
from leadscore.schema import ROW_ID
from leadscore.training.sampling import EventLogSampler, LeadSample, draw

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingTable:
    """Rows to learn from, and which column is which."""

    frame: pd.DataFrame
    id_column: str
    label_column: str
    time_column: str | None
    feature_columns: list[str]
    event_spec: EventFeatureSpec | None
    dropped_personal: list[str]
    # One decision per column read (leads table for an event log): personal or not, by which rule, and why.
    personal_decisions: tuple[PersonalDecision, ...] = ()
    # The date column taken as the time column because none was declared, else None.
    inferred_time_column: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)  # what reading decided, in words, for the run and the card
    label_description: str = ""  # what the label means, in words (event log: `leadscore.features.events.label_text`)
    # The account id of every row (`accounts.column`), kept in `frame` and never a feature; None without accounts.
    account_column: str | None = None
    # The sample of whole leads (or accounts) kept because every row would exceed `model.max_rows`; None: every row.
    sample: LeadSample | None = None

    @property
    def conversions(self) -> int:
        return int(self.frame[self.label_column].sum())

    @property
    def dropped_free_text(self) -> list[str]:
        """Free-text columns dropped because they were not declared categorical."""
        return [d.column for d in self.personal_decisions if d.free_text and not d.personal
                and d.column not in self.frame.columns]


def load_training_table(cfg: Config) -> TrainingTable:
    """Read, validate and shape the training data described by `cfg`."""
    return with_checked_numbers(_from_event_log(cfg) if cfg.data.form == "event_log" else _from_snapshot(cfg))


def with_checked_numbers(table: TrainingTable) -> TrainingTable:
    """The table with its numeric feature columns checked to hold finite numbers."""
    numeric = [c for c in table.feature_columns if pd.api.types.is_numeric_dtype(table.frame[c])]
    return replace(table, frame=validate_numeric(table.frame, numeric, "the training table"))


def too_few_conversions(table: TrainingTable, minimum: int) -> InputError:
    """The error for a table with fewer conversions than `minimum`."""
    return InputError(
        f"only {table.conversions} conversions in {len(table.frame)} rows, fewer than the "
        f"{minimum} needed to learn a reliable model",
        column=table.label_column,
        fix="add more history, lower model.min_conversions if you accept a noisier model, "
        "or set model.fallback: points to score with the hand-set rules until there is enough data",
    )


def _from_snapshot(cfg: Config) -> TrainingTable:
    data = cfg.data
    account = cfg.accounts.column if cfg.accounts else None
    stage("reading")
    # Declared categories stay text under a decimal comma, as scoring reads them: `3,5` is a level, not 3.5. Account
    # ids are text, as lead ids are (`000123` stays `000123`).
    text = [data.id_column, account, *(data.categorical_columns if data.decimal == "," else ())]
    frame = read_table(data.resolved_path, csv_separator=data.csv_separator, na_values=data.na_values,
                       encoding=data.encoding, text_columns=[c for c in text if c], decimal=data.decimal)
    stage("features")
    table = snapshot_table(frame, data, account_column=account)
    sample = draw(table.frame.groupby(account or table.id_column, dropna=False, sort=False).size(),
                  account or table.id_column, cfg.model.max_rows, cfg.model.seed)
    if sample is None:
        return table
    return replace(table, frame=table.frame[sample.kept(table.frame)].reset_index(drop=True), sample=sample)


def _refuse_personal_account(decisions: list[PersonalDecision], column: str) -> None:
    """The account id is written beside every account score: it may not be a personal column."""
    decision = next((d for d in decisions if d.column == column), None)
    if decision is not None and decision.personal:
        raise ConfigError(
            f"accounts.column names '{column}', a personal column ({decision.why}): it would be copied to every "
            f"output. Fix: name a non-personal column (a CRM account id) as accounts.column, or, if '{column}' holds "
            "nothing personal, list it in data.not_personal"
        )


def decide_personal(frame: pd.DataFrame, data: DataConfig, *, table: str, id_column: str | None,
                    roles: dict[str, str | None] | None = None) -> list[PersonalDecision]:
    """Personal decisions for every column of `frame`, logged; a `ConfigError` when the id (or another
    column with a role: label, time) is personal."""
    decisions = personal_decisions(frame, data.personal_columns, data.not_personal)
    by_column = {d.column: d for d in decisions}
    for key, column in {"id_column": id_column, **(roles or {})}.items():
        decision = by_column.get(str(column)) if column else None
        if decision is not None and decision.personal:
            raise ConfigError(
                f"data.{key} names '{column}', a personal column ({decision.why}): it would be copied to every "
                f"output. Fix: name a non-personal column (a CRM record id) as data.{key}, or, if '{column}' holds "
                "nothing personal, list it in data.not_personal"
            )
    for decision in decisions:
        if decision.personal:
            log.info("%s: column '%s' is personal and is dropped: %s", table, decision.column, decision.why)
        elif decision.kind != "kept" or not decision.why.startswith("no personal name"):
            log.info("%s: column '%s' is kept: %s", table, decision.column, decision.why)
    return decisions


def columns_to_drop(decisions: list[PersonalDecision], data: DataConfig, frame: pd.DataFrame,
                    roles: tuple[str | None, ...] = ()) -> tuple[list[str], list[str]]:
    """The personal columns, and the free-text ones not declared categorical: (personal, free text).

    Columns with a role (id, label, time) and columns of dates (see `parse_dates`) are never free text."""
    personal = [d.column for d in decisions if d.personal]
    kept = {*data.categorical_columns, *data.exclude_columns, *(r for r in roles if r)}
    free_text = [d.column for d in decisions if not d.personal and d.free_text and d.column not in kept
                 and parse_dates(frame[d.column]) is None]
    for column in free_text:
        log.warning("column '%s' holds free text and is not a feature; declare it in data.categorical_columns "
                    "to learn it as a category, or list it in data.exclude_columns", column)
    return personal, free_text


def snapshot_table(frame: pd.DataFrame, data: DataConfig, account_column: str | None = None) -> TrainingTable:
    """A snapshot table (one row per lead, as read) checked and shaped as the `data` section describes.

    Personal columns are dropped here, before anything else sees the rows. `account_column` (`accounts.column`) is
    kept in the frame and never a feature."""
    required = [c for c in (data.label_column, data.id_column, data.time_column) if c]
    require_columns(frame, required, "the training table", "name the right columns in the data section of the config")
    if account_column:
        require_columns(frame, [account_column], "the training table",
                        "name the account id column of the table in accounts.column, or remove the accounts section")

    decisions = decide_personal(frame, data, table="the training table", id_column=data.id_column,
                                roles={"label_column": data.label_column, "time_column": data.time_column})
    if account_column:
        _refuse_personal_account(decisions, account_column)
    hidden, free_text = columns_to_drop(decisions, data, frame,
                                        (data.id_column, data.label_column, data.time_column, account_column))
    frame = frame.drop(columns=[*hidden, *free_text])
    notes = [f"free-text column '{c}' is not a feature (not declared in data.categorical_columns)" for c in free_text]
    if data.id_column:
        check_ids(frame, data.id_column, "the training table")
        id_column = data.id_column
    else:
        id_column = ROW_ID
        frame.insert(0, ROW_ID, range(1, len(frame) + 1))
    frame[data.label_column] = binary_label(frame[data.label_column], data.positive_label, data.label_column)
    time_column = data.time_column
    if data.time_column:
        frame[data.time_column] = parse_timestamps(frame, data.time_column, "the training table")

    unknown_excluded = [c for c in data.exclude_columns if c not in frame.columns]
    if unknown_excluded:
        raise ConfigError(f"data.exclude_columns names columns the data does not have: {unknown_excluded}")
    reserved = {id_column, data.label_column, data.time_column, account_column, *data.exclude_columns}
    features = [c for c in frame.columns if c not in reserved]
    if account_column:
        frame[account_column] = frame[account_column].astype("string")
    inferred = None
    dates = {c: parsed for c in features if c not in data.categorical_columns
             for parsed in [parse_dates(frame[c])] if parsed is not None}
    if dates:
        if time_column is None and len(dates) == 1:
            inferred = time_column = next(iter(dates))
            frame[inferred] = dates[inferred]
            features.remove(inferred)
            note = (f"column '{inferred}' holds dates and no data.time_column is declared: it is the time column, "
                    "so the split is out of time (declare data.time_column to choose another)")
            log.warning(note)
            notes.append(note)
        else:
            declared = f"data.time_column is '{time_column}'" if time_column else f"there are {len(dates)} of them"
            raise InputError(
                f"columns {sorted(dates)} hold dates, which are never learned as categories, and {declared}",
                column=sorted(dates)[0],
                fix="declare the column that says when each row was observed as data.time_column and list the other "
                "date columns in data.exclude_columns (or turn them into numbers, such as days since, before training)",
            )
    dated = [c for c in features if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if dated:
        raise ConfigError(f"columns {dated} hold dates, which are not features; add them to data.exclude_columns")
    unknown_categorical = [c for c in data.categorical_columns if c not in features]
    if unknown_categorical:
        raise ConfigError(f"data.categorical_columns names columns that are not features: {unknown_categorical}")
    for column in features:
        if column in data.categorical_columns:
            frame[column] = frame[column].astype("string")
        else:
            _refuse_other_decimal_mark(frame[column], column, data.decimal)
            _refuse_stray_text(frame[column], column, data.decimal)
    return TrainingTable(
        frame=frame, id_column=id_column, label_column=data.label_column, time_column=time_column,
        feature_columns=features, event_spec=None, dropped_personal=hidden, personal_decisions=tuple(decisions),
        inferred_time_column=inferred, notes=tuple(notes), account_column=account_column,
    )


# A text column whose values are numbers but for at most this share is taken for a numeric column with
# typing errors (a stray "n/a", "12 visits"): learning it as a category would quietly lose its order.
_STRAY_TEXT_SHARE = 0.01


def _refuse_stray_text(values: pd.Series, column: str, decimal: str = ".") -> None:
    """Fail on a text column that is numbers (written with the decimal mark `decimal`) but for a few cells,
    naming those cells."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return
    _, filled, stray = read_numbers(values, decimal)
    if 0 < stray.sum() <= _STRAY_TEXT_SHARE * filled.sum():
        raise InputError(
            f"the column holds numbers but for {int(stray.sum())} cell(s) of text "
            f"(e.g. {values[stray].astype('string').str.strip().iloc[0]!r})",
            column=column, rows=row_numbers(values.to_frame(), stray),
            fix="correct those cells or leave them empty; list placeholders such as 'n/a' in data.na_values; or, "
            "if the column is a category whose values merely look like numbers, list it in data.categorical_columns",
        )


# A text column whose filled cells are numbers written with the other decimal mark but for at most this share
# is a numeric column read with the wrong `data.decimal`: learned as a category, it would quietly lose its order.
_OTHER_MARK_SHARE = 0.9
_MARK_NAMES = {".": "a decimal point (3.5)", ",": "a decimal comma (3,5 or 1.234,5)"}


def _refuse_other_decimal_mark(values: pd.Series, column: str, decimal: str) -> None:
    """Fail on a text column of numbers written with the other decimal mark than `decimal` (`data.decimal`).

    Such a column is at least `_OTHER_MARK_SHARE` numbers when read with the other mark, and some of them are
    not numbers with `decimal` (`3,5` with '.'; `3.5` with ','). The message names rows, never a cell: the
    column is not yet known to hold nothing personal."""
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return
    other = "," if decimal == "." else "."
    numbers, filled, _ = read_numbers(values, decimal)
    other_numbers, _, other_bad = read_numbers(values, other)
    if not filled.any() or other_bad.sum() > (1 - _OTHER_MARK_SHARE) * filled.sum():
        return
    misread = filled & numbers.isna() & other_numbers.notna()
    if misread.any():
        raise InputError(
            f"the column holds numbers, {int(misread.sum())} of them written with {_MARK_NAMES[other]}, but "
            f"data.decimal is '{decimal}': read so, those are not numbers and the column would be learned as a "
            "category (text)",
            column=column, rows=row_numbers(values.to_frame(), misread),
            fix=f'set data.decimal: "{other}" in the config if the file writes its numbers so (or correct those '
            "cells if they are typing errors); if the column is a category whose values merely look like numbers, "
            "list it in data.categorical_columns",
        )


def _from_event_log(cfg: Config) -> TrainingTable:
    layout = EventLogLayout.from_config(cfg)
    stage("reading")
    sampler = EventLogSampler(layout, cfg.event_log, cfg.model, cfg.accounts.column if cfg.accounts else None)
    log = load_event_log(cfg.data.resolved_path, layout, na_values=cfg.data.na_values,
                         read_options=read_options(cfg.data), keep=sampler,
                         late_after=declared_export_time(cfg.event_log.exported_at),
                         drop_late=cfg.event_log.drop_events_after_export)
    exported = export_time(log, layout, cfg.event_log.exported_at)
    log = after_export(log, layout, exported, drop=cfg.event_log.drop_events_after_export,
                       declared=cfg.event_log.exported_at is not None)
    stage("features")
    check_target_stages(log, layout, cfg.event_log)  # a misspelt transition stage, before any row is built
    # From here on only the sampled leads (all without a sample): the column decisions below read every value
    # of the rows trained on, and no other lead's value reaches the model.
    log = sampler.only_kept(log)
    profile = log.leads[[c for c in log.leads.columns if c != layout.created_column]]
    decisions = decide_personal(profile, cfg.data, table="leads", id_column=layout.id_column)
    hidden, free_text = columns_to_drop(decisions, cfg.data, profile, (layout.id_column,))
    for column in profile.columns.difference([layout.id_column, *hidden, *free_text, *cfg.data.exclude_columns]):
        _refuse_other_decimal_mark(profile[column], column, cfg.data.decimal)
    spec = feature_spec(log, cfg, hidden=[*hidden, *free_text])
    frame = training_rows(log, spec, cfg.event_log, observed_until=exported)
    account = cfg.accounts.column if cfg.accounts else None
    features = spec.feature_columns
    if account:
        _refuse_personal_account(decisions, account)
        frame, features = _with_account(frame, features, log.leads, layout.id_column, account)
    notes = [f"free-text column '{c}' of the leads table is not a feature" for c in free_text]
    candidates = [c for c in profile.columns if c not in {layout.id_column, *hidden, *free_text, *cfg.data.exclude_columns}]
    notes += [f"date column '{c}' of the leads table is not a feature (as of the export, not of the snapshot)"
              for c in candidates if c not in spec.profile_columns]
    notes += [f"{n} {table} dated before their lead's creation, used as they are"
              for table, n in events_before_creation(log, layout).items() if n]
    return TrainingTable(
        frame=frame, id_column=layout.id_column, label_column=LABEL_COLUMN, time_column=SNAPSHOT_COLUMN,
        feature_columns=features, event_spec=spec, dropped_personal=hidden,
        personal_decisions=tuple(decisions), notes=tuple(notes), label_description=label_text(cfg.event_log),
        account_column=account, sample=sampler.sample,
    )


def _with_account(frame: pd.DataFrame, features: list[str], leads: pd.DataFrame, id_column: str,
                  account: str) -> tuple[pd.DataFrame, list[str]]:
    """The event log's training rows with each lead's account id (from the leads table), and the features without it.

    Each snapshot row of a lead gets the lead's account: a lead does not change company within the log."""
    require_columns(leads, [account], "leads", "export the leads table with the account id of every lead "
                    "(accounts.column), or remove the accounts section")
    by_lead = pd.Series(leads[account].astype("string").to_numpy(), index=leads[id_column].astype("string").to_numpy())
    frame = frame.assign(**{account: frame[id_column].astype("string").map(by_lead).to_numpy()})
    frame[account] = frame[account].astype("string")
    return frame, [c for c in features if c != account]


def read_options(data: DataConfig) -> ReadOptions:
    """How the data section says text tables are read (separator and encoding: detected unless declared)."""
    return ReadOptions(csv_separator=data.csv_separator, na_values=tuple(data.na_values), encoding=data.encoding,
                       decimal=data.decimal)
