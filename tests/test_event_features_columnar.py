"""The DuckDB builder of event-log features gives the pandas builder's rows: same order, same values."""

import typing

import numpy as np
import pandas as pd
import pytest

from leadscore.config import EventLogConfig, Signal, parse_config
from leadscore.errors import ConfigError, InputError
from leadscore.features import columnar, engines, events
from leadscore.features.events import EventFeatureSpec, EventLog, EventLogLayout

UTC = "UTC"


def ts(text):
    return pd.Timestamp(text, tz=UTC)


def log_config(first, last, every=28, horizon=90):
    return parse_config({
        "data": {"form": "event_log", "path": "unused"},
        "event_log": {"snapshots": {"first": first, "last": last, "every_days": every}, "horizon_days": horizon},
    }).event_log


def assert_same_rows(expected: pd.DataFrame, actual: pd.DataFrame):
    """Ids, profile columns, counts and labels exactly; other floats to rounding (sums run in another order)."""
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    for column in expected.columns:
        assert actual[column].dtype == expected[column].dtype, column
        if column.endswith("_count") or not pd.api.types.is_float_dtype(expected[column]):
            pd.testing.assert_series_equal(actual[column], expected[column], check_exact=True, obj=column)
        else:
            np.testing.assert_allclose(actual[column].to_numpy(), expected[column].to_numpy(), rtol=1e-12,
                                       atol=1e-12, err_msg=column)


@pytest.fixture(scope="module")
def funnel(synthetic_dir):
    """The session's synthetic funnel, plus a lead that never does anything."""
    log = events.load_event_log(synthetic_dir, EventLogLayout())
    idle = log.leads.iloc[[len(log.leads) // 2]].assign(lead_id="IDLE-1", created_at=ts("2025-06-01"))
    leads = pd.concat([log.leads, idle], ignore_index=True)
    return EventLog(leads, log.activities, log.outcomes)


def funnel_spec():
    return EventFeatureSpec(
        layout=EventLogLayout(), terminal_stages=("won", "lost"), profile_columns=("seniority", "country"),
        signals={
            "page_view": Signal(activity_type="page_view"),
            "pricing": Signal(activity_type="page_view", where={"page": "pricing"}),
            "docs_web": Signal(activity_type="page_view", where={"page": "docs", "channel": "web"}),
            "email_open": Signal(activity_type="email_open"),
            "never": Signal(activity_type="fax_received"),
            "never_filtered": Signal(activity_type="page_view", where={"page": "no such page"}),
        },
        half_life_days=21.0,
    )


def test_training_rows_match_pandas_on_the_funnel(funnel):
    cfg = log_config("2025-03-01", "2027-01-01")
    expected = events.training_rows(funnel, funnel_spec(), cfg)
    actual = columnar.training_rows(funnel, funnel_spec(), cfg)
    assert_same_rows(expected, actual)
    # the cases the comparison is meant to cover are there
    assert (expected["lead_id"] == "IDLE-1").any() and expected["days_since_last_activity"].isna().any()
    assert 0 < expected["pricing_count"].sum() < expected["page_view_count"].sum()
    assert expected["docs_web_count"].sum() > 0
    assert expected["never_count"].sum() == 0 and expected["never_days_since"].isna().all()
    assert expected["never_filtered_count"].sum() == 0
    last = expected["snapshot_at"].max()
    created_before = (funnel.leads["created_at"] < last).sum()
    assert (expected["snapshot_at"] == last).sum() < created_before, "some leads closed before the last snapshot"


def test_features_as_of_match_pandas_on_the_funnel(funnel):
    as_of = ts("2026-02-11 13:30")  # some leads are created later: a negative age, no activity
    expected = events.features_as_of(funnel.leads, funnel.activities, as_of, funnel_spec())
    actual = columnar.features_as_of(funnel.leads, funnel.activities, as_of, funnel_spec())
    assert_same_rows(expected, actual)
    assert (expected["lead_age_days"] < 0).any()


@pytest.fixture()
def small():
    leads = pd.DataFrame({
        "lead_id": ["000A", "B", "C", "D", "E"],
        "created_at": [ts("2025-01-01"), ts("2025-01-05"), ts("2025-01-10"), ts("2025-03-01"), ts("2025-01-02")],
        "seniority": ["VP", "Intern", None, "VP", "CEO"],
        "employees": [10, 20, 30, 40, 50],
    })
    activities = pd.DataFrame({
        "lead_id": ["000A", "000A", "000A", "B", "B", "C", "C", "000A", "D", "C"],
        "timestamp": [ts("2025-01-02"), ts("2025-01-20 10:11:12.123456"), ts("2025-02-10"), ts("2025-01-06"),
                      ts("2025-01-25"), ts("2025-01-11"), ts("2025-01-31"), ts("2025-02-20"), ts("2025-03-20"),
                      ts("2024-12-31")],
        "activity_type": ["page_view", "page_view", "demo_request", "page_view", "email_open",
                          "page_view", "page_view", "page_view", "page_view", "page_view"],
        "page": ["pricing", "it's", None, "careers", None, "pricing", "pricing", "pricing", "home", "it's"],
        "score": [1, 2, 2, 1, 3, 2, 1, 1, 2, 2],
    })
    outcomes = pd.DataFrame({
        "lead_id": ["000A", "B", "C", "C"],
        "stage": ["won", "lost", "MQL", "won"],
        "timestamp": [ts("2025-03-10"), ts("2025-02-01"), ts("2025-01-20"), ts("2025-01-30")],
    })
    spec = EventFeatureSpec(
        layout=EventLogLayout(), terminal_stages=("won", "lost"), profile_columns=("seniority", "employees"),
        signals={"page_view": Signal(activity_type="page_view"),
                 "quoted": Signal(activity_type="page_view", where={"page": "it's"}),  # a quote in a literal
                 "scored": Signal(activity_type="page_view", where={"score": "2"}),  # a number compared as text
                 "demo": Signal(activity_type="demo_request")},
        half_life_days=10.0,
    )
    return EventLog(leads, activities, outcomes), spec


def test_training_rows_match_pandas_on_a_small_log(small):
    log, spec = small
    cfg = log_config("2025-01-08", "2025-02-12", every=7, horizon=30)
    expected = events.training_rows(log, spec, cfg)
    assert_same_rows(expected, columnar.training_rows(log, spec, cfg))
    assert expected["quoted_count"].sum() > 0 and expected["scored_count"].sum() > 0


def test_the_same_errors(small):
    log, spec = small
    for build in (events.training_rows, columnar.training_rows):
        with pytest.raises(ConfigError, match="censored"):
            build(log, spec, log_config("2025-01-15", "2025-03-10", every=7, horizon=30))
        with pytest.raises(InputError, match="no lead was open"):
            build(log, spec, log_config("2024-06-01", "2024-07-01", horizon=30))


def test_the_sql_names_no_column_of_the_export():
    spec = EventFeatureSpec(layout=EventLogLayout(id_column="Lead Id", activity_type_column="type`x"),
                            terminal_stages=("won",), profile_columns=("Job Title",),
                            signals={"odd name": Signal(activity_type="a", where={"my page": "b"})})
    sql = columnar.feature_sql(spec, labels=log_config("2025-01-08", "2025-02-12"))
    for name in ("Lead Id", "type`x", "Job Title", "odd name", "my page", '"'):
        assert name not in sql


def test_duckdb_is_the_default_engine_and_the_engines_are_the_registry():
    assert EventLogConfig.model_fields["engine"].default == "duckdb"
    assert set(typing.get_args(EventLogConfig.model_fields["engine"].annotation)) == set(engines.TRAINING_ROWS)
    with pytest.raises(ConfigError, match="engine"):
        parse_config({"data": {"form": "event_log", "path": "unused"},
                      "event_log": {"snapshots": {"first": "2025-01-01", "last": "2025-02-01"}, "engine": "polars"}})


def test_the_configured_engine_builds_the_rows(small):
    log, spec = small
    cfg = log_config("2025-01-08", "2025-02-12", every=7, horizon=30)
    rows = {name: engines.training_rows(log, spec, cfg.model_copy(update={"engine": name}))
            for name in ("duckdb", "pandas")}
    assert_same_rows(rows["pandas"], rows["duckdb"])


def test_the_rows_are_the_same_in_every_run(funnel):
    # Given a query whose aggregations DuckDB splits between threads (which meet the rows in any order),
    cfg = log_config("2025-03-01", "2027-01-01")
    runs = [columnar.training_rows(funnel, funnel_spec(), cfg, threads=4) for _ in range(5)]
    # then every run gives the same bits: a model trained on them is the same model.
    for run in runs[1:]:
        pd.testing.assert_frame_equal(run, runs[0], check_exact=True)


def _hourly_log(half_life_days):
    """A lead active an hour and half an hour before each weekly snapshot, one active only at the start and one
    that converts: with a half-life of an hour, the snapshots are hundreds of half-lives apart."""
    snapshots = pd.date_range("2025-01-08", "2025-02-12", freq="7D", tz=UTC)
    times = [t - pd.Timedelta(minutes=m) for t in snapshots for m in (60, 30)]
    leads = pd.DataFrame({"lead_id": ["A", "B", "C"], "created_at": [ts("2025-01-01")] * 3})
    activities = pd.DataFrame({"lead_id": ["A"] * len(times) + ["B"], "timestamp": [*times, ts("2025-01-02")],
                               "activity_type": "page_view"})
    outcomes = pd.DataFrame({"lead_id": ["B", "C"], "stage": ["lost", "won"],
                             "timestamp": [ts("2025-03-20"), ts("2025-01-20")]})
    spec = EventFeatureSpec(layout=EventLogLayout(), terminal_stages=("won", "lost"), profile_columns=(),
                            signals={"page_view": Signal(activity_type="page_view")}, half_life_days=half_life_days)
    return EventLog(leads, activities, outcomes), spec, log_config("2025-01-08", "2025-02-12", every=7, horizon=30)


def test_decayed_sums_keep_their_precision_over_hundreds_of_half_lives():
    # Given snapshots 840 half-lives apart (a half-life of an hour over five weeks),
    log, spec, cfg = _hourly_log(1 / 24)
    expected = events.training_rows(log, spec, cfg)
    actual = columnar.training_rows(log, spec, cfg)
    # then the running sums, scaled by up to 2 ** 840 on the way, give the pandas builder's values to rounding:
    # relative to each value, and within the 18 decimal places each activity's weight is summed with.
    assert_same_rows(expected, actual)
    np.testing.assert_allclose(actual["page_view_decayed"], expected["page_view_decayed"], rtol=1e-12, atol=1e-17)
    assert expected["page_view_decayed"].max() > 0.5 and expected["page_view_count"].max() == 12


def test_a_schedule_too_wide_for_the_decayed_sums_is_refused():
    log, spec, cfg = _hourly_log(1 / 240)  # 8,400 half-lives
    with pytest.raises(ConfigError, match="half_life_days"):
        columnar.training_rows(log, spec, cfg)
