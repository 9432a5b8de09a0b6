"""Writing outputs atomically: aside first, then renamed into place; clear errors when that fails.

Reading is `leadscore.data.sources`.

A temporary file is named `.<name>.<pid>-<random>.tmp` beside its target, with the id of the process that
writes it. Only `kill -9` (or a power cut) can leave one behind; the next job writing the same target
removes those of processes no longer running on this machine (`remove_stale_temporaries`), and never
touches a temporary of a job still running, nor any other file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from leadscore.errors import OutputError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


class LocalFiles:
    """Temporary files beside their targets on this machine, renamed into place when published.

    The rename is atomic on one file system, so readers see either the old file or the whole new one.
    Every temporary handed out and not published is removed by `discard`. Failures are `OSError`s, for
    the caller to name the output they concern (`output_error`).
    """

    def __init__(self) -> None:
        self._temporaries: list[Path] = []

    def temporary(self, path: str | Path) -> str:
        """A new, empty hidden file beside `path`: `.<name>.<random>.tmp`."""
        path = Path(path)
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created like any new file (mode 666 less the umask), so the published output is as readable as before.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        self._temporaries.append(tmp)
        return str(tmp)

    def publish(self, tmp: str | Path, path: str | Path) -> None:
        """Rename `tmp` over `path`."""
        os.replace(tmp, path)
        self._temporaries.remove(Path(tmp))

    def write_text(self, path: str | Path, text: str) -> None:
        """Write a small text file aside and rename it into place."""
        tmp = self.temporary(path)
        Path(tmp).write_text(text)
        self.publish(tmp, path)

    def discard(self) -> None:
        """Remove every temporary that was not published."""
        for tmp in self._temporaries:
            with contextlib.suppress(OSError):  # nothing to remove, or a folder we may not even list
                tmp.unlink(missing_ok=True)
        self._temporaries.clear()


# Temporaries of older releases carry no process id: removed once this old, as no job writes that long unseen.
_UNOWNED_STALE_SECONDS = 24 * 3600


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries a killed job left beside `path` (see the module docstring); the removed files."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(\d+)-)?[0-9a-f]{{12}}\.tmp$")
    removed = []
    try:
        candidates = list(path.parent.iterdir()) if path.parent.is_dir() else []
    except OSError:
        return removed
    for candidate in candidates:
        found = pattern.match(candidate.name)
        if found is None or not candidate.is_file():
            continue
        pid = found.group(1)
        if pid is not None and (int(pid) == os.getpid() or _running(int(pid))):
            continue
        if pid is None and time.time() - candidate.stat().st_mtime < _UNOWNED_STALE_SECONDS:
            continue
        with contextlib.suppress(OSError):
            candidate.unlink()
            removed.append(candidate)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary file beside `path` to write; renamed over `path` when the block ends without error.

    The rename is atomic on one file system, so readers see either the old file or the whole new
    one, and a failed or interrupted job leaves the previous output untouched and no partial file behind.
    A file system failure (disk full, file too large, permission denied) is an `OutputError` naming
    `path`, unless the block already raised one naming the file it was writing.
    """
    files = LocalFiles()
    try:
        tmp = files.temporary(path)
        yield Path(tmp)
        files.publish(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:
        files.discard()


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
