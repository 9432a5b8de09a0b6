"""The config is validated once, at the edge, with messages that name the key."""

from pathlib import Path

import pytest

from leadscore.config import load_config, parse_config
from leadscore.errors import ConfigError

REPO = Path(__file__).parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_are_valid(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.data.form in {"event_log", "snapshot"}, "a shipped config must load"


def test_unknown_key_is_rejected_with_its_path():
    raw = {"data": {"form": "snapshot", "path": "x.csv", "label_column": "y", "labelcolumn": "y"}}
    with pytest.raises(ConfigError, match="data.labelcolumn"):
        parse_config(raw)


def test_event_log_form_needs_its_section():
    with pytest.raises(ConfigError, match="event_log section is missing"):
        parse_config({"data": {"form": "event_log", "path": "x"}})


def test_split_fractions_must_sum_to_one():
    raw = {"data": {"form": "snapshot", "path": "x.csv", "label_column": "y"},
           "split": {"train_fraction": 0.5, "calibration_fraction": 0.2, "test_fraction": 0.2}}
    with pytest.raises(ConfigError, match="sum to 1"):
        parse_config(raw)


def test_data_path_expands_environment_variables(monkeypatch):
    raw = {"data": {"form": "snapshot", "path": "${LS_TEST_DIR:-fallback}/f.csv", "label_column": "y"}}
    assert str(parse_config(raw).data.resolved_path) == "fallback/f.csv", "the default applies when the variable is unset"
    monkeypatch.setenv("LS_TEST_DIR", "/data")
    assert str(parse_config(raw).data.resolved_path) == "/data/f.csv", "the variable wins when set"


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


SNAPSHOT = {"form": "snapshot", "path": "x.csv", "label_column": "y"}


def invalid(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


def test_an_mql_policy_stricter_than_the_sql_policy_of_the_same_kind_is_refused():
    swapped = {
        "recall": ({"policy": "recall", "recall": 0.5}, {"policy": "recall", "recall": 0.9}),
        "top_fraction": ({"policy": "top_fraction", "fraction": 0.05}, {"policy": "top_fraction", "fraction": 0.25}),
        "capacity vs fraction": ({"policy": "capacity", "leads_per_week": 10, "weekly_volume": 1000},
                                 {"policy": "top_fraction", "fraction": 0.05}),
        "min_conversion_rate": ({"policy": "min_conversion_rate", "conversion_rate": 0.5, "confidence": 0.95},
                                {"policy": "min_conversion_rate", "conversion_rate": 0.3, "confidence": 0.95}),
    }
    for mql, sql in swapped.values():
        invalid({"data": SNAPSHOT, "cutoffs": {"mql": mql, "sql": sql}}, "cutoffs.mql .* is stricter than cutoffs.sql")
        assert parse_config({"data": SNAPSHOT, "cutoffs": {"mql": sql, "sql": mql}}), "the other way round is the intent"
    # Policies of different kinds only compare on data: training lowers the MQL cutoff and says so.
    parse_config({"data": SNAPSHOT, "cutoffs": {"mql": {"policy": "top_fraction", "fraction": 0.01},
                                                "sql": {"policy": "recall", "recall": 0.5}}})


def test_a_capacity_above_the_weekly_volume_is_refused():
    invalid({"data": SNAPSHOT, "cutoffs": {"sql": {"policy": "capacity", "leads_per_week": 50, "weekly_volume": 20}}},
            "leads_per_week .* above weekly_volume")


def test_a_column_named_in_two_groups_or_two_combinations_is_refused():
    invalid({"data": SNAPSHOT, "groups": {"fit": ["age", "job"], "engagement": ["job", "visits_*"]}},
            "'job' in groups.fit and groups.engagement")
    invalid({"data": SNAPSHOT, "reasons": {"combine": {"a": ["x", "y"], "b": ["y"]}}},
            "'y' in reasons.combine.a and reasons.combine.b")
    assert parse_config({"data": SNAPSHOT, "groups": {"fit": ["a*"], "engagement": ["a*"]}}), \
        "patterns are compared with the data's columns, before fitting (leadscore.training.preflight)"


def test_keys_the_form_would_silently_ignore_are_refused():
    event_log = {"snapshots": {"first": "2025-01-01", "last": "2025-06-01"}}
    invalid({"data": {"form": "event_log", "path": "x", "label_column": "won"}, "event_log": event_log},
            "data.label_column only apply to data.form: snapshot")
    invalid({"data": SNAPSHOT, "split": {"method": "time"}}, "split.method is time but data.time_column is not set")
    invalid({"data": {**SNAPSHOT, "time_column": "y"}}, "must name different columns")


def test_the_points_fallback_needs_rules():
    invalid({"data": SNAPSHOT, "model": {"fallback": "points"}}, "points_baseline has no rules")
