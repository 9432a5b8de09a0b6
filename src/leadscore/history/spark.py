"""The score history on the Spark engine: each lead's points computed on the executors, changes on the driver.

`with_changes` takes the valid input rows and their scores (Spark frames) and returns the scores with
`score_change` and `change_reasons`. Each lead's points need its features, so they are computed where the
rows are (`mapInPandas` with `leadscore.history.recorder.field_points`, the pandas engine's function);
the history rows then pass through the driver, where the job's `HistoryRecorder` finds the changes and
alerts against the history and writes the run's one Parquet file, exactly as for the pandas engine. The
driver thus holds one small row per lead (ids, scores and the points as JSON), not the features.
"""

from __future__ import annotations

import pandas as pd

from leadscore.history.recorder import HistoryRecorder, field_points
from leadscore.schema import CHANGE_COLUMNS

_KEY = "_history_id"
_EXPLAINED = ("base_score", "points", "log_odds")
_KEPT = ("model_name", "model_version", "p_convert", "score", "grade", "stage", "is_mql", "is_sql")


def with_changes(spark, valid, scores, history: HistoryRecorder):
    """`scores` with `score_change` and `change_reasons`, the run's history rows recorded in `history`.

    `scores` is persisted by the caller (the model runs once per row): the result is persisted and
    materialised in its place, and `scores` released. `valid`: the checked input rows (the model's id and feature columns); `scores`: the model's output for
    them with the provenance columns, one row per id."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    scorer = history.scorer
    id_column = scorer.id_column
    names = [id_column, *scorer.feature_columns]
    safe = {name: f"_c{i}" for i, name in enumerate(names)}  # column names with dots travel under plain names
    inputs = valid.select(*[F.col(f"`{n}`").alias(safe[n]) for n in names]).join(
        scores.select(F.col(f"`{id_column}`").alias(safe[id_column]), "p_convert"), safe[id_column])

    def points(batches):
        for batch in batches:
            features = batch.rename(columns={v: k for k, v in safe.items()})
            found = field_points(scorer, features.drop(columns="p_convert"), batch["p_convert"].to_numpy())
            yield found.assign(**{_KEY: features[id_column].astype(str).to_numpy()})[[_KEY, *_EXPLAINED]]

    schema = StructType([StructField(_KEY, StringType()), StructField("base_score", DoubleType()),
                         StructField("points", StringType()), StructField("log_odds", StringType())])
    explained = inputs.mapInPandas(points, schema)
    kept = [c for c in _KEPT if c in scores.columns]
    # Timestamps as ISO 8601 text with their offset: toPandas would shift them to the session's zone, unmarked.
    at = F.col("scored_at")
    stamp = at if dict(scores.dtypes)["scored_at"] == "string" else F.date_format(at, "yyyy-MM-dd'T'HH:mm:ssXXX")
    collected = (scores.select(F.col(f"`{id_column}`").cast("string").alias(_KEY), *kept, stamp.alias("scored_at"))
                 .join(explained, _KEY).toPandas())
    out = collected.rename(columns={_KEY: id_column})
    annotated = history.annotate_points(out, collected[list(_EXPLAINED)])
    change_schema = StructType([StructField(_KEY, StringType()), StructField(CHANGE_COLUMNS[0], DoubleType()),
                                StructField(CHANGE_COLUMNS[1], StringType())])
    rows = zip(annotated[id_column].astype(str), annotated[CHANGE_COLUMNS[0]], annotated[CHANGE_COLUMNS[1]])
    # Missing as None (null), not NaN: a first score has no change, as with the pandas engine.
    changes = spark.createDataFrame([(key, None if pd.isna(change) else float(change), None if pd.isna(why) else why)
                                     for key, change, why in rows], change_schema)
    joined = scores.join(changes, scores[f"`{id_column}`"].cast("string") == changes[_KEY], "left")
    result = joined.select(*[scores[f"`{c}`"] for c in scores.columns], *CHANGE_COLUMNS)
    result = result.persist(StorageLevel.MEMORY_AND_DISK)
    result.count()  # materialised before the (persisted) scores it is built from are released
    scores.unpersist()
    return result
