"""The pandas engine: the scoring job streamed through this process, `chunk_rows` leads at a time.

A snapshot table is read chunk by chunk with only the columns the model needs, so that memory stays
flat however many leads there are; an event log is featurised in memory first (`leadscore.scoring.events`)
and then scored in chunks like a table. Each chunk's rows are checked (`leadscore.data.row_checks.split_rows`,
duplicates found by a set of id hashes kept across chunks), scored by the registered model's own `predict`
(the `LeadScorerModel` inside the loaded pyfunc, which is also what Spark's `spark_udf` and `mlflow models
serve` call) and appended to temporary files on this machine. The job contract is `leadscore.scoring.job`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore.config import ScoringConfig
from leadscore.data.io import LocalFiles
from leadscore.data.row_checks import SeenIds, split_rows
from leadscore.data.sources import EVENT_LOG, SNAPSHOT, UNREADABLE_ROWS
from leadscore.data.streams import TableWriter
from leadscore.progress import Progress
from leadscore.schema import CHANGE_COLUMNS, PROVENANCE_COLUMNS, STATUS_COLUMN
from leadscore.scoring.events import event_log_features
from leadscore.scoring.job import (
    REJECTS_SCHEMA,
    Engine,
    Job,
    Staged,
    Tally,
    model_params,
    scored_at,
)


class _PandasRun:
    """Jobs run in this process, their outputs written beside their places on the local file system."""

    def __init__(self) -> None:
        self.files = LocalFiles()

    def write(self, job: Job, staged: Staged, tally: Tally) -> None:
        """Stream the input through the model, chunk by chunk, into the staged scores and rejects."""
        total, chunks = _INPUT_CHUNKS[job.source.form](job)
        scoring = _ChunkScorer(job, tally)
        with TableWriter(staged.scores, job.fmt, target=job.output) as scores, \
                TableWriter(staged.rejects, ".csv", REJECTS_SCHEMA, target=job.rejects) as rejected:
            progress = Progress("leadscore score", total)
            try:
                for chunk, status in chunks:
                    scoring.score(chunk, status, scores, rejected)
                    progress.update(len(chunk))
            finally:
                progress.close()
            scores.empty_columns = scoring.empty_columns()


@contextmanager
def _start(settings: ScoringConfig) -> Iterator[_PandasRun]:
    yield _PandasRun()


ENGINE = Engine("pandas", forms=(SNAPSHOT, EVENT_LOG), start=_start)


class _ChunkScorer:
    """Checks, scores and writes chunks one after another, counting them in the job's tally."""

    def __init__(self, job: Job, tally: Tally):
        self.loaded, self.scorer, self.tally = job.loaded, job.loaded.scorer, tally
        # The registered model's own predict. MLflow's wrapper around it would first rebuild every
        # Any-typed input column cell by cell (costing more than the model itself); these rows have
        # already passed stricter checks (`split_rows`, then the scorer's own validation).
        self.model = job.loaded.pyfunc.unwrap_python_model()
        self.params = model_params(job.settings.reasons)
        self.seen = SeenIds()
        self.scored_at = scored_at(job.fmt)  # a timestamp in Parquet, ISO 8601 text in CSV

    def score(self, chunk: pd.DataFrame, status: np.ndarray | None, scores: TableWriter, rejected: TableWriter) -> None:
        """Check, score and write one chunk; `status` is the lead status of each of its rows (event logs)."""
        scorer, tally = self.scorer, self.tally
        unreadable = chunk.attrs.get(UNREADABLE_ROWS)  # rows a CSV reader could not read, kept in place
        rows = np.arange(tally.rows_read + 1, tally.rows_read + len(chunk) + 1)
        tally.read(len(chunk))
        if scorer.id_column not in chunk.columns:  # a model without ids: the row number is the id
            chunk = chunk.assign(**{scorer.id_column: rows})
        valid, rejects = split_rows(chunk, rows, scorer.id_column, scorer.numeric_columns, self.seen, unreadable,
                                    scorer.decimal)
        if len(rejects):
            rejected.write(rejects)
            tally.reject(rejects["reason"].value_counts().to_dict())
        if valid.empty:
            return
        inputs = [scorer.id_column, *scorer.feature_columns]
        if list(valid.columns) != inputs:  # a snapshot chunk already holds exactly these: no copy then
            valid = valid[inputs]
        out = self.model.predict(None, valid, params=self.params)
        if len(out) != len(valid):  # a broken scorer must never write a short file
            raise RuntimeError(f"scorer returned {len(out)} rows for {len(valid)} leads")
        out = out.assign(model_name=self.loaded.name, model_version=self.loaded.version,
                         scored_at=_column_of(self.scored_at, out.index))
        if status is not None:
            out[STATUS_COLUMN] = status[valid.index.to_numpy()]
        if tally.history is not None:  # score_change, change_reasons; the run's history rows kept aside
            out = tally.history.annotate(valid, out)
        scores.write(out)
        tally.score(len(out))
        if tally.drift is not None:
            tally.drift.add(valid, out["p_convert"].to_numpy())
        else:
            tally.unseen.update(scorer.unseen_categories(valid))
        tally.keep_top(out)

    def empty_columns(self) -> list[str]:
        """Output columns for a file with no scored row: those of the model's output signature."""
        schema = self.loaded.pyfunc.metadata.get_output_schema()
        changes = CHANGE_COLUMNS if self.tally.history is not None else ()
        return [*(schema.input_names() if schema else [self.scorer.id_column, "p_convert", "score"]), *PROVENANCE_COLUMNS,
                *changes]


def _column_of(value: pd.Timestamp | str, index: pd.Index) -> pd.Series | str:
    """`scored_at` for every row: text as it is; a timestamp as an Arrow-backed column, which pyarrow writes
    as `timestamp[us, tz=UTC]` without going through pandas' timezone-dropping `Series.values`."""
    if isinstance(value, str):
        return value
    return pd.Series(value, index=index, dtype=pd.ArrowDtype(pa.timestamp("us", tz="UTC")))


Chunks = Iterator[tuple[pd.DataFrame, "np.ndarray | None"]]


def _table_chunks(job: Job) -> tuple[int | None, Chunks]:
    """A table's rows as it is read, with the columns the model needs; its row count when known."""
    scorer, source = job.loaded.scorer, job.source
    columns = [c for c in (scorer.id_column, *scorer.feature_columns) if c in source.columns]
    return source.total_rows, ((chunk, None) for chunk in source.chunks(columns, job.settings.chunk_rows))


def _event_log_chunks(job: Job) -> tuple[int | None, Chunks]:
    """An event log's features as of the job's time, in slices, with each lead's status; the lead count."""
    frame, status = event_log_features(job.loaded.scorer, job.source, job.as_of)
    rows, status = job.settings.chunk_rows, status.to_numpy()
    slices = ((frame.iloc[start:start + rows].reset_index(drop=True), status[start:start + rows])
              for start in range(0, len(frame), rows))
    return len(frame), slices


_INPUT_CHUNKS = {SNAPSHOT: _table_chunks, EVENT_LOG: _event_log_chunks}
