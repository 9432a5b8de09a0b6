"""The pandas engine: the scoring job streamed through this process, `chunk_rows` leads at a time.

A snapshot table is read chunk by chunk with only the columns the model needs, so that memory stays
flat however many leads there are; an event log's features are built out of core by DuckDB and stream out
in chunks (`leadscore.scoring.events.event_log_feature_batches`), scored like a table's. Each chunk's rows are checked (`leadscore.data.row_checks.split_rows`,
duplicates found by a set of id hashes kept across chunks), scored by the registered model's own `predict`
(the `LeadScorerModel` inside the loaded pyfunc, which is also what Spark's `spark_udf` and `mlflow models
serve` call) and appended to temporary files on this machine. The job contract is `leadscore.scoring.job`.

With an account part, each chunk's accepted leads also go to the job's `AccountTally` (one row of mergeable
aggregates per account and chunk), and the lead rows are staged in Parquet, which keeps their types exactly,
without their account values. Once the input is read, the account table is written, and one more pass
streams the staged rows, `chunk_rows` at a time, into the output with their account's columns, in the
model's column order (its signature's). The account values `predict` would add from one chunk's leads alone
would be replaced anyway, and cost about as much as the lead scores: chunks are scored by the same scorer
without its account part (`dataclasses.replace`; the lead columns are computed before and apart from it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.config import ScoringConfig
from leadscore.data.io import LocalFiles, output_error
from leadscore.data.row_checks import SeenIds, split_rows
from leadscore.data.sources import EVENT_LOG, SNAPSHOT, UNREADABLE_ROWS
from leadscore.data.streams import TableWriter
from leadscore.model.pyfunc import LeadScorerModel
from leadscore.progress import Progress
from leadscore.schema import ACCOUNT_ID, CHANGE_COLUMNS, PROVENANCE_COLUMNS, STATUS_COLUMN
from leadscore.scoring.accounts import (
    ACCOUNT_VALUES,
    MISSING_ACCOUNT,
    MISSING_ACCOUNT_DETAIL,
    account_inputs,
    missing_accounts,
    staged_lead_rows,
    with_account_columns,
)
from leadscore.scoring.events import event_log_feature_batches, event_spec_of
from leadscore.scoring.job import (
    REJECTS_SCHEMA,
    Engine,
    Job,
    Staged,
    Tally,
    aside,
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
        accounts = tally.accounts
        # With an account part the lead rows wait for their account values, in Parquet, which keeps their types.
        leads, fmt = (staged.scores, job.fmt) if accounts is None else (aside(self.files, job.output), ".parquet")
        with TableWriter(leads, fmt, target=job.output) as scores, \
                TableWriter(staged.rejects, ".csv", REJECTS_SCHEMA, target=job.rejects) as rejected:
            progress = Progress("leadscore score", total)
            try:
                for chunk, status in chunks:
                    scoring.score(chunk, status, scores, rejected)
                    progress.update(len(chunk))
            finally:
                progress.close()
            scores.empty_columns = scoring.empty_columns()
        if accounts is None:
            return
        table = accounts.table()
        with TableWriter(staged.accounts, job.fmt, target=job.accounts) as written:
            written.write(table)
        lead_columns = accounts.part.lead_columns(table)
        order = scoring.model_order()
        _add_account_columns(leads, staged.scores, job, lead_columns, order)
        if tally.top is not None:
            tally.top = with_account_columns(tally.top, lead_columns, order)


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
        if tally.accounts is not None:  # the lead columns only: the account values come from whole accounts (above)
            self.model = LeadScorerModel(dataclasses.replace(self.scorer, accounts=None))
        self.params = model_params(job.settings.reasons)
        self.seen = SeenIds()
        self.scored_at = scored_at(job.fmt)  # a timestamp in Parquet, ISO 8601 text in CSV
        self.inputs = [self.scorer.id_column, *self.scorer.feature_columns, *account_inputs(self.scorer)]
        self.columns: list[str] | None = None  # those of the staged rows, known from the first scored chunk

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
        if tally.accounts is not None:
            valid, rejects = self._reject_missing_accounts(valid, rejects, rows)
        if len(rejects):
            rejected.write(rejects)
            tally.reject(rejects["reason"].value_counts().to_dict())
        if valid.empty:
            return
        inputs = self.inputs
        if list(valid.columns) != inputs:  # a snapshot chunk already holds exactly these: no copy then
            valid = valid[inputs]
        out = self.model.predict(None, valid, params=self.params)
        if len(out) != len(valid):  # a broken scorer must never write a short file
            raise RuntimeError(f"scorer returned {len(out)} rows for {len(valid)} leads")
        if tally.accounts is not None:  # accepted rows only: a rejected lead never counts towards its account
            tally.accounts.add(valid, out)
        out = out.assign(model_name=self.loaded.name, model_version=self.loaded.version,
                         scored_at=_column_of(self.scored_at, out.index))
        if status is not None:
            out[STATUS_COLUMN] = status[valid.index.to_numpy()]
        if tally.history is not None:  # score_change, change_reasons; the run's history rows kept aside
            out = tally.history.annotate(valid, out)
        if tally.accounts is not None:
            out = staged_lead_rows(out, valid, tally.accounts.part.account_column)
            self.columns = self.columns or list(out.columns)
        scores.write(out)
        tally.score(len(out))
        if tally.drift is not None:
            tally.drift.add(valid, out["p_convert"].to_numpy())
        else:
            tally.unseen.update(scorer.unseen_categories(valid))
        tally.keep_top(out)

    def _reject_missing_accounts(self, valid: pd.DataFrame, rejects: pd.DataFrame, rows: np.ndarray):
        """The rows to score without those whose account id is empty, which join the chunk's rejects (in row order)."""
        column = self.tally.accounts.part.account_column
        empty = missing_accounts(valid[column])
        if not empty.any():
            return valid, rejects
        more = pd.DataFrame({"row": rows[valid.index[empty]],
                             "id": valid[self.scorer.id_column][empty].astype("string").to_numpy(),
                             "column": column, "reason": MISSING_ACCOUNT, "detail": MISSING_ACCOUNT_DETAIL})
        both = pd.concat([rejects, more[list(rejects.columns)]], ignore_index=True) if len(rejects) else more
        return valid[~empty], both.sort_values("row", kind="stable").reset_index(drop=True)[list(rejects.columns)]

    def empty_columns(self) -> list[str]:
        """Output columns for a file with no scored row: those of the model's output signature; with an account
        part, those of the staged lead rows (the account id, not yet its values)."""
        columns = [*self._signature_columns(), *PROVENANCE_COLUMNS,
                   *(CHANGE_COLUMNS if self.tally.history is not None else ())]
        if self.tally.accounts is None:
            return columns
        columns = [c for c in columns if c not in ACCOUNT_VALUES]
        return columns if ACCOUNT_ID in columns else [*columns, ACCOUNT_ID]

    def model_order(self) -> list[str]:
        """The output's columns with the account values, in the model's order: the columns its signature names in
        their order there (that of `LeadScorer.predict`), then the job's own (provenance, status, changes)."""
        staged = self.columns or self.empty_columns()
        wanted = [*staged, *(c for c in ACCOUNT_VALUES if c not in staged)]
        named = [c for c in self._signature_columns() if c in wanted]
        return [*named, *(c for c in wanted if c not in named)]

    def _signature_columns(self) -> list[str]:
        schema = self.loaded.pyfunc.metadata.get_output_schema()
        return schema.input_names() if schema else [self.scorer.id_column, "p_convert", "score"]


def _add_account_columns(staged: str, path: str, job: Job, lead_columns: pd.DataFrame, order: list[str]) -> None:
    """The pass after the account table is known: the staged lead rows (Parquet), `chunk_rows` at a time, with
    their account's columns (`lead_columns`, one row per account), written to `path` in the output's format."""
    try:
        with pq.ParquetFile(staged) as rows:
            schema = _with_account_fields(rows.schema_arrow, lead_columns, order)
            with TableWriter(path, job.fmt, schema, target=job.output) as out:
                for batch in rows.iter_batches(batch_size=job.settings.chunk_rows):
                    # Timestamps stay Arrow-backed, which pyarrow writes back with their zone (see `_column_of`).
                    frame = batch.to_pandas(types_mapper=_arrow_timestamps)
                    out.write(with_account_columns(frame, lead_columns, schema.names))
    except OSError as exc:  # reading back the staged rows (writing fails as an OutputError already)
        raise output_error(job.output, exc) from exc


def _arrow_timestamps(kind: pa.DataType) -> pd.ArrowDtype | None:
    return pd.ArrowDtype(kind) if pa.types.is_timestamp(kind) else None


def _with_account_fields(staged: pa.Schema, lead_columns: pd.DataFrame, order: list[str]) -> pa.Schema:
    """The output's schema: the staged rows' fields and the account values' (typed by the account table; text
    where it has no value to type them by), in the model's column `order`."""
    values = pa.Schema.from_pandas(lead_columns[list(ACCOUNT_VALUES)], preserve_index=False)
    fields = {f.name: f for f in staged.remove_metadata()}
    fields.update({f.name: f.with_type(pa.large_string()) if pa.types.is_null(f.type) else f for f in values})
    names = [c for c in order if c in fields]
    return pa.schema([fields[c] for c in [*names, *(c for c in fields if c not in names)]])


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
    columns = [c for c in (scorer.id_column, *scorer.feature_columns, *account_inputs(scorer)) if c in source.columns]
    return source.total_rows, ((chunk, None) for chunk in source.chunks(columns, job.settings.chunk_rows))


def _event_log_chunks(job: Job) -> tuple[int | None, Chunks]:
    """An event log's features as of the job's time, built out of core, `chunk_rows` leads at a time, with each
    lead's status; the lead count when the leads table records it."""
    settings, scorer = job.settings, job.loaded.scorer
    spec = event_spec_of(scorer, job.source.location)
    total = job.source.table(spec.layout.leads_table).total_rows
    return total, event_log_feature_batches(scorer, job.source, job.as_of, settings.chunk_rows,
                                            settings.event_log_memory)


_INPUT_CHUNKS = {SNAPSHOT: _table_chunks, EVENT_LOG: _event_log_chunks}
