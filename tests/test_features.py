"""Point-in-time features: only the past counts, engagement fades, labels look ahead a horizon."""

import pandas as pd
import pytest

from leadscore.config import Signal, parse_config
from leadscore.features.events import (
    EventFeatureSpec,
    EventLog,
    EventLogLayout,
    features_as_of,
    training_rows,
)

UTC = "UTC"


def ts(text):
    return pd.Timestamp(text, tz=UTC)


@pytest.fixture()
def log():
    leads = pd.DataFrame({
        "lead_id": ["A", "B", "C", "D"],
        "created_at": [ts("2025-01-01"), ts("2025-01-05"), ts("2025-01-10"), ts("2025-03-01")],
        "seniority": ["VP", "Intern", "Manager", "VP"],
    })
    activities = pd.DataFrame({
        "lead_id": ["A", "A", "A", "B", "B", "C", "C", "A", "D"],
        "timestamp": [ts("2025-01-02"), ts("2025-01-20"), ts("2025-02-10"), ts("2025-01-06"), ts("2025-01-25"),
                      ts("2025-01-11"), ts("2025-01-31"), ts("2025-02-20"), ts("2025-03-20")],
        "activity_type": ["page_view", "page_view", "demo_request", "page_view", "email_open",
                          "page_view", "page_view", "page_view", "page_view"],
        "page": ["pricing", "home", None, "careers", None, "pricing", "pricing", "pricing", "home"],
    })
    outcomes = pd.DataFrame({
        "lead_id": ["A", "B", "C"],
        "stage": ["won", "lost", "won"],
        "timestamp": [ts("2025-03-10"), ts("2025-02-01"), ts("2025-01-30")],
    })
    return EventLog(leads, activities, outcomes)


def spec(half_life=30.0):
    return EventFeatureSpec(
        layout=EventLogLayout(), terminal_stages=("won", "lost"), profile_columns=("seniority",),
        signals={
            "page_view": Signal(activity_type="page_view"),
            "pricing": Signal(activity_type="page_view", where={"page": "pricing"}),
            "demo": Signal(activity_type="demo_request"),
        },
        half_life_days=half_life,
    )


def config(first, last, horizon=30, every=7):
    return parse_config({
        "data": {"form": "event_log", "path": "unused"},
        "event_log": {"snapshots": {"first": first, "last": last, "every_days": every}, "horizon_days": horizon},
    }).event_log


def test_events_after_the_snapshot_change_no_feature(log):
    as_of = ts("2025-02-01")
    before = features_as_of(log.leads, log.activities, as_of, spec())
    after_rows = log.activities["timestamp"] >= as_of
    changed = log.activities.copy()
    changed.loc[after_rows, "activity_type"] = "trial_signup"  # rewrite the future...
    changed = pd.concat([changed, pd.DataFrame({"lead_id": ["B"], "timestamp": [ts("2025-02-02")],
                                                "activity_type": ["demo_request"], "page": [None]})])  # ...add to it
    deleted = log.activities[~after_rows]  # ...and delete it
    for variant in (changed, deleted):
        pd.testing.assert_frame_equal(before, features_as_of(log.leads, variant, as_of, spec()),
                                      obj="features must ignore events at or after the snapshot")


def test_counts_recency_and_filters(log):
    out = features_as_of(log.leads, log.activities, ts("2025-02-01"), spec()).set_index("lead_id")
    assert out.loc["A", "page_view_count"] == 2, "A viewed two pages before Feb 1"
    assert out.loc["A", "pricing_count"] == 1, "only one of them was the pricing page"
    assert out.loc["C", "pricing_days_since"] == pytest.approx(1.0), "C saw pricing on Jan 31"
    assert pd.isna(out.loc["D", "page_view_days_since"]), "no event yet means unknown recency, not zero"
    assert out.loc["D", "page_view_count"] == 0, "no event means a zero count"


def test_engagement_decays_with_time(log):
    early = features_as_of(log.leads, log.activities, ts("2025-02-01"), spec()).set_index("lead_id")
    later = features_as_of(log.leads, log.activities, ts("2025-03-01"), spec()).set_index("lead_id")
    assert later.loc["C", "page_view_decayed"] < early.loc["C", "page_view_decayed"], \
        "the same activities further in the past must weigh less"
    assert later.loc["C", "page_view_count"] == early.loc["C", "page_view_count"], "counts do not decay"
    half = features_as_of(log.leads, log.activities, ts("2025-02-01"), spec(half_life=1.0)).set_index("lead_id")
    assert half.loc["C", "pricing_decayed"] < early.loc["C", "pricing_decayed"], "a shorter half-life decays faster"
    # one event exactly one half-life old weighs one half
    one = features_as_of(log.leads, log.activities, ts("2025-02-10") + pd.Timedelta(days=30), spec()).set_index("lead_id")
    assert one.loc["A", "demo_decayed"] == pytest.approx(0.5), "weight halves every half-life"


def test_training_rows_exclude_closed_leads_and_label_the_horizon(log):
    rows = training_rows(log, spec(), config("2025-01-15", "2025-02-12", horizon=30, every=28))
    first = rows[rows["snapshot_at"] == ts("2025-01-15")].set_index("lead_id")
    second = rows[rows["snapshot_at"] == ts("2025-02-12")].set_index("lead_id")
    assert set(first.index) == {"A", "B", "C"}, "D does not exist yet on Jan 15"
    assert first.loc["C", "converted"] == 1, "C converts on Jan 30, within 30 days"
    assert first.loc["A", "converted"] == 0, "A converts on Mar 10, after the horizon"
    assert set(second.index) == {"A"}, "B was lost and C won before Feb 12; D is created later"
    assert second.loc["A", "converted"] == 1, "A converts within 30 days of Feb 12"


def test_censored_label_windows_are_refused(log):
    from leadscore.errors import ConfigError

    with pytest.raises(ConfigError, match="censored"):
        training_rows(log, spec(), config("2025-01-15", "2025-03-10", horizon=30))
