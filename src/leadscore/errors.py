"""Errors a user can act on, each with its own process exit code.

The CLI maps these to exit codes so that a scheduler can tell a bad input file from a bad
config from a broken tracking server without parsing messages. Anything else that escapes is an
internal error (exit 1).
"""

from __future__ import annotations

from collections.abc import Sequence


class LeadscoreError(Exception):
    """Base class for errors caused by something outside leadscore's code."""

    exit_code = 1


class ConfigError(LeadscoreError):
    """The configuration file is missing, malformed or inconsistent."""

    exit_code = 3


class InputError(LeadscoreError):
    """Input data breaks the data contract: names the column, the rows and the fix."""

    exit_code = 4

    def __init__(self, problem: str, *, column: str | None = None, rows: Sequence | None = None, fix: str = ""):
        self.problem = problem
        self.column = column
        self.rows = list(rows) if rows is not None else []
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.column is not None:
            parts.append(f"column '{self.column}': ")
        parts.append(self.problem)
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:10])
            more = f" (and {len(self.rows) - 10} more)" if len(self.rows) > 10 else ""
            parts.append(f" [{len(self.rows)} row(s): {shown}{more}]")
        if self.fix:
            parts.append(f". Fix: {self.fix}")
        return "".join(parts)


class TrackingError(LeadscoreError):
    """The MLflow tracking server or model registry failed or could not be reached."""

    exit_code = 5


class ModelLoadError(TrackingError):
    """A model was found but cannot be used: a corrupted artifact, or saved by incompatible package versions."""


class OutputError(LeadscoreError):
    """An output could not be written (disk full, file too large, permission denied); the previous one is untouched."""

    exit_code = 6
