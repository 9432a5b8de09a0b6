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

CSV text, the same way for every reader (training, scoring, explaining, Spark):
- **Encoding**: declared (`data.encoding`) or detected from the first bytes: a byte-order mark says
  UTF-8 (with BOM) or UTF-16; else text that decodes as UTF-8 is UTF-8; else cp1252 (the usual Windows
  export), and latin-1 when cp1252 cannot decode it (latin-1 decodes any byte).
- **Separator**: declared (`data.csv_separator`) or detected from the header line: the one of `,` `;`
  tab `|` that splits it into the most names. A header read as one column that another separator would
  split is an error that says so, never "required column missing".
- **Ids are text**: the columns named in `ReadOptions.text_columns` (lead ids) are read as text, so
  `000123` stays `000123` and never collides with `123`. Streamed chunks hold only text anyway.
- **Decimal comma**: with `ReadOptions.decimal` `,` (`data.decimal`), a whole read takes a text column (not one
  of `text_columns`) whose every filled cell is a number written with a decimal comma (`3,5`, `1.234,5`: see
  `leadscore.data.row_checks.parse_decimal_comma`) as those numbers; a column with other cells stays text, for
  training to judge. pandas' own `thousands="."` is not used: it drops every `.` of a cell, so that it would
  read `3.5` as 35 and the date `31.12.2025` as a number. Streamed chunks stay text, read as numbers by the row
  checks with the model's decimal mark.
- **Bad rows** (a row with more or fewer fields than the header, a cell over 16 MB) stop a whole read
  (training) with the data row number, or, when streamed for scoring, come back as rows of their own
  in the chunk, listed in `frame.attrs[UNREADABLE_ROWS]` by position, for the job to reject with their
  row number. On Spark a ragged row is flagged in the column `UNREADABLE_COLUMN` (the same rejection). The fast reader (pyarrow) hands over to Python's `csv` module at the first such row.
- **No row content in messages**: a parser's message that quotes a row is cut before the row.
Duplicate column names are refused: a reader would otherwise rename one (`visits.1`) and learn it.
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadscore.data.row_checks import parse_decimal_comma
from leadscore.errors import InputError

log = logging.getLogger(__name__)

SNAPSHOT, EVENT_LOG = "snapshot", "event_log"  # the two forms of input, as in `data.form` of the config
_CSV_BLOCK_BYTES = 16 << 20
_MAX_CELL_BYTES = _CSV_BLOCK_BYTES  # a longer cell makes its row unreadable (rejected), not the whole job
_SNIFF_BYTES = 4 << 20  # the encoding is detected from this much of the file
_SELECTED_ROWS_BATCH = 1_000_000  # rows of a Parquet table read at a time when only some are kept
_SEPARATORS = (",", ";", "\t", "|")
# Chunk attribute: {position in the chunk: why} for rows that could not be read (see the module docstring).
UNREADABLE_ROWS = "unreadable_rows"
# Spark frames of text tables carry this column: why a row could not be read (its fields do not match the
# header), else null; the job rejects such rows with their row number (`leadscore.scoring.spark_engine`).
UNREADABLE_COLUMN = "__leadscore_unreadable"
_RAGGED_SPARK = "the number of fields differs from the header's"
# Spark's own charset names, and Python's codec names as Java calls them.
_SPARK_CHARSETS = {"UTF-8", "UTF-16", "UTF-16BE", "UTF-16LE", "UTF-32", "US-ASCII", "ISO-8859-1"}
_JAVA_CHARSETS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "utf-16": "UTF-16", "iso8859-1": "ISO-8859-1",
                  "latin-1": "ISO-8859-1", "cp1252": "windows-1252", "ascii": "US-ASCII"}
# The text pyarrow's CSV reader takes for missing; Spark is told the same, so both read a cell alike.
CSV_NULL_TEXT = tuple(pacsv.ConvertOptions().null_values)


@dataclass(frozen=True)
class ReadOptions:
    """How to read text tables: the CSV separator and encoding (None: detected), extra cell texts that mean
    "missing", the columns always read as text (ids), and the decimal mark of numbers written as text."""

    csv_separator: str | None = None
    na_values: tuple[str, ...] = ()
    encoding: str | None = None
    text_columns: tuple[str, ...] = ()
    decimal: str = "."


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

    def read(self, columns: list[str] | None = None, rows: np.ndarray | None = None) -> pd.DataFrame:
        """All rows of `columns` (default: every column), with types inferred; with `rows` (a mask over the
        table's rows) only those rows, the others never held in memory."""

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


def read_table(location: str | os.PathLike, *, csv_separator: str | None = None, na_values: Iterable[str] | None = None,
               encoding: str | None = None, text_columns: Iterable[str] = (), decimal: str = ".") -> pd.DataFrame:
    """Read a whole table of leads, failing clearly when it is absent, unreadable or has no rows.

    `text_columns` (the id) are read as text; the separator and encoding are detected unless given; `decimal`
    is the decimal mark of numbers written as text (see the module docstring)."""
    options = ReadOptions(csv_separator, tuple(na_values or ()), encoding, tuple(c for c in text_columns if c), decimal)
    return read_rows(open_table(location, options))


def read_rows(table: TableSource, columns: list[str] | None = None) -> pd.DataFrame:
    """All rows of an opened table (of `columns`, default all); an `InputError` when there are none."""
    frame = table.read(columns)
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
        return _unique_names(self.location, self._metadata[0])

    @property
    def total_rows(self) -> int | None:
        return self._metadata[1]

    def read(self, columns: list[str] | None = None, rows: np.ndarray | None = None) -> pd.DataFrame:
        self.columns  # noqa: B018  (refuses duplicate names before reading rows)
        try:
            frame = pd.read_parquet(self.location, columns=columns) if rows is None else self._rows(columns, rows)
        except (OSError, ValueError, pa.ArrowInvalid) as exc:
            raise _unreadable(self.location, exc) from exc
        if self.options.na_values:
            frame = frame.replace(list(self.options.na_values), pd.NA)
        return _with_decimal_comma_numbers(frame, self.options)

    def _rows(self, columns: list[str] | None, rows: np.ndarray) -> pd.DataFrame:
        """The rows `rows` selects, a batch at a time, as `pd.read_parquet` would give them."""
        parts, start = [], 0
        for file in self._files:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=_SELECTED_ROWS_BATCH, columns=columns):
                picked = rows[start:start + batch.num_rows]
                start += batch.num_rows
                if picked.any():
                    parts.append(batch.filter(pa.array(picked)))
        schema = pq.ParquetFile(self._files[0]).schema_arrow
        table = pa.Table.from_batches(parts, schema=parts[0].schema) if parts else schema.empty_table().select(
            columns or schema.names)
        return table.to_pandas()

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
    def encoding(self) -> str:
        """The declared encoding, else the detected one (see the module docstring)."""
        return self.options.encoding or detect_encoding(self.location)

    @cached_property
    def separator(self) -> str:
        """The declared separator, else the one detected from the header line."""
        return self.options.csv_separator or detect_separator(self._header_line())

    def _header_line(self) -> str:
        try:
            with open(self.location, encoding=self._pandas_encoding(), errors="replace", newline="") as f:
                return f.readline()
        except OSError as exc:
            raise _unreadable(self.location, exc) from None

    @cached_property
    def columns(self) -> list[str]:
        # From the header line alone: a bad row further down is the rows' problem, reported with its number.
        header = self._header_line()
        if not header.strip():
            raise InputError(f"{self.location} is empty", fix="export the table again with a header row and data")
        names = next(csv.reader([header.rstrip("\r\n")], delimiter=self.separator, quotechar='"', doublequote=True))
        _refuse_one_column(self.location, names, self.separator)
        return _unique_names(self.location, names)

    @property
    def total_rows(self) -> int | None:
        return None  # known only by reading the whole file

    def read(self, columns: list[str] | None = None, rows: np.ndarray | None = None) -> pd.DataFrame:
        header = self.columns  # refuses a wrong separator and repeated names before any row is read
        text = {c: "string" for c in self.options.text_columns if c in header}
        # Line 0 is the header; data row i (from 0) is line i + 1.
        skip = None if rows is None else (lambda line: line > 0 and (line > len(rows) or not rows[line - 1]))
        try:
            frame = pd.read_csv(self.location, sep=self.separator, encoding=self._pandas_encoding(),
                                na_values=list(self.options.na_values) or None, keep_default_na=True,
                                dtype=text or None, decimal=self.options.decimal, usecols=columns, skiprows=skip)
        except pd.errors.EmptyDataError:
            raise InputError(f"{self.location} is empty", fix="export the table again with a header row and data") from None
        except pd.errors.ParserError as exc:
            # pandas names the line ("Expected 3 fields in line 7, saw 4"), never its content.
            raise InputError(f"cannot read {self.location}: {_without_row(str(exc))}",
                             fix="repair the row (a separator inside an unquoted cell?) or export the file again") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise _unreadable(self.location, exc, self.encoding) from None
        return _with_decimal_comma_numbers(frame, self.options)

    def _pandas_encoding(self) -> str:
        return "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding

    def chunks(self, columns: list[str], rows: int) -> Iterator[pd.DataFrame]:
        yielded = 0
        try:
            with self._reader(columns) as reader:
                for table in _rebatch(reader, rows):
                    frame = table.to_pandas()
                    yield frame
                    yielded += len(frame)
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
            if not _is_row_problem(exc):
                raise _unreadable(self.location, exc, self.encoding) from None
            # A ragged row or an oversized cell: go on row by row, where each such row is one reject.
            log.info("%s: data row %d onwards read row by row (%s)", self.location, yielded + 1, _without_row(str(exc)))
            yield from self._careful_chunks(columns, rows, skip=yielded)

    def _careful_chunks(self, columns: list[str], rows: int, skip: int) -> Iterator[pd.DataFrame]:
        """The rows after the first `skip`, read with Python's `csv` module: slower, but each unreadable row
        is kept in place (all missing) and named in `frame.attrs[UNREADABLE_ROWS]`."""
        missing = {*CSV_NULL_TEXT, *self.options.na_values}
        limit = csv.field_size_limit()
        csv.field_size_limit(sys.maxsize)  # an oversized cell is read once, then its row is rejected
        try:
            with open(self.location, encoding=self._pandas_encoding(), newline="") as f:
                records = (r for r in csv.reader(f, delimiter=self.separator, quotechar='"', doublequote=True) if r)
                header = next(records, None) or []
                at = [header.index(c) for c in columns]
                for _ in range(skip):
                    next(records, None)
                batch: list[list] = []
                bad: dict[int, str] = {}
                for record in records:
                    problem = _record_problem(record, len(header))
                    if problem:
                        bad[len(batch)] = problem
                        batch.append([None] * len(at))
                    else:
                        batch.append([None if record[i] in missing else record[i] for i in at])
                    if len(batch) == rows:
                        yield _text_frame(batch, columns, bad)
                        batch, bad = [], {}
                if batch:
                    yield _text_frame(batch, columns, bad)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise _unreadable(self.location, exc, self.encoding) from None
        finally:
            csv.field_size_limit(limit)

    def spark_frame(self, spark):
        from pyspark.sql import functions as F
        from pyspark.sql.types import StringType, StructField, StructType

        encoding = _JAVA_CHARSETS.get(codecs.lookup(self.encoding).name, self.encoding)
        if encoding not in _SPARK_CHARSETS:
            # Spark 4 reads only a few charsets unless told to take any of Java's (cp1252 is windows-1252 there).
            spark.conf.set("spark.sql.legacy.javaCharsets", "true")
        # The names come from the header as read here (the same for every reader), every cell as text, and a
        # row whose fields do not match the header (ragged) is flagged instead of failing the job. Only the
        # flag leaves this method, never the raw record Spark keeps for it.
        corrupt = f"{UNREADABLE_COLUMN}_record"
        schema = StructType([*(StructField(c, StringType()) for c in self.columns), StructField(corrupt, StringType())])

        def read():
            # Quotes doubled as in RFC 4180 (as pyarrow and pandas read them).
            return spark.read.options(header=True, multiLine=True, escape='"', mode="PERMISSIVE",
                                      columnNameOfCorruptRecord=corrupt, sep=self.separator,
                                      encoding=encoding).schema(schema).csv(self.location)

        frame = _spark_read(self.location, read)
        missing = [*CSV_NULL_TEXT, *self.options.na_values]
        flag = F.when(F.col(corrupt).isNotNull(), F.lit(_RAGGED_SPARK)).alias(UNREADABLE_COLUMN)
        return frame.select(*[F.when(spark_column(c).isin(missing), None).otherwise(spark_column(c)).alias(c)
                              for c in self.columns], flag)

    def _reader(self, columns: list[str] | None) -> pacsv.CSVStreamingReader:
        convert = pacsv.ConvertOptions(strings_can_be_null=True)
        if columns is not None:
            convert = pacsv.ConvertOptions(
                include_columns=columns, column_types={c: pa.string() for c in columns}, strings_can_be_null=True
            )
        if self.options.na_values:
            convert.null_values = [*CSV_NULL_TEXT, *self.options.na_values]
        # pyarrow decodes UTF-8 itself (and drops a byte-order mark); other encodings are transcoded.
        encoding = "utf8" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding
        return pacsv.open_csv(
            self.location, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=self.separator, newlines_in_values=True),
            convert_options=convert,
        )


def spark_column(name: str):
    """A Spark column by its exact name, whatever it holds (dots, spaces, backticks): `emp.var.rate` is one
    column, not a field of a struct."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _with_decimal_comma_numbers(frame: pd.DataFrame, options: ReadOptions) -> pd.DataFrame:
    """With the decimal mark `,`: each text column (not one of `options.text_columns`) whose filled cells are
    all numbers written with a decimal comma, as those numbers (see the module docstring)."""
    if options.decimal != ",":
        return frame
    for column in list(frame.columns):
        values = frame[column]
        if column in options.text_columns or not (pd.api.types.is_object_dtype(values)
                                                  or pd.api.types.is_string_dtype(values)):
            continue
        parsed = parse_decimal_comma(values)
        filled = (values.astype("string").str.strip().fillna("") != "").to_numpy(dtype=bool)
        if filled.any() and not np.isnan(parsed[filled]).any():
            frame[column] = parsed  # a frame just read, owned here
    return frame


def detect_encoding(location: str) -> str:
    """The text encoding of a file, from its first bytes (see the module docstring)."""
    try:
        with open(location, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        raise _unreadable(location, exc) from None
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a character cut at the end is fine
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def detect_separator(header: str) -> str:
    """The separator that splits a header line into the most names (`,` when none splits it)."""
    counts = {sep: len(next(csv.reader([header], delimiter=sep), [])) for sep in _SEPARATORS}
    best = max(_SEPARATORS, key=lambda sep: counts[sep])  # ties: the earlier, so ',' first
    return best if counts[best] > 1 else ","


def _refuse_one_column(location: str, names: list[str], separator: str) -> None:
    """A header read as one column that another separator splits: the separator is wrong."""
    if len(names) != 1:
        return
    for other in _SEPARATORS:
        if other != separator and len(names[0].split(other)) > 1:
            shown = "tab" if other == "\t" else f"'{other}'"
            raise InputError(
                f"{location} was read as one column, '{names[0][:80]}': its header seems separated by {shown}, "
                f"not '{separator}'",
                fix=f"set data.csv_separator: {chr(34) + other.encode('unicode_escape').decode() + chr(34)} "
                "in the config, or export the file with the separator declared there",
            )


def _unique_names(location: str, names: list[str]) -> list[str]:
    seen, repeated = set(), []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise InputError(f"{location} has more than one column named {', '.join(repr(n) for n in repeated)}",
                         column=repeated[0], fix="rename or remove the repeated column, so that each name means one column")
    return names


def _record_problem(record: list[str], fields: int) -> str | None:
    if len(record) != fields:
        return f"{len(record)} fields where the header has {fields}"
    longest = max((len(cell) for cell in record), default=0)
    if longest * 4 > _MAX_CELL_BYTES and max(len(cell.encode()) for cell in record) > _MAX_CELL_BYTES:
        return f"a cell over {_MAX_CELL_BYTES >> 20} MB"
    return None


def _text_frame(batch: list[list], columns: list[str], bad: dict[int, str]) -> pd.DataFrame:
    frame = pd.DataFrame(batch, columns=columns, dtype=object)
    frame.attrs[UNREADABLE_ROWS] = bad
    return frame


def _is_row_problem(exc: Exception) -> bool:
    text = str(exc)
    return isinstance(exc, pa.ArrowInvalid) and ("Expected" in text and "columns" in text or "straddl" in text)


_QUOTED_ROW = re.compile(r"(CSV parse error: Expected \d+ columns, got \d+):.*", re.DOTALL)


def _without_row(message: str) -> str:
    """A parser's message without the row it may quote (which can hold personal data)."""
    message = _QUOTED_ROW.sub(r"\1", message)
    return message.strip().splitlines()[0][:300] if message.strip() else message


def _chunked(location: str, batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pd.DataFrame]:
    try:
        for table in _rebatch(batches, rows):
            yield table.to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read {location}: {_without_row(str(exc))}", fix="repair or export the file again") from None


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


def _unreadable(location: str, exc: Exception, encoding: str | None = None) -> InputError:
    text = _without_row(str(exc))
    if encoding and ("UTF8" in text or "utf-8" in text or isinstance(exc, UnicodeDecodeError)):
        return InputError(f"cannot read {location} as {encoding} text: {text}",
                          fix="declare the file's encoding in data.encoding (e.g. cp1252 or latin-1), or export it as UTF-8")
    return InputError(f"cannot read {location}: {text}", fix="check that the file is a valid CSV or Parquet")


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
