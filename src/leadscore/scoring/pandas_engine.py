"""The batch scoring job: stream leads through a registered model into outputs published atomically.

Input is a snapshot table (CSV or Parquet: one row per lead with the model's id and feature columns),
read `chunk_rows` rows at a time so that memory stays flat however many leads there are; or an
event-log folder, whose features are computed as of `as_of` with the training code. An event log is
featurised in memory (each lead's features need its whole history, which a row stream does not give)
and then scored chunk by chunk like a table.

Every input row ends as exactly one output row or one row of the rejects file, which names the row,
the id, the column and the reason (see `leadscore.data.row_checks`). A missing column is an error for the
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
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.config import ScoringConfig
from leadscore.data.io import TABLE_SUFFIXES, atomic_output, write_atomically
from leadscore.data.row_checks import REASONS, SeenIds, split_rows
from leadscore.data.streams import TableWriter, open_table
from leadscore.errors import InputError
from leadscore.model.drift import DriftCounter
from leadscore.progress import Progress
from leadscore.registry.loading import LoadedModel, load_model
from leadscore.schema import PROVENANCE_COLUMNS, STATUS_COLUMN
from leadscore.scoring.events import event_log_features
from leadscore.scoring.job import (
    REJECTS_SCHEMA,
    ScoringReport,
    check_reject_share,
    log_findings,
    model_params,
    require_input_columns,
    side_paths,
)

log = logging.getLogger(__name__)


def score_file(
    model_uri: str, input_path: str | Path, output_path: str | Path, *, as_of: str | None = None,
    settings: ScoringConfig | None = None, rejects_path: str | Path | None = None, top: int = 0,
) -> ScoringReport:
    """Score every lead in `input_path` with the model at `model_uri`; see the module docstring."""
    settings = settings or ScoringConfig()
    if settings.engine == "spark":
        from leadscore.scoring.spark_engine import score_with_spark

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
        frame, status = event_log_features(loaded, path, as_of)
        return len(frame), _slices(frame, status.to_numpy(), chunk_rows)
    source = open_table(path)
    require_input_columns(scorer, source.columns)
    columns = [c for c in (scorer.id_column, *scorer.feature_columns) if c in source.columns]
    return source.total_rows, ((chunk, None) for chunk in source.chunks(columns, chunk_rows))


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
