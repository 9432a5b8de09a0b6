"""A monitoring run in MLflow: the window and model versions as params, the figures as metrics, the report as
artifacts; in the store the project uses (`leadscore.registry.store`: MLFLOW_TRACKING_URI, else `mlflow.db`).

Metric keys are `<figure>` for the main group (all versions together, or the one version) and
`<model name>.<version>.<figure>` per version. Nothing logged names a lead.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

import mlflow
import requests
from mlflow.exceptions import MlflowException

from leadscore.errors import TrackingError
from leadscore.monitoring.report import main_group
from leadscore.monitoring.run import MonitoringResult
from leadscore.registry.store import connect, experiment_id

EXPERIMENT = "leadscore-monitoring"
_METRICS = ("leads", "conversions", "predicted_mean", "realised_rate", "rate_ci_low", "rate_ci_high", "z",
            "ece", "ece_noise_quantile", "roc_auc")


def log_monitoring_run(result: MonitoringResult, files: dict[str, Path], *, experiment: str = EXPERIMENT) -> str:
    """Log `result` and its report `files` (see `leadscore.monitoring.report.write_report`) as one MLflow run; its id."""
    client = connect()
    main = main_group(result)
    params = {f"window.{k}": v for k, v in result.window.items() if v != ""}
    params["model_versions"] = ", ".join(result.references)
    params.update({f"horizon_days.{_key(k)}": ref.horizon_days for k, ref in result.references.items()})
    params["verdict"] = result.groups[main].verdict.action
    metrics = {f"scores_{name}": value for name, value in result.labelled.counts.items()}
    for name, group in result.groups.items():
        prefix = "" if name == main else f"{_key(name)}."
        summary = group.figures.summary()
        metrics.update({f"{prefix}{m}": float(summary[m]) for m in _METRICS if summary.get(m) is not None})
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}  # NaN is not a metric
    try:
        run = mlflow.start_run(experiment_id=experiment_id(client, experiment),
                               run_name=f"monitor {params['model_versions']} {datetime.now():%Y-%m-%d %H:%M}")
        with run:
            mlflow.set_tags({"leadscore.kind": "monitoring", "verdict": params["verdict"]})
            mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
            mlflow.log_metrics(metrics)
            for path in files.values():
                mlflow.log_artifact(str(path), artifact_path="monitoring")
        return run.info.run_id
    except (MlflowException, requests.RequestException, OSError) as exc:
        raise TrackingError(f"logging the monitoring run failed: {exc}; the report on disk is complete") from exc


def _key(text: str) -> str:
    """Text as MLflow accepts in a key (letters, digits, `_-. /`)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text).replace(" ", ".")
