"""Where leads are read from: a registry of source kinds, each saying which locations it reads and how.

A location (a path, or later a database URL) is read by the first registered kind that handles it:
- `parquet`: a Parquet file, or a folder of Parquet part files (as Spark writes one), named `*.parquet`;
- `csv`: a CSV file, named `*.csv`;
- `event_log`: any other folder, holding the leads, activities and outcomes tables, each a table of a
  kind above named by its table (`leads.parquet` or `leads.csv`).
A location no kind handles is an `InputError` naming it and the kinds there are. A new kind (a database
table, a warehouse query) is one more `register(SourceKind(...))` whose `open` returns an object with
the `TableSource` methods; nothing that reads leads has to change.

A table is opened without reading its rows. Its rows are then read whole (`read_table`: types inferred,
for training and for looking up one lead) or in chunks of a fixed number of rows with chosen columns
(`TableSource.chunks`: memory stays flat, for scoring). Chunks of CSV hold text: a stream cannot infer a
column's type from its first block and trust it for the rest of the file, so numbers are parsed row by
row later (`leadscore.data.row_checks`), where a bad cell rejects one lead instead of failing the job.
Parquet is streamed by row groups (`ParquetFile.iter_batches`), CSV block by block (`pyarrow.csv`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadscore.errors import InputError

SNAPSHOT, EVENT_LOG = "snapshot", "event_log"  # the two forms of input, as in `data.form` of the config
_CSV_BLOCK_BYTES = 16 << 20
# The text pyarrow's CSV reader takes for missing; Spark is told the same, so both read a cell alike.
CSV_NULL_TEXT = tuple(pacsv.ConvertOptions().null_values)


@dataclass(frozen=True)
class ReadOptions:
    """How to read text tables: the CSV separator and extra cell texts that mean "missing"."""

    csv_separator: str = ","
    na_values: tuple[str, ...] = ()


class TableSource(Protocol):
    """A table of leads, opened but not read: what every table kind offers."""

    location: str
    form: str

    @property
    def columns(self) -> list[str]:
        """The column names, from the header or schema."""

    @property
    def total_rows(self) -> int | None:
        """The number of rows when the format records it, else None."""

    def read(self) -> pd.DataFrame:
        """All rows and columns, with types inferred."""

    def chunks(self, columns: list[str], rows: int) -> Iterator[pd.DataFrame]:
        """The given columns, `rows` rows at a time (the last chunk may be shorter), in table order."""

    def spark_frame(self, spark):
        """The table as a Spark DataFrame on the session `spark` (text tables: every cell as text)."""


@dataclass(frozen=True)
class SourceKind:
    """One kind of input: which locations it handles and how it opens them.

    `handles` sees the location as text (a path, or a URL for sources that are not files); `open` returns
    a `TableSource` (form `snapshot`) or an `EventLogFolder` (form `event_log`). `suffixes` are the file
    name endings of a table kind, by which an event-log folder finds its tables.
    """

    name: str
    form: str
    description: str
    handles: Callable[[str], bool]
    open: Callable[[str, ReadOptions], object]
    suffixes: tuple[str, ...] = ()


_KINDS: dict[str, SourceKind] = {}


def register(kind: SourceKind) -> SourceKind:
    """Add a kind of source; locations are offered to the kinds in the order they were registered."""
    if kind.name in _KINDS:
        raise ValueError(f"a source kind named '{kind.name}' is already registered")
    _KINDS[kind.name] = kind
    return kind


def source_kinds() -> list[SourceKind]:
    """The registered kinds of source, in the order they are tried."""
    return list(_KINDS.values())


def resolve(location: str | os.PathLike) -> SourceKind:
    """The kind that reads `location`; an `InputError` when it is absent or no kind reads it."""
    text = os.fspath(location)
    for kind in _KINDS.values():
        if kind.handles(text):
            return kind
    if not Path(text).exists():
        raise InputError(f"file not found: {text}", fix="check the path in the config or on the command line")
    supported = "; ".join(kind.description for kind in _KINDS.values())
    raise InputError(f"unsupported input {text}: leadscore reads {supported}",
                     fix="give one of those, or export the data again in one of those forms")


def open_source(location: str | os.PathLike, options: ReadOptions = ReadOptions()):
    """Open `location` with the kind that reads it: a `TableSource` or an `EventLogFolder` (see `.form`)."""
    return resolve(location).open(os.fspath(location), options)


def open_table(location: str | os.PathLike, options: ReadOptions = ReadOptions()) -> TableSource:
    """Open a table of leads (one row per lead) without reading its rows."""
    kind = resolve(location)
    if kind.form != SNAPSHOT:
        tables = "; ".join(k.description for k in _KINDS.values() if k.form == SNAPSHOT)
        raise InputError(f"{os.fspath(location)} is {kind.description}, but a table of leads is needed here",
                         fix=f"give {tables}")
    return kind.open(os.fspath(location), options)


def open_event_log(location: str | os.PathLike, options: ReadOptions = ReadOptions()) -> EventLogFolder:
    """Open an event-log folder without reading its tables."""
    text = os.fspath(location)
    if not Path(text).is_dir():
        raise InputError(f"event log folder not found: {text}", fix="point data.path (or --input) at the folder")
    kind = resolve(text)
    if kind.form != EVENT_LOG:
        raise InputError(f"{text} is {kind.description}, but an event-log folder is needed here",
                         fix="point data.path (or --input) at the folder holding the leads, activities and outcomes")
    return kind.open(text, options)


def read_table(location: str | os.PathLike, *, csv_separator: str = ",", na_values: Iterable[str] | None = None
               ) -> pd.DataFrame:
    """Read a whole table of leads, failing clearly when it is absent, unreadable or has no rows."""
    return read_rows(open_table(location, ReadOptions(csv_separator, tuple(na_values or ()))))


def read_rows(table: TableSource) -> pd.DataFrame:
    """All rows of an opened table; an `InputError` when there are none."""
    frame = table.read()
    if frame.empty:
        raise InputError(f"{table.location} has no rows", fix="export the table again with data")
    return frame


class EventLogFolder:
    """An event log: a folder holding one table per kind of record (leads, activities, outcomes)."""

    form = EVENT_LOG

    def __init__(self, location: str, options: ReadOptions = ReadOptions()):
        self.location, self.options = location, options

    def table_location(self, stem: str) -> str | None:
        """Where the table named `stem` is (`<stem>.parquet` before `<stem>.csv`), or None."""
        folder = Path(self.location)
        for kind in _KINDS.values():
            for suffix in kind.suffixes:
                candidate = folder / f"{stem}{suffix}"
                if candidate.exists():
                    return str(candidate)
        return None

    def has_table(self, stem: str) -> bool:
        """Whether the folder holds a table named `stem`."""
        return self.table_location(stem) is not None

    def table(self, stem: str, options: ReadOptions | None = None) -> TableSource:
        """The table named `stem`, read with `options` (default: the folder's)."""
        location = self.table_location(stem)
        if location is None:
            endings = " or ".join(f"{stem}{s}" for k in _KINDS.values() for s in k.suffixes)
            raise InputError(f"event log table '{stem}' not found in {self.location}", fix=f"put {endings} in that folder")
        return open_table(location, options or self.options)


class _FileTable:
    """A table in a file (or folder) on this machine, which must exist when it is opened."""

    form = SNAPSHOT

    def __init__(self, location: str, options: ReadOptions):
        self.location, self.options = location, options
        if not Path(location).exists():
            raise InputError(f"file not found: {location}", fix="check the path in the config or on the command line")


class _ParquetTable(_FileTable):
    """A Parquet file, or a folder of Parquet part files read as one table in name order."""

    @cached_property
    def _files(self) -> list[Path]:
        path = Path(self.location)
        if not path.is_dir():
            return [path]
        # Names starting with '.' or '_' are bookkeeping (_SUCCESS, checksums), as for pyarrow and Spark.
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        if not files:
            raise InputError(f"{self.location} is empty", fix="export the table again with data")
        return files

    @cached_property
    def _metadata(self) -> tuple[list[str], int]:
        try:
            first = pq.ParquetFile(self._files[0])
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in self._files)
            return list(first.schema_arrow.names), rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(self.location, exc) from None

    @property
    def columns(self) -> list[str]:
        return self._metadata[0]

    @property
    def total_rows(self) -> int | None:
        return self._metadata[1]

    def read(self) -> pd.DataFrame:
        try:
            frame = pd.read_parquet(self.location)
        except (OSError, ValueError) as exc:
            raise _unreadable(self.location, exc) from exc
        if self.options.na_values:
            frame = frame.replace(list(self.options.na_values), pd.NA)
        return frame

    def chunks(self, columns: list[str], rows: int) -> Iterator[pd.DataFrame]:
        def batches():
            for file in self._files:
                yield from pq.ParquetFile(file).iter_batches(batch_size=rows, columns=columns)

        yield from _chunked(self.location, batches(), rows)

    def spark_frame(self, spark):
        return _spark_read(self.location, lambda: spark.read.parquet(self.location))


class _CsvTable(_FileTable):
    """A CSV file: read whole by pandas (types inferred), streamed as text by pyarrow."""

    @cached_property
    def columns(self) -> list[str]:
        try:
            with self._reader(None) as reader:
                return list(reader.schema.names)
        except (pa.ArrowInvalid, OSError) as exc:
            if "Empty CSV file" in str(exc):
                raise InputError(f"{self.location} is empty", fix="export the table again with a header row and data") from None
            raise _unreadable(self.location, exc) from None

    @property
    def total_rows(self) -> int | None:
        return None  # known only by reading the whole file

    def read(self) -> pd.DataFrame:
        try:
            return pd.read_csv(self.location, sep=self.options.csv_separator,
                               na_values=list(self.options.na_values) or None, keep_default_na=True)
        except pd.errors.EmptyDataError:
            raise InputError(f"{self.location} is empty", fix="export the table again with a header row and data") from None
        except (OSError, ValueError) as exc:
            raise _unreadable(self.location, exc) from exc

    def chunks(self, columns: list[str], rows: int) -> Iterator[pd.DataFrame]:
        def batches():
            with self._reader(columns) as reader:
                yield from reader

        yield from _chunked(self.location, batches(), rows)

    def spark_frame(self, spark):
        from pyspark.sql import functions as F

        def read():
            # Every cell as text, quotes doubled as in RFC 4180 (as pyarrow and pandas read them).
            return spark.read.options(header=True, multiLine=True, escape='"', mode="FAILFAST",
                                      sep=self.options.csv_separator).csv(self.location)

        frame = _spark_read(self.location, read)
        missing = [*CSV_NULL_TEXT, *self.options.na_values]
        return frame.select(*[F.when(F.col(c).isin(missing), None).otherwise(F.col(c)).alias(c) for c in frame.columns])

    def _reader(self, columns: list[str] | None) -> pacsv.CSVStreamingReader:
        convert = pacsv.ConvertOptions(strings_can_be_null=True)
        if columns is not None:
            convert = pacsv.ConvertOptions(
                include_columns=columns, column_types={c: pa.string() for c in columns}, strings_can_be_null=True
            )
        if self.options.na_values:
            convert.null_values = [*CSV_NULL_TEXT, *self.options.na_values]
        return pacsv.open_csv(
            self.location, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=self.options.csv_separator, newlines_in_values=True),
            convert_options=convert,
        )


def _chunked(location: str, batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pd.DataFrame]:
    try:
        for table in _rebatch(batches, rows):
            yield table.to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read {location}: {exc}", fix="repair or export the file again") from None


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


def _unreadable(location: str, exc: Exception) -> InputError:
    return InputError(f"cannot read {location}: {exc}", fix="check that the file is a valid CSV or Parquet")


def _spark_read(location: str, read: Callable[[], object]):
    from pyspark.errors import AnalysisException

    try:
        return read()
    except AnalysisException as exc:
        raise InputError(f"cannot read {location}: {str(exc).splitlines()[0]}",
                         fix="check the path and that the file is a valid CSV or Parquet") from None


def _suffix(location: str) -> str:
    return Path(location).suffix.lower()


register(SourceKind(
    "parquet", SNAPSHOT, "a Parquet file or folder of Parquet files (.parquet)",
    handles=lambda location: _suffix(location) == ".parquet", open=_ParquetTable, suffixes=(".parquet",),
))
register(SourceKind(
    "csv", SNAPSHOT, "a CSV file (.csv)",
    handles=lambda location: _suffix(location) == ".csv" and not Path(location).is_dir(), open=_CsvTable,
    suffixes=(".csv",),
))
register(SourceKind(
    "event_log", EVENT_LOG, "an event-log folder (leads, activities and outcomes tables, each .parquet or .csv)",
    handles=lambda location: Path(location).is_dir(), open=EventLogFolder,
))
