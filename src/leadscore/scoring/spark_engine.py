"""Distributed batch scoring: the registered model on Spark, through `mlflow.pyfunc.spark_udf`.

`leadscore score --engine spark` runs the same job as the pandas engine, with the same row checks
(`leadscore.data.row_checks.row_problems`, run in `mapInPandas`), the same model `predict` (inside
`spark_udf`) and the same drift counting (`DriftCounter`, per partition, added on the driver), so its
scores equal the pandas engine's. What differs is what Spark does better at scale:
- duplicate ids are found with a window over the id (a shuffle) instead of a set of seen ids;
- rows are numbered by position within Spark's input partitions, which for one file is file order;
- the scores are written as Spark writes them, a folder of part files named by `output` (pandas,
  pyarrow and most query engines read such a folder as one table), in no particular row order;
- the rejects file is one CSV file, as with the pandas engine.
Outputs are written beside their final place and renamed into it with the Hadoop file system API
(atomic for a file on local disks and HDFS; a folder is swapped in by two renames).

PySpark is an optional extra (`pip install 'leadscore[spark]'`, with Java 17 or newer). The master URL
is `--spark-master`, else LEADSCORE_SPARK_MASTER, else the config's `scoring.spark_master`, else
`local[*]`; a Spark session that is already running (e.g. in a notebook) is used as it is. Executors
need leadscore installed, as they load the model in their own Python.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.csv as pacsv

from leadscore.config import ScoringConfig
from leadscore.data.row_checks import (
    DUPLICATE_DETAIL,
    DUPLICATE_ID,
    MISSING_ID,
    PROBLEM_COLUMNS,
    REASONS,
    row_problems,
)
from leadscore.errors import ConfigError, InputError
from leadscore.model.drift import SCORE, DriftCounter
from leadscore.registry.loading import load_model
from leadscore.schema import PROVENANCE_COLUMNS, STATUS_COLUMN
from leadscore.scoring.job import (
    ScoringReport,
    check_reject_share,
    log_findings,
    model_params,
    require_input_columns,
    side_paths,
)

log = logging.getLogger(__name__)
_ROW = "_row"
_ROW_BITS = 33  # monotonically_increasing_id: the partition index above bit 33, the position within it below
# The text pyarrow's CSV reader takes for missing, so that both engines read a CSV cell the same way.
_NULL_TEXT = list(pacsv.ConvertOptions().null_values)
_MISSING_MARKERS = ("<NA>", "nan", "None")
# CSV as the pandas engine writes it: a header, quotes doubled (RFC 4180), text kept with its spaces.
_CSV_WRITE = {"header": True, "escape": '"', "ignoreLeadingWhiteSpace": False, "ignoreTrailingWhiteSpace": False}


def spark_session(master: str | None = None):
    """The running Spark session and False, or a new session on `master` (default local[*]) and True."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "the spark engine needs PySpark, which is not installed: pip install 'leadscore[spark]' "
            "(and Java 17 or newer), or score with --engine pandas"
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        if master and active.sparkContext.master != master:
            log.warning("using the running Spark session on %s, not %s", active.sparkContext.master, master)
        return active, False
    master = master or "local[*]"
    builder = (
        SparkSession.builder.appName("leadscore score").master(master)
        # Bigger Arrow batches between the JVM and Python: fewer, cheaper calls into the model.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
    )
    if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Local workers run this interpreter, where leadscore is installed (not whatever python3 is first on
        # PATH); PySpark reads the variable when the session starts.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    return builder.getOrCreate(), True


def score_with_spark(
    model_uri: str, input_path: str | Path, output_path: str | Path, *, as_of: str | None = None,
    settings: ScoringConfig, rejects_path: str | Path | None = None, top: int = 0,
) -> ScoringReport:
    """Score a snapshot table with Spark; outputs and failure behaviour as `leadscore.scoring.pandas_engine.score_file`."""
    if as_of is not None or _is_event_log(input_path):
        raise InputError(
            f"{input_path}: the spark engine scores snapshot tables (one row per lead), not event logs",
            fix="score an event log with --engine pandas, or score a feature table built from it",
        )
    output = str(output_path)
    fmt = Path(output).suffix.lower()
    if fmt not in (".csv", ".parquet"):
        raise InputError(f"unsupported output type '{fmt}'", fix="name the output with .csv or .parquet")
    rejects, drift_path = side_paths(output, rejects_path)
    started = time.perf_counter()
    loaded = load_model(model_uri)
    spark, created = spark_session(settings.spark_master)
    files = _HadoopFiles(spark)
    try:
        job = _SparkJob(spark, loaded, model_uri, files, settings.reasons)
        report = job.run(str(input_path), output, fmt, rejects, drift_path, settings, top)
    except Exception as exc:
        if "MALFORMED_RECORD" in str(exc) or "Malformed records" in str(exc):
            raise InputError(f"malformed CSV record in {input_path}", fix="repair or export the file again") from None
        raise
    finally:
        files.delete_temporaries()
        if created:
            spark.stop()
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    log_findings(report, drift_path)
    return report


class _SparkJob:
    """One scoring job on a Spark session."""

    def __init__(self, spark, loaded, model_uri: str, files: _HadoopFiles, reasons: bool):
        self.spark, self.loaded, self.scorer, self.files = spark, loaded, loaded.scorer, files
        self.reasons = reasons
        # Pin the version: an alias moved while the job runs must not change the model mid-job.
        self.model_uri = f"models:/{loaded.name}/{loaded.version}" if model_uri.startswith("models:/") else model_uri

    def run(self, input_path: str, output: str, fmt: str, rejects: str, drift_path: str,
            settings: ScoringConfig, top: int) -> ScoringReport:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        raw = self._read(input_path)
        require_input_columns(self.scorer, raw.columns)
        numbered, rows_read = self._numbered(raw)
        if rows_read == 0:
            raise InputError(f"no leads to score in {input_path}", fix="give at least one row")
        # Kept for the several passes below, so that the input is read and the model run once per row.
        checked = self._checked(numbered).persist(StorageLevel.MEMORY_AND_DISK)
        valid = checked.filter(F.col("reason").isNull())
        scores = self._scores(valid).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            rejected = dict(checked.filter(F.col("reason").isNotNull()).groupBy("reason").count().collect())
            tmp_output = self.files.temporary(output)
            scores.write.options(**_CSV_WRITE).format(fmt[1:]).save(tmp_output)
            rows_scored = scores.count()
            if rows_scored + sum(rejected.values()) != rows_read:
                raise RuntimeError(f"{rows_read} rows read but {rows_scored} scored and {sum(rejected.values())} rejected")
            tmp_rejects = self._write_rejects(checked, rejects)
            drift = self._drift(valid, scores)
            best = self._top(scores, top)
        finally:
            scores.unpersist()
            checked.unpersist()

        # The whole input was read: the rejects and the drift report are published, the scores if few were rejected.
        self.files.publish_single_part(tmp_rejects, rejects)
        drift_report = drift.report(settings.drift_threshold) if drift is not None else None
        if drift_report is not None:
            self.files.write_text(drift_path, json.dumps(drift_report, indent=2))
        report = ScoringReport(
            output=output, rejects=rejects, drift_report=drift_path if drift is not None else None,
            rows_read=rows_read, rows_scored=rows_scored,
            rejected={reason: int(rejected.get(reason, 0)) for reason in REASONS},
            model_name=self.loaded.name, model_version=self.loaded.version, engine="spark", seconds=0.0,
            unseen_categories=drift.other_counts() if drift is not None else {},
            drifted=drift_report["drifted"] if drift_report else [], top=best,
        )
        check_reject_share(report, settings.max_reject_share)
        self.files.publish(tmp_output, output)
        return report

    def _read(self, path: str):
        from pyspark.errors import AnalysisException
        from pyspark.sql import functions as F

        suffix = Path(path).suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise InputError(f"unsupported file type '{suffix}' for {path}", fix="give a .csv or .parquet table")
        try:
            if suffix == ".parquet":
                return self.spark.read.parquet(path)
            # Every cell as text, quotes doubled as in RFC 4180 (as pyarrow and pandas read them).
            frame = self.spark.read.options(header=True, multiLine=True, escape='"', mode="FAILFAST").csv(path)
        except AnalysisException as exc:
            raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}",
                             fix="check the path and that the file is a valid CSV or Parquet") from None
        return frame.select(*[F.when(F.col(c).isin(_NULL_TEXT), None).otherwise(F.col(c)).alias(c) for c in frame.columns])

    def _numbered(self, raw):
        """The id and feature columns with each row's 1-based position in the input, and the row count."""
        from pyspark.sql import functions as F

        scorer = self.scorer
        columns = [c for c in (scorer.id_column, *scorer.feature_columns) if c in raw.columns]
        counts = dict(raw.select(F.spark_partition_id().alias("p")).groupBy("p").count().collect())
        offsets, total = [], 0
        for partition in range(raw.rdd.getNumPartitions()):
            offsets.append(total)
            total += counts.get(partition, 0)
        position = F.monotonically_increasing_id()
        partition = F.shiftright(position, _ROW_BITS).cast("int")
        first_row = F.element_at(F.array(*[F.lit(o).cast("long") for o in offsets or [0]]), partition + 1)
        row = first_row + position.bitwiseAND(F.lit((1 << _ROW_BITS) - 1)) + 1
        numbered = raw.select(*columns, row.alias(_ROW))
        if scorer.id_column not in raw.columns:  # a model without ids: the row number is the id
            numbered = numbered.withColumn(scorer.id_column, F.col(_ROW))
        return numbered, total

    def _checked(self, numbered):
        """Each row with its problem (`column`, `reason`, `detail`; null when it can be scored)."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import DoubleType, StringType, StructField, StructType

        id_column, numeric = self.scorer.id_column, list(self.scorer.numeric_columns)
        fields = [StructField(f.name, DoubleType() if f.name in numeric else f.dataType) for f in numbered.schema]
        schema = StructType([*fields, *(StructField(name, StringType()) for name in PROBLEM_COLUMNS)])

        def check(batches):
            for batch in batches:
                typed, problems = row_problems(batch, id_column, numeric)
                yield typed.join(problems)

        checked = numbered.mapInPandas(check, schema)
        # Ids that occur more than once, with their first row: an aggregate of the id column alone, which
        # is small when duplicates are rare, so the rows themselves are not shuffled.
        repeated_ids = (checked.filter(F.coalesce(F.col("reason"), F.lit("")) != MISSING_ID)
                        .groupBy(id_column).agg(F.min(_ROW).alias("_first"), F.count("*").alias("_n"))
                        .filter(F.col("_n") > 1).drop("_n"))
        joined = checked.join(repeated_ids, on=id_column, how="left")
        repeated = F.col("_first").isNotNull() & (F.col(_ROW) != F.col("_first"))
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
        out = valid.select(udf(*[F.col(c) for c in inputs]).alias("_out")).select("_out.*")
        # spark_udf turns a missing text value into the text of pandas' missing marker, by dtype; put back null.
        text = [f.name for f in result_type if f.dataType.typeName() == "string" and f.name != self.scorer.id_column]
        out = out.withColumns({c: F.when(F.col(c).isin(*_MISSING_MARKERS), None).otherwise(F.col(c)) for c in text})
        scored_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        values = dict(zip(PROVENANCE_COLUMNS, (self.loaded.name, self.loaded.version, scored_at)))
        return out.withColumns({c: F.lit(v) for c, v in values.items()})

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

    def _write_rejects(self, checked, rejects: str) -> str:
        """The rejected rows in input order, as one CSV part in a temporary folder; that folder."""
        from pyspark.sql import functions as F

        columns = {"row": F.col(_ROW), "id": F.col(self.scorer.id_column).cast("string"),
                   **{c: F.col(c) for c in PROBLEM_COLUMNS}}
        tmp = self.files.temporary(rejects)
        (checked.filter(F.col("reason").isNotNull()).select(*[v.alias(k) for k, v in columns.items()])
         .orderBy("row").coalesce(1).write.options(**_CSV_WRITE).csv(tmp))
        return tmp

    def _drift(self, valid, scores) -> DriftCounter | None:
        """Bucket counts per partition, added up: features of the valid rows and their `p_convert`."""
        reference = getattr(self.scorer, "reference", None)
        if reference is None:
            log.info("this model carries no reference distributions (trained by an older leadscore): no drift report")
            return None

        def partition_counts(batches):
            import pandas as pd

            counter = DriftCounter(reference)
            for batch in batches:
                if SCORE in batch.columns:
                    counter.add(scores=batch[SCORE].to_numpy(dtype="float64", na_value=float("nan")))
                else:
                    counter.add(features=batch)
            yield pd.DataFrame({"counts": [json.dumps(counter.as_lists())]})

        total = DriftCounter(reference)
        for part in (valid.select(*reference.features), scores.select(SCORE)):
            for row in part.mapInPandas(partition_counts, "counts string").collect():
                total.add_counts(json.loads(row["counts"]))
        return total

    def _top(self, scores, n: int):
        from pyspark.sql import functions as F

        if not n:
            return None
        if STATUS_COLUMN in scores.columns:
            scores = scores.filter(F.col(STATUS_COLUMN) == "open")
        return scores.orderBy(F.desc("score"), F.desc("p_convert")).limit(n).toPandas()


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


def _is_event_log(path) -> bool:
    path = Path(path)
    return path.is_dir() and path.suffix.lower() not in (".csv", ".parquet")


class _HadoopFiles:
    """Temporary names, renames and small writes on the file system a path lives on (local, HDFS, S3...).

    Every temporary name handed out is deleted by `delete_temporaries` unless it was published.
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

    def delete_temporaries(self) -> None:
        for tmp in self._temporaries:
            fs, hadoop_path = self._fs(tmp)
            fs.delete(hadoop_path, True)
        self._temporaries.clear()

    def publish(self, tmp: str, path: str) -> None:
        """Move `tmp` (a file or a folder) to `path`, replacing what is there."""
        fs, source = self._fs(tmp)
        _, target = self._fs(path)
        backup = None
        if fs.exists(target):
            backup_name = self.temporary(path)
            backup = self._fs(backup_name)[1]
            fs.rename(target, backup)
        if not fs.rename(source, target):
            if backup is not None:
                fs.rename(backup, target)
            raise OSError(f"could not move {tmp} to {path}")

    def publish_single_part(self, folder: str, path: str) -> None:
        """Publish the one part file of a folder Spark wrote (after `coalesce(1)`) as the file `path`."""
        fs, source = self._fs(folder)
        parts = [s.getPath() for s in fs.listStatus(source) if s.getPath().getName().startswith("part-")]
        single = self.temporary(path)
        fs.rename(parts[0], self._fs(single)[1])
        self.publish(single, path)

    def write_text(self, path: str, text: str) -> None:
        """Write a small text file at `path`, aside first and then renamed into place."""
        tmp = self.temporary(path)
        fs, hadoop_path = self._fs(tmp)
        stream = fs.create(hadoop_path, True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()
        self.publish(tmp, path)
