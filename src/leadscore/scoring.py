"""The batch scoring job: stream leads through a registered model into outputs published atomically.

Input is a snapshot table (CSV or Parquet: one row per lead with the model's id and feature columns),
read `chunk_rows` rows at a time so that memory stays flat however many leads there are; or an
event-log folder, whose features are computed as of `as_of` with the training code. An event log is
featurised in memory (each lead's features need its whole history, which a row stream does not give)
and then scored chunk by chunk like a table.

Every input row ends as exactly one output row or one row of the rejects file, which names the row,
the id, the column and the reason (see `leadscore.row_checks`). A missing column is an error for the
whole job. Each chunk is scored by the registered model's own `predict` (the `LeadScorerModel` inside
the loaded pyfunc), which is also what Spark's `spark_udf` and `mlflow models serve` call.

Outputs, each written to a temporary file beside it and renamed into place:
- `output`: the columns `LeadScorer.predict` returns, plus model_name, model_version, scored_at (and
  lead_status for an event log), in input order;
- `<output stem>.rejects.csv` (or `rejects_path`): row, id, column, reason, detail;
- `<output stem>.drift.json`: population stability per feature and for the score (`leadscore.drift`).
The rejects and the drift report are published once the whole input has been read; the scores only
when the share of rejected rows is within `max_reject_share`. A failed or interrupted job therefore
leaves the previous scores untouched and no partial file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import ValidationError

from leadscore.config import ScoringConfig, load_config
from leadscore.drift import DriftCounter
from leadscore.errors import ConfigError, InputError
from leadscore.features import EventFeatureSpec, features_as_of, load_event_log
from leadscore.io import TABLE_SUFFIXES, atomic_output, write_atomically
from leadscore.progress import Progress
from leadscore.row_checks import REASONS, REJECT_COLUMNS, SeenIds, split_rows
from leadscore.scorer import ROW_ID
from leadscore.streams import TableWriter, open_table
from leadscore.tracking import LoadedModel, load_model
from leadscore.validation import require_columns

log = logging.getLogger(__name__)
STATUS_COLUMN = "lead_status"
SPARK_MASTER_ENV = "LEADSCORE_SPARK_MASTER"
PROVENANCE_COLUMNS = ("model_name", "model_version", "scored_at")
REJECTS_SCHEMA = pa.schema([("row", pa.int64()), *((c, pa.large_string()) for c in REJECT_COLUMNS[1:])])


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

    @property
    def rows_rejected(self) -> int:
        """Rejected rows, whatever the reason."""
        return sum(self.rejected.values())

    def summary(self) -> str:
        """One line for a log: counts, where the outputs went, and the model."""
        why = ", ".join(f"{n:,} {reason}" for reason, n in self.rejected.items() if n) or "none"
        return (f"scored {self.rows_scored:,} of {self.rows_read:,} leads with {self.model_name} version "
                f"{self.model_version} -> {self.output}; rejected {self.rows_rejected:,} ({why}) -> {self.rejects}")


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


def score_file(
    model_uri: str, input_path: str | Path, output_path: str | Path, *, as_of: str | None = None,
    settings: ScoringConfig | None = None, rejects_path: str | Path | None = None, top: int = 0,
) -> ScoringReport:
    """Score every lead in `input_path` with the model at `model_uri`; see the module docstring."""
    settings = settings or ScoringConfig()
    if settings.engine == "spark":
        from leadscore.spark import score_with_spark

        return score_with_spark(model_uri, input_path, output_path, as_of=as_of, settings=settings,
                                rejects_path=rejects_path, top=top)
    output = Path(output_path)
    if output.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"unsupported output type '{output.suffix}'", fix=f"name the output with one of {TABLE_SUFFIXES}")
    rejects, drift_path = (Path(p) for p in side_paths(output, rejects_path))
    started = time.perf_counter()
    loaded = load_model(model_uri)
    total, chunks = _input_chunks(loaded, Path(input_path), as_of, settings.chunk_rows)
    job = _ChunkScorer(loaded, top, settings.reasons)

    with atomic_output(output) as tmp_output:
        with atomic_output(rejects) as tmp_rejects:
            with TableWriter(tmp_output, output.suffix.lower(), target=output) as scores, \
                    TableWriter(tmp_rejects, ".csv", REJECTS_SCHEMA, target=rejects) as rejected:
                progress = Progress("leadscore score", total)
                try:
                    for chunk, status in chunks:
                        job.score(chunk, status, scores, rejected)
                        progress.update(len(chunk))
                finally:
                    progress.close()
                if job.rows_read == 0:
                    raise InputError(f"no leads to score in {input_path}", fix="give at least one row")
                job.check_every_row_accounted_for()
                scores.empty_columns = job.empty_columns()
        # The whole input was read: the rejects are published, and so is the drift report.
        drifted = _write_drift_report(job.drift, drift_path, settings.drift_threshold)
        report = job.report(output, rejects, drift_path, drifted, time.perf_counter() - started)
        check_reject_share(report, settings.max_reject_share)
    log_findings(report, drift_path)
    return report


class _ChunkScorer:
    """Scores chunks one after another and keeps the running counts a report needs."""

    def __init__(self, loaded: LoadedModel, top: int, reasons: bool):
        self.loaded, self.scorer = loaded, loaded.scorer
        # The registered model's own predict. MLflow's wrapper around it would first rebuild every
        # Any-typed input column cell by cell (costing more than the model itself); these rows have
        # already passed stricter checks (`split_rows`, then the scorer's own validation).
        self.model = loaded.pyfunc.unwrap_python_model()
        self.params = model_params(reasons)
        self.seen = SeenIds()
        reference = getattr(self.scorer, "reference", None)
        self.drift = DriftCounter(reference) if reference is not None else None
        self.scored_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.rows_read = self.rows_scored = 0
        self.rejected = Counter({reason: 0 for reason in REASONS})
        self.unseen: Counter[str] = Counter()
        self.top_n, self.top = top, None

    def score(self, chunk: pd.DataFrame, status: np.ndarray | None, scores: TableWriter, rejected: TableWriter) -> None:
        """Check, score and write one chunk; `status` is the lead status of each of its rows (event logs)."""
        scorer = self.scorer
        rows = np.arange(self.rows_read + 1, self.rows_read + len(chunk) + 1)
        self.rows_read += len(chunk)
        if scorer.id_column not in chunk.columns:  # a model without ids: the row number is the id
            chunk = chunk.assign(**{scorer.id_column: rows})
        valid, rejects = split_rows(chunk, rows, scorer.id_column, scorer.numeric_columns, self.seen)
        if len(rejects):
            rejected.write(rejects)
            self.rejected.update(rejects["reason"].value_counts().to_dict())
        if valid.empty:
            return
        inputs = [scorer.id_column, *scorer.feature_columns]
        if list(valid.columns) != inputs:  # a snapshot chunk already holds exactly these: no copy then
            valid = valid[inputs]
        out = self.model.predict(None, valid, params=self.params)
        if len(out) != len(valid):  # a broken scorer must never write a short file
            raise RuntimeError(f"scorer returned {len(out)} rows for {len(valid)} leads")
        out = out.assign(model_name=self.loaded.name, model_version=self.loaded.version, scored_at=self.scored_at)
        if status is not None:
            out[STATUS_COLUMN] = status[valid.index.to_numpy()]
        scores.write(out)
        self.rows_scored += len(out)
        if self.drift is not None:
            self.drift.add(valid, out["p_convert"].to_numpy())
        else:
            self.unseen.update(scorer.unseen_categories(valid))
        self._keep_top(out)

    def _keep_top(self, out: pd.DataFrame) -> None:
        if not self.top_n:
            return
        if STATUS_COLUMN in out.columns:
            out = out[out[STATUS_COLUMN] == "open"]
        best = out.nlargest(self.top_n, ["score", "p_convert"])
        self.top = best if self.top is None else pd.concat([self.top, best]).nlargest(self.top_n, ["score", "p_convert"])

    def empty_columns(self) -> list[str]:
        """Output columns for a file with no scored row: those of the model's output signature."""
        schema = self.loaded.pyfunc.metadata.get_output_schema()
        return [*(schema.input_names() if schema else [self.scorer.id_column, "p_convert", "score"]), *PROVENANCE_COLUMNS]

    def check_every_row_accounted_for(self) -> None:
        if self.rows_scored + sum(self.rejected.values()) != self.rows_read:
            raise RuntimeError(f"{self.rows_read} rows read but {self.rows_scored} scored and "
                               f"{sum(self.rejected.values())} rejected")

    def report(self, output: Path, rejects: Path, drift_path: Path, drifted: list[str], seconds: float) -> ScoringReport:
        unseen = self.drift.other_counts() if self.drift is not None else dict(self.unseen)
        return ScoringReport(
            output=str(output), rejects=str(rejects), drift_report=str(drift_path) if self.drift else None,
            rows_read=self.rows_read, rows_scored=self.rows_scored, rejected=dict(self.rejected),
            model_name=self.loaded.name, model_version=self.loaded.version, engine="pandas", seconds=seconds,
            unseen_categories=unseen, drifted=drifted, top=self.top,
        )


def _input_chunks(loaded: LoadedModel, path: Path, as_of: str | None, chunk_rows: int
                  ) -> tuple[int | None, Iterator[tuple[pd.DataFrame, np.ndarray | None]]]:
    """The number of input rows when known, and the input as (chunk, lead status or None) pairs."""
    scorer = loaded.scorer
    if path.is_dir():
        frame, status = _event_log_features(loaded, path, as_of)
        return len(frame), _slices(frame, status.to_numpy(), chunk_rows)
    source = open_table(path)
    require_input_columns(scorer, source.columns)
    columns = [c for c in (scorer.id_column, *scorer.feature_columns) if c in source.columns]
    return source.total_rows, ((chunk, None) for chunk in source.chunks(columns, chunk_rows))


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


def _slices(frame: pd.DataFrame, status: np.ndarray, rows: int) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    for start in range(0, len(frame), rows):
        yield frame.iloc[start:start + rows].reset_index(drop=True), status[start:start + rows]


def _write_drift_report(drift: DriftCounter | None, path: Path, threshold: float) -> list[str]:
    """Write the drift report (models trained before drift references existed have none); the drifted columns."""
    if drift is None:
        log.info("this model carries no reference distributions (trained by an older leadscore): no drift report")
        return []
    report = drift.report(threshold)
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    return report["drifted"]


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


def event_spec_of(scorer, folder: Path) -> EventFeatureSpec:
    """How the model computes features from an event log; an input error for a model trained on a snapshot table."""
    if scorer.event_spec is None:
        raise InputError(
            f"{folder} is a folder (event log), but this model was trained on a snapshot table",
            fix="give a CSV or Parquet file with the model's feature columns",
        )
    return scorer.event_spec


def scoring_time(activity_times: pd.Series, as_of: str | None) -> pd.Timestamp:
    """The moment an event log is scored at: `as_of` (UTC unless it names a zone), or else the export's
    cut-off, just after its last recorded activity."""
    if not as_of:
        return activity_times.max() + pd.Timedelta(seconds=1)
    moment = pd.Timestamp(as_of)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _event_log_features(loaded: LoadedModel, folder: Path, as_of: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """Features as of `as_of` (default: the last recorded event) for every lead in the log."""
    spec = event_spec_of(loaded.scorer, folder)
    layout = spec.layout
    has_outcomes = any((folder / f"{layout.outcomes_table}{s}").exists() for s in (".csv", ".parquet"))
    event_log = load_event_log(folder, layout, with_outcomes=has_outcomes)
    moment = scoring_time(event_log.activities[layout.timestamp_column], as_of)
    late = event_log.leads[layout.created_column] > moment
    if late.any():
        raise InputError(
            f"leads created after the scoring time {moment}", column=layout.created_column,
            rows=[int(i) + 1 for i in late.to_numpy().nonzero()[0]], fix="score as of a later time (--as-of)",
        )
    features = features_as_of(event_log.leads, event_log.activities, moment, spec)
    status = pd.Series("open", index=features.index)
    if event_log.outcomes is not None:
        outcomes = event_log.outcomes[event_log.outcomes[layout.timestamp_column] < moment]
        closing = outcomes[outcomes[layout.stage_column].isin(spec.terminal_stages)]
        final = closing.sort_values(layout.timestamp_column).groupby(layout.id_column)[layout.stage_column].last()
        status = features[layout.id_column].map(final).fillna("open").astype("string")
    return features, status
