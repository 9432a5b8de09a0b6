"""Promotion: move the `champion` alias to the challenger when it beats the champion on data neither was fitted on.

The rule
--------
A registered model is refitted on every row it was given, the latest included (see
`leadscore.training.pipeline`), so no row of its own data can judge it. Each run therefore logs its
*backtest*: the same pipeline fitted without the test window, and its probabilities of that window's rows
(`evaluation/test_window.parquet`, column `backtest_p_convert`), plus where the registered model's data
ends (tag `training.label_end` with a time split: its latest row's time plus the label horizon; else the
ids it was fitted on, `evaluation/training_ids.csv`). `promote` then compares, on `metric`:

1. **Rows neither model was fitted on.** The challenger's test-window rows that come after everything the
   champion learned from (at or after its `training.label_end`, so that no outcome is shared; or, without
   time, ids the champion never saw). There the champion's registered model is scored against the
   challenger's backtest model, the challenger's pipeline without those rows: both forecast data they
   never saw, and the challenger's registered model (which learned from them too) is only more recent.
2. **Otherwise, the two backtests on the same rows.** When the champion was trained on the same period
   (a retrain on the same or overlapping data), the two *backtest* pipelines are compared on the
   challenger's test window, provided the champion's run logged backtest probabilities for exactly those
   rows (same ids and times, same labels).
3. **Otherwise, no automatic promotion.** The challenger stays challenger with the reason on its version
   (`promotion` tag); `--force` promotes it anyway.

Both classes must be present in the rows compared. Without a champion the challenger is promoted; a learned
model always replaces a points fallback, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from leadscore.errors import TrackingError
from leadscore.model.rules import PointsScorer
from leadscore.model.scorer import LeadScorer
from leadscore.registry.loading import load_model
from leadscore.registry.runs import TEST_WINDOW_ARTIFACT
from leadscore.registry.store import CHALLENGER, CHAMPION, connect
from leadscore.reporting.metrics import probability_metrics
from leadscore.training.pipeline import BACKTEST_COLUMN

TRAINING_IDS_ARTIFACT = "evaluation/training_ids.csv"  # the ids a model without a time split was fitted on

HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}


def promote(name: str, metric: str, force: bool = False) -> str:
    """Move `champion` to the challenger if it beats the champion on `metric`, on data neither was fitted on.

    The rule is the module docstring's. Without a champion the challenger is promoted; `force` promotes
    without comparing. The reason is recorded as a tag on the version. Returns a one-line account of what
    happened.
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
            try:
                comparison = fair_comparison(challenger, champion, scorers, metric)
            except NoFairComparison as refused:
                verdict = f"no fair comparison: {refused} (use --force to promote anyway)"
                client.set_model_version_tag(name, challenger.version, "promotion", f"not promoted: {verdict}")
                return f"kept version {champion.version} as {CHAMPION}: {verdict}"
            better = (comparison.challenger > comparison.champion if HIGHER_IS_BETTER[metric]
                      else comparison.challenger < comparison.champion)
            verdict = (f"{metric} {comparison.challenger:.5f} (v{challenger.version}) vs {comparison.champion:.5f} "
                       f"(v{champion.version}) {comparison.basis}")
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


class NoFairComparison(Exception):
    """No rows on which champion and challenger can be compared fairly; the message says why."""


@dataclass(frozen=True)
class Comparison:
    """`metric` of the challenger and of the champion on the same rows, and which rows and models those were."""

    challenger: float
    champion: float
    rows: int
    basis: str


def fair_comparison(challenger, champion, scorers: dict[str, LeadScorer], metric: str) -> Comparison:
    """Compare the two versions by the module's rule (1, then 2); `NoFairComparison` when neither applies."""
    window = _artifact(challenger.run_id, TEST_WINDOW_ARTIFACT, pd.read_parquet)
    if window is None or BACKTEST_COLUMN not in window.columns:
        raise NoFairComparison(f"the run of v{challenger.version} logged no backtest probabilities of its test window")
    tags = mlflow.get_run(challenger.run_id).data.tags
    label, time_column = tags["label_column"], tags.get("time_column")
    id_column = scorers[challenger.version].id_column
    y = window[label].to_numpy()

    unseen = _unseen_by(champion, window, id_column, time_column)
    if unseen is not None and len(np.unique(y[unseen])) == 2:
        rows = window[unseen]
        scorer = scorers[champion.version]
        _require_columns(scorer, rows, champion.version)
        p_champion = scorer.predict_proba(scorer.validate_features(rows))
        return Comparison(
            _metric(rows[label].to_numpy(), rows[BACKTEST_COLUMN].to_numpy(), metric),
            _metric(rows[label].to_numpy(), p_champion, metric), int(unseen.sum()),
            f"on {int(unseen.sum())} test rows of v{challenger.version}'s run that neither model was fitted on "
            f"(v{challenger.version}'s backtest model against v{champion.version}'s registered model)",
        )

    theirs = _artifact(champion.run_id, TEST_WINDOW_ARTIFACT, pd.read_parquet)
    keys = [id_column, *([time_column] if time_column else [])]
    if theirs is None or BACKTEST_COLUMN not in theirs.columns or not set(keys + [label]) <= set(theirs.columns):
        raise NoFairComparison(
            f"v{challenger.version}'s test rows all overlap what v{champion.version} was fitted on, and "
            f"v{champion.version}'s run logged no backtest probabilities to compare the two backtests instead")
    matched = _same_rows(window, theirs, keys, label)
    if matched is None:
        raise NoFairComparison(
            f"v{challenger.version}'s test rows all overlap what v{champion.version} was fitted on, and "
            f"v{champion.version}'s backtest was measured on other rows (another split or other data)")
    return Comparison(
        _metric(y, window[BACKTEST_COLUMN].to_numpy(), metric), _metric(y, matched, metric), len(window),
        f"on the same {len(window)} test rows, backtest against backtest (each pipeline fitted without them; "
        f"v{champion.version}'s registered model was fitted on them)",
    )


def _unseen_by(champion, window: pd.DataFrame, id_column: str, time_column: str | None) -> np.ndarray | None:
    """Which rows of `window` the champion's registered model shares no outcome with, or None when its run says
    nothing of where its data ends."""
    label_end = mlflow.get_run(champion.run_id).data.tags.get("training.label_end")
    if label_end is not None and time_column and time_column in window.columns:
        return (pd.to_datetime(window[time_column], utc=True) >= pd.Timestamp(label_end)).to_numpy()
    ids = _artifact(champion.run_id, TRAINING_IDS_ARTIFACT, lambda path: pd.read_csv(path, dtype=str))
    if ids is None or id_column not in ids.columns:
        return None
    return (~window[id_column].astype(str).isin(set(ids[id_column]))).to_numpy()


def _same_rows(window: pd.DataFrame, theirs: pd.DataFrame, keys: list[str], label: str) -> np.ndarray | None:
    """The champion's backtest probabilities for exactly the rows of `window` (same keys, same labels), else None."""
    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({k: frame[k].astype(str) for k in keys})
        if len(keys) > 1:
            out[keys[1]] = pd.to_datetime(frame[keys[1]], utc=True).astype(str)
        return out.assign(**{"_label": frame[label].to_numpy(), "_p": frame[BACKTEST_COLUMN].to_numpy()})

    ours, other = keyed(window), keyed(theirs)
    if len(ours) != len(other) or ours.duplicated(keys).any() or other.duplicated(keys).any():
        return None
    merged = ours[keys + ["_label"]].merge(other, on=keys, how="left", suffixes=("", "_theirs"))
    if merged["_p"].isna().any() or not (merged["_label"] == merged["_label_theirs"]).all():
        return None
    return merged["_p"].to_numpy(dtype="float64")


def _artifact(run_id: str, path: str, read):
    """An artifact of a run read with `read`, or None when the run has no such artifact."""
    try:
        return read(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))
    except (MlflowException, OSError):
        return None


def _require_columns(scorer: LeadScorer, window: pd.DataFrame, version: str) -> None:
    missing = [c for c in scorer.feature_columns if c not in window.columns]
    if missing:
        raise TrackingError(
            f"version {version} needs columns {missing[:5]} that the challenger's test window lacks, so "
            "the two cannot be compared on the same rows; use --force to promote anyway"
        )


def _metric(y: np.ndarray, p: np.ndarray, metric: str) -> float:
    return probability_metrics(np.asarray(y), np.asarray(p, dtype="float64"))[metric]
