"""The config is checked against the training table before anything is fitted, every problem at once."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import build_config, make_snapshot, snapshot_config
from hypothesis import given
from hypothesis import strategies as st

from leadscore.config import MinConversionRate, Signal
from leadscore.errors import ConfigError
from leadscore.features.events import (
    LABEL_COLUMN,
    SNAPSHOT_COLUMN,
    EventFeatureSpec,
    EventLog,
    EventLogLayout,
    training_rows,
)
from leadscore.training.cutoffs import choose_cutoff
from leadscore.training.dataset import TrainingTable, snapshot_table
from leadscore.training.pipeline import fit_table
from leadscore.training.preflight import (
    check_against_data,
    column_problems,
    cutoff_problems,
)
from leadscore.training.split import split_frame


def snapshot(raw: dict, rows: int = 600, seed: int = 0) -> TrainingTable:
    """The training table of a `make_snapshot` frame, shaped by the data section of `raw`."""
    return snapshot_table(make_snapshot(rows, seed=seed), build_config(raw).data)


def with_sections(raw: dict, **sections) -> dict:
    return {**raw, **sections}


@pytest.fixture()
def raw(tmp_path) -> dict:
    return snapshot_config(tmp_path / "train.csv")


def test_a_config_naming_existing_columns_passes(raw):
    # Given the config the table was made for, with names, patterns, rules and templates that all exist
    raw = with_sections(raw, groups={"fit": ["company_*"], "engagement": ["visits"]},
                        reasons={"templates": {"visits": "{value} visits", "prof*": "Company profile"},
                                 "combine": {"profile": ["company_size"]}})
    # When it is checked against the table, then nothing is reported
    assert column_problems(build_config(raw), snapshot(raw)) == [], "existing names and matching patterns pass"


def test_every_misspelt_name_is_listed_at_once_with_its_key_and_the_closest_name(raw):
    # Given a table, and a config with a mistake under each key that names columns
    table = snapshot(raw)
    bad = with_sections(
        raw,
        data={**raw["data"], "exclude_columns": ["emial"], "post_outcome_columns": ["deal_*"]},
        groups={"fit": ["company_sise"], "engagement": ["vists*"]},
        points_baseline=[{"column": "Visits", "op": ">=", "value": 3, "points": 10}],
        reasons={"templates": {"companysize": "Size {value}"}, "combine": {"size": ["compny_size"]}},
        leakage={"allow_columns": ["visit"]},
    )

    # When it is checked before fitting
    with pytest.raises(ConfigError) as caught:
        check_against_data(build_config(bad), table)
    message = str(caught.value)

    # Then one error lists every problem, each with its key, the name and the closest existing name
    expected = {
        "groups.fit": ("'company_sise'", "did you mean 'company_size'"),
        "groups.engagement": ("'vists*'", "did you mean 'visits'"),
        "data.exclude_columns": ("'emial'", "did you mean 'email'"),
        "data.post_outcome_columns": ("'deal_*'", "matches no column"),
        "points_baseline[0].column": ("'Visits'", "did you mean 'visits'"),
        "reasons.combine.size": ("'compny_size'", "did you mean 'company_size'"),
        "reasons.templates": ("'companysize'", "did you mean 'company_size'"),
        "leakage.allow_columns": ("'visit'", "did you mean 'visits'"),
    }
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == len(expected), f"one line per problem: {message}"
    for key, parts in expected.items():
        line = next((line for line in lines if line.startswith(f"  - {key}:")), None)
        assert line is not None, f"{key} is reported: {message}"
        assert all(part in line for part in parts), f"{key} names the entry and a close name: {line}"


def test_names_that_exist_but_cannot_serve_say_why(raw):
    # Given a group naming the time column, a personal column and the label
    table = snapshot(raw)
    cfg = build_config(with_sections(raw, groups={"fit": ["created_at", "email"], "engagement": ["converted"]}))

    # When checked, then each is reported as what it is rather than as a misspelling
    problems = column_problems(cfg, table)
    assert len(problems) == 3, problems
    assert "not a feature column" in problems[0] and "'created_at'" in problems[0]
    assert "personal column" in problems[1] and "'email'" in problems[1]
    assert "not a feature column" in problems[2] and "'converted'" in problems[2]


def test_reason_combinations_and_templates_are_checked_as_the_explainer_reads_them(raw):
    # Given a table, a combination named like another feature column and a template whose placeholder
    # the field cannot fill
    table = snapshot(raw)
    clash = build_config(with_sections(raw, reasons={"combine": {"visits": ["company_size"]}}))
    unfillable = build_config(with_sections(raw, reasons={"templates": {"company_size": "{count:times}"}}))

    # When checked, then both are found without fitting anything
    assert any("reasons.combine.visits" in p and "another feature column" in p for p in column_problems(clash, table))
    assert any("company_size" in p for p in column_problems(unfillable, table)), "the template cannot be filled"


@pytest.fixture()
def event_table() -> tuple[TrainingTable, dict]:
    """A tiny event-log training table with one profile column and two signals, and a config dict for it."""
    ts = lambda text: pd.Timestamp(text, tz="UTC")  # noqa: E731
    leads = pd.DataFrame({"lead_id": ["A", "B", "C"], "created_at": [ts("2025-01-01")] * 3,
                          "seniority": ["VP", "Intern", "Manager"]})
    activities = pd.DataFrame({"lead_id": ["A", "B", "C"], "timestamp": [ts("2025-01-02"), ts("2025-01-03"), ts("2025-01-04")],
                               "activity_type": ["page_view", "page_view", "demo_request"]})
    outcomes = pd.DataFrame({"lead_id": ["A", "B"], "stage": ["won", "lost"], "timestamp": [ts("2025-03-01")] * 2})
    raw = {"data": {"form": "event_log", "path": "unused", "exclude_columns": ["utm_campaign"]},
           "event_log": {"snapshots": {"first": "2025-01-10", "last": "2025-01-10"}, "horizon_days": 30},
           "groups": {"fit": ["seniority"], "engagement": ["page_view_*"], "stage": ["demo_*"]},
           "reasons": {"templates": {"demo": "Requested a demo {days_since:ago}", "seniority": "{value}"}}}
    cfg = build_config(raw)
    spec = EventFeatureSpec(layout=EventLogLayout(), terminal_stages=("won", "lost"), profile_columns=("seniority",),
                            signals={"page_view": Signal(activity_type="page_view"),
                                     "demo": Signal(activity_type="demo_request")})
    frame = training_rows(EventLog(leads, activities, outcomes), spec, cfg.event_log)
    table = TrainingTable(frame=frame, id_column="lead_id", label_column=LABEL_COLUMN, time_column=SNAPSHOT_COLUMN,
                          feature_columns=spec.feature_columns, event_spec=spec, dropped_personal=[])
    return table, raw


def test_event_log_names_are_checked_against_the_generated_feature_columns(event_table):
    # Given an event-log table, and its config: patterns over generated columns, templates per signal
    table, raw = event_table
    assert column_problems(build_config(raw), table) == [], "generated columns, signals and excluded leads columns pass"

    # When a group names a signal instead of its columns, a template names one column of a signal,
    # and an exclusion names a generated column
    bad = {**raw, "data": {**raw["data"], "exclude_columns": ["lead_age_days"]},
           "groups": {**raw["groups"], "stage": ["demo"]},
           "reasons": {"templates": {"demo_count": "{value} demos"}}}
    problems = column_problems(build_config(bad), table)

    # Then each says how to name it
    assert len(problems) == 3, problems
    assert any(p.startswith("groups.stage") and "'demo_*'" in p for p in problems), "a signal's columns by pattern"
    assert any(p.startswith("reasons.templates") and "reason field 'demo'" in p for p in problems), "templates are per field"
    assert any(p.startswith("data.exclude_columns") and "computed from the events" in p for p in problems)


def min_rate(rate: float, confidence: float) -> dict:
    return {"policy": "min_conversion_rate", "conversion_rate": rate, "confidence": confidence}


def test_an_impossible_conversion_rate_is_refused_before_fitting(raw, monkeypatch):
    # Given a table whose calibration window holds few conversions, and an SQL policy that would need many
    table = snapshot(raw)
    bad = build_config(with_sections(raw, cutoffs={"sql": min_rate(0.999, 0.99), "mql": {"policy": "recall", "recall": 0.8}}))

    # When training starts, then it stops with the policy named, before any model is fitted
    def no_fitting(*args, **kwargs):
        raise AssertionError("a model was fitted despite an impossible cutoff policy")

    monkeypatch.setattr("leadscore.training.pipeline.fit_candidates", no_fitting)
    with pytest.raises(ConfigError, match=r"cutoffs\.sql: .*even a perfect ranking"):
        fit_table(table, bad)


def test_a_misspelt_group_stops_training_before_fitting(raw, monkeypatch):
    table = snapshot(raw)
    monkeypatch.setattr("leadscore.training.pipeline.fit_candidates",
                        lambda *a, **k: pytest.fail("a model was fitted despite a misspelt group"))
    with pytest.raises(ConfigError, match="groups.fit: no feature column 'sise'"):
        fit_table(table, build_config(with_sections(raw, groups={"fit": ["sise"]})))


def test_the_cutoff_screen_is_skipped_when_no_cutoff_will_be_chosen(raw):
    # Given too few conversions for a model: the points fallback (or the conversion-count error) applies
    table = snapshot(raw)
    cfg = build_config(with_sections(raw, model={"min_conversions": table.conversions + 1},
                                     cutoffs={"sql": min_rate(0.999, 0.99)}))
    assert cutoff_problems(cfg, table) == [], "cutoffs are not chosen, so not screened"


@given(seed=st.integers(0, 10_000), rate=st.floats(0.05, 0.99), confidence=st.floats(0.51, 0.99))
def test_the_screen_refuses_exactly_what_a_perfect_ranking_cannot_meet(tmp_path_factory, seed, rate, confidence):
    # Given a table and a min_conversion_rate policy
    raw = snapshot_config(tmp_path_factory.getbasetemp() / "unused.csv")
    table = snapshot(raw, rows=400, seed=seed)
    policy = min_rate(rate, confidence)
    cfg = build_config(with_sections(raw, model={"min_conversions": 1}, cutoffs={"sql": policy, "mql": policy}))

    # When the calibration window is scored by a perfect ranking (every conversion above every other lead)
    split = split_frame(table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
                        seed=cfg.model.seed)
    y = split.calibration[table.label_column].to_numpy()
    try:
        choose_cutoff(y.astype(float), y, MinConversionRate(**policy), which="sql")
        perfect_meets_it = True
    except ConfigError:
        perfect_meets_it = False

    # Then the screen refuses the policy exactly when even that ranking cannot meet it
    problems = cutoff_problems(cfg, table)
    assert (problems == []) == perfect_meets_it, problems
    assert len(problems) in (0, 2), "both policies are screened"
