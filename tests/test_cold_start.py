"""A new team: the points fallback is registered and served, then replaced by the first learned model."""

import pandas as pd
import pytest
import yaml
from helpers import cli as run
from helpers import make_snapshot, snapshot_config
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # trains, registers and promotes

RULES = [{"column": "visits", "op": ">=", "value": 3, "points": 45},
         {"column": "company_size", "op": "in", "value": ["201+"], "points": 30}]


def test_points_fallback_then_learned_model(tracking_store, capsys):
    data = tracking_store / "leads.csv"
    make_snapshot(2000).to_csv(data, index=False)
    raw = snapshot_config(data)
    raw["points_baseline"] = RULES
    config = tracking_store / "config.yaml"

    raw["model"] = {"min_conversions": 100_000}
    config.write_text(yaml.safe_dump(raw))
    assert run("train", "--config", config) == 4, "too few conversions stops training without a fallback"
    assert "model.fallback: points" in capsys.readouterr().err, "the error names the way out"

    raw["model"] = {"min_conversions": 100_000, "fallback": "points"}
    config.write_text(yaml.safe_dump(raw))
    assert run("train", "--config", config) == 0 and run("promote", "--config", config) == 0
    batch = tracking_store / "batch.csv"
    make_snapshot(30, seed=3).to_csv(batch, index=False)
    assert run("score", "--input", batch, "--output", tracking_store / "out.csv") == 0
    scored = pd.read_csv(tracking_store / "out.csv")
    assert scored["p_convert"].isna().all() and scored["score"].isin([0, 30, 45, 75]).all(), "points, no probability"

    raw["model"] = {"min_conversions": 20, "lightgbm": {"n_estimators": 100}}
    config.write_text(yaml.safe_dump(raw))
    assert run("train", "--config", config) == 0 and run("promote", "--config", config) == 0
    client = MlflowClient()
    champion = client.get_model_version_by_alias("leadscore", "champion")
    assert champion.version == client.get_model_version_by_alias("leadscore", "challenger").version
    assert "replaces the points fallback" in champion.tags["promotion"], "the learned model takes over, with the reason"
