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
from leadscore.schema import (
    ROW_ID,
    STATUS_COLUMN,
)
from leadscore.scoring.accounts import (
    MISSING_ACCOUNT,
    AccountTally,
    require_account_column,
)

if TYPE_CHECKING:
    from leadscore.history.recorder import HistoryRecorder
    from leadscore.registry.loading import LoadedModel

log = logging.getLogger(__name__)
SPARK_MASTER_ENV = "LEADSCORE_SPARK_MASTER"
REJECTS_SCHEMA = pa.schema([("row", pa.int64()), *((c, pa.large_string()) for c in REJECT_COLUMNS[1:])])
# The engines by name, each the module that defines its `ENGINE`; imported when a job asks for it.
_ENGINES = {"pandas": "leadscore.scoring.pandas_engine", "spark": "leadscore.scoring.spark_engine"}
_FORMS = {SNAPSHOT: "snapshot tables (one row per lead)", EVENT_LOG: "event logs"}


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
