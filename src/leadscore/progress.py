"""Progress of a long job: a bar on a terminal, plain lines in a log file.

A bar redrawn in place is unreadable in a scheduler's log, so when stderr is not a terminal the job
writes one timestamped line every `every` rows instead.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Rows done and rows per second for a job named `label`."""

    def __init__(self, label: str, total: int | None = None, *, every: int = 1_000_000, stream: TextIO | None = None):
        self.label, self.every = label, every
        self.stream = stream or sys.stderr
        self.done = 0
        self._reported = 0
        self._started = time.perf_counter()
        self._next_line = every
        self._bar = None
        if self.stream.isatty():
            self._bar = tqdm(total=total, desc=label, unit=" rows", unit_scale=True, file=self.stream, dynamic_ncols=True)

    def update(self, rows: int) -> None:
        """Count `rows` more rows as done."""
        self.done += rows
        if self._bar is not None:
            self._bar.update(rows)
        elif self.done >= self._next_line:
            self._write_line()
            self._next_line = (self.done // self.every + 1) * self.every

    @property
    def rate(self) -> float:
        """Rows per second so far."""
        return self.done / max(time.perf_counter() - self._started, 1e-9)

    def close(self) -> None:
        """Finish the bar; in a log, the final line."""
        if self._bar is not None:
            self._bar.close()
        elif self.done != self._reported:
            self._write_line()

    def _write_line(self) -> None:
        self._reported = self.done
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        print(f"{now} {self.label}: {self.done:,} rows, {self.rate:,.0f} rows/s", file=self.stream, flush=True)
