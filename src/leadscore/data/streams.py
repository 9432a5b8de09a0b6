"""Snapshot tables read in chunks and outputs written chunk by chunk, with pyarrow.

Reading: Parquet by row groups (`ParquetFile.iter_batches`), CSV block by block (`pyarrow.csv.open_csv`),
only the columns asked for, re-cut into chunks of a fixed number of rows. CSV cells are read as text:
a stream cannot infer a column's type from its first block and trust it for the rest of the file, so
numbers are parsed row by row later (see `leadscore.data.row_checks`), where a bad cell rejects one lead
instead of failing the job.

Writing: `TableWriter` appends frames to one CSV or Parquet file; the caller points it at a temporary
file and publishes it atomically (`leadscore.data.io.atomic_output`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadscore.data.io import TABLE_SUFFIXES, output_error
from leadscore.errors import InputError

_CSV_BLOCK_BYTES = 16 << 20


@dataclass(frozen=True)
class TableSource:
    """A snapshot table on disk: its columns, its row count when the format records it, its chunks."""

    path: Path
    columns: list[str]
    total_rows: int | None

    def chunks(self, columns: list[str], rows: int) -> Iterator[pd.DataFrame]:
        """The given columns, `rows` rows at a time, in file order."""
        try:
            if self.path.suffix.lower() == ".parquet":
                batches = pq.ParquetFile(self.path).iter_batches(batch_size=rows, columns=columns)
            else:
                batches = _csv_reader(self.path, columns)
            for table in _rebatch(batches, rows):
                yield table.to_pandas()
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"cannot read {self.path}: {exc}", fix="repair or export the file again") from None


def open_table(path: str | Path) -> TableSource:
    """Open a CSV or Parquet snapshot table without reading its rows."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}", fix="check the path on the command line")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"unsupported file type '{suffix}' for {path}", fix=f"give a file ending in one of {TABLE_SUFFIXES}")
    try:
        if suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            return TableSource(path, list(parquet.schema_arrow.names), parquet.metadata.num_rows)
        with _csv_reader(path, None) as reader:
            return TableSource(path, list(reader.schema.names), None)
    except (pa.ArrowInvalid, OSError) as exc:
        if "Empty CSV file" in str(exc):
            raise InputError(f"{path} is empty", fix="export the table again with a header row and data") from None
        raise InputError(f"cannot read {path}: {exc}", fix="check that the file is a valid CSV or Parquet") from None


def _csv_reader(path: Path, columns: list[str] | None) -> pacsv.CSVStreamingReader:
    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    if columns is not None:
        convert = pacsv.ConvertOptions(
            include_columns=columns, column_types={c: pa.string() for c in columns}, strings_can_be_null=True
        )
    return pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True), convert_options=convert,
    )


def _rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Re-cut record batches of any size into tables of exactly `rows` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


class TableWriter:
    """Appends frames to one CSV or Parquet file, with the column types of the first frame.

    Used as a context manager, it closes the file on leaving the block; with no row written, the file
    holds an empty table with the given `schema`, or else text columns named by `empty_columns`.
    A failed write (disk full, file too large) is an `OutputError` naming `target`.
    """

    def __init__(self, path: Path, fmt: str, schema: pa.Schema | None = None, *, target: Path | None = None):
        if fmt not in (".csv", ".parquet"):
            raise InputError(f"unsupported output type '{fmt}'", fix=f"name the output with one of {TABLE_SUFFIXES}")
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
