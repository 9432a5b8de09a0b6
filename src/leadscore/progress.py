"""Progress of a long job: a bar on a terminal, plain lines in a log file.

A bar redrawn in place is unreadable in a scheduler's log, so when stderr is not a terminal the job
writes one timestamped line every `every` rows instead. Training reports its stages (`stage`, `StageClock`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextvars import ContextVar
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


# Training stages. The pipeline marks where each stage begins with `stage(name)`, one line in its own code;
# whoever runs it (`leadscore.api.train`) holds a `StageClock` that turns the marks into one line per stage with
# its time. Marks outside a clock cost nothing, so the pipeline runs the same under tests and in notebooks.
STAGE_LOGGER = "leadscore.progress"
_active_clock: ContextVar[StageClock | None] = ContextVar("leadscore_stage_clock", default=None)


def stage(name: str) -> None:
    """Mark the start of training stage `name` (the previous stage ends here); a no-op without a `StageClock`."""
    clock = _active_clock.get()
    if clock is not None:
        clock.start(name)


class StageClock:
    """Times the stages marked with `stage()` while it is active, logging one line per finished stage.

    Lines go to the `leadscore.progress` logger (the command line shows it by default). On a terminal a stage
    still running after `bar_after` seconds also shows a bar with its elapsed time, so a long tournament is
    visibly alive; in a log file only the lines appear.
    """

    def __init__(self, job: str, *, stream: TextIO | None = None, bar_after: float = 2.0):
        self.job, self.bar_after = job, bar_after
        self.stream = stream or sys.stderr
        self.times: dict[str, float] = {}
        self._log = logging.getLogger(STAGE_LOGGER)
        self._name: str | None = None
        self._started = self._job_started = time.perf_counter()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._token = None

    def __enter__(self) -> StageClock:
        self._token = _active_clock.set(self)
        self._job_started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._end_current(failed=exc_type is not None)
        _active_clock.reset(self._token)
        total = time.perf_counter() - self._job_started
        if exc_type is None:
            self._log.info("%s: done in %s", self.job, _duration(total))

    def start(self, name: str) -> None:
        """End the running stage (logging its time) and start `name`."""
        self._end_current(failed=False)
        self._name, self._started = name, time.perf_counter()
        if self.stream.isatty():
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, args=(name,), daemon=True)
            self._ticker.start()

    def _end_current(self, *, failed: bool) -> None:
        if self._name is None:
            return
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        elapsed = time.perf_counter() - self._started
        self.times[self._name] = self.times.get(self._name, 0.0) + elapsed
        self._log.info("%s: %-18s %8s%s", self.job, self._name, _duration(elapsed), " (failed)" if failed else "")
        self._name = None

    def _tick(self, name: str) -> None:
        """A bar with the stage's elapsed time, drawn once the stage has run `bar_after` seconds."""
        if self._stop.wait(self.bar_after):
            return
        bar = tqdm(desc=f"{self.job}: {name}", bar_format="{desc} {elapsed}", file=self.stream, leave=False,
                   initial=0, total=None)
        while not self._stop.wait(0.5):
            bar.refresh()
        bar.close()


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"
