"""Turn the configured input (snapshot table or event log) into one validated training table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import pandas as pd

from leadscore.config import Config, DataConfig
from leadscore.data.personal import personal_columns
from leadscore.data.sources import read_table
from leadscore.data.validation import (
    binary_label,
    check_ids,
    parse_timestamps,
    read_numbers,
    require_columns,
    row_numbers,
    validate_numeric,
)
from leadscore.errors import ConfigError, InputError
from leadscore.features.events import (
    LABEL_COLUMN,
    SNAPSHOT_COLUMN,
    EventFeatureSpec,
    EventLogLayout,
    feature_spec,
    load_event_log,
    training_rows,
)
from leadscore.schema import ROW_ID

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

    @property
    def conversions(self) -> int:
        return int(self.frame[self.label_column].sum())


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
    return snapshot_table(read_table(data.resolved_path, csv_separator=data.csv_separator, na_values=data.na_values), data)


def snapshot_table(frame: pd.DataFrame, data: DataConfig) -> TrainingTable:
    """A snapshot table (one row per lead, as read) checked and shaped as the `data` section describes.

    Personal columns are dropped here, before anything else sees the rows."""
    required = [c for c in (data.label_column, data.id_column, data.time_column) if c]
    require_columns(frame, required, "the training table", "name the right columns in the data section of the config")

    hidden = personal_columns(frame.columns, data.personal_columns)
    frame = frame.drop(columns=hidden)
    if data.id_column:
        check_ids(frame, data.id_column, "the training table")
        id_column = data.id_column
    else:
        id_column = ROW_ID
        frame.insert(0, ROW_ID, range(1, len(frame) + 1))
    frame[data.label_column] = binary_label(frame[data.label_column], data.positive_label, data.label_column)
    if data.time_column:
        frame[data.time_column] = parse_timestamps(frame, data.time_column, "the training table")

    unknown_excluded = [c for c in data.exclude_columns if c not in frame.columns]
    if unknown_excluded:
        raise ConfigError(f"data.exclude_columns names columns the data does not have: {unknown_excluded}")
    reserved = {id_column, data.label_column, data.time_column, *data.exclude_columns}
    features = [c for c in frame.columns if c not in reserved]
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
            _refuse_stray_text(frame[column], column)
    return TrainingTable(
        frame=frame, id_column=id_column, label_column=data.label_column, time_column=data.time_column,
        feature_columns=features, event_spec=None, dropped_personal=hidden,
    )


# A text column whose values are numbers but for at most this share is taken for a numeric column with
# typing errors (a stray "n/a", "12 visits"): learning it as a category would quietly lose its order.
_STRAY_TEXT_SHARE = 0.01


def _refuse_stray_text(values: pd.Series, column: str) -> None:
    """Fail on a text column that is numbers but for a few cells, naming those cells."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return
    _, filled, stray = read_numbers(values)
    if 0 < stray.sum() <= _STRAY_TEXT_SHARE * filled.sum():
        raise InputError(
            f"the column holds numbers but for {int(stray.sum())} cell(s) of text "
            f"(e.g. {values[stray].astype('string').str.strip().iloc[0]!r})",
            column=column, rows=row_numbers(values.to_frame(), stray),
            fix="correct those cells or leave them empty; list placeholders such as 'n/a' in data.na_values; or, "
            "if the column is a category whose values merely look like numbers, list it in data.categorical_columns",
        )


def _from_event_log(cfg: Config) -> TrainingTable:
    layout = EventLogLayout.from_config(cfg)
    log = load_event_log(cfg.data.resolved_path, layout, na_values=cfg.data.na_values)
    spec = feature_spec(log, cfg)
    frame = training_rows(log, spec, cfg.event_log)
    hidden = personal_columns(log.leads.columns, cfg.data.personal_columns)
    return TrainingTable(
        frame=frame, id_column=layout.id_column, label_column=LABEL_COLUMN, time_column=SNAPSHOT_COLUMN,
        feature_columns=spec.feature_columns, event_spec=spec, dropped_personal=hidden,
    )
