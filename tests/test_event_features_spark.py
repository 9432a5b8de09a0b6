"""The Spark builder of event-log features runs DuckDB's query and gives the rows of the pandas and DuckDB builders."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from helpers import needs_spark

from leadscore.config import Signal, parse_config
from leadscore.errors import ConfigError
from leadscore.features import columnar, engines, events
from leadscore.features import spark as spark_features
from leadscore.features.events import EventFeatureSpec, EventLog, EventLogLayout
from leadscore.synthetic.funnel import generate_funnel

ODD_PAGE = "it's a \\ page"  # a quote and a backslash, which DuckDB and Spark SQL escape differently


def log_config(engine: str = "duckdb", **target):
    return parse_config({
        "data": {"form": "event_log", "path": "unused"},
        "event_log": {"snapshots": {"first": "2025-03-01", "last": "2026-09-01", "every_days": 28}, "horizon_days": 90,
                      "engine": engine, **target},
    }).event_log


@pytest.fixture(scope="module")
def funnel() -> EventLog:
    """A small synthetic funnel (300 leads), a few page views renamed to a page whose name needs escaping."""
    made = generate_funnel(300, seed=5)
    activities = made.activities.assign(page=made.activities["page"].astype("string"))
    renamed = activities.index[activities["activity_type"] == "page_view"][::40]
    activities.loc[renamed, "page"] = ODD_PAGE
    return EventLog(made.leads, activities, made.outcomes)


def spec() -> EventFeatureSpec:
    return EventFeatureSpec(
        layout=EventLogLayout(), terminal_stages=("won", "lost"), profile_columns=("seniority", "country"),
        signals={
            "page_view": Signal(activity_type="page_view"),
            "pricing": Signal(activity_type="page_view", where={"page": "pricing"}),
            "odd": Signal(activity_type="page_view", where={"page": ODD_PAGE}),
            "email_open": Signal(activity_type="email_open"),
            "never": Signal(activity_type="fax_received"),
        },
        half_life_days=21.0,
    )


def assert_same_rows(expected: pd.DataFrame, actual: pd.DataFrame, engine: str) -> None:
    """Same columns, types and order; ids, profile columns, counts and labels exactly, other floats to 1e-12."""
    assert list(actual.columns) == list(expected.columns), f"{engine}: the same columns"
    assert len(actual) == len(expected), f"{engine}: the same number of rows"
    for column in expected.columns:
        assert actual[column].dtype == expected[column].dtype, f"{engine}: type of {column}"
        if column.endswith("_count") or not pd.api.types.is_float_dtype(expected[column]):
            pd.testing.assert_series_equal(actual[column], expected[column], check_exact=True, obj=f"{engine} {column}")
        else:
            np.testing.assert_allclose(actual[column].to_numpy(), expected[column].to_numpy(), rtol=1e-12, atol=1e-12,
                                       err_msg=f"{engine}: {column}")


@pytest.mark.slow
@needs_spark
def test_training_rows_are_the_same_on_pandas_duckdb_and_spark(funnel, local_spark):
    # Given a funnel and a spec with filtered signals, one on a value holding a quote and a backslash
    cfg = log_config()

    # When each engine builds the training rows
    expected = events.training_rows(funnel, spec(), cfg)
    built = {"duckdb": columnar.training_rows(funnel, spec(), cfg),
             "spark": spark_features.training_rows(funnel, spec(), cfg, spark=local_spark)}

    # Then every engine gives the pandas builder's rows, in its order
    for engine, rows in built.items():
        assert_same_rows(expected, rows, engine)
    # And the cases the comparison is meant to cover are there
    assert 0 < expected["odd_count"].sum() < expected["page_view_count"].sum(), "the escaped value is matched"
    assert 0 < expected["pricing_count"].sum(), "a plain filter is matched"
    assert expected["never_count"].sum() == 0 and expected["never_days_since"].isna().all()
    assert expected["days_since_last_activity"].isna().any() and expected["converted"].isin([0, 1]).all()
    assert 0 < expected["converted"].sum() < len(expected), "both labels occur"
    assert expected["snapshot_at"].nunique() > 1, "several snapshots"


@pytest.mark.slow
@needs_spark
def test_transition_target_rows_are_the_same_on_pandas_duckdb_and_spark(funnel, local_spark):
    # Given a transition target (MQL -> SQL): rows only for leads past MQL and not yet at SQL
    cfg = log_config(from_stage="MQL", conversion_stage="SQL", horizon_days=60)
    expected = events.training_rows(funnel, spec(), cfg)
    assert 0 < expected["converted"].sum() < len(expected), "both labels occur"
    for engine, rows in {"duckdb": columnar.training_rows(funnel, spec(), cfg),
                         "spark": spark_features.training_rows(funnel, spec(), cfg, spark=local_spark)}.items():
        assert_same_rows(expected, rows, engine)


@pytest.mark.slow
@needs_spark
def test_features_as_of_are_the_same_on_pandas_duckdb_and_spark(funnel, local_spark):
    as_of = pd.Timestamp("2026-02-11 13:30", tz="UTC")  # some leads are created later: a negative age
    expected = events.features_as_of(funnel.leads, funnel.activities, as_of, spec())
    built = {"duckdb": columnar.features_as_of(funnel.leads, funnel.activities, as_of, spec()),
             "spark": spark_features.features_as_of(funnel.leads, funnel.activities, as_of, spec(), spark=local_spark)}
    for engine, rows in built.items():
        assert_same_rows(expected, rows, engine)
    assert len(expected) == len(funnel.leads) and (expected["lead_age_days"] < 0).any()
    assert expected["odd_count"].sum() > 0


@pytest.mark.slow
@needs_spark
def test_event_log_engine_spark_builds_the_training_rows_on_the_running_session(funnel, local_spark):
    # When training asks for the spark engine while a session runs (a notebook's, say)
    rows = engines.training_rows(funnel, spec(), log_config("spark"))

    # Then the rows are built there, the same as DuckDB's, and the session is left running
    assert_same_rows(columnar.training_rows(funnel, spec(), log_config()), rows, "spark")
    assert not local_spark.sparkContext._jsc.sc().isStopped(), "a session started elsewhere is not stopped"
    assert not [t for t in local_spark.catalog.listTables() if t.isTemporary], "no temporary view is left behind"


def test_the_spark_engine_without_pyspark_names_the_extra(funnel, monkeypatch):
    # Given a machine without PySpark
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)

    # When training rows are asked of the spark engine, then the error says which extra to install
    with pytest.raises(ConfigError, match=r"pip install 'leadscore\[spark\]'"):
        engines.training_rows(funnel, spec(), log_config("spark"))
