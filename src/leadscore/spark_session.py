"""The Spark session every Spark part of leadscore runs on: the spark scoring engine and the Spark feature builder.

PySpark is an optional extra (`pip install 'leadscore[spark]'`, with Java 17 or newer), imported only here and
inside the functions that need it, so that nothing else loads it. A session that is already running (e.g. a
notebook's) is used as it is; otherwise one is started on the given master, else LEADSCORE_SPARK_MASTER, else
`local[*]`, and its starter stops it when done.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from leadscore.errors import ConfigError

log = logging.getLogger(__name__)
SPARK_MASTER_ENV = "LEADSCORE_SPARK_MASTER"


def require_pyspark() -> None:
    """Fail with the extra to install when PySpark is missing."""
    try:
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the spark engine needs PySpark, which is not installed: pip install 'leadscore[spark]' "
            "(and Java 17 or newer), or choose the pandas (scoring) or duckdb (training rows) engine"
        ) from None


def spark_session(master: str | None = None, app_name: str = "leadscore"):
    """The running Spark session and False, or a new session on `master` (default: LEADSCORE_SPARK_MASTER, else
    local[*]) and True."""
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if master and active.sparkContext.master != master:
            log.warning("using the running Spark session on %s, not %s", active.sparkContext.master, master)
        return active, False
    master = master or os.environ.get(SPARK_MASTER_ENV) or "local[*]"
    builder = (
        SparkSession.builder.appName(app_name).master(master)
        # Bigger Arrow batches between the JVM and Python: fewer, cheaper calls into the model.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
    )
    if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Local workers run this interpreter, where leadscore is installed (not whatever python3 is first on
        # PATH); PySpark reads the variable when the session starts.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    return builder.getOrCreate(), True


@contextmanager
def using_spark(spark=None, master: str | None = None) -> Iterator:
    """`spark` when given, else the running session or a new one (see `spark_session`), stopped afterwards
    only when it was started here."""
    if spark is not None:
        yield spark
        return
    session, created = spark_session(master)
    try:
        yield session
    finally:
        if created:
            session.stop()
