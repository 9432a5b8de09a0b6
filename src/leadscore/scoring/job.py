"""The batch scoring job: its contract, once, with the engines that run it behind one small interface.

Input is any source `leadscore.data.sources` reads: a snapshot table (one row per lead with the model's
id and feature columns), or an event-log folder, whose features are computed as of `as_of` with the
training code (`leadscore.scoring.events`). An engine (`pandas`: streamed in chunks on this machine;
`spark`: `mlflow.pyfunc.spark_udf` on a Spark session) reads, checks, scores and writes the rows aside;
everything else is this module's, the same whatever the engine:

- a missing column stops the job before any row is read, and so does an input the engine cannot score;
- every input row ends as exactly one output row or one row of the rejects file, which names the row,
  the id, the column and the reason (see `leadscore.data.row_checks`; with an account part also
  `missing account`, `MISSING_ACCOUNT`, after those); the counts must add up;
- the rejects and the drift report are published once the whole input has been read; the scores only
  when the share of rejected rows is within `max_reject_share`. Each output is written beside its place
  and renamed into it, so a failed or interrupted job leaves the previous scores untouched and no
  partial file; a file system failure is an `OutputError` (exit 6) naming the output and the fix;
- no output may be the input (it would be overwritten while read), and temporaries left beside the
  outputs by a killed job (`kill -9`) are removed before the job starts (`leadscore.data.io`);
- the drift report (`<output stem>.drift.json`: population stability per feature and for the score,
  `leadscore.model.drift`), the top leads, the report and its log lines;
- with a score history (`settings.history`, `--history DIR`; `leadscore.history`): the engine hands each
  scored batch to the job's `HistoryRecorder` (`Tally.history`), which adds `score_change` and
  `change_reasons`; the run's history file is staged before the scores are published and renamed into
  the history after them and the alerts, so a failed or interrupted job adds nothing to the history;
- with a model that has an account part (`LeadScorer.accounts`, trained with an `accounts` section): the
  input must hold the account column (a snapshot table; an event log's leads table gives it), every
  accepted lead counts towards its account, never a rejected one, and the account table is scored from
  all of them at once, so that it does not depend on how the input was cut into chunks or partitions.
  Every lead row then carries its account's columns (`schema.LEAD_ACCOUNT_COLUMNS`), taken from that
  table, which is known only once the whole input is read: an engine stages the lead rows, then adds the
  account columns in one more pass. The account table is staged beside the scores and published after
  them, only when the scores are (`AccountTally`; the pandas engine merges per-chunk aggregates, the spark
  engine groups whole accounts).

Outputs:
- `output`: the columns `LeadScorer.predict` returns, plus model_name, model_version, scored_at (and
  lead_status for an event log). `scored_at` is the job's start, to the second, in UTC: a timezone-aware
  timestamp in Parquet (`timestamp[us, tz=UTC]`), ISO 8601 text in CSV ("2026-03-01T09:30:00+00:00");
  see `scored_at`;
- `<output stem>.rejects.csv` (or `rejects_path`): row, id, column, reason, detail;
- `<output stem>.drift.json`;
- with a history, `<output stem>.alerts.csv`: the MQL / SQL crossings since each lead's previous score
  (`leadscore.history.changes.ALERT_COLUMNS`), and one file `<history>/scored_date=YYYY-MM-DD/<run id>.parquet`;
- with an account part, `<output stem>.accounts.<csv|parquet>` (the scores' format; a folder of part files
  from the spark engine, as its scores are): one row per account of the accepted leads, the columns
  `schema.ACCOUNT_COLUMNS`, then `account_reasons` and `account_reason_1` ... unless reasons are left out
  (`AccountScorer.score`). The history records leads only, with or without accounts.

An engine is one entry of `_ENGINES` (the module that defines its `ENGINE`), imported only when asked
for, so that a job on one engine never loads another's dependencies.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import ValidationError

from leadscore.config import ScoringConfig, load_config
from leadscore.data.io import output_error, remove_stale_temporaries
from leadscore.data.row_checks import REASONS, REJECT_COLUMNS
from leadscore.data.sources import EVENT_LOG, SNAPSHOT, open_source
from leadscore.data.streams import OUTPUT_SUFFIXES
from leadscore.data.validation import require_columns
from leadscore.errors import ConfigError, InputError, OutputError
from leadscore.model.drift import DriftCounter
from leadscore.schema import ACCOUNT_COLUMNS, ACCOUNT_ID, LEAD_ACCOUNT_COLUMNS, ROW_ID, STATUS_COLUMN

if TYPE_CHECKING:
    from leadscore.history.recorder import HistoryRecorder
    from leadscore.model.accounts import AccountScorer
    from leadscore.registry.loading import LoadedModel

log = logging.getLogger(__name__)
SPARK_MASTER_ENV = "LEADSCORE_SPARK_MASTER"
REJECTS_SCHEMA = pa.schema([("row", pa.int64()), *((c, pa.large_string()) for c in REJECT_COLUMNS[1:])])
# The engines by name, each the module that defines its `ENGINE`; imported when a job asks for it.
_ENGINES = {"pandas": "leadscore.scoring.pandas_engine", "spark": "leadscore.scoring.spark_engine"}
_FORMS = {SNAPSHOT: "snapshot tables (one row per lead)", EVENT_LOG: "event logs"}
# A row the account part cannot count (it refuses a lead without an account: its account score would be a second
# lead score): with an account part, a row that passes the row checks and has no account id is rejected for it.
MISSING_ACCOUNT = "missing account"
MISSING_ACCOUNT_DETAIL = "the account id is empty; an account score needs every lead's account"


@dataclass(frozen=True)
class ScoringReport:
    """What a scoring job did."""

    output: str
    rejects: str
    drift_report: str | None
    rows_read: int
    rows_scored: int
    rejected: dict[str, int]
    model_name: str
    model_version: str
    engine: str
    seconds: float
    unseen_categories: dict[str, int] = field(default_factory=dict)
    drifted: list[str] = field(default_factory=list)
    top: pd.DataFrame | None = None
    history: str | None = None  # the history file this run appended, with a history
    alerts_path: str | None = None
    scores_changed: int = 0
    first_scores: int = 0
    alerts: int = 0
    accounts: str | None = None  # the account table, with a model that has an account part
    accounts_scored: int = 0
    mqas: int = 0  # marketing-qualified accounts
    top_accounts: pd.DataFrame | None = None

    @property
    def rows_rejected(self) -> int:
        """Rejected rows, whatever the reason."""
        return sum(self.rejected.values())

    def summary(self) -> str:
        """One line for a log: counts, where the outputs went, and the model."""
        why = ", ".join(f"{n:,} {reason}" for reason, n in self.rejected.items() if n) or "none"
        return (f"scored {self.rows_scored:,} of {self.rows_read:,} leads with {self.model_name} version "
                f"{self.model_version} -> {self.output}; rejected {self.rows_rejected:,} ({why}) -> {self.rejects}"
                + (f"; {self.accounts_scored:,} account(s) scored, {self.mqas:,} MQA(s) -> {self.accounts}"
                   if self.accounts else "")
                + (f"; history: {self.scores_changed:,} score(s) changed since the previous scoring, "
                   f"{self.first_scores:,} first score(s), {self.alerts:,} alert(s) -> {self.alerts_path}; "
                   f"appended to {self.history}" if self.history else ""))


@dataclass(frozen=True)
class Job:
    """One scoring job, as an engine sees it: the model, the opened input and where the outputs go."""

    model_uri: str
    loaded: LoadedModel
    source: object  # a `TableSource` or an `EventLogFolder` (see `source.form`)
    as_of: str | None
    output: str
    rejects: str
    settings: ScoringConfig
    accounts: str | None = None  # where the account table goes, with a model that has an account part

    @property
    def fmt(self) -> str:
        """The output's format, as its file name ending (`.csv`, `.parquet`)."""
        return Path(self.output).suffix.lower()


@dataclass(frozen=True)
class Staged:
    """The temporary names an engine writes the scores, the rejects and the account table to; the job publishes them."""

    scores: str
    rejects: str
    accounts: str | None = None  # with a model that has an account part


class Files(Protocol):
    """Where an engine's outputs live: temporary names beside the outputs, renamed into place.

    Every method fails with `OSError`; the job turns that into an `OutputError` naming the output.
    """

    def temporary(self, path: str) -> str:
        """A hidden name beside `path`, removed by `discard` unless it was published."""

    def publish(self, tmp: str, path: str) -> None:
        """Move `tmp` (a file or a folder) to `path`, replacing what is there."""

    def write_text(self, path: str, text: str) -> None:
        """Write a small text file aside and rename it into place."""

    def discard(self) -> None:
        """Remove every temporary name handed out and not published."""


class EngineRun(Protocol):
    """An engine ready to run jobs (a Spark session, say), with the file system its outputs live on."""

    files: Files

    def write(self, job: Job, staged: Staged, tally: Tally) -> None:
        """Read, check and score every row of `job.source`; write the scores to `staged.scores` and the
        rejects (`REJECT_COLUMNS`, in input order) to `staged.rejects`; count all of it in `tally`. With an
        account part (`tally.accounts`), write the account table of the accepted leads to `staged.accounts`,
        give every score row its account's columns from it, and count it (`AccountTally.count`)."""


@dataclass(frozen=True)
class Engine:
    """One way to run the job: its name, the forms of input it scores, and how to start it.

    `check` fails, before any work, when the engine cannot run here (a missing optional dependency).
    """

    name: str
    forms: tuple[str, ...]
    start: Callable[[ScoringConfig], AbstractContextManager[EngineRun]]
    check: Callable[[], None] = lambda: None


def engine_named(name: str) -> Engine:
    """The engine called `name`; a `ConfigError` listing the known engines for any other name."""
    module = _ENGINES.get(name)
    if module is None:
        raise ConfigError(f"unknown scoring engine '{name}'; known engines: {', '.join(_ENGINES)}")
    engine = importlib.import_module(module).ENGINE
    engine.check()
    return engine


class Tally:
    """The running counts of a job, which its engine adds to as rows are read, rejected and scored."""

    def __init__(self, scorer, top: int, history: HistoryRecorder | None = None, accounts: AccountTally | None = None):
        self.rows_read = self.rows_scored = 0
        # With a score history, engines pass each scored batch through it (`HistoryRecorder.annotate`).
        self.history = history
        # With an account part, engines hand it the accepted leads (pandas) or the account table (spark).
        self.accounts = accounts
        reasons = (*REASONS, MISSING_ACCOUNT) if accounts is not None else REASONS
        self.rejected: Counter[str] = Counter({reason: 0 for reason in reasons})
        # Models trained before drift references existed have none: no drift report, unseen values counted apart.
        self.drift = DriftCounter(scorer.reference) if scorer.reference is not None else None
        self.unseen: Counter[str] = Counter()
        self.top_n = top
        self.top: pd.DataFrame | None = None

    def read(self, rows: int) -> None:
        """Count rows read from the input."""
        self.rows_read += rows

    def reject(self, reasons: Mapping[str, int]) -> None:
        """Count rejected rows by reason."""
        self.rejected.update({reason: int(n) for reason, n in reasons.items()})

    def score(self, rows: int) -> None:
        """Count rows scored and written."""
        self.rows_scored += rows

    def keep_top(self, scores: pd.DataFrame) -> None:
        """Keep the best `top` leads among those kept so far and `scores` (see `top_leads`)."""
        if not self.top_n:
            return
        best = top_leads(scores, self.top_n)
        self.top = best if self.top is None else top_leads(pd.concat([self.top, best]), self.top_n)

    def check_every_row_accounted_for(self) -> None:
        """Fail (a bug, not bad input) unless every row read was scored or rejected exactly once."""
        if self.rows_scored + sum(self.rejected.values()) != self.rows_read:
            raise RuntimeError(f"{self.rows_read} rows read but {self.rows_scored} scored and "
                               f"{sum(self.rejected.values())} rejected")


class AccountTally:
    """The account side of a run whose model has an account part (`leadscore.model.accounts.AccountScorer`).

    The pandas engine hands it each chunk's accepted leads with their scores (`add`), of which it keeps only
    the mergeable aggregates (`AccountScorer.partials`: one row per account and chunk), and asks for the
    account table once the whole input is read (`table`); the spark engine scores whole accounts itself and
    counts its table here (`count`, `keep_top`). Rejected rows are never handed to it.
    """

    # Partial rows kept before they are merged into one row per account. An export sorted by time rather than
    # by account spreads an account over many chunks; merging as they pile up keeps memory bounded by the
    # number of accounts, not of chunks.
    compact_rows = 250_000

    def __init__(self, part: AccountScorer, reasons: bool, top: int):
        self.part, self.reasons, self.top_n = part, reasons, top
        self.scored = self.mqas = 0
        self.top: pd.DataFrame | None = None
        self._partials: list[pd.DataFrame] = []
        self._rows = self._merged_rows = 0

    def add(self, leads: pd.DataFrame, scores: pd.DataFrame) -> None:
        """Count a batch of accepted leads (their feature rows with the id and account columns) towards their
        accounts; `scores` are the model's output rows for them, in the same order."""
        partials = self.part.partials(leads.reset_index(drop=True), scores.reset_index(drop=True))
        self._partials.append(partials)
        self._rows += len(partials)
        if self._rows > max(self.compact_rows, 2 * self._merged_rows):
            merged = self.part.combine(pd.concat(self._partials, ignore_index=True))
            self._partials, self._rows, self._merged_rows = [merged], len(merged), len(merged)

    def table(self) -> pd.DataFrame:
        """The account table of every lead added (one row per account; see `AccountScorer.score`), counted."""
        if not self._partials:  # no lead was accepted: a table without rows
            table = pd.DataFrame({c: pd.Series(dtype=object) for c in ACCOUNT_COLUMNS})
        else:
            combined = self.part.combine(pd.concat(self._partials, ignore_index=True))
            table = self.part.score(combined, reasons=self.reasons)
        self._partials, self._rows = [], 0
        self.count(len(table), int(mqa_flags(table).sum()))
        self.keep_top(table)
        return table

    def count(self, accounts: int, mqas: int) -> None:
        """Count accounts scored and, among them, marketing-qualified accounts."""
        self.scored += accounts
        self.mqas += mqas

    def keep_top(self, table: pd.DataFrame) -> None:
        """Keep the best `top` accounts among those kept so far and `table` (see `top_accounts`)."""
        if not self.top_n:
            return
        best = top_accounts(table, self.top_n)
        self.top = best if self.top is None else top_accounts(pd.concat([self.top, best], ignore_index=True), self.top_n)

    def report_fields(self, path: str) -> dict:
        """The report's account fields."""
        return {"accounts": path, "accounts_scored": self.scored, "mqas": self.mqas, "top_accounts": self.top}


# The account columns of a lead row but the account id: the lead rows carry the id from the start, the values
# only once the whole input is read.
ACCOUNT_VALUES = tuple(c for c in LEAD_ACCOUNT_COLUMNS if c != ACCOUNT_ID)


def mqa_flags(table: pd.DataFrame) -> pd.Series:
    """`is_mqa` of an account table as booleans (missing: not an MQA)."""
    return table["is_mqa"].astype("boolean").fillna(False).astype(bool)


def top_accounts(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The `n` accounts with the highest `p_account`, ties by account id (as text), so the choice is deterministic."""
    ranked = table.assign(_key=table[ACCOUNT_ID].astype("string")).sort_values(
        ["p_account", "_key"], ascending=[False, True], kind="stable", na_position="last")
    return ranked.drop(columns="_key").head(n).reset_index(drop=True)


def account_inputs(scorer) -> list[str]:
    """The input columns the model's account part reads beyond its id and features: the account column (never a
    feature), and the buying-group role column when it is not a feature either; none without an account part."""
    part = scorer.accounts
    if part is None:
        return []
    known = {scorer.id_column, *scorer.feature_columns}
    wanted = [part.account_column, part.features.role_column]
    return [c for i, c in enumerate(wanted) if c and c not in known and c not in wanted[:i]]


def missing_accounts(values: pd.Series) -> np.ndarray:
    """Where a lead's account id is empty (missing, or blanks only): the leads the account part refuses."""
    text = values.astype("string").str.strip()
    return (text.isna() | (text == "")).to_numpy(dtype=bool)


def staged_lead_rows(out: pd.DataFrame, leads: pd.DataFrame, account_column: str) -> pd.DataFrame:
    """A batch of the model's output as it is staged until the account table is known: with each lead's
    account id (`ACCOUNT_ID`), without the account values the model computed from this batch's leads alone
    (an account may straddle batches; `with_account_columns` adds the values of all its leads)."""
    staged = out.drop(columns=[c for c in ACCOUNT_VALUES if c in out.columns])
    if ACCOUNT_ID not in staged.columns:
        staged[ACCOUNT_ID] = leads[account_column].to_numpy()
    return staged


def with_account_columns(rows: pd.DataFrame, lead_columns: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Lead rows with their account's columns from `lead_columns` (one row per account,
    `AccountScorer.lead_columns`), matched on `ACCOUNT_ID` as text; missing for a lead without an account.

    `order` is the column order of the result (that of the model's own output); else the values come last."""
    keys = lead_columns[ACCOUNT_ID].astype("string")
    if keys.duplicated().any():  # the account part's contract: one row per account
        raise RuntimeError(f"{int(keys.duplicated().sum())} account(s) have more than one row in the account table")
    values = lead_columns[list(ACCOUNT_VALUES)].set_axis(pd.Index(keys.to_numpy(), dtype="string"))
    found = values.reindex(pd.Index(rows[ACCOUNT_ID].astype("string").to_numpy(), dtype="string"))
    out = rows.drop(columns=[c for c in ACCOUNT_VALUES if c in rows.columns])
    out = out.assign(**{c: found[c].to_numpy() for c in ACCOUNT_VALUES})
    return out[[c for c in order if c in out.columns]] if order else out


def scored_at(fmt: str, now: datetime | None = None) -> pd.Timestamp | str:
    """The `scored_at` value of a job writing `fmt` (".csv" or ".parquet") that started at `now` (default: now).

    Parquet carries types, so the time is a timezone-aware timestamp (UTC, microseconds, which every
    Parquet reader reads); CSV carries text, so it is ISO 8601 with its offset, which spreadsheets and
    `pd.read_csv(..., parse_dates=["scored_at"])` read back as the same instant."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    return now.isoformat() if fmt == ".csv" else pd.Timestamp(now).as_unit("us")


def top_leads(scores: pd.DataFrame, n: int) -> pd.DataFrame:
    """The `n` leads with the highest score (then `p_convert`), among the open ones when the status is known."""
    if STATUS_COLUMN in scores.columns:
        scores = scores[scores[STATUS_COLUMN] == "open"]
    return scores.nlargest(n, ["score", "p_convert"])


def score_file(
    model_uri: str, input_path: str | os.PathLike, output_path: str | os.PathLike, *, as_of: str | None = None,
    settings: ScoringConfig | None = None, rejects_path: str | os.PathLike | None = None, top: int = 0,
) -> ScoringReport:
    """Score every lead in `input_path` with the model at `model_uri` on the configured engine; see the
    module docstring for the outputs and what a failure leaves behind."""
    from leadscore.registry.loading import load_model

    settings = settings or ScoringConfig()
    engine = engine_named(settings.engine)
    source = open_source(input_path)
    _require_form(engine, source.form, input_path, as_of)
    output = str(output_path)
    if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"unsupported output type '{Path(output).suffix}'",
                         fix=f"name the output with one of {OUTPUT_SUFFIXES}")
    rejects, drift_path = side_paths(output, rejects_path)
    alerts_path = alerts_path_of(output) if settings.history else None
    written = {"--output": output, "--rejects": rejects, "the drift report": drift_path}
    if settings.history:
        written.update({"the alerts": alerts_path, "--history": settings.history})
    refuse_overwriting_input(input_path, written)
    for path in (output, rejects, drift_path, *([alerts_path] if alerts_path else [])):
        for stale in remove_stale_temporaries(path):
            log.info("removed %s, left behind by a job that was killed", stale)
    started = time.perf_counter()
    loaded = load_model(model_uri)
    part = loaded.scorer.accounts
    accounts_path = accounts_path_of(output) if part is not None else None
    if accounts_path is not None:
        refuse_overwriting_input(input_path, {"the account table": accounts_path})
        for stale in remove_stale_temporaries(accounts_path):
            log.info("removed %s, left behind by a job that was killed", stale)
    # Read as the model's training data was read (its placeholders for "missing", its decimal mark).
    source = open_source(input_path, loaded.scorer.read_options())
    if source.form == SNAPSHOT:
        require_input_columns(loaded.scorer, source.columns)
        require_account_column(loaded.scorer, source.columns)
    job = Job(model_uri, loaded, source, as_of, output, rejects, settings, accounts_path)
    history = _history_recorder(settings.history, loaded.scorer, as_of)
    accounts = AccountTally(part, settings.reasons, top) if part is not None else None
    tally = Tally(loaded.scorer, top, history, accounts)
    with engine.start(settings) as run:
        try:
            staged = Staged(aside(run.files, output), aside(run.files, rejects),
                            aside(run.files, accounts_path) if accounts_path is not None else None)
            run.write(job, staged, tally)
            if tally.rows_read == 0:
                raise InputError(f"no leads to score in {input_path}", fix="give at least one row")
            tally.check_every_row_accounted_for()
            # The whole input was read: the rejects and the drift report are published, the scores if few were rejected.
            _publish(run.files, staged.rejects, rejects)
            drifted = _write_drift_report(run.files, tally.drift, drift_path, settings.drift_threshold)
            report = ScoringReport(
                output=output, rejects=rejects, drift_report=drift_path if tally.drift is not None else None,
                rows_read=tally.rows_read, rows_scored=tally.rows_scored, rejected=dict(tally.rejected),
                model_name=loaded.name, model_version=loaded.version, engine=engine.name,
                seconds=time.perf_counter() - started,
                unseen_categories=tally.drift.other_counts() if tally.drift is not None else dict(tally.unseen),
                drifted=drifted, top=tally.top,
                **(_history_counts(history, alerts_path) if history is not None else {}),
                **(accounts.report_fields(accounts_path) if accounts is not None else {}),
            )
            check_reject_share(report, settings.max_reject_share)
            # The history file is staged before the scores are published and renamed in after them (and the
            # alerts): a job that fails anywhere before adds nothing to the history.
            history_file = _stage_history(history) if history is not None else None
            _publish(run.files, staged.scores, output)
            if staged.accounts is not None:  # after the scores, as the alerts: both are read beside them
                _publish(run.files, staged.accounts, accounts_path)
            if history is not None:
                _write_text(run.files, alerts_path, history.alerts_csv())
                _publish_history(history, history_file)
        finally:
            run.files.discard()
            if history is not None:
                history.discard()
    log_findings(report, drift_path)
    return report


def alerts_path_of(output: str | Path) -> str:
    """The alerts file beside an output: `<output stem>.alerts.csv`."""
    return side_paths(output)[0].removesuffix(".rejects.csv") + ".alerts.csv"


def accounts_path_of(output: str | Path) -> str:
    """The account table beside an output, in the output's format: `<output stem>.accounts.<csv|parquet>`."""
    return side_paths(output)[0].removesuffix(".rejects.csv") + ".accounts" + Path(str(output).rstrip("/")).suffix


def _history_recorder(path: str | None, scorer, as_of: str | None) -> HistoryRecorder | None:
    """The run's history recorder with a history folder (loaded only then), else None."""
    if not path:
        return None
    from leadscore.history.recorder import HistoryRecorder

    return HistoryRecorder(path, scorer, as_of)


def _history_counts(history: HistoryRecorder, alerts_path: str) -> dict:
    """The report's history fields (the history file itself is named once it is staged)."""
    return {"history": str(history.path), "alerts_path": alerts_path, "scores_changed": history.scores_changed,
            "first_scores": history.first_scores, "alerts": len(history.alerts)}


def _stage_history(history: HistoryRecorder) -> str:
    try:
        return history.stage()
    except OSError as exc:
        raise output_error(history.path, exc) from exc


def _publish_history(history: HistoryRecorder, path: str) -> None:
    try:
        history.publish()
    except OSError as exc:
        error = output_error(path, exc)
        raise OutputError(f"{error}. The scores were published; this run is missing from the history") from exc


def _write_text(files: Files, path: str, text: str) -> None:
    try:
        files.write_text(path, text)
    except OSError as exc:
        raise output_error(path, exc) from exc


def refuse_overwriting_input(input_path, outputs: Mapping[str, str]) -> None:
    """An input error when an output is the input (or lies inside an event-log folder being read)."""
    source = Path(os.fspath(input_path)).resolve()
    for option, path in outputs.items():
        target = Path(path).resolve()
        if target == source or source in target.parents:
            raise InputError(
                f"{option} {path} is the input {os.fspath(input_path)}" + ("" if target == source else " (inside it)")
                + ": writing it would destroy the leads being scored",
                fix="write the scores to another file",
            )


def _require_form(engine: Engine, form: str, input_path, as_of: str | None) -> None:
    """Refuse, before any work, an input of a form the engine does not score (`as_of` implies an event log)."""
    for wanted in {form, *([EVENT_LOG] if as_of is not None else [])}:
        if wanted not in engine.forms:
            scored = " and ".join(_FORMS[f] for f in engine.forms)
            able = [name for name, module in _ENGINES.items() if wanted in importlib.import_module(module).ENGINE.forms]
            built = ", or score a feature table built from it" if wanted == EVENT_LOG else ""
            raise InputError(
                f"{os.fspath(input_path)}: the {engine.name} engine scores {scored}, not {_FORMS[wanted]}",
                fix=f"score {_FORMS[wanted]} with {' or '.join(f'--engine {name}' for name in able)}{built}",
            )


def aside(files: Files, path: str) -> str:
    """A temporary name beside `path` (`Files.temporary`); an `OutputError` naming `path` when there is none."""
    try:
        return files.temporary(path)
    except OSError as exc:
        raise output_error(path, exc) from exc


def _publish(files: Files, tmp: str, path: str) -> None:
    try:
        files.publish(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from exc


def _write_drift_report(files: Files, drift: DriftCounter | None, path: str, threshold: float) -> list[str]:
    """Publish the drift report; the drifted columns."""
    if drift is None:
        log.info("this model carries no reference distributions (trained by an older leadscore): no drift report")
        return []
    report = drift.report(threshold)
    try:
        files.write_text(path, json.dumps(report, indent=2))
    except OSError as exc:
        raise output_error(path, exc) from exc
    return report["drifted"]


def scoring_settings(config_path: str | Path | None = None, **overrides) -> ScoringConfig:
    """Scoring settings: the given overrides (None means not given), else the config's `scoring`
    section, else the defaults. The Spark master comes from an override, else LEADSCORE_SPARK_MASTER,
    else the config."""
    base = load_config(config_path).scoring if config_path else ScoringConfig()
    given = {key: value for key, value in overrides.items() if value is not None}
    if "spark_master" not in given and os.environ.get(SPARK_MASTER_ENV):
        given["spark_master"] = os.environ[SPARK_MASTER_ENV]
    try:
        return ScoringConfig(**{**base.model_dump(), **given})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid scoring option: {problems}") from None


def side_paths(output: str | Path, rejects: str | Path | None = None) -> tuple[str, str]:
    """The rejects file (unless given) and the drift report beside an output: `<stem>.rejects.csv`, `<stem>.drift.json`."""
    text = str(output).rstrip("/")
    stem = text.rsplit(".", 1)[0] if "." in text.rsplit("/", 1)[-1] else text
    return str(rejects) if rejects else f"{stem}.rejects.csv", f"{stem}.drift.json"


def model_params(reasons: bool) -> dict | None:
    """The pyfunc params for a job: none by default, so models logged without params take them too."""
    return None if reasons else {"reasons": False}


def require_input_columns(scorer, columns: list[str]) -> None:
    """Fail the whole job, before any row is read, when the input lacks a column the model needs."""
    header = pd.DataFrame(columns=columns)
    if scorer.id_column != ROW_ID:
        require_columns(header, [scorer.id_column], "the leads to score", "give every lead its id column")
    require_columns(header, scorer.feature_columns, "the leads to score",
                    "add the column: the model was trained with it (or retrain without it)")


def require_account_column(scorer, columns: list[str]) -> None:
    """Fail the whole job, before any row is read, when a model with an account part is given a table without
    the account column (an event log's account column is checked when its leads table is read)."""
    missing = [c for c in account_inputs(scorer) if c not in columns]
    if missing:
        raise InputError(
            f"the leads to score lack the account column '{missing[0]}', which this model's account scores need",
            column=missing[0],
            fix=f"add each lead's account id as the column '{missing[0]}' (leads without an account may leave it "
            "empty), or score with a model trained without an `accounts` section",
        )


def check_reject_share(report: ScoringReport, limit: float) -> None:
    """Fail as bad input when more than `limit` of the rows read were rejected."""
    share = report.rows_rejected / report.rows_read
    if share > limit:
        raise InputError(
            f"{report.rows_rejected:,} of {report.rows_read:,} rows rejected ({share:.2%}), above the limit of "
            f"{limit:.2%}: the scores were not published and any previous output is untouched",
            fix=f"see {report.rejects} for each row and its reason; correct the export, or raise --max-reject-share",
        )


def log_findings(report: ScoringReport, drift_path) -> None:
    """Warn about what a finished job found: unseen categories, rejected rows, drifted columns."""
    for column, count in report.unseen_categories.items():
        log.warning("column '%s': %d value(s) never seen in training, scored as missing", column, count)
    if report.rows_rejected:
        log.warning("%d row(s) rejected, listed with their reasons in %s", report.rows_rejected, report.rejects)
    if report.drifted:
        log.warning("drift: population stability index above the threshold for %s (see %s)",
                    ", ".join(report.drifted), drift_path)
