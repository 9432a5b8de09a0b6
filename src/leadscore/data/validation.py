"""Checks at the data boundary: every failure names the column, the rows and the fix.

Row numbers in messages count data rows from 1 in the order they were read (the header is not a
row), so that row 7 is the seventh record of the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pandera.pandas as pa

from leadscore.data.row_checks import parse_decimal_comma
from leadscore.errors import InputError


def row_numbers(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> list[int]:
    """1-based positions of the rows where `mask` holds."""
    return [int(i) + 1 for i in np.flatnonzero(np.asarray(mask))]


def require_columns(frame: pd.DataFrame, columns: Iterable[str], table: str, fix: str) -> None:
    """Fail when any required column is absent, suggesting the closest present name."""
    present = list(frame.columns)
    for column in columns:
        if column not in present:
            close = difflib.get_close_matches(column, [str(c) for c in present], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"required column missing from {table}{hint}", column=column, fix=fix)


def check_ids(frame: pd.DataFrame, id_column: str, table: str) -> None:
    """Lead ids must be present and unique: a score must map back to exactly one lead."""
    ids = frame[id_column]
    missing = ids.isna() | (ids.astype("string").str.strip() == "")
    if missing.any():
        raise InputError(
            f"lead id is empty in {table}", column=id_column, rows=row_numbers(frame, missing),
            fix="give every lead an id, or remove the rows",
        )
    duplicated = ids.duplicated(keep=False)
    if duplicated.any():
        values = ", ".join(map(str, ids[duplicated].unique()[:5]))
        raise InputError(
            f"duplicate lead ids in {table} ({values})", column=id_column, rows=row_numbers(frame, duplicated),
            fix="keep one row per lead (deduplicate the export)",
        )


def parse_timestamps(frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    """Parse a timestamp column to UTC; naive times are taken as UTC, unparseable ones are an error."""
    raw = frame[column]
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC")
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & raw.notna()
    if bad.any():
        example = raw[bad].iloc[0]
        raise InputError(
            f"unparseable timestamp in {table} (e.g. {example!r})", column=column, rows=row_numbers(frame, bad),
            fix="use ISO 8601 timestamps such as 2025-03-01T14:00:00Z",
        )
    return parsed


def require_not_null(frame: pd.DataFrame, column: str, table: str, fix: str) -> None:
    """Fail on missing values in a column that must always be filled."""
    missing = frame[column].isna()
    if missing.any():
        raise InputError(f"missing values in {table}", column=column, rows=row_numbers(frame, missing), fix=fix)


def numeric_schema(columns: Iterable[str]) -> pa.DataFrameSchema:
    """A schema that coerces the given columns to float and rejects infinities."""
    finite = pa.Check(lambda s: ~np.isinf(s), element_wise=False, error="finite (not infinity)")
    return pa.DataFrameSchema(
        {column: pa.Column(float, checks=finite, nullable=True, coerce=True) for column in columns},
        strict=False,
    )


def validate_numeric(frame: pd.DataFrame, columns: list[str], table: str, decimal: str = ".") -> pd.DataFrame:
    """Coerce numeric feature columns to float, naming the column and rows of any non-number; text is read with
    the decimal mark `decimal` (`,`: see `leadscore.data.row_checks.parse_decimal_comma`)."""
    if _all_finite_floats(frame, columns):  # the usual case, checked at numpy speed; pandera explains the rest
        return frame
    # Strings such as "12" from a CSV are fine; "twelve" or "inf" are not.
    prepared = frame.copy()
    for column in columns:
        if not pd.api.types.is_numeric_dtype(prepared[column]):
            original = prepared[column]
            converted, _, bad = read_numbers(original, decimal)
            if bad.any():
                example = original[bad].iloc[0]
                written = " written with a decimal comma (3,5 or 1.234,5), as the model was trained," if decimal == "," else ""
                raise InputError(
                    f"non-numeric value in {table} (e.g. {example!r})", column=column, rows=row_numbers(frame, bad),
                    fix=f"give a number{written} or leave the cell empty for 'unknown'",
                )
            prepared[column] = converted
    try:
        return numeric_schema(columns).validate(prepared, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        column = str(cases["column"].iloc[0])
        rows = [int(i) + 1 for i in cases.loc[cases["column"] == column, "index"].dropna()]
        raise InputError(
            f"value is not a finite number in {table} ({cases['check'].iloc[0]})", column=column, rows=rows,
            fix="replace infinities with a number or an empty cell",
        ) from None


def read_numbers(values: pd.Series, decimal: str = ".") -> tuple[pd.Series, pd.Series, pd.Series]:
    """Numbers read from text cells with the decimal mark `decimal` ("." or ","), surrounding blanks ignored:
    (the numbers, missing where none; which cells are filled; which filled cells are not a number)."""
    text = values.astype("string").str.strip()
    filled = text.notna() & (text != "")
    if decimal == ",":
        numbers = pd.Series(parse_decimal_comma(values), index=values.index)
    else:
        numbers = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
    return numbers, filled, filled & numbers.isna()


def _all_finite_floats(frame: pd.DataFrame, columns: list[str]) -> bool:
    if not all(pd.api.types.is_float_dtype(frame[c]) for c in columns):
        return False
    values = frame[columns].to_numpy(dtype="float64", na_value=np.nan)
    return not np.isinf(values).any()


def binary_label(series: pd.Series, positive, column: str) -> pd.Series:
    """Map a label column to 0/1; it must have exactly two values, one of them the positive label."""
    missing = series.isna()
    if missing.any():
        raise InputError("label is missing", column=column, rows=row_numbers(series.to_frame(), missing),
                         fix="fill the label for every row, or remove unlabelled rows")
    values = set(series.astype("string").unique())
    positive_text = str(positive)
    if isinstance(positive, bool) or positive_text.lower() in {"true", "false"}:
        normalised = series.astype("string").str.lower()
        positive_text = positive_text.lower()
        values = set(normalised.unique())
    else:
        normalised = series.astype("string")
    if len(values) != 2:
        raise InputError(
            f"label must have exactly two values, found {len(values)}: {sorted(values)[:10]}", column=column,
            fix="map the label to converted / not converted before training",
        )
    if positive_text not in values:
        raise InputError(
            f"positive label {positive!r} not among the label values {sorted(values)}", column=column,
            fix="set data.positive_label to the value that means 'converted'",
        )
    return (normalised == positive_text).astype("int8")


# Cells that are dates: ISO (2025-03-01, with an optional time), day first with dots (31.12.2025) or month or
# day first with slashes (03/01/2025). A month name alone ("Feb", "may") is not a date: it has no digits.
_DATE_CELL = (
    r"\s*(?:\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}\.\d{1,2}\.\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?)?"
    r"|\d{1,2}/\d{1,2}/\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?)?)\s*"
)
_DATE_SHARE = 0.95  # of filled cells: a few typing errors do not make a column of dates anything else


def parse_dates(values: pd.Series) -> pd.Series | None:
    """A text column of dates as UTC timestamps, or None when it is not one (see `_DATE_CELL`)."""
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return None
    filled = values.notna()
    if not filled.any() or not values[filled].map(lambda v: isinstance(v, str)).all():
        return None
    text = values[filled].astype("string")
    if text.str.fullmatch(_DATE_CELL).mean() < _DATE_SHARE:
        return None
    dotted = text.str.match(r"\s*\d{1,2}\.\d").mean() > 0.5  # 31.12.2025: day first, as written in Germany
    parsed = pd.to_datetime(values.astype("string").str.strip(), utc=True, errors="coerce", format="mixed",
                            dayfirst=bool(dotted))
    return parsed if parsed[filled].notna().mean() >= _DATE_SHARE else None


def is_date_column(values: pd.Series) -> bool:
    """Whether a column holds dates: typed as dates, or text that is nearly all dates (`parse_dates`)."""
    return pd.api.types.is_datetime64_any_dtype(values) or parse_dates(values) is not None

