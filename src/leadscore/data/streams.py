"""Outputs written chunk by chunk, with pyarrow.

`TableWriter` appends frames to one CSV or Parquet file; the caller points it at a temporary file and
publishes it atomically (`leadscore.data.io`). Reading in chunks is `leadscore.data.sources`.
"""

from __future__ import annotations

from pathlib import Path

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


def _stable_schema(frame: pd.DataFrame) -> pa.Schema:
    # A column that is empty in the first chunk has no type yet; text is the type that takes any later value.
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    return pa.schema([f.with_type(pa.large_string()) if pa.types.is_null(f.type) else f for f in schema])
