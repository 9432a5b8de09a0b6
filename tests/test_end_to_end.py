"""generate -> train -> register -> promote -> score, with MLflow in a temporary folder."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import using_store
from mlflow.tracking import MlflowClient
from scipy.stats import spearmanr

from leadscore.cli import main
from leadscore.synthetic.funnel import generate_to_dir, true_components

pytestmark = pytest.mark.slow  # trains the demo model and scores with it

AS_OF = "2026-11-01"


def cli(*argv):
    code = main([str(a) for a in argv])
    assert code == 0, f"leadscore {argv[0]} failed with exit code {code}"


@pytest.fixture()
def fresh_batch(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fresh")
    generate_to_dir(1500, 99, out, start="2026-06-01", days=150)
    return out


@pytest.fixture(scope="module")
def trained_store(demo_run):
    """The MLflow store holding the session's demo training (see `conftest.demo_run`), and its config."""
    store, config, _ = demo_run
    with using_store(store):
        yield store, config


def test_full_flow(trained_store, synthetic_dir, fresh_batch, capsys):
    store, config = trained_store
    client = MlflowClient()

    # Given a first trained model, when promoted, then it becomes champion because there is none.
    first = client.get_model_version_by_alias("leadscore", "challenger")
    cli("promote", "--config", config)
    assert client.get_model_version_by_alias("leadscore", "champion").version == first.version, "first model wins"
    assert "no champion" in client.get_model_version("leadscore", first.version).tags["promotion"], "reason recorded"

    # When the same data and seed train again, the challenger is not better, so the champion stays.
    cli("train", "--config", config)
    second = client.get_model_version_by_alias("leadscore", "challenger")
    assert second.version != first.version, "a new version is registered as challenger"
    cli("promote", "--config", config)
    assert client.get_model_version_by_alias("leadscore", "champion").version == first.version, "no better, no promotion"
    assert client.get_model_version("leadscore", second.version).tags["promotion"].startswith("rejected"), "why is recorded"
    cli("promote", "--config", config, "--force")
    assert client.get_model_version_by_alias("leadscore", "champion").version == second.version, "--force promotes"

    # Then scoring the champion gives one row per lead, with calibrated probabilities and the version.
    out = store / "scores.csv"
    cli("score", "--model", "models:/leadscore@champion", "--input", fresh_batch, "--as-of", AS_OF, "--output", out)
    scores = pd.read_csv(out)
    leads = pd.read_parquet(fresh_batch / "leads.parquet")
    assert len(scores) == len(leads) and set(scores["lead_id"]) == set(leads["lead_id"]), "every lead, exactly once"
    assert scores["p_convert"].between(0, 1).all(), "probabilities lie in [0, 1]"
    np.testing.assert_allclose(scores["score"], np.round(100 * scores["p_convert"], 1), err_msg="score is 100 p")
    assert (scores["model_version"].astype(str) == str(second.version)).all(), "output names the model version"
    assert {"model_name", "scored_at", "lead_status"} <= set(scores.columns), "provenance columns are present"

    # And an exported bundle scores the same, offline, from a local folder.
    cli("export", "--model", "models:/leadscore@champion", "--out", store / "models")
    bundle = store / "models" / f"leadscore-v{second.version}"
    assert (bundle / "MLmodel").exists(), "the bundle is an MLflow model folder"
    local = store / "local_scores.csv"
    cli("score", "--model", bundle, "--input", fresh_batch, "--as-of", AS_OF, "--output", local)
    pd.testing.assert_series_equal(pd.read_csv(local)["p_convert"], scores["p_convert"])

    # And the scores rank leads by their true (hidden) conversion propensity at the scoring time.
    truth = pd.read_json(fresh_batch / "ground_truth.json", typ="series").to_dict()
    activities = pd.read_parquet(fresh_batch / "activities.parquet")
    components = true_components(activities, truth, pd.Timestamp(AS_OF, tz="UTC"))
    fit = pd.read_parquet(fresh_batch / "ground_truth_leads.parquet")[["lead_id", "true_fit"]]
    merged = scores.merge(components, on="lead_id").merge(fit, on="lead_id")
    merged = merged[merged["lead_status"] == "open"]
    true_logit = (merged["true_fit"] + truth["engagement_coef"] * np.log1p(merged["true_engagement"])
                  + truth["intent_coef"] * merged["true_intent"])
    rho = spearmanr(merged["p_convert"], true_logit).statistic
    assert rho > 0.6, f"scores should rank open leads like the true hazard (Spearman {rho:.2f})"


def test_training_run_logs_what_a_data_scientist_needs(trained_store):
    store, _ = trained_store
    version = MlflowClient().get_model_version_by_alias("leadscore", "challenger")
    run = mlflow.get_run(version.run_id)
    metrics = run.data.metrics
    for key in ("test_roc_auc", "test_pr_auc", "test_brier", "test_log_loss", "test_ece", "test_top_decile_lift",
                "baseline_points_test_roc_auc", "baseline_logistic_test_log_loss"):
        assert key in metrics, f"metric {key} is logged"
    assert metrics["test_log_loss"] <= metrics["baseline_logistic_test_log_loss"] * 1.02, \
        "the tournament must not lose to a plain logistic regression"
    assert metrics["test_roc_auc"] > metrics["baseline_points_test_roc_auc"], "the learned score beats hand-set points"
    assert run.data.params["event_log.horizon_days"] == "90", "the full config is logged as params"
    assert run.data.tags["split_method"] == "time" and run.data.tags["data_fingerprint"], "split and data recorded"
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert {"plots/calibration_curve.png", "plots/cumulative_gains.png", "plots/score_histogram.png"} <= artifacts


def test_no_personal_data_reaches_mlflow(trained_store, synthetic_dir):
    store, _ = trained_store
    leads = pd.read_parquet(synthetic_dir / "leads.parquet")
    # Names of five letters or more: a three-letter one ("Lee") can turn up by chance in compressed bytes
    # (Parquet, PNG), and once did. tests/test_personal_data.py plants unique markers instead.
    names = {name for name in leads["last_name"].head(50) if len(name) >= 5}
    planted = set(leads["email"].head(200)) | set(leads["phone"].head(200)) | names
    files = [p for p in store.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files), "the store is in the temporary folder"
    for path in files:
        content = path.read_bytes()
        leaked = [value for value in planted if value.encode() in content]
        assert not leaked, f"personal values {leaked[:3]} found in {path.relative_to(store)}"
    example = json.loads(next(p for p in files if p.name.startswith("input_example")).read_text())
    personal = {"email", "phone", "first_name", "last_name"} & set(example["columns"])
    assert not personal, f"personal columns {personal} in the input example"
