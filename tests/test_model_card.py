"""The model card logged with every training run: its figures are the run's own, and it holds no personal data."""

import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import build_config, make_snapshot, snapshot_config, using_store
from mlflow.tracking import MlflowClient

from leadscore.registry.loading import load_model
from leadscore.registry.runs import log_training
from leadscore.reporting.model_card import MODEL_CARD_ARTIFACT
from leadscore.training.pipeline import train

pytestmark = pytest.mark.slow  # trains and logs models

# The card's row names and the prefix of the same model's metrics in the run.
METRIC_PREFIXES = {"leadscore": "test_", "plain logistic": "baseline_logistic_test_", "points rules": "baseline_points_test_"}
# The card's column titles and the metric they show.
METRIC_KEYS = {"ROC AUC": "roc_auc", "PR AUC": "pr_auc", "Brier": "brier", "log loss": "log_loss", "ECE": "ece",
               "lift@10%": "top_decile_lift"}


@pytest.fixture(scope="module")
def logged_run(demo_run):
    """The session's demo training (see `conftest.demo_run`) and its model card."""
    store, _, registered = demo_run
    with using_store(store):
        yield registered, downloaded_card(registered.run_id)


def downloaded_card(run_id: str) -> str:
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_CARD_ARTIFACT)).read_text()


def section(card: str, title: str) -> str:
    """The text of one `## title` section of the card."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", card, flags=re.MULTILINE | re.DOTALL)
    assert match, f"the card has a '{title}' section"
    return match.group(1)


def table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in `text`, as one dict per body row."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def assert_metrics_match_run(card: str, run_metrics: dict[str, float]) -> int:
    """Every figure of the card's metrics table equals the run's metric to the decimals shown; returns how many."""
    compared = 0
    for row in table(section(card, "Metrics")):
        prefix = METRIC_PREFIXES[row["model"]]
        for title, key in METRIC_KEYS.items():
            shown = row[title]
            if shown == "–":
                assert f"{prefix}{key}" not in run_metrics, f"{row['model']} {key} is logged but not shown"
                continue
            decimals = len(shown.split(".")[1])
            assert float(shown) == pytest.approx(run_metrics[f"{prefix}{key}"], abs=0.5 * 10**-decimals + 1e-12), (
                f"{row['model']} {key}: the card shows {shown}, the run logged {run_metrics[f'{prefix}{key}']}")
            compared += 1
    return compared


def assert_no_personal_values(card: str, values: pd.Series) -> None:
    leaked = [v for v in map(str, values.dropna().unique()) if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", card)]
    assert not leaked, f"personal values in the card: {leaked[:5]}"


def test_training_run_logs_a_model_card_with_the_runs_own_figures(logged_run, synthetic_dir):
    registered, card = logged_run
    run = MlflowClient().get_run(registered.run_id)

    # The card names the run it belongs to and states what the model is for.
    assert registered.run_id in card
    for title in ("Model", "Data", "Metrics", "MQL and SQL cutoffs", "Top drivers", "Leakage guard", "Intended use and limits"):
        section(card, title)
    assert "Not for" in card and "90 days" in card, "limits and the label horizon are stated"

    # Metrics: leadscore beside both baselines, each figure equal to the logged metric.
    models = [row["model"] for row in table(section(card, "Metrics"))]
    assert models == ["leadscore", "plain logistic", "points rules"]
    assert assert_metrics_match_run(card, run.data.metrics) == 18

    # Data: window sizes are the logged ones.
    for row in table(section(card, "Data")):
        assert int(row["rows"].replace(",", "")) == run.data.metrics[f"{row['window']}_rows"]
        assert int(row["conversions"].replace(",", "")) == run.data.metrics[f"{row['window']}_conversions"]

    # Cutoffs: the registered scorer's own.
    cutoffs = load_model(registered.uri).scorer.cutoffs
    text = section(card, "MQL and SQL cutoffs")
    for band, value in (("MQL", cutoffs.mql), ("SQL", cutoffs.sql)):
        shown = re.search(rf"- {band}: p_convert >= ([0-9.]+) \(score ([0-9.]+)\)", text)
        assert shown, f"the {band} cutoff is stated"
        assert float(shown.group(1)) == pytest.approx(value, abs=5e-5)
        assert float(shown.group(2)) == pytest.approx(100 * value, abs=0.05)
    assert cutoffs.mql_policy in text and cutoffs.sql_policy in text, "the policies behind the cutoffs are stated"
    realised = table(text)
    assert {(r["window"], r["band"]) for r in realised} == {(w, b) for w in ("calibration", "test")
                                                          for b in ("SQL", "MQL", "below MQL")}

    # Top drivers: feature columns of the model, in the order of the logged importance table.
    drivers = [row["column"] for row in table(section(card, "Top drivers"))]
    scorer = load_model(registered.uri).scorer
    assert drivers and set(drivers) <= set(scorer.feature_columns)
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=registered.run_id,
                                                             artifact_path="explanations/importance_columns.csv"))
    assert drivers == logged["column"].head(len(drivers)).tolist(), "the same ranking the run logs"

    leads = pd.read_parquet(synthetic_dir / "leads.parquet")
    for column in ("first_name", "last_name", "email", "phone"):
        assert_no_personal_values(card, leads[column])


def test_points_fallback_run_gets_a_card_that_says_so(tracking_store):
    data = tracking_store / "leads.csv"
    leads = make_snapshot(2000)
    leads.to_csv(data, index=False)
    raw = snapshot_config(data)
    raw["model"] = {"min_conversions": 100_000, "fallback": "points"}
    cfg = build_config(raw)

    registered = log_training(train(cfg), cfg)
    card = downloaded_card(registered.run_id)

    assert "Points fallback (cold start)" in card and "nothing was learned" in card
    assert "- MQL: points >= 40" in card and "- SQL: points >= 70" in card, "the points cutoffs in force"
    assert "`visits >= 4`: +20" in card, "the rules are the drivers"
    assert assert_metrics_match_run(card, MlflowClient().get_run(registered.run_id).data.metrics) == 3, (
        "the rules' ranking metrics, nothing else")
    assert_no_personal_values(card, leads["email"])
