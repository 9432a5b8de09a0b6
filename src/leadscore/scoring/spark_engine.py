"""Distributed batch scoring: the registered model on Spark, through `mlflow.pyfunc.spark_udf`.

`leadscore score --engine spark` runs the job of `leadscore.scoring.job` with the same row checks
(`leadscore.data.row_checks.row_problems`, run in `mapInPandas`), the same model `predict` (inside
`spark_udf`) and the same drift counting (`DriftCounter`, per partition, added on the driver), so its
scores equal the pandas engine's. What differs is what Spark does better at scale:
- duplicate ids are found with a window over the id (a shuffle) instead of a set of seen ids;
- rows are numbered by position within Spark's input partitions, which for one file is file order;
- the scores are written as Spark writes them, a folder of part files named by `output` (pandas,
  pyarrow and most query engines read such a folder as one table), in no particular row order;
- the rejects file is one CSV file, as with the pandas engine;
- a CSV row whose fields do not match the header is a reject with its row number, as with the pandas
  engine (`UNREADABLE_COLUMN` of `TableSource.spark_frame`); other parse failures stop the job (exit 4).
Any legal column name works (`emp.var.rate` is one column, not a struct field): columns are always
referred to by `spark_column`. Formula-like text cells of CSV outputs are neutralised as by the pandas
engine (`leadscore.data.streams`).
Outputs are written beside their final place and renamed into it with the Hadoop file system API
(atomic for a file on local disks and HDFS; a folder is swapped in by two renames). Tables are read as
their source kind says Spark reads them (`TableSource.spark_frame`). An event log is read and validated
on the driver as by the pandas engine (`leadscore.scoring.events`: the scoring time, future events refused,
each lead's status), its features as of the scoring time are computed by Spark from the feature query
training uses (`leadscore.features.spark`), and those rows, one per lead in the order of the leads table
with their `lead_status`, are then checked and scored as a table.

With an account part (a model trained with an `accounts` section), the accepted leads and their scores are
grouped by account, each account's leads whole in one group (`groupBy(...).applyInPandas`), and scored by the
model's own account part (`AccountScorer.score_leads`), so the account table equals the pandas engine's. It is
written beside the scores, as they are (`<output stem>.accounts.<csv|parquet>`, a folder of part files), and its
account columns (`AccountScorer.lead_columns`) are joined onto every lead row, replacing those the model computed
from the leads of one Arrow batch only. Leads without an account get no account values.

PySpark is an optional extra (`pip install 'leadscore[spark]'`, with Java 17 or newer). The master URL
is `--spark-master`, else LEADSCORE_SPARK_MASTER, else the config's `scoring.spark_master`, else
`local[*]`; a Spark session that is already running (e.g. in a notebook) is used as it is
(`leadscore.spark_session`). Executors need leadscore installed, as they load the model in their own Python.
"""

from __future__ import annotations

import errno
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from leadscore.config import ScoringConfig
from leadscore.data.row_checks import (
    DUPLICATE_DETAIL,
    DUPLICATE_ID,
    MISSING_ID,
    PROBLEM_COLUMNS,
    UNREADABLE,
    row_problems,
)
from leadscore.data.sources import EVENT_LOG, SNAPSHOT, UNREADABLE_COLUMN, spark_column
from leadscore.data.streams import FORMULA_START, PLAIN_NUMBER
from leadscore.errors import InputError
from leadscore.features import spark as spark_features
from leadscore.model.drift import SCORE, DriftCounter
from leadscore.schema import ACCOUNT_ID, CHANGE_COLUMNS, LEAD_ACCOUNT_COLUMNS, PROVENANCE_COLUMNS, STATUS_COLUMN
from leadscore.scoring.accounts import (
    ACCOUNT_VALUES,
    MISSING_ACCOUNT,
    MISSING_ACCOUNT_DETAIL,
    AccountTally,
    account_inputs,
    missing_accounts,
    top_accounts,
)
from leadscore.scoring.events import event_log_features
from leadscore.scoring.job import (
    Engine,
    Job,
    Staged,
    Tally,
    model_params,
    scored_at,
    top_leads,
)
from leadscore.spark_session import require_pyspark, spark_session

log = logging.getLogger(__name__)
_ROW = "_row"
# An event log's lead status travels beside the features under a name of its own (a profile column of the
# leads table may be called lead_status too) and is written as STATUS_COLUMN; a table's columns never carry it.
_STATUS = "_lead_status"
_ROW_BITS = 33  # monotonically_increasing_id: the partition index above bit 33, the position within it below
_MISSING_MARKERS = ("<NA>", "nan", "None")
# CSV as the pandas engine writes it: a header, quotes doubled (RFC 4180), text kept with its spaces.
_CSV_WRITE = {"header": True, "escape": '"', "ignoreLeadingWhiteSpace": False, "ignoreTrailingWhiteSpace": False}


class _SparkRun:
    """Jobs run on one Spark session, their outputs on the file system each output path names."""

    def __init__(self, spark):
        self.spark = spark
        self.files = _HadoopFiles(spark)

    def write(self, job: Job, staged: Staged, tally: Tally) -> None:
        """Read, check and score the table on Spark into the staged scores (a folder of parts) and rejects."""
        try:
            _SparkJob(self.spark, job, self.files).write(staged, tally)
        except Exception as exc:
            if "MALFORMED_RECORD" in str(exc) or "Malformed records" in str(exc):
                raise InputError(f"malformed CSV record in {job.source.location}",
                                 fix="repair or export the file again") from None
            raise


@contextmanager
def _start(settings: ScoringConfig) -> Iterator[_SparkRun]:
    spark, created = spark_session(settings.spark_master, app_name="leadscore score")
    try:
        yield _SparkRun(spark)
    finally:
        if created:
            spark.stop()


ENGINE = Engine("spark", forms=(SNAPSHOT, EVENT_LOG), start=_start, check=require_pyspark)


class _SparkJob:
    """One scoring job on a Spark session."""

    def __init__(self, spark, job: Job, files: _HadoopFiles):
        self.spark, self.job, self.files = spark, job, files
        self.loaded, self.scorer, self.reasons = job.loaded, job.loaded.scorer, job.settings.reasons
        # Pin the version: an alias moved while the job runs must not change the model mid-job.
        uri = job.model_uri
        self.model_uri = f"models:/{self.loaded.name}/{self.loaded.version}" if uri.startswith("models:/") else uri

    def write(self, staged: Staged, tally: Tally) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        numbered, rows_read = self._numbered(_INPUT_FRAMES[self.job.source.form](self))
        tally.read(rows_read)
        if rows_read == 0:
            return
        # Kept for the several passes below, so that the input is read and the model run once per row.
        checked = self._checked(numbered).persist(StorageLevel.MEMORY_AND_DISK)
        valid = checked.filter(F.col("reason").isNull())
        scores = self._scores(valid).persist(StorageLevel.MEMORY_AND_DISK)
        if tally.history is not None:  # score_change, change_reasons; the run's history rows (`leadscore.history`)
            from leadscore.history.spark import with_changes

            scores = with_changes(self.spark, valid, scores, tally.history)
        persisted = [checked, scores]
        try:
            if tally.accounts is not None:  # the account table, and its columns on every lead row
                accounts = self._account_table(valid, scores).persist(StorageLevel.MEMORY_AND_DISK)
                persisted.append(accounts)
                joined = self._with_account_columns(scores, accounts).persist(StorageLevel.MEMORY_AND_DISK)
                persisted.append(joined)
                joined.count()  # materialised before the rows it was computed from are released
                scores.unpersist()
                scores = joined
                self._write_accounts(accounts, staged.accounts, tally.accounts)
            tally.reject(dict(checked.filter(F.col("reason").isNotNull()).groupBy("reason").count().collect()))
            written = _neutralised(scores) if self.job.fmt == ".csv" else scores
            with _parquet_timestamps(self.spark):
                written.write.options(**_CSV_WRITE).format(self.job.fmt[1:]).save(staged.scores)
            tally.score(scores.count())
            self._write_rejects(checked, staged.rejects)
            if tally.drift is not None:
                self._count_drift(valid, scores, tally.drift)
            if tally.top_n:
                tally.keep_top(self._top(scores, tally.top_n))
        finally:
            for frame in (scores, *persisted):  # `scores` may have been replaced by history's (`with_changes`)
                frame.unpersist()

    def _numbered(self, raw):
        """The id and feature columns with each row's 1-based position in the input, and the row count."""
        from pyspark.sql import functions as F

        scorer = self.scorer
        columns = [c for c in (scorer.id_column, *scorer.feature_columns, *account_inputs(scorer), UNREADABLE_COLUMN,
                                _STATUS) if c in raw.columns]
        counts = dict(raw.select(F.spark_partition_id().alias("p")).groupBy("p").count().collect())
        offsets, total = [], 0
        for partition in range(raw.rdd.getNumPartitions()):
            offsets.append(total)
            total += counts.get(partition, 0)
        position = F.monotonically_increasing_id()
        partition = F.shiftright(position, _ROW_BITS).cast("int")
        first_row = F.element_at(F.array(*[F.lit(o).cast("long") for o in offsets or [0]]), partition + 1)
        row = first_row + position.bitwiseAND(F.lit((1 << _ROW_BITS) - 1)) + 1
        numbered = raw.select(*[spark_column(c) for c in columns], row.alias(_ROW))
        if scorer.id_column not in raw.columns:  # a model without ids: the row number is the id
            numbered = numbered.withColumn(scorer.id_column, F.col(_ROW))
        return numbered, total

    def _checked(self, numbered):
        """Each row with its problem (`column`, `reason`, `detail`; null when it can be scored)."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import DoubleType, StringType, StructField, StructType

        id_column, numeric = self.scorer.id_column, list(self.scorer.numeric_columns)
        decimal = self.scorer.decimal  # cells are text: numbers are read with the training data's decimal mark
        part = self.scorer.accounts
        account = part.account_column if part is not None else None
        fields = [StructField(f.name, DoubleType() if f.name in numeric else f.dataType) for f in numbered.schema
                  if f.name != UNREADABLE_COLUMN]
        schema = StructType([*fields, *(StructField(name, StringType()) for name in PROBLEM_COLUMNS)])

        def check(batches):
            for batch in batches:
                unreadable = {}
                if UNREADABLE_COLUMN in batch.columns:
                    flags = batch.pop(UNREADABLE_COLUMN)
                    unreadable = {i: why for i, why in enumerate(flags) if isinstance(why, str)}
                typed, problems = row_problems(batch, id_column, numeric, unreadable, decimal)
                if account is not None:  # after the row checks, as the pandas engine rejects them
                    empty = missing_accounts(typed[account]) & problems["reason"].isna().to_numpy()
                    problems.loc[empty, list(PROBLEM_COLUMNS)] = [account, MISSING_ACCOUNT, MISSING_ACCOUNT_DETAIL]
                yield typed.join(problems)

        checked = _map_in_pandas(numbered, check, schema)
        # Ids that occur more than once, with their first row: an aggregate of the id column alone, which
        # is small when duplicates are rare, so the rows themselves are not shuffled.
        repeated_ids = (checked.filter(~F.coalesce(F.col("reason"), F.lit("")).isin(MISSING_ID, UNREADABLE))
                        .groupBy(spark_column(id_column).alias("_repeated_id"))
                        .agg(F.min(_ROW).alias("_first"), F.count("*").alias("_n"))
                        .filter(F.col("_n") > 1).drop("_n"))
        joined = checked.join(repeated_ids, spark_column(id_column) == F.col("_repeated_id"), how="left"
                              ).drop("_repeated_id")
        has_id = ~F.coalesce(F.col("reason"), F.lit("")).isin(MISSING_ID, UNREADABLE)
        repeated = F.col("_first").isNotNull() & (F.col(_ROW) != F.col("_first")) & has_id
        duplicate = {"column": F.lit(id_column), "reason": F.lit(DUPLICATE_ID), "detail": F.lit(DUPLICATE_DETAIL)}
        return joined.withColumns({c: F.when(repeated, duplicate[c]).otherwise(F.col(c)) for c in PROBLEM_COLUMNS}
                                  ).drop("_first")

    def _scores(self, valid):
        """The model's output for every valid row, with the provenance columns."""
        import mlflow.pyfunc
        from pyspark.sql import functions as F

        result_type = self._result_type()
        with _quiet("mlflow.pyfunc"):  # its advice to rebuild the training environment: leadscore is installed here
            udf = mlflow.pyfunc.spark_udf(self.spark, self.model_uri, env_manager="local", result_type=result_type,
                                          params=model_params(self.reasons))
        inputs = udf.metadata.get_input_schema().input_names()
        carried = [STATUS_COLUMN] if _STATUS in valid.columns else []  # an event log's lead statuses
        status = [F.col(_STATUS).alias(STATUS_COLUMN)] if carried else []
        out = valid.select(udf(*[spark_column(c) for c in inputs]).alias("_out"), *status).select("_out.*", *carried)
        # spark_udf turns a missing text value into the text of pandas' missing marker, by dtype; put back null.
        text = [f.name for f in result_type if f.dataType.typeName() == "string" and f.name != self.scorer.id_column]
        out = out.withColumns({c: F.when(spark_column(c).isin(*_MISSING_MARKERS), None).otherwise(spark_column(c))
                               for c in text})
        at = scored_at(self.job.fmt)  # a timestamp for Parquet (written as UTC, see `_parquet_timestamps`), text for CSV
        values = dict(zip(PROVENANCE_COLUMNS, (self.loaded.name, self.loaded.version,
                                               at if isinstance(at, str) else at.to_pydatetime())))
        out = out.withColumns({c: F.lit(v) for c, v in values.items()})
        # The pandas engine's column order: the model's output, the provenance, then the lead status.
        return out.select(*[spark_column(c) for c in out.columns if c not in carried], *carried) if carried else out

    def _result_type(self):
        """The model's output columns as a Spark struct: typed by its signature, and those it returns for
        this job's params (the signature lists every column, reasons included).

        A column that was empty in the signature's example is typed Any there; the scorer fills such a
        column with text or nothing, so it is read as a string.
        """
        from mlflow.types.schema import DataType
        from pyspark.sql.types import StringType, StructField, StructType

        pyfunc = self.loaded.pyfunc
        schema = pyfunc.metadata.get_output_schema()
        if schema is None or pyfunc.input_example is None:
            raise InputError(f"model {self.model_uri} has no signature or input example, which the spark engine "
                             "needs", fix="retrain it with this version of leadscore, or score with --engine pandas")
        returned = pyfunc.unwrap_python_model().predict(None, pyfunc.input_example, params=model_params(self.reasons))
        return StructType([
            StructField(spec.name, spec.type.to_spark() if isinstance(spec.type, DataType) else StringType())
            for spec in schema.inputs if spec.name in returned.columns
        ])

    def _account_table(self, valid, scores):
        """One row per account of the accepted leads (`AccountScorer.score_leads` on all of an account's leads at
        once, grouped by the account column): the same table as the pandas engine's."""
        from pyspark.sql import functions as F

        part, reasons = self.scorer.accounts, self.reasons
        leads, outputs = self._account_columns(scores)
        # Columns travel under positional names (a dot in a name would be read as a struct field), keyed by the id.
        lead_safe = {name: f"_l{i}" for i, name in enumerate(leads)}
        out_safe = {name: f"_s{i}" for i, name in enumerate(outputs)}
        key = self.scorer.id_column
        rows = valid.select(*[spark_column(c).alias(lead_safe[c]) for c in leads]).join(
            scores.select(*[spark_column(c).alias(out_safe[c]) for c in outputs]),
            F.col(lead_safe[key]) == F.col(out_safe[key]))
        lead_names = {v: k for k, v in lead_safe.items()}
        out_names = {v: k for k, v in out_safe.items()}

        def as_pandas(frame):
            return (frame[list(lead_names)].rename(columns=lead_names).reset_index(drop=True),
                    frame[list(out_names)].rename(columns=out_names).reset_index(drop=True))

        example = self._account_example()
        table_safe = {name: f"_a{i}" for i, name in enumerate(example.columns)}
        schema = _spark_schema(example.rename(columns=table_safe))

        def score_account(frame):
            return part.score_leads(*as_pandas(frame), reasons=reasons).rename(columns=table_safe)

        table = rows.groupBy(F.col(lead_safe[part.account_column])).applyInPandas(score_account, schema)
        return table.select(*[F.col(safe).alias(name) for name, safe in table_safe.items()])

    def _account_example(self):
        """The account table of the model's input example, scored on the driver: what types its columns have."""
        pyfunc, scorer = self.loaded.pyfunc, self.scorer
        example = pyfunc.input_example
        if example is None or scorer.accounts.account_column not in example.columns:
            raise InputError(f"model {self.model_uri} has no input example with the account column, which the spark "
                             "engine needs", fix="retrain it with this version of leadscore, or score with --engine pandas")
        leads = scorer.validate(example)
        return scorer.accounts.score_leads(leads, scorer.predict(leads, reasons=False), reasons=self.reasons)

    def _account_columns(self, scores) -> tuple[list[str], list[str]]:
        """The columns the account part reads: the accepted leads' (id, features, account column) and the model's
        output for them (provenance, status and score changes left out)."""
        leads = [self.scorer.id_column, *self.scorer.feature_columns, *account_inputs(self.scorer)]
        left_out = {*PROVENANCE_COLUMNS, *CHANGE_COLUMNS, STATUS_COLUMN, *ACCOUNT_VALUES}
        return leads, [c for c in scores.columns if c not in left_out]

    def _with_account_columns(self, scores, accounts):
        """The lead rows with their account's columns from the account table (`AccountScorer.lead_columns`),
        matched on the account id as text, in the model's column order."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import StructField, StructType

        if ACCOUNT_ID not in scores.columns:
            raise InputError(f"model {self.model_uri} does not return the account id of its leads, which the spark "
                             "engine needs", fix="retrain it with this version of leadscore, or score with --engine pandas")
        part = self.scorer.accounts
        values = {name: f"_v{i}" for i, name in enumerate(ACCOUNT_VALUES)}
        safe = {ACCOUNT_ID: "_key", **values}

        def lead_columns(batches):
            for batch in batches:
                yield part.lead_columns(batch)[[ACCOUNT_ID, *ACCOUNT_VALUES]].rename(columns=safe)

        # `lead_columns` picks the account table's own columns (schema.LEAD_ACCOUNT_COLUMNS): typed as there.
        types = {f.name: f.dataType for f in accounts.schema}
        schema = StructType([StructField(safe[c], types[c]) for c in LEAD_ACCOUNT_COLUMNS])
        per_account = _map_in_pandas(accounts, lead_columns, schema).withColumn("_key", F.col("_key").cast("string"))
        order = [*scores.columns, *(c for c in ACCOUNT_VALUES if c not in scores.columns)]
        joined = scores.drop(*[c for c in ACCOUNT_VALUES if c in scores.columns]).join(
            per_account, spark_column(ACCOUNT_ID).cast("string") == F.col("_key"), how="left")
        return joined.select(*[F.col(values[c]).alias(c) if c in values else spark_column(c) for c in order])

    def _write_accounts(self, accounts, path: str, tally: AccountTally) -> None:
        """Write the account table to `path` (a folder of part files, in the output's format), ordered by account id,
        and count it."""
        from pyspark.sql import functions as F

        table = accounts.orderBy(spark_column(ACCOUNT_ID).cast("string"))
        written = _neutralised(table) if self.job.fmt == ".csv" else table
        written.write.options(**_CSV_WRITE).format(self.job.fmt[1:]).save(path)
        counted = accounts.agg(F.count(F.lit(1)).alias("n"),
                               F.sum(F.coalesce(F.col("is_mqa").cast("int"), F.lit(0))).alias("mqas")).first()
        tally.count(int(counted["n"]), int(counted["mqas"] or 0))
        if tally.top_n:
            best = accounts.orderBy(F.desc_nulls_last("p_account"), spark_column(ACCOUNT_ID).cast("string"))
            tally.keep_top(top_accounts(best.limit(tally.top_n).toPandas(), tally.top_n))

    def _write_rejects(self, checked, path: str) -> None:
        """The rejected rows in input order, as one CSV file at `path`."""
        from pyspark.sql import functions as F

        columns = {"row": F.col(_ROW), "id": spark_column(self.scorer.id_column).cast("string"),
                   **{c: F.col(c) for c in PROBLEM_COLUMNS}}
        folder = self.files.temporary(path)
        rejected = checked.filter(F.col("reason").isNotNull()).select(*[v.alias(k) for k, v in columns.items()])
        (_neutralised(rejected).orderBy("row").coalesce(1).write.options(**_CSV_WRITE).csv(folder))
        self.files.move_single_part(folder, path)

    @staticmethod
    def _count_drift(valid, scores, total: DriftCounter) -> None:
        """Bucket counts per partition, added to `total`: features of the valid rows and their `p_convert`."""
        reference = total.reference

        def partition_counts(batches):
            import pandas as pd

            counter = DriftCounter(reference)
            for batch in batches:
                if SCORE in batch.columns:
                    counter.add(scores=batch[SCORE].to_numpy(dtype="float64", na_value=float("nan")))
                else:
                    counter.add(features=batch)
            yield pd.DataFrame({"counts": [json.dumps(counter.as_lists())]})

        for part in (valid.select(*[spark_column(c) for c in reference.features]), scores.select(SCORE)):
            for row in part.mapInPandas(partition_counts, "counts string").collect():
                total.add_counts(json.loads(row["counts"]))

    @staticmethod
    def _top(scores, n: int):
        """The best `n` leads of each partition (`top_leads`), for the job to keep the best of."""
        def partition_top(batches):
            for batch in batches:
                yield top_leads(batch, n)

        return _map_in_pandas(scores, partition_top, scores.schema).toPandas()


def _table_frame(job: _SparkJob):
    """A table as its source kind says Spark reads it."""
    return job.job.source.spark_frame(job.spark)


def _event_log_frame(job: _SparkJob):
    """An event log's features as of the job's time, computed by Spark from the feature query (the statuses,
    scoring time and refusals as for the pandas engine, `leadscore.scoring.events`), one row per lead in the
    order of the leads table, with each lead's status."""
    def on_spark(leads, activities, moment, spec):
        return spark_features.features_as_of(leads, activities, moment, spec, spark=job.spark)

    features, status = event_log_features(job.scorer, job.job.source, job.job.as_of, build=on_spark)
    frame = features.assign(**{_STATUS: status.astype("string").to_numpy()})
    # Through Arrow, so that the columns keep their types (text stays text, missing stays null).
    return job.spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))


_INPUT_FRAMES = {SNAPSHOT: _table_frame, EVENT_LOG: _event_log_frame}


def _spark_schema(frame):
    """A Spark struct for the columns of a pandas frame: booleans, whole numbers, numbers and times as such,
    anything else (text, or nothing to type it by) as text."""
    import pandas as pd
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    def spark_type(values):
        if pd.api.types.is_bool_dtype(values):
            return BooleanType()
        if pd.api.types.is_integer_dtype(values):
            return LongType()
        if pd.api.types.is_float_dtype(values):
            return DoubleType()
        if pd.api.types.is_datetime64_any_dtype(values):
            return TimestampType()
        kind = pd.api.types.infer_dtype(values, skipna=True)
        return BooleanType() if kind == "boolean" else StringType()

    return StructType([StructField(str(c), spark_type(frame[c])) for c in frame.columns])


def _map_in_pandas(frame, function, schema):
    """`mapInPandas` for any column names: Spark reads the names of its output schema as references, where a
    dot would mean a struct field, so the columns travel under positional names and are renamed back."""
    from pyspark.sql.types import StructField, StructType

    names = list(frame.columns)
    to_safe = {name: f"_c{i}" for i, name in enumerate(names)}
    to_name = {safe: name for name, safe in to_safe.items()}
    fields = [StructField(to_safe.get(f.name, f.name), f.dataType, f.nullable) for f in schema]

    def mapped(batches):
        for batch in batches:
            for out in function(iter([batch.rename(columns=to_name)])):
                yield out.rename(columns=to_safe)

    result = frame.toDF(*[to_safe[n] for n in names]).mapInPandas(mapped, StructType(fields))
    return result.toDF(*[to_name.get(f.name, f.name) for f in fields])


def _neutralised(frame):
    """The frame with formula-like text cells neutralised, as `leadscore.data.streams` does for CSV outputs."""
    from pyspark.sql import functions as F

    def cell(name):
        column = spark_column(name)
        risky = column.rlike(FORMULA_START.pattern) & ~column.rlike(PLAIN_NUMBER.pattern)
        return F.when(risky, F.concat(F.lit("'"), column)).otherwise(column).alias(name)

    return frame.select(*[cell(f.name) if f.dataType.typeName() == "string" else spark_column(f.name)
                          for f in frame.schema])


@contextmanager
def _parquet_timestamps(spark):
    """Spark writes timestamps to Parquet as INT96 unless told otherwise, which readers take as a time without a
    zone; as TIMESTAMP_MICROS they are marked as UTC instants, as the pandas engine writes them. The session's
    own setting is put back afterwards (it may be a notebook's)."""
    key = "spark.sql.parquet.outputTimestampType"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "TIMESTAMP_MICROS")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


@contextmanager
def _quiet(logger: str):
    """Hide a library's warnings for the length of a block."""
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


class _HadoopFiles:
    """Temporary names, renames and small writes on the file system a path lives on (local, HDFS, S3...).

    Every temporary name handed out is deleted by `discard` unless it was published. A failure is an
    `OSError`, as on a local disk, for the job to report as an output that could not be written.
    """

    def __init__(self, spark):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._temporaries: list[str] = []

    def _fs(self, path: str):
        hadoop_path = self._jvm.org.apache.hadoop.fs.Path(path)
        fs = hadoop_path.getFileSystem(self._conf)
        if fs.getScheme() == "file":  # the raw local file system: no hidden .crc files beside the outputs
            fs = fs.getRawFileSystem()
        return fs, hadoop_path

    def temporary(self, path: str) -> str:
        """A hidden name beside `path` (Spark and Hadoop skip names starting with '.')."""
        parent, _, name = str(path).rstrip("/").rpartition("/")
        tmp = f"{parent + '/' if parent else ''}.{name}.{secrets.token_hex(6)}.tmp"
        self._temporaries.append(tmp)
        return tmp

    def discard(self) -> None:
        """Delete every temporary name handed out (a published one is no longer there)."""
        for tmp in self._temporaries:
            fs, hadoop_path = self._fs(tmp)
            fs.delete(hadoop_path, True)
        self._temporaries.clear()

    def publish(self, tmp: str, path: str) -> None:
        """Move `tmp` (a file or a folder) to `path`, replacing what is there."""
        with _as_os_error(path):
            fs, source = self._fs(tmp)
            _, target = self._fs(path)
            backup = None
            if fs.exists(target):
                backup = self._fs(self.temporary(path))[1]
                if not fs.rename(target, backup):
                    raise OSError(f"could not move the previous {path} aside")
            if not fs.rename(source, target):
                if backup is not None:
                    fs.rename(backup, target)
                raise OSError(f"could not move {tmp} to {path}")

    def move_single_part(self, folder: str, path: str) -> None:
        """Move the one part file of a folder Spark wrote (after `coalesce(1)`) to the file `path`."""
        with _as_os_error(path):
            fs, source = self._fs(folder)
            parts = [s.getPath() for s in fs.listStatus(source) if s.getPath().getName().startswith("part-")]
            if not fs.rename(parts[0], self._fs(path)[1]):
                raise OSError(f"could not move {parts[0]} to {path}")

    def write_text(self, path: str, text: str) -> None:
        """Write a small text file at `path`, aside first and then renamed into place."""
        tmp = self.temporary(path)
        with _as_os_error(path):
            fs, hadoop_path = self._fs(tmp)
            stream = fs.create(hadoop_path, True)
            try:
                stream.write(bytearray(text.encode()))
            finally:
                stream.close()
        self.publish(tmp, path)


@contextmanager
def _as_os_error(path: str):
    """A failure of the Hadoop file system API (a Java exception) as the `OSError` a local disk would raise."""
    from py4j.protocol import Py4JJavaError

    try:
        yield
    except Py4JJavaError as exc:
        message = str(exc.java_exception)
        denied = any(word in message for word in ("Permission denied", "AccessDenied", "AccessControl"))
        raise OSError(errno.EACCES if denied else None, message) from exc
