"""Reading tables by file extension and writing outputs atomically.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from leadscore.errors import InputError, OutputError

TABLE_SUFFIXES = (".parquet", ".csv")
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


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
    A file system failure (disk full, file too large, permission denied) is an `OutputError` naming
    `path`, unless the block already raised one naming the file it was writing.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created like any new file (mode 666 less the umask), so the published output is as readable as before.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise output_error(path, exc) from exc
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:
        with contextlib.suppress(OSError):  # nothing to remove, or a folder we may not even list
            tmp.unlink(missing_ok=True)


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """The error for an output that could not be written: what failed, and what to do about it."""
    path = Path(path)
    if exc.errno in _NO_SPACE:
        fix = f"free space on the disk holding {path.parent} (or raise the file size limit), then run again"
    elif exc.errno in _NO_PERMISSION:
        fix = (f"let the job create and rename files in {path.parent} (it writes a temporary file beside "
               "the target and renames it into place), or write elsewhere")
    else:
        fix = f"check that {path.parent} is a writable folder"
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot write {path}: {reason}; any previous {path.name} is untouched. Fix: {fix}")


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path` (see `atomic_output`)."""
    with atomic_output(path) as tmp:
        write(tmp)
    return Path(path)
