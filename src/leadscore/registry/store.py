"""Where MLflow runs and registered models go, and the aliases promotion uses.

The tracking URI comes from `MLFLOW_TRACKING_URI`; without it, a SQLite store `mlflow.db` in the
working folder (artifacts in `mlartifacts/` beside it). Promotion uses registry aliases
(`challenger`, `champion`), never the deprecated stages.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import mlflow.pyfunc
import requests
from mlflow.tracking import MlflowClient

from leadscore.errors import TrackingError

CHALLENGER, CHAMPION = "challenger", "champion"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, or a SQLite store in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def connect() -> MlflowClient:
    """Point MLflow at the tracking store and check that it answers before any work is done."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if uri.startswith(("http://", "https://")):
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=10).raise_for_status()
        except requests.RequestException as exc:
            raise TrackingError(
                f"the MLflow tracking server at {uri} is unreachable ({exc.__class__.__name__}); nothing was logged. "
                "Start it or fix MLFLOW_TRACKING_URI, then run again"
            ) from None
    return MlflowClient(tracking_uri=uri)


# MLflow 3's UI opens an experiment in the view its kind names; untagged, it may guess the GenAI view.
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if needed, tagged so that the UI opens it as model training."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return experiment.experiment_id
    location = None
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        # Keep a local store's artifacts beside its database, whatever the working folder is later.
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
