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
