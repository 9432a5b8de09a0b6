"""Row by row: which leads in a chunk can be scored, and why each of the others cannot.

The whole-frame checks in `LeadScorer.validate` stop at the first bad column; a nightly job over
millions of leads should instead score every good row and set the bad ones aside with a reason. The
reasons, in order of precedence (a row gets the first that applies):

- `unreadable row`: the row itself cannot be read (more or fewer fields than the header, a cell over
  16 MB; see `leadscore.data.sources`); its detail says which, never what it holds;
- `missing id`: the id cell is empty;
- `duplicate id`: the id was already seen on an earlier row, whatever became of that row (so a lead
  is scored at most once, from its first row);
- `bad value`: a numeric feature holds something that is not a finite number (with a model trained on
  numbers written with a decimal comma, `data.decimal: ","`, a number is read as `parse_decimal_comma` reads it,
  so that `3,5` is 3.5 and `3.5` is a bad value).

Missing columns are not a row problem: the job stops before reading any row.
Both scoring engines use `row_problems`; duplicates are found by `SeenIds` in a stream and by an
aggregate over the ids in Spark.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

UNREADABLE, MISSING_ID, DUPLICATE_ID, BAD_VALUE = "unreadable row", "missing id", "duplicate id", "bad value"
REASONS = (UNREADABLE, MISSING_ID, DUPLICATE_ID, BAD_VALUE)
_NO_ID = (MISSING_ID, UNREADABLE)
DUPLICATE_DETAIL = "already seen on an earlier row"
PROBLEM_COLUMNS = ("column", "reason", "detail")
REJECT_COLUMNS = ("row", "id", *PROBLEM_COLUMNS)
_BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}
_MISSING_TEXT = ("", "nan", "-nan")  # read as missing, like pyarrow's cast and pandas' CSV reader
# A number as German, French or Spanish exports write it (`data.decimal: ","`): a decimal comma, and `.` grouping
# thousands in threes (`3,5`, `-0,25`, `1.234,5`, `1.234.567`, `12`, `,5`, `2,5e3`); ASCII digits only. A first
# group of `0` is no grouping (`0.750` is not 750). Anything else (`3.5`, `1,234.5`) is not such a number.
DECIMAL_COMMA = r"^[+-]?(?:(?:[0-9]+|[1-9][0-9]{0,2}(?:\.[0-9]{3})+)(?:,[0-9]*)?|,[0-9]+)(?:[eE][+-]?[0-9]+)?$"
DECIMAL_MARKS = (".", ",")


def parse_decimal_comma(values: pd.Series) -> np.ndarray:
    """Cells read as numbers written with a decimal comma (`DECIMAL_COMMA`, surrounding blanks ignored), as float64:
    NaN where a cell is missing or is not such a number.

    The one reader of such numbers, for every path (whole-table reads, scoring chunks, Spark batches, frames
    given to the scorer): vectorised with pyarrow, as scoring streams millions of rows. Cells that are numbers
    already (a numeric column, or numbers in an object column built by hand) are taken as they are.
    """
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    try:
        text = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Not all text (an object column mixing numbers with text, built by hand; dates), which no file reader
        # gives: numbers as they are, anything else read as its text.
        is_number = values.map(lambda v: isinstance(v, Real), na_action="ignore").fillna(False).to_numpy(dtype=bool)
        numbers = np.full(len(values), np.nan)
        numbers[is_number] = values[is_number].to_numpy(dtype="float64")
        numbers[~is_number] = parse_decimal_comma(values[~is_number].astype("string"))
        return numbers
    text = pc.utf8_trim_whitespace(text)
    plain = pc.replace_substring(pc.replace_substring(text, ".", ""), ",", ".")  # 1.234,5 -> 1234.5
    numbers = pc.if_else(pc.match_substring_regex(text, DECIMAL_COMMA), plain, pa.scalar(None, pa.string()))
    return pc.cast(numbers, pa.float64()).to_numpy(zero_copy_only=False)


def row_problems(chunk: pd.DataFrame, id_column: str, numeric_columns: list[str],
                 unreadable: dict[int, str] | None = None, decimal: str = ".") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chunk with numeric features as float64, and per row the problem (`column`, `reason`, `detail`).

    `unreadable` maps positions in the chunk of rows that could not be read to why; `decimal` is the decimal
    mark of numbers held as text (the model's `decimal`). Rows without a problem have missing values in the
    problem frame. Both frames keep the chunk's index.
    """
    n = len(chunk)
    column = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)

    typed = {}
    for name in reversed(numeric_columns):  # reversed: the leftmost bad column is the one reported
        values, bad = _to_float(chunk[name], decimal)
        typed[name] = values
        if bad.any():
            column[bad], reason[bad] = name, BAD_VALUE
            detail[bad] = [_describe(v) for v in chunk[name].to_numpy()[bad]]

    missing = missing_ids(chunk[id_column])
    column[missing], reason[missing], detail[missing] = id_column, MISSING_ID, "empty"
    for position, why in (unreadable or {}).items():
        column[position], reason[position], detail[position] = None, UNREADABLE, why
    problems = pd.DataFrame({"column": column, "reason": reason, "detail": detail}, index=chunk.index)
    # Columns read as float64 (Parquet numbers) are kept as they are: replacing them would copy the chunk.
    changed = {name: values for name, values in typed.items() if chunk[name].dtype != "float64"}
    return (chunk.assign(**changed) if changed else chunk), problems


def missing_ids(ids: pd.Series) -> np.ndarray:
    """True where the id is missing or blank."""
    missing = ids.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(ids):
        missing = missing | (ids.astype("string").str.strip() == "").fillna(True).to_numpy(dtype=bool)
    return missing


def mark_duplicates(problems: pd.DataFrame, repeated: np.ndarray, id_column: str) -> None:
    """Give `duplicate id` to repeated ids, above a bad value but below a missing id."""
    hit = repeated & ~problems["reason"].isin(_NO_ID).to_numpy()
    problems.loc[hit, "column"] = id_column
    problems.loc[hit, "reason"] = DUPLICATE_ID
    problems.loc[hit, "detail"] = DUPLICATE_DETAIL


class SeenIds:
    """The ids seen so far in a stream, to reject later duplicates across chunks.

    Ids are kept as sorted 64-bit hashes: 8 bytes per distinct lead (80 MB for 10 million leads),
    so memory grows with the number of distinct ids and nothing else. Within a chunk, ids are compared
    exactly; across chunks by hash, where two different ids collide with a probability of about
    n^2 / 2^65 (one in 370,000 for a job of 10 million leads): the later lead is then listed among the
    rejects as a duplicate, never dropped silently.
    """

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype="uint64")

    def __len__(self) -> int:
        return len(self._hashes)

    def repeated(self, ids: pd.Series) -> np.ndarray:
        """True for each id seen before (earlier in the stream or in this chunk); remember the others."""
        hashes = pd.util.hash_pandas_object(ids, index=False).to_numpy()
        repeated = ids.duplicated().to_numpy()
        if len(self._hashes):
            at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
            repeated = repeated | (self._hashes[at] == hashes)
        new = np.sort(hashes[~repeated])
        self._hashes = np.insert(self._hashes, np.searchsorted(self._hashes, new), new)
        return repeated


def split_rows(
    chunk: pd.DataFrame, rows: np.ndarray, id_column: str, numeric_columns: list[str], seen: SeenIds,
    unreadable: dict[int, str] | None = None, decimal: str = ".",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a chunk into rows to score (numeric features as float64) and rejects (`REJECT_COLUMNS`).

    `rows` holds each row's 1-based position in the input, reported in the rejects; `unreadable`, the
    positions of rows that could not be read, with why; `decimal`, the decimal mark of numbers held as text.
    """
    typed, problems = row_problems(chunk, id_column, numeric_columns, unreadable, decimal)
    has_id = ~problems["reason"].isin(_NO_ID).to_numpy()
    repeated = np.zeros(len(chunk), dtype=bool)
    repeated[has_id] = seen.repeated(chunk[id_column][has_id])
    mark_duplicates(problems, repeated, id_column)

    bad = problems["reason"].notna().to_numpy()
    rejects = problems[bad].assign(row=rows[bad], id=chunk[id_column][bad].astype("string").to_numpy())
    return (typed[~bad] if bad.any() else typed), rejects[list(REJECT_COLUMNS)].reset_index(drop=True)


def _to_float(values: pd.Series, decimal: str = ".") -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (NaN for missing) and where a present value is not a finite number; text is read
    with the decimal mark `decimal`."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        return numbers, np.isinf(numbers)
    # The common case, a column of well-formed numbers as text (or missing), parsed in one call.
    parsed = None
    if decimal == ",":
        comma = parse_decimal_comma(values)
        if not (np.isnan(comma) & values.notna().to_numpy()).any():
            return comma, np.isinf(comma)
        parsed = pd.Series(comma, index=values.index, dtype="Float64")  # as pd.to_numeric gives below
    else:
        try:
            numbers = pc.cast(pa.array(values, from_pandas=True), pa.float64()).to_numpy(zero_copy_only=False)
            return numbers, np.isinf(numbers)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    text = values.astype("string").str.strip()
    lowered = text.str.lower()
    if parsed is None:
        parsed = pd.to_numeric(text.mask(lowered.isin(_MISSING_TEXT)), errors="coerce")
    numbers = parsed.fillna(lowered.map(_BOOLEAN_TEXT))  # as pandas reads True/False in a CSV
    numbers = numbers.to_numpy(dtype="float64", na_value=np.nan)
    present = (~lowered.isin(_MISSING_TEXT) & lowered.notna()).to_numpy(dtype=bool)
    return numbers, (np.isnan(numbers) & present) | np.isinf(numbers)


def _describe(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    kind = "not a finite number" if _is_infinite(value) else "not a number"
    return f"{kind}: {text[:60]}"


def _is_infinite(value) -> bool:
    try:
        return bool(np.isinf(float(value)))
    except (TypeError, ValueError):
        return False
