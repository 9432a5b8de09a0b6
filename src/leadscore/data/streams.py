"""Outputs written chunk by chunk, with pyarrow.

`TableWriter` appends frames to one CSV or Parquet file; the caller points it at a temporary file and
publishes it atomically (`leadscore.data.io`). Reading in chunks is `leadscore.data.sources`.

CSV outputs are opened in spreadsheets, which run a cell starting with `=`, `+`, `-` or `@` (or a tab or
carriage return before one) as a formula. Following OWASP's CSV-injection guidance, such text cells are
written with a leading apostrophe (`'=HYPERLINK(...)`), which spreadsheets show as text, in every text
column (ids, reasons, statuses). A cell that is a plain number (`-3`, `+49`) is left as it is: a spreadsheet
reads it as that number, and an id such as `-0042` keeps its bytes. Parquet outputs are data, not
spreadsheet text, and are written unchanged.
"""

from __future__ import annotations

from pathlib import Path

import re

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadscore.data.io import output_error
from leadscore.errors import InputError

OUTPUT_SUFFIXES = (".csv", ".parquet")


class TableWriter:
    """Appends frames to one CSV or Parquet file, with the column types of the first frame.

    Used as a context manager, it closes the file on leaving the block; with no row written, the file
    holds an empty table with the given `schema`, or else text columns named by `empty_columns`.
    A failed write (disk full, file too large) is an `OutputError` naming `target`.
    """

    def __init__(self, path: Path, fmt: str, schema: pa.Schema | None = None, *, target: Path | None = None):
        if fmt not in OUTPUT_SUFFIXES:
            raise InputError(f"unsupported output type '{fmt}'", fix=f"name the output with one of {OUTPUT_SUFFIXES}")
        self.path, self.fmt, self.schema = Path(path), fmt, schema
        self.target = Path(target or path)  # the file this one will be published as, named in errors
        self.rows = 0
        self.empty_columns: list[str] = []
        self._writer = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of `frame`."""
        if self.schema is None:
            self.schema = _stable_schema(frame)
        if self.fmt == ".csv":
            frame = neutralise_formulas(frame)
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        try:
            if self._writer is None:
                self._writer = self._open()
            self._writer.write_table(table)
        except OSError as exc:
            raise output_error(self.target, exc) from exc
        self.rows += len(frame)

    def close(self) -> None:
        """Finish the file."""
        try:
            if self._writer is None:
                if self.schema is None:
                    self.schema = pa.schema([(c, pa.large_string()) for c in self.empty_columns])
                self._writer = self._open()
            self._writer.close()
        except OSError as exc:
            raise output_error(self.target, exc) from exc

    def _open(self):
        schema = self.schema.remove_metadata()
        if self.fmt == ".parquet":
            return pq.ParquetWriter(self.path, schema)
        return pacsv.CSVWriter(self.path, schema)


# A cell a spreadsheet would run: starting with = + - @, or a tab or carriage return (OWASP).
FORMULA_START = re.compile(r"^[=+\-@\t\r]")
PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def neutralise_formula(text: str) -> str:
    """`text` as a spreadsheet shows it without running it: a formula-like cell gets a leading apostrophe."""
    if FORMULA_START.match(text) and not PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every formula-like text cell neutralised (see the module docstring); unchanged,
    and not copied, when there is none."""
    changed = {}
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        text = values.astype("string")
        risky = text.str.match(FORMULA_START.pattern).fillna(False) & ~text.str.match(PLAIN_NUMBER.pattern).fillna(False)
        if risky.any():
            changed[column] = values.mask(risky.to_numpy(dtype=bool), "'" + text[risky])
    return frame.assign(**changed) if changed else frame


def _stable_schema(frame: pd.DataFrame) -> pa.Schema:
    # A column that is empty in the first chunk has no type yet; text is the type that takes any later value.
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    return pa.schema([f.with_type(pa.large_string()) if pa.types.is_null(f.type) else f for f in schema])
