"""Point-in-time features and labels from an event log, computed by Spark from the very query DuckDB runs.

The rows of `leadscore.features.columnar` (and so of the pandas builder, `leadscore.features.events`): the
same `feature_sql`, generated once from the `EventFeatureSpec`, run by Spark SQL instead of DuckDB. Only the
runner is Spark's: the input tables (Arrow) become temporary views of the session under the names the query
reads (`lead_rows`, `activity_rows`, `outcome_rows`, `snapshot_rows`), dropped afterwards, and the result comes
back as Arrow in the query's order. Profile columns, labels and snapshot times are then put together by
`columnar`, as for DuckDB. Both engines sum each interval's weights as exact decimals and take the running
sums in each lead's snapshot order, so the rows agree to rounding (tested to 1e-12 against pandas).

Training uses it with `event_log.engine: spark` (`leadscore.features.engines`); `leadscore score --engine
spark` computes an event log's features as of the scoring time with it (`leadscore.scoring.spark_engine`).
Without a session given, the running one is used, or one is started (`leadscore.spark_session`) and stopped
afterwards. PySpark is the optional `spark` extra: without it, a `ConfigError` names the extra to install.
The event log itself is read and validated in memory as for the other builders (`load_event_log`); what Spark
takes over is the query over every (snapshot, lead) pair. The input tables are sent from the driver and the
rows collected back to it, so the driver needs memory for both: Spark's default `spark.driver.memory` (1 GB)
is too small for 100,000 leads (`benchmarks/event_features.py`); set it in `spark-defaults.conf` or
PYSPARK_SUBMIT_ARGS.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from leadscore.config import EventLogConfig
from leadscore.features import columnar
from leadscore.features.events import EventFeatureSpec, EventLog
from leadscore.spark_session import require_pyspark, using_spark


def runner(spark) -> columnar.Runner:
    """The Spark runner of `feature_sql` on the session `spark` (see the module docstring)."""
    def run(tables: dict[str, pa.Table], sql: str) -> pa.Table:
        registered = []
        try:
            for name, table in tables.items():
                spark.createDataFrame(table).createOrReplaceTempView(name)
                registered.append(name)
            return spark.sql(sql).toArrow()
        finally:
            for name in registered:
                spark.catalog.dropTempView(name)

    return run


def features_as_of(leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp, spec: EventFeatureSpec, *,
                   spark=None) -> pd.DataFrame:
    """`leadscore.features.events.features_as_of` computed by Spark (on `spark`, else the running or a new local
    session): one row per lead, in the order of `leads`."""
    require_pyspark()
    with using_spark(spark) as session:
        return columnar.features_as_of_on(runner(session), leads, activities, as_of, spec)


def training_rows(log: EventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                  observed_until: pd.Timestamp | None = None, *, spark=None) -> pd.DataFrame:
    """`leadscore.features.events.training_rows` computed by Spark in one query over all snapshots (on `spark`,
    else the running session, else a new one on LEADSCORE_SPARK_MASTER or local[*])."""
    require_pyspark()
    with using_spark(spark) as session:
        return columnar.training_rows_on(runner(session), log, spec, log_cfg, observed_until)
