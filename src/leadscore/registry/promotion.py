"""Promotion: move the `champion` alias to the challenger when it beats the champion.
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException

from leadscore.errors import TrackingError
from leadscore.model.rules import PointsScorer
from leadscore.model.scorer import LeadScorer
from leadscore.registry.loading import load_model
from leadscore.registry.runs import TEST_WINDOW_ARTIFACT
from leadscore.registry.store import CHALLENGER, CHAMPION, connect
from leadscore.reporting.metrics import probability_metrics

HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}


def promote(name: str, metric: str, force: bool = False) -> str:
    """Move `champion` to the challenger if it beats the champion on the challenger's test window.

    Without a champion the challenger is promoted. The reason is recorded as a tag on the version.
    Returns a one-line account of what happened.
    """
    client = connect()
    try:
        challenger = client.get_model_version_by_alias(name, CHALLENGER)
    except MlflowException:
        raise TrackingError(f"registered model '{name}' has no '{CHALLENGER}' version: train one first") from None
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None

    if champion is not None and champion.version == challenger.version:
        return f"version {challenger.version} is already {CHAMPION}"
    if champion is None:
        reason = f"no {CHAMPION} yet"
    elif force:
        reason = f"forced over version {champion.version}"
    else:
        scorers = _scorers(name, challenger, champion)
        # Points have no probability to compare: a learned model always replaces them, never the reverse.
        challenger_is_points, champion_is_points = (isinstance(s, PointsScorer) for s in scorers.values())
        if challenger_is_points and not champion_is_points:
            verdict = "a points fallback does not replace a learned champion (use --force)"
            client.set_model_version_tag(name, challenger.version, "promotion", f"rejected: {verdict}")
            return f"kept version {champion.version} as {CHAMPION}: {verdict}"
        if champion_is_points and not challenger_is_points:
            reason = f"a learned model replaces the points fallback (version {champion.version})"
        else:
            challenger_value, champion_value, rows = _compare_on_test_window(challenger, scorers, metric)
            better = challenger_value > champion_value if HIGHER_IS_BETTER[metric] else challenger_value < champion_value
            verdict = (f"{metric} {challenger_value:.5f} (v{challenger.version}) vs {champion_value:.5f} "
                       f"(v{champion.version}) on {rows} test rows of v{challenger.version}'s run")
            if not better:
                client.set_model_version_tag(name, challenger.version, "promotion", f"rejected: {verdict}")
                return f"kept version {champion.version} as {CHAMPION}: {verdict}"
            reason = f"beats champion: {verdict}"
    client.set_registered_model_alias(name, CHAMPION, challenger.version)
    client.set_model_version_tag(name, challenger.version, "promotion", reason)
    return f"version {challenger.version} is now {CHAMPION} ({reason})"


def _scorers(name: str, challenger, champion) -> dict[str, LeadScorer | PointsScorer]:
    """The scorers of the challenger and the champion, in that order, keyed by version; each loaded once."""
    return {version.version: load_model(f"models:/{name}/{version.version}").scorer for version in (challenger, champion)}


def _compare_on_test_window(challenger, scorers: dict[str, LeadScorer], metric) -> tuple[float, float, int]:
    """`metric` of the challenger and the champion (the scorers, challenger first) on the challenger's test window."""
    path = mlflow.artifacts.download_artifacts(run_id=challenger.run_id, artifact_path=TEST_WINDOW_ARTIFACT)
    window = pd.read_parquet(path)
    label = mlflow.get_run(challenger.run_id).data.tags["label_column"]
    values = []
    for version, scorer in scorers.items():
        missing = [c for c in scorer.feature_columns if c not in window.columns]
        if missing:
            raise TrackingError(
                f"version {version} needs columns {missing[:5]} that the challenger's test window lacks, so "
                "the two cannot be compared on the same rows; use --force to promote anyway"
            )
        p = scorer.predict_proba(scorer.validate_features(window))
        values.append(probability_metrics(window[label].to_numpy(), p)[metric])
    return values[0], values[1], len(window)
