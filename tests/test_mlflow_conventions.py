"""The MLflow conventions a training run follows, read back from a real local store (SQLite in a temporary
folder): the experiment opens in the UI's model-training view, the training data is the run's input dataset
(without personal columns), the run has a readable name, the registered version describes itself with the
model card, and a config without a `tracking:` section registers under its own file's name."""

from __future__ import annotations

import json
import re

import mlflow
import pytest
import yaml
from helpers import cli, make_snapshot, snapshot_config, using_store
from mlflow.tracking import MlflowClient

from leadscore.config import load_config
from leadscore.registry.store import CHALLENGER, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from leadscore.reporting.model_card import MODEL_CARD_ARTIFACT

pytestmark = pytest.mark.slow  # reads the session's demo training, and trains a small model

# MLflow names a run it was given no name for with two random words and a number ("bouncy-owl-123").
RANDOM_RUN_NAME = re.compile(r"^[a-z]+-[a-z]+-\d+$")


@pytest.fixture(scope="module")
def logged(demo_run, demo_training):
    """The demo training's registered version, its run and the store's client: (version, run, client, result)."""
    store, _, registered = demo_run
    _, _, result = demo_training
    with using_store(store):
        client = MlflowClient()
        yield client.get_model_version(registered.name, registered.version), client.get_run(registered.run_id), \
            client, result


def test_the_experiment_opens_in_the_model_training_view(logged):
    _, run, client, _ = logged
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags.get(EXPERIMENT_KIND_TAG) == MODEL_TRAINING_KIND, \
        f"experiment '{experiment.name}' is tagged as model training, not {experiment.tags.get(EXPERIMENT_KIND_TAG)!r}"


def test_the_training_data_is_the_runs_input_dataset_without_personal_columns(logged):
    _, run, _, result = logged
    inputs = run.inputs.dataset_inputs
    assert inputs, "the training data is logged with mlflow.log_input (the UI shows it under Datasets)"
    contexts = [tag.value for d in inputs for tag in d.tags if tag.key == "mlflow.data.context"]
    assert "training" in contexts, f"the dataset is logged as the training input, not {contexts}"

    dataset = inputs[0].dataset
    columns = {spec["name"] for spec in json.loads(dataset.schema)["mlflow_colspec"]}
    table = result.table
    assert {table.id_column, table.label_column, *table.feature_columns} <= columns, "its schema is the training table's"
    personal = set(table.dropped_personal)
    assert personal, "the demo data has personal columns to leave out"
    assert not personal & columns, f"personal columns {sorted(personal & columns)} in the logged dataset"
    assert dataset.digest and json.loads(dataset.profile).get("num_rows") == len(table.frame), \
        "the dataset records its digest and row count"


def test_the_run_has_a_readable_name(logged):
    version, run, _, result = logged
    name = run.info.run_name
    assert not RANDOM_RUN_NAME.match(name), f"run name {name!r} is MLflow's random one"
    assert version.name in name and result.winner.name in name, \
        f"run name {name!r} says which model it trained and what won"


def test_the_registered_versions_description_is_the_model_card(logged):
    version, run, _, _ = logged
    card = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{MODEL_CARD_ARTIFACT}")
    assert card.strip(), "the run logs a model card"
    assert version.description == card, "the registry page of the version shows its model card"
    # The store is the session's demo store, where later tests register and promote other versions, so the
    # aliases are checked where registration is tested on a store of its own (tests/test_end_to_end.py).
    assert version.run_id == run.info.run_id, "the version is the run's model"


def test_a_config_without_tracking_section_registers_under_its_file_name(tmp_path):
    # Given a config file named after its project, with no `tracking:` section
    make_snapshot(2000, seed=5).to_csv(tmp_path / "train.csv", index=False)
    raw = snapshot_config(tmp_path / "train.csv")
    del raw["tracking"]
    config = tmp_path / "acme leads.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert load_config(config).tracking.registered_model == "leadscore-acme-leads", "named after the file"

    # When it trains into a fresh store
    with using_store(tmp_path):
        assert cli("train", "--config", config) == 0, "training failed"
        client = MlflowClient()

        # Then it registered under leadscore-<file stem>, in an experiment of that name, and left `leadscore` alone
        version = client.get_model_version_by_alias("leadscore-acme-leads", CHALLENGER)
        experiment = client.get_experiment(client.get_run(version.run_id).info.experiment_id)
        assert experiment.name == "leadscore-acme-leads", f"its own experiment, not {experiment.name!r}"
        assert [m.name for m in client.search_registered_models()] == ["leadscore-acme-leads"], \
            "the demo's `leadscore` model and its aliases are not touched"
