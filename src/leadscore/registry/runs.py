"""What a training run logs to MLflow (params, metrics, plots, model card, the pyfunc model), and its
registration as the `challenger` version.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import mlflow.data
import mlflow.pyfunc
import numpy as np
import pandas as pd
import requests
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema

from leadscore import __version__
from leadscore.config import Config, PointsCutoffs
from leadscore.errors import TrackingError
from leadscore.model.cutoffs import Cutoffs
from leadscore.model.pyfunc import PARAMS, LeadScorerModel
from leadscore.registry.loading import LEADSCORE_VERSION_KEY
from leadscore.registry.store import CHALLENGER, connect, experiment_id
from leadscore.reporting.importance import write_global_explanations
from leadscore.reporting.model_card import MODEL_CARD_ARTIFACT, model_card
from leadscore.training.pipeline import TrainingResult

MODEL_NAME_IN_RUN = "scorer"
TEST_WINDOW_ARTIFACT = "evaluation/test_window.parquet"
_RUNTIME_PACKAGES = ("scikit-learn", "lightgbm", "pandas", "numpy", "pyarrow", "pandera", "pydantic", "pyyaml", "matplotlib")


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version and the run that produced it."""

    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@contextmanager
def training_run(cfg: Config) -> Iterator[str]:
    """An MLflow run open for the whole of a training, so that the UI shows it while it trains; yields its id.

    Named `<registered model> <date time>` (renamed after the winner once known); a training that fails ends
    the run as failed, with what was logged so far."""
    client = connect()
    try:
        experiment = experiment_id(client, cfg.tracking.experiment)
        run = mlflow.start_run(experiment_id=experiment,
                               run_name=f"{cfg.tracking.registered_model} {datetime.now():%Y-%m-%d %H:%M}")
    except (MlflowException, requests.RequestException) as exc:
        raise TrackingError(f"opening the training run failed: {exc}; nothing was trained") from exc
    status = "FAILED"
    try:
        yield run.info.run_id
        status = "FINISHED"
    finally:
        try:
            mlflow.end_run(status)
        except (MlflowException, requests.RequestException):
            pass  # the error that stopped training says more than a failure to close its run


def log_training(result: TrainingResult, cfg: Config) -> RegisteredVersion:
    """Log a training run (params, metrics, plots, data, model card, model) and register it as challenger.

    Logs into the active run (see `training_run`), else into a new run of the config's experiment."""
    if mlflow.active_run() is not None:
        return _log_and_register(result, cfg)
    with training_run(cfg):
        return _log_and_register(result, cfg)


def _log_and_register(result: TrainingResult, cfg: Config) -> RegisteredVersion:
    client = connect()
    run_id = mlflow.active_run().info.run_id
    example = _input_example(result)
    try:
        mlflow.set_tag("mlflow.runName", f"{result.winner.name} {cfg.tracking.registered_model} {datetime.now():%Y-%m-%d %H:%M}")
        _log_params_and_metrics(result, cfg)
        _log_training_data(result, cfg)
        card = _log_artifacts(result, cfg, run_id)
        model_info = mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN,
            python_model=LeadScorerModel(result.scorer),
            signature=_signature(example, result.scorer.predict(example)),
            input_example=example,
            # leadscore itself, so that `mlflow models serve` can build the model's environment by itself.
            pip_requirements=[f"{p}=={package_version(p)}" for p in ("leadscore", "mlflow", *_RUNTIME_PACKAGES)],
            # Readable without unpickling, so that a model from another release is refused with a clear message.
            metadata={LEADSCORE_VERSION_KEY: __version__},
        )
    except (MlflowException, requests.RequestException, OSError) as exc:
        raise TrackingError(f"logging the training run failed: {exc}; no model version was registered") from exc
    return _register(client, cfg.tracking.registered_model, model_info.model_uri, run_id, result, card)


def _log_training_data(result: TrainingResult, cfg: Config) -> None:
    """The training table as the run's input dataset (schema, digest, row count; MLflow stores no rows).

    The table holds ids, features and the label only: personal columns were dropped on reading."""
    t = result.table
    frame = t.frame[[t.id_column, *t.feature_columns, t.label_column]]
    source = str(cfg.data.resolved_path.resolve())
    with warnings.catch_warnings():
        # A local path matches MLflow's local-artifact source twice over; it says so, and picks the right one.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted", category=UserWarning)
        # The dataset's schema documents the training table (its label is an integer); the hint about integer
        # columns concerns model inputs, which are declared untyped (`_signature`).
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=source, targets=t.label_column, name=cfg.data.resolved_path.name)
        mlflow.log_input(dataset, context="training")  # infers the schema, hence inside the filters


def _register(client: MlflowClient, name: str, model_uri: str, run_id: str, result: TrainingResult,
              card: str = "") -> RegisteredVersion:
    try:
        registered = mlflow.register_model(model_uri, name, tags={"run_id": run_id})
    except (MlflowException, requests.RequestException) as exc:
        raise TrackingError(f"registering the model failed: {exc}; no model version was registered") from exc
    try:
        if card:
            # The registry page of the version then tells what it is without opening the run.
            client.update_model_version(name, registered.version, description=card)
        for key, value in result.metrics["leadscore"].items():
            client.set_model_version_tag(name, registered.version, f"test_{key}", f"{value:.6g}")
        if "metrics.source" in result.run_tags:
            client.set_model_version_tag(name, registered.version, "test_metrics_source", result.run_tags["metrics.source"])
        client.set_registered_model_alias(name, CHALLENGER, registered.version)
    except (MlflowException, requests.RequestException) as exc:
        # A version without its alias and tags would be half-registered: remove it.
        try:
            client.delete_model_version(name, registered.version)
        except (MlflowException, requests.RequestException):
            pass
        raise TrackingError(f"tagging model version {registered.version} failed: {exc}; the version was removed") from exc
    return RegisteredVersion(name, str(registered.version), run_id)


def _input_example(result: TrainingResult) -> pd.DataFrame:
    """A few test rows: ids and features only (personal columns never reach the training table), and with accounts
    the account column, so that the signature declares it and serving and Spark pass it to the model."""
    t = result.table
    extra = [t.account_column] if t.account_column and t.account_column not in (t.id_column, *t.feature_columns) else []
    return result.split.test[[t.id_column, *t.feature_columns, *extra]].drop_duplicates(subset=[t.id_column]).head(5)


def _signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """Input columns are declared without a type: the scorer's own validation checks types and
    names the offending rows, where MLflow's would reject an integer column declared as double."""
    inputs = Schema([ColSpec(AnyType(), str(column)) for column in example.columns])
    with warnings.catch_warnings():
        # Its hint about integer inputs with missing values concerns typed inputs; these are untyped (above).
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        inferred = infer_signature(example, output, params=PARAMS)
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = json.dumps(value, default=str) if isinstance(value, list) else str(value)
    return out


def _log_params_and_metrics(result: TrainingResult, cfg: Config) -> None:
    params = _flatten("", cfg.model_dump(mode="json"), {})
    params.update({
        "trained.model": result.winner.name,
        "trained.calibration": result.winner.calibration_method,
        "trained.split_method": result.split.method,
        "trained.n_features": len(result.table.feature_columns),
        # test_* figures come from a backtest model; the registered one was refitted on every row (see run tags).
        "trained.refit_on_all_rows": result.backtest is not None,
    })
    mlflow.log_params({k: v[:6000] for k, v in ((k, str(v)) for k, v in params.items())})
    metrics = {}
    for model, values in result.metrics.items():
        prefix = "test_" if model == "leadscore" else f"{model}_test_"
        metrics.update({f"{prefix}{key}": value for key, value in values.items() if np.isfinite(value)})
    for window, frame in result.split.windows().items():
        metrics[f"{window}_rows"] = len(frame)
        metrics[f"{window}_conversions"] = int(frame[result.table.label_column].sum())
    metrics["purged_rows"] = result.split.purged_rows
    metrics["calibration_oof_log_loss"] = result.winner.calibration_log_loss
    metrics.update(_cutoff_metrics(result))
    metrics.update(result.run_metrics)  # the rolling-origin backtest behind the choices, and the deployed rows
    mlflow.log_metrics(metrics)
    mlflow.set_tags({
        "data_fingerprint": result.fingerprint,
        "leadscore_version": __version__,
        "code_version": _code_version(),
        "split_method": result.split.method,
        "label_column": result.table.label_column,
        **{f"split.{k}": v for k, v in result.split.boundaries.items()},
        **_dimension_tags(result),
        **_leakage_tags(result),
        **result.run_tags,  # which figures are the backtest's, how the deployed model was refitted and chosen
    })


def _leakage_tags(result: TrainingResult) -> dict[str, str]:
    """The leakage guard's verdict: the flagged columns, and per column why (its evidence is in evaluation/)."""
    if result.leakage is None:
        return {}
    tags = {"leakage.flagged": ", ".join(result.leakage.flagged) or "none"}
    for finding in result.leakage.findings:
        key = "".join(c if c.isalnum() or c in "_-. /" else "_" for c in finding.column)  # what MLflow accepts in a key
        tags[f"leakage.column.{key}"] = finding.message[:5000]
    return tags


def _cutoff_metrics(result: TrainingResult) -> dict[str, float]:
    cutoffs = result.scorer.cutoffs
    if isinstance(cutoffs, PointsCutoffs):
        return {"cutoff_mql_points": cutoffs.mql, "cutoff_sql_points": cutoffs.sql}
    if cutoffs is None:
        return {}
    metrics = {
        "cutoff_mql_probability": cutoffs.mql, "cutoff_sql_probability": cutoffs.sql,
        "cutoff_mql_points": cutoffs.mql_points, "cutoff_sql_points": cutoffs.sql_points,
    }
    for row in result.tables["cutoff_bands"].itertuples():
        band = row.band.replace(" ", "_").lower()
        metrics[f"{row.window}_{band}_conversion_rate"] = row.conversion_rate
        metrics[f"{row.window}_{band}_share_of_leads"] = row.share_of_leads
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}


def _dimension_tags(result: TrainingResult) -> dict[str, str]:
    tags = {}
    scorer = result.scorer
    if isinstance(scorer.cutoffs, Cutoffs):
        tags.update({"cutoff.mql_policy": scorer.cutoffs.mql_policy, "cutoff.sql_policy": scorer.cutoffs.sql_policy})
        if scorer.cutoffs.notes:
            tags["cutoff.notes"] = " ".join(scorer.cutoffs.notes)
        if scorer.cutoffs.warnings:
            tags["cutoff.warnings"] = " ".join(scorer.cutoffs.warnings)[:5000]
    if scorer.dimensions is not None:
        for name, model in scorer.dimensions.models.items():
            tags[f"dimension.{name}"] = f"{model.model} on {len(model.columns)} columns, target: {model.target}"
        for name, reason in scorer.dimensions.absent.items():
            tags[f"dimension.{name}"] = f"absent: {reason}"
    return tags


def _log_artifacts(result: TrainingResult, cfg: Config, run_id: str) -> str:
    """Config, metrics, evaluation tables, plots, explanations and the model card; returns the card."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        metrics = pd.DataFrame(result.metrics).T.rename_axis("model").reset_index()
        metrics.to_csv(folder / "test_metrics.csv", index=False)
        (folder / "evaluation").mkdir()
        for name, table in result.tables.items():
            table.to_csv(folder / "evaluation" / f"{name}.csv", index=False)
        result.test_frame.to_parquet(folder / TEST_WINDOW_ARTIFACT, index=False)
        (folder / "plots").mkdir()
        for name, figure in result.figures.items():
            figure.savefig(folder / "plots" / name, dpi=110)
        explanations = write_global_explanations(result.scorer, result.split.test, folder / "explanations", seed=cfg.model.seed)
        card = model_card(result, cfg, explanations, run_id)
        (folder / MODEL_CARD_ARTIFACT).write_text(card)
        mlflow.log_artifacts(tmp)
    return card


def _code_version() -> str:
    """The git commit of the package source when it is a checkout, else the package version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
            timeout=5, check=True,
        ).stdout.strip()
        return f"git:{commit}"
    except (OSError, subprocess.SubprocessError):
        return f"leadscore=={__version__}"
