"""`leadscore init` on an event-log folder: a commented config that checks and trains without edits, with the
export time guessed from the data (`event_log.exported_at`) and typing errors in dates left for training to refuse."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import run_cli

from leadscore.config import load_config
from leadscore.starter import export_time_guess

LEADS = 1500
# Dated in the past whatever day the test runs: leads over 2023 to mid 2024, each simulated 26 weeks on.
START, DAYS = "2023-01-01", 540


def recorded_times(folder: Path) -> pd.Series:
    """Every time the event log records: lead creations, activities and outcomes, in UTC."""
    leads = pd.read_parquet(folder / "leads.parquet")
    activities = pd.read_parquet(folder / "activities.parquet")
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    return pd.concat([pd.to_datetime(frame[column], utc=True) for frame, column in
                      ((leads, "created_at"), (activities, "timestamp"), (outcomes, "timestamp"))], ignore_index=True)


def generated(folder: Path, leads: int) -> Path:
    """A synthetic event log written by `leadscore generate` into `folder`/log."""
    out = folder / "log"
    code, _, err = run_cli("generate", "--leads", leads, "--seed", 3, "--out", out, "--start", START, "--days", DAYS)
    assert code == 0, err
    return out


@pytest.mark.slow
def test_init_on_an_event_log_writes_a_config_that_checks_and_trains(tracking_store):
    # Given a synthetic event log (leads, activities, outcomes) written by `leadscore generate`
    log = generated(tracking_store, LEADS)
    config = tracking_store / "log.yaml"
    # When init writes its starter config for the folder
    code, out, err = run_cli("init", log, "--output", config)
    assert code == 0, err
    # Then the config says what the folder is, with the export time guessed from the latest recorded time
    cfg = load_config(config)
    assert cfg.data.form == "event_log" and cfg.data.id_column == "lead_id"
    assert {"first_name", "last_name", "email", "phone"} <= set(cfg.data.personal_columns), "personal data named"
    latest = recorded_times(log).max()
    assert cfg.event_log.exported_at is not None, "the export time is written, for the user to confirm"
    assert pd.Timestamp(cfg.event_log.exported_at) == latest.ceil("s"), "the latest recorded time, rounded up"
    line = next(line for line in config.read_text().splitlines() if line.strip().startswith("exported_at:"))
    assert "# the latest recorded time" in line, "the guess says what it was read from"
    assert "when the export was taken" in config.read_text(), "and what the user should set it to"
    assert "exported at" in out, "the summary names the guess"
    assert pd.Timestamp(cfg.event_log.snapshots.last, tz="UTC") < latest, "snapshots end before the data do"

    # And it is checked and trains, unedited
    code, out, err = run_cli("check", "--config", config)
    assert code == 0, err
    code, out, err = run_cli("train", "--config", config)
    assert code == 0, err
    assert "registered leadscore-log version 1" in out


def test_a_few_records_dated_in_the_future_are_left_for_training_to_refuse(tmp_path, monkeypatch):
    # Given an event log with one activity dated 2150 (a typing error)
    monkeypatch.chdir(tmp_path)
    log = generated(tmp_path, 300)
    activities = pd.read_parquet(log / "activities.parquet")
    activities.loc[7, "timestamp"] = pd.Timestamp("2150-01-01", tz="UTC")
    activities.to_parquet(log / "activities.parquet")
    # When init writes its config
    code, _, err = run_cli("init", log, "--output", tmp_path / "log.yaml")
    assert code == 0, err
    # Then the export time is the latest time up to today, the record is named in a comment, and the snapshots
    # are not stretched to 2150
    cfg = load_config(tmp_path / "log.yaml")
    times = recorded_times(log)
    assert pd.Timestamp(cfg.event_log.exported_at) == times[times.dt.year < 2150].max().ceil("s")
    assert "1 record(s) are dated after today" in (tmp_path / "log.yaml").read_text()
    assert cfg.event_log.snapshots.last.year < 2150
    # And the check refuses the record with its row, rather than taking 2150 as true
    code, _, err = run_cli("check", "--config", tmp_path / "log.yaml")
    assert code == 4 and "dated after the export time" in err and "[1 row(s): 8]" in err, err


def test_the_export_time_guess_rule():
    now = pd.Timestamp("2026-06-01 12:00", tz="UTC")
    past = pd.Series(pd.date_range("2025-01-01", "2026-05-01 10:15:30.25", periods=500, tz="UTC"))
    guess, why = export_time_guess(past, now)
    assert guess == pd.Timestamp("2026-05-01 10:15:31", tz="UTC"), "the latest time, rounded up to the second"
    assert "latest recorded time" in why[0] and any("when the export was taken" in line for line in why)

    typo = pd.concat([past, pd.Series([pd.Timestamp("2150-01-01", tz="UTC")])], ignore_index=True)
    guess, why = export_time_guess(typo, now)
    assert guess == pd.Timestamp("2026-05-01 10:15:31", tz="UTC"), "a typing error is not the export time"
    assert any("1 record(s) are dated after today" in line for line in why)

    simulated = pd.Series(pd.date_range("2025-01-01", "2027-06-30", periods=500, tz="UTC"))
    guess, why = export_time_guess(simulated, now)
    assert guess == simulated.max().ceil("s"), "data that reach past today as a whole: their latest time"
    assert any("after today" in line for line in why)
    yaml.safe_load(f"exported_at: {guess.strftime('%Y-%m-%dT%H:%M:%SZ')}")  # written as YAML reads it
