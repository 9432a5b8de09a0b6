"""Reading tables by file extension and writing outputs atomically."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from leadscore.errors import InputError

TABLE_SUFFIXES = (".parquet", ".csv")


def read_table(path: str | Path, *, csv_separator: str = ",", na_values: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file, chosen by extension, failing clearly when it is absent or empty."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}", fix="check the path in the config or on the command line")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            if na_values:
                frame = frame.replace(list(na_values), pd.NA)
        elif suffix == ".csv":
            frame = pd.read_csv(path, sep=csv_separator, na_values=na_values or None, keep_default_na=True)
        else:
            raise InputError(
                f"unsupported file type '{suffix}' for {path}", fix=f"give a file ending in one of {TABLE_SUFFIXES}"
            )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty", fix="export the table again with a header row and data") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read {path}: {exc}", fix="check that the file is a valid CSV or Parquet") from exc
    if frame.empty:
        raise InputError(f"{path} has no rows", fix="export the table again with data")
    return frame


def find_table(folder: Path, stem: str) -> Path:
    """Find `<stem>.parquet` or `<stem>.csv` in an event-log folder."""
    for suffix in TABLE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    raise InputError(
        f"event log table '{stem}' not found in {folder}",
        fix=f"put {stem}.parquet or {stem}.csv in that folder",
    )


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary file beside `path` to write; renamed over `path` when the block ends without error.

    The rename is atomic on one file system, so readers see either the old file or the whole new
    one, and a failed or interrupted job leaves the previous output untouched and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # Created like any new file (mode 666 less the umask), so the published output is as readable as before.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path` (see `atomic_output`)."""
    with atomic_output(path) as tmp:
        write(tmp)
    return Path(path)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as CSV or Parquet (by extension), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"unsupported output type '{suffix}'", fix=f"name the output with one of {TABLE_SUFFIXES}")
    if suffix == ".parquet":
        return write_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
