"""Transition targets (`event_log.from_stage`): rows only for leads past `from_stage`, the same in both builders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import build_config, demo_config
from test_event_features_columnar import assert_same_rows

from leadscore.config import Signal, parse_config
from leadscore.errors import ConfigError
from leadscore.features import columnar, events
from leadscore.features.events import (
    EventFeatureSpec,
    EventLog,
    EventLogLayout,
    check_target_stages,
    label_text,
)

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def transition_config(first="2025-02-01", last="2025-04-01", every=14, horizon=30, **event_log):
    return parse_config({
        "data": {"form": "event_log", "path": "unused"},
        "event_log": {"snapshots": {"first": first, "last": last, "every_days": every}, "horizon_days": horizon,
                      "from_stage": "MQL", "conversion_stage": "SQL", **event_log},
    }).event_log


def spec(terminal=("won", "lost")):
    return EventFeatureSpec(layout=EventLogLayout(), terminal_stages=terminal, profile_columns=("seniority",),
                            signals={"page_view": Signal(activity_type="page_view")}, half_life_days=14.0)


@pytest.fixture()
def small() -> EventLog:
    ids = ["A", "B", "C", "D", "E", "F"]
    leads = pd.DataFrame({"lead_id": ids, "created_at": [ts("2025-01-01")] * 6,
                          "seniority": ["VP", "Intern", "VP", None, "Manager", "VP"]})
    activities = pd.DataFrame({"lead_id": ids, "timestamp": [ts("2025-01-05")] * 6, "activity_type": ["page_view"] * 6})
    outcomes = pd.DataFrame([
        ("A", "MQL", "2025-01-20"), ("A", "SQL", "2025-02-20"),  # MQL before the first snapshot, SQL 19 days after
        ("B", "MQL", "2025-02-10"),  # MQL between snapshots, never SQL
        ("C", "SQL", "2025-02-05"),  # SQL without MQL: never a row
        ("D", "MQL", "2025-01-10"), ("D", "SQL", "2025-01-25"),  # converted before the first snapshot: no row
        ("E", "MQL", "2025-01-15"), ("E", "lost", "2025-03-01"),  # closed: rows until then
        ("F", "MQL", "2025-01-15"), ("F", "SAL_rejected", "2025-01-18"), ("F", "SQL", "2025-04-20"),
        ("F", "won", "2025-05-20"),
    ], columns=["lead_id", "stage", "timestamp"]).assign(timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True))
    return EventLog(leads, activities, outcomes)


def test_rows_are_the_leads_between_the_two_stages(small):
    rows = events.training_rows(small, spec(), transition_config())
    at = {(row.lead_id, row.snapshot_at.date().isoformat()): row.converted for row in rows.itertuples()}
    # Snapshots 02-01, 02-15, 03-01, 03-15, 03-29; horizon 30 days.
    assert at[("A", "2025-02-01")] == 1 and at[("A", "2025-02-15")] == 1, "A reaches SQL within 30 days"
    assert ("A", "2025-03-01") not in at, "A reached SQL before this snapshot"
    assert ("B", "2025-02-01") not in at and at[("B", "2025-02-15")] == 0, "B is in only once it is an MQL"
    assert not {lead for lead, _ in at} & {"C", "D"}, "a lead without MQL, or already SQL, has no row"
    assert ("E", "2025-03-01") in at and ("E", "2025-03-15") not in at, "a closed lead leaves at its close"
    assert at[("F", "2025-03-29")] == 1 and at[("F", "2025-03-01")] == 0, "a rejection is not a terminal stage"


def test_builders_give_the_same_rows_on_the_hand_made_log(small):
    cfg = transition_config()
    assert_same_rows(events.training_rows(small, spec(), cfg), columnar.training_rows(small, spec(), cfg))


@pytest.fixture(scope="module")
def rejecting_log():
    from leadscore.synthetic.funnel import generate_funnel

    funnel = generate_funnel(2000, 5, recycling=True)  # repeated MQLs: a transition starts at the first
    return EventLog(funnel.leads, funnel.activities, funnel.outcomes)


@pytest.mark.parametrize(("from_stage", "to_stage", "horizon"), [("MQL", "SQL", 30), ("SAL", "won", 60),
                                                                  ("MQL", "SAL", 14)])
def test_builders_give_the_same_rows_on_the_funnel(rejecting_log, from_stage, to_stage, horizon):
    cfg = transition_config(first="2025-03-01", last="2027-01-01", every=28, horizon=horizon,
                            from_stage=from_stage, conversion_stage=to_stage)
    expected = events.training_rows(rejecting_log, spec(), cfg)
    assert_same_rows(expected, columnar.training_rows(rejecting_log, spec(), cfg))
    assert 0 < expected["converted"].sum() < len(expected), "both labels occur"
    plain = events.training_rows(rejecting_log, spec(), transition_config(
        first="2025-03-01", last="2027-01-01", every=28, horizon=horizon, conversion_stage="won", from_stage=None))
    assert len(expected) < len(plain), "a transition target keeps fewer rows than the plain target"


def test_stages_absent_from_the_outcomes_are_a_config_error(small):
    with pytest.raises(ConfigError, match=r"from_stage: 'Mql'.*stages seen.*'MQL', 'SAL_rejected', 'SQL'"):
        check_target_stages(small, EventLogLayout(), transition_config(from_stage="Mql"))
    check_target_stages(small, EventLogLayout(), transition_config())  # both present: no error


def test_config_refuses_a_transition_that_goes_nowhere():
    with pytest.raises(ConfigError, match="both 'SQL'"):
        transition_config(from_stage="SQL")
    with pytest.raises(ConfigError, match="terminal stage"):
        transition_config(from_stage="lost")


def test_label_text_says_it_is_a_transition():
    text = label_text(transition_config())
    assert "MQL" in text and "SQL" in text and "transition" in text and "30 days" in text
    assert "transition" not in label_text(transition_config(from_stage=None, conversion_stage="won"))


@pytest.mark.slow
def test_training_a_transition_model_through_the_pipeline(tmp_path):
    """Given a tiny funnel, when a model of MQL -> SQL within 30 days is trained, then its label, rows and card
    say so and its probabilities are probabilities."""
    from leadscore.reporting.model_card import model_card
    from leadscore.synthetic.funnel import generate_to_dir
    from leadscore.training.pipeline import train

    generate_to_dir(1500, 3, tmp_path / "log", recycling=True)
    raw = demo_config(tmp_path / "log", event_log={"from_stage": "MQL", "conversion_stage": "SQL", "horizon_days": 30})
    raw["event_log"]["snapshots"]["every_days"] = 42
    raw["model"].update({"candidates": ["logistic"], "min_conversions": 20})
    raw["stage"] = {"horizon_days": 14}
    cfg = build_config(raw)
    result = train(cfg)
    table = result.table
    assert "MQL" in table.label_description and "SQL" in table.label_description
    rows = table.frame
    log = events.load_event_log(tmp_path / "log", EventLogLayout())
    mql_at = log.outcomes[log.outcomes["stage"] == "MQL"].groupby("lead_id")["timestamp"].min()
    assert (rows["lead_id"].map(mql_at) < rows["snapshot_at"]).all(), "a row before the lead was an MQL"
    last = result.split.test[result.split.test["snapshot_at"] == result.split.test["snapshot_at"].max()]
    p = result.scorer.predict(last)["p_convert"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    card = model_card(result, cfg)
    assert "transition MQL → SQL" in card


def test_misspelt_stage_stops_training_before_fitting(tmp_path, synthetic_dir):
    from leadscore.training.dataset import load_training_table

    raw = demo_config(synthetic_dir, event_log={"from_stage": "mql", "conversion_stage": "SQL", "horizon_days": 30})
    raw["stage"] = {"horizon_days": 14}
    with pytest.raises(ConfigError, match="stages seen"):
        load_training_table(build_config(raw))
