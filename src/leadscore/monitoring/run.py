"""One monitoring run, wired: a window of past scores, their outcomes, the figures and the verdict per model
version (and overall when the window holds several), from the models' own horizon and backtest AUC.

The horizon of a model is the one it was trained with (`LeadScorer.metadata["horizon_days"]`); its backtest
ROC AUC is the `test_roc_auc` tag of its registered version (from the pipeline fitted without the test window),
with the test window's size from the run's `test_rows` and `test_conversions` metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.errors import ConfigError, InputError, LeadscoreError
from leadscore.monitoring.figures import GroupFigures, group_figures
from leadscore.monitoring.outcomes import (
    ISSUED,
    LabelledScores,
    Outcomes,
    label_scores,
    select_window,
    validate_history,
)
from leadscore.monitoring.verdict import Backtest, Verdict, decide

log = logging.getLogger(__name__)
OVERALL = "all versions"


@dataclass(frozen=True)
class ModelReference:
    """What monitoring needs to know of a model version: its horizon and its backtest ROC AUC (when known)."""

    name: str
    version: str
    horizon_days: float
    backtest: Backtest | None = None


@dataclass(frozen=True)
class GroupResult:
    """One group's figures and verdict."""

    figures: GroupFigures
    verdict: Verdict


@dataclass(frozen=True)
class MonitoringResult:
    """A monitoring run's window, accounting of scores, and per-group figures and verdicts."""

    window: dict[str, str]  # since, until (exclusive), observed_until, issued_days_ago
    labelled: LabelledScores
    groups: dict[str, GroupResult]  # "<name> <version>" per version, plus OVERALL with several versions
    references: dict[str, ModelReference]

    def to_json(self) -> dict:
        """Every figure and count as plain JSON values (no lead ids, no personal data)."""
        return {
            "window": self.window,
            "counts": self.labelled.counts,
            "counts_by_version": {f"{n} {v}": c for (n, v), c in self.labelled.counts_by_version.items()},
            "models": {key: {"horizon_days": ref.horizon_days,
                             "backtest_roc_auc": ref.backtest.roc_auc if ref.backtest else None,
                             "backtest_positives": ref.backtest.positives if ref.backtest else None,
                             "backtest_negatives": ref.backtest.negatives if ref.backtest else None}
                       for key, ref in self.references.items()},
            "groups": {name: {"figures": _plain(group.figures.summary()),
                              "tables": {t: _records(table) for t, table in group.figures.tables().items()},
                              "verdict": {"action": group.verdict.action, "text": group.verdict.text(),
                                          "calibration_drift": group.verdict.calibration_drift,
                                          "in_the_large_drift": group.verdict.in_the_large_drift,
                                          "shape_drift": group.verdict.shape_drift,
                                          "ranking_dropped": group.verdict.ranking_dropped}}
                       for name, group in self.groups.items()},
        }


def version_key(name: str, version: str) -> str:
    """How a model version is named in reports, metrics and JSON."""
    return f"{name} {version}"


def monitor(history: pd.DataFrame, outcomes: Outcomes, references: dict[tuple[str, str], ModelReference] | ModelReference,
            *, issued_days_ago: int | None = None, since=None, until=None, confidence: float = 0.95,
            seed: int = 0) -> MonitoringResult:
    """Monitor the past scores of `history` (columns of `leadscore.history.store.read_history`) against `outcomes`.

    `references` gives each (model_name, model_version) of the window its horizon and backtest; one reference
    alone monitors only that model's scores. The window is one scoring day `issued_days_ago` days before the
    observation time, or `since` to `until`; by default every score. Raises `InputError` on missing columns, an
    empty window, no overlap of history and outcomes, or no score whose horizon has elapsed."""
    history = validate_history(history)
    if isinstance(references, ModelReference):
        one = references
        mine = (history["model_name"] == one.name) & (history["model_version"] == one.version)
        if not mine.any():
            present = sorted(set(zip(history["model_name"], history["model_version"])))
            raise InputError(
                f"the score history holds no score of model {one.name} version {one.version}; it holds "
                f"{', '.join(f'{n} {v}' for n, v in present[:10])}", column="model_version",
                fix="give the model that issued the scores (--model), or leave --model out to monitor each version")
        history = history.loc[mine.to_numpy()]
        references = {(one.name, one.version): one}
    window = select_window(history, observed_until=outcomes.observed_until, issued_days_ago=issued_days_ago,
                           since=since, until=until)
    labelled = label_scores(window, outcomes, {key: ref.horizon_days for key, ref in references.items()})
    frame = labelled.frame
    if frame.empty:
        c = labelled.counts
        raise InputError(
            f"no score of the window can be checked yet: of {c['window']} scores, {c['censored']} have a label window "
            f"that ends after the observation time {outcomes.observed_until} (censored), {c['closed_before']} were of "
            f"leads already closed, {c['unknown_lead']} of leads not in the export, {c['repeat']} repeats",
            column="scored_at", fix="choose an earlier window (--issued-days-ago at least the horizon) or newer outcomes")
    groups = {}
    for (name, version), rows in frame.groupby(["model_name", "model_version"], sort=True):
        ref = references[(name, version)]
        groups[version_key(name, version)] = _group(rows, ref.backtest, confidence, seed)
    if len(groups) > 1:
        # Several versions: the overall verdict compares with no single backtest, so the ranking is not checked.
        groups[OVERALL] = _group(frame, None, confidence, seed)
    scored = window[ISSUED]
    described = {
        "since": str(_utc_or(since, scored.min())), "until": str(_utc_or(until, scored.max())),
        "observed_until": str(outcomes.observed_until),
        "issued_days_ago": "" if issued_days_ago is None else str(issued_days_ago),
        "conversion_stage": outcomes.conversion_stage, "outcomes_ignored_after_observation": str(outcomes.ignored_after),
    }
    if issued_days_ago is not None:
        day = (outcomes.observed_until - pd.Timedelta(days=issued_days_ago)).normalize()
        described.update(since=str(day), until=str(day + pd.Timedelta(days=1)))
    return MonitoringResult(described, labelled, groups, {version_key(*k): r for k, r in references.items()})


def _group(rows: pd.DataFrame, backtest: Backtest | None, confidence: float, seed: int) -> GroupResult:
    optional = {c: rows[c].reset_index(drop=True) if c in rows.columns else None for c in ("grade", "is_mql", "is_sql")}
    figures = group_figures(rows["converted"].to_numpy(), rows["p_convert"].to_numpy(), confidence=confidence,
                            seed=seed, **optional)
    return GroupResult(figures, decide(figures, backtest))


def reference_of(uri: str, *, horizon_days: float | None = None, backtest_auc: float | None = None) -> ModelReference:
    """Load the model at `uri` (registry or folder) for its name, version and training horizon, and read its
    backtest ROC AUC from the registry; `horizon_days` and `backtest_auc` replace what the model records."""
    from leadscore.registry.loading import load_model

    loaded = load_model(uri)
    horizon = horizon_days if horizon_days is not None else loaded.scorer.metadata.get("horizon_days")
    if horizon is None:
        raise ConfigError(f"model {uri} records no horizon (it was trained on a snapshot table): give the "
                          "horizon its p_convert refers to with --horizon-days")
    backtest = Backtest(backtest_auc) if backtest_auc is not None else _registered_backtest(loaded.name, loaded.version)
    return ModelReference(loaded.name, loaded.version, float(horizon), backtest)


def references_for(history: pd.DataFrame, *, horizon_days: float | None = None,
                   backtest_auc: float | None = None) -> dict[tuple[str, str], ModelReference]:
    """A reference per model version of the history, each loaded from the registry as `models:/name/version`;
    with `horizon_days` given, no model is loaded (the backtest AUC is then `backtest_auc`, or the registry's
    tag when the version is registered)."""
    versions = sorted(set(zip(history["model_name"].astype("string"), history["model_version"].astype("string"))))
    references = {}
    for name, version in versions:
        if horizon_days is not None:
            backtest = Backtest(backtest_auc) if backtest_auc is not None else _registered_backtest(name, version)
            references[(name, version)] = ModelReference(name, version, float(horizon_days), backtest)
            continue
        try:
            references[(name, version)] = reference_of(f"models:/{name}/{version}", backtest_auc=backtest_auc)
        except LeadscoreError as exc:
            raise ConfigError(f"the scores of model {name} version {version} need that model's horizon, but it "
                              f"cannot be loaded from the registry ({exc}); give --model URI or --horizon-days") from exc
    return references


def _registered_backtest(name: str, version: str) -> Backtest | None:
    """The backtest ROC AUC of a registered version and its test window's counts; None when not registered."""
    from mlflow.exceptions import MlflowException

    from leadscore.registry.store import connect

    try:
        client = connect()
        registered = client.get_model_version(name, version)
        auc = registered.tags.get("test_roc_auc")
        if auc is None:
            return None
        metrics = client.get_run(registered.run_id).data.metrics if registered.run_id else {}
    except (MlflowException, LeadscoreError, OSError) as exc:
        log.info("no registered backtest for %s %s: %s", name, version, exc)
        return None
    rows, conversions = metrics.get("test_rows"), metrics.get("test_conversions")
    if rows is None or conversions is None:
        return Backtest(float(auc))
    return Backtest(float(auc), int(conversions), int(rows - conversions))


def _utc_or(moment, fallback: pd.Timestamp) -> pd.Timestamp:
    if moment is None:
        return fallback
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _plain(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()}


def _records(table: pd.DataFrame) -> list[dict]:
    return [_plain({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
            for row in table.to_dict(orient="records")]
