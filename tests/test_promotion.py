"""Promotion on data neither model was fitted on: a champion trained on an earlier period is judged on the
challenger's later test rows; a retrain on the same period compares the two backtests on the same rows; anything
else is refused unless forced. A real MLflow SQLite store in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import cli, make_snapshot, snapshot_config, using_store
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # trains and registers several models

NAME = "leadscore"


def write_config(folder: Path, frame, name: str, **split) -> Path:
    """A snapshot table and its config in `folder`, named `name`; `split` overrides the split section."""
    frame.to_csv(folder / f"{name}.csv", index=False)
    time = {} if "created_at" in frame.columns else {"time_column": None}
    raw = snapshot_config(folder / f"{name}.csv", **time)
    if split:
        raw["split"] = split
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config


def train_and_promote(config: Path, *extra) -> tuple[str, str, str]:
    """Train `config`, then promote: (challenger version, champion version after, promotion tag of the challenger)."""
    client = MlflowClient()
    assert cli("train", "--config", config) == 0, "training failed"
    challenger = client.get_model_version_by_alias(NAME, "challenger").version
    assert cli("promote", "--name", NAME, *extra) == 0, "promote failed"
    champion = client.get_model_version_by_alias(NAME, "champion").version
    return challenger, champion, client.get_model_version(NAME, challenger).tags["promotion"]


@pytest.fixture()
def store(tmp_path):
    with using_store(tmp_path):
        yield tmp_path


def test_a_champion_from_an_earlier_period_is_judged_on_later_rows_neither_model_was_fitted_on(store):
    # Given a champion trained on the first 2,400 hours of leads,
    history = make_snapshot(4000, seed=6)
    first, champion, reason = train_and_promote(write_config(store, history.iloc[:2400], "early"))
    assert champion == first and "no champion" in reason

    # when a challenger is trained on the whole history (its test window lies after all the champion learned from),
    second, champion, reason = train_and_promote(write_config(store, history, "all"))

    # then they were compared on the challenger's test rows that neither registered model was fitted on.
    assert second != first
    assert "neither model was fitted on" in reason, reason
    assert reason.startswith(("beats champion", "rejected")), reason
    assert champion == (second if reason.startswith("beats") else first), "the alias follows the verdict"


def test_a_retrain_on_the_same_period_compares_the_two_backtests_on_the_same_rows(store):
    # Given a champion, when the same data and seed train again (the champion was fitted on every test row),
    config = write_config(store, make_snapshot(3000, seed=7), "same")
    first, _, _ = train_and_promote(config)
    second, champion, reason = train_and_promote(config)

    # then the two backtests are compared on the same test rows, and an identical pipeline is no better.
    assert "backtest against backtest" in reason, reason
    assert reason.startswith("rejected") and champion == first, reason


def test_without_rows_to_compare_fairly_promotion_is_refused_unless_forced(store):
    # Given a champion and a challenger trained on the same period but with another split (the champion was fitted on
    # every test row of the challenger, and its own backtest was measured on other rows),
    frame = make_snapshot(3000, seed=8)
    first, _, _ = train_and_promote(write_config(store, frame, "default_split"))
    other = write_config(store, frame, "other_split", train_fraction=0.5, calibration_fraction=0.2, test_fraction=0.3)

    # when promoted, the challenger is not promoted, and why is on its version;
    second, champion, reason = train_and_promote(other)
    assert champion == first and reason.startswith("not promoted: no fair comparison"), reason
    assert "--force" in reason

    # with --force it is.
    assert cli("promote", "--name", NAME, "--force") == 0
    assert MlflowClient().get_model_version_by_alias(NAME, "champion").version == second


def test_without_time_rows_the_champion_never_saw_are_told_by_their_ids(store):
    # Given a champion trained by row order on the first 2,000 leads of a file,
    history = make_snapshot(3500, seed=9).drop(columns=["created_at"])
    early = write_config(store, history.iloc[:2000], "early_rows", method="row_order")
    first, _, _ = train_and_promote(early)

    # when the challenger learns from the whole file, its test window holds leads the champion never saw,
    second, champion, reason = train_and_promote(write_config(store, history, "all_rows", method="row_order"))

    # and the two are compared there.
    assert "neither model was fitted on" in reason, reason
