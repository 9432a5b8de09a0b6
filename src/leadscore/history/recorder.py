"""The scoring job's side of the history (`leadscore score --history DIR`).

The job (`leadscore.scoring.job`) makes one `HistoryRecorder` per run. Its engine hands each scored batch
to `annotate` (pandas: with the batch's features) or `annotate_points` (Spark: with the points computed
on the executors by `field_points`); the recorder adds `score_change` and `change_reasons` to the batch,
finds the MQL / SQL crossings (`leadscore.history.changes`) and keeps the batch's history rows. Once the
whole input is scored, the job `stage`s the run's file beside its partition (a hidden temporary), publishes
the scores and the alerts, and only then `publish`es the history file (a rename). A job that fails or is
interrupted before that adds nothing to the history; `discard` removes the temporary.

Each lead's previous score is its latest row in the history when the job starts.
The history folder is on the file system of the machine running the job (also with the Spark engine).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore.data.io import LocalFiles, remove_stale_temporaries
from leadscore.data.streams import neutralise_formulas
from leadscore.errors import ConfigError
from leadscore.history.changes import (
    ALERT_COLUMNS,
    alerts_by_lead,
    score_changes,
    threshold_crossings,
)
from leadscore.history.store import (
    history_table,
    latest_scores,
    new_run_id,
    partition_file,
    write_rows,
)
from leadscore.schema import CHANGE_COLUMNS, ROW_ID

_PREVIOUS = ("model_name", "model_version", "p_convert", "score", "points", "log_odds", "is_mql", "is_sql")


def field_points(scorer, features: pd.DataFrame, p) -> pd.DataFrame:
    """`base_score`, `points` and `log_odds` of each lead, in the order of `features`: JSON objects of every
    reason field's points and of its contribution to the model's raw output (`leadscore.model.explainer`).

    `features` are rows the scorer accepts (its id and feature columns), `p` their `p_convert`. A scorer
    without an explainer (the cold-start points model) gives empty values."""
    explainer = scorer.explainer  # None for the cold-start `PointsScorer`
    if explainer is None or len(features) == 0:
        return pd.DataFrame({"base_score": np.full(len(features), np.nan), "points": [None] * len(features),
                             "log_odds": [None] * len(features)})
    valid = scorer.validate(features.reset_index(drop=True))
    p = np.asarray(p, dtype="float64")
    raw = explainer.contributions(valid)
    names = [f.name for f in explainer.fields]
    points, log_odds = ([json.dumps(dict(zip(names, row))) for row in (values @ explainer.field_columns).tolist()]
                        for values in (explainer.points(raw, p, valid), raw))
    return pd.DataFrame({"base_score": np.full(len(valid), explainer.base_score), "points": points,
                         "log_odds": log_odds})


def check_history_ids(scorer) -> None:
    """A `ConfigError` for a model without lead ids: its row numbers mean nothing from one run to the next."""
    if scorer.id_column == ROW_ID:
        raise ConfigError(
            "--history needs lead ids, and this model was trained on a table without an id column (its leads "
            "are numbered by row, which changes from one file to the next). Fix: retrain with data.id_column "
            "set to the CRM's lead id, or score without --history")


class HistoryRecorder:
    """One run's history rows, changes and alerts, staged aside and renamed into the history folder."""

    def __init__(self, path: str | os.PathLike, scorer, as_of: str | None = None, started: datetime | None = None):
        check_history_ids(scorer)
        self.path, self.scorer, self.as_of = Path(os.fspath(path)), scorer, as_of
        self.run_id = new_run_id(started)
        self.previous = latest_scores(self.path, _PREVIOUS)
        self.scores_changed = self.first_scores = 0
        self._tables: list[pa.Table] = []
        self._alerts: list[pd.DataFrame] = []
        self._files = LocalFiles()
        self._staged: tuple[str, Path] | None = None

    def annotate(self, features: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
        """`out` (a batch of scores) with `score_change` and `change_reasons`; `features` are its input rows."""
        return self.annotate_points(out, field_points(self.scorer, features, out["p_convert"].to_numpy()))

    def annotate_points(self, out: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
        """`out` with the change columns, given each row's `base_score`, `points` and `log_odds` (`field_points`)."""
        current = pd.DataFrame({
            "lead_id": out[self.scorer.id_column].astype("string").to_numpy(),
            "scored_at": pd.to_datetime(pd.Series(out["scored_at"].to_numpy()), utc=True).to_numpy(),
            "as_of": self.as_of, "run_id": self.run_id,
            **{c: out[c].to_numpy() for c in ("model_name", "model_version", "p_convert", "score", "grade",
                                              "stage", "is_mql", "is_sql") if c in out.columns},
            "base_score": points["base_score"].to_numpy(), "points": points["points"].to_numpy(),
            "log_odds": points["log_odds"].to_numpy(),
        })
        changes = score_changes(self.previous, current)
        current = current.assign(**{c: changes[c].to_numpy() for c in CHANGE_COLUMNS})
        alerts = threshold_crossings(self.previous, current)
        current["alerts"] = current["lead_id"].map(alerts_by_lead(alerts))
        self._tables.append(history_table(current))
        self._alerts.append(alerts)
        change = changes["score_change"]
        self.first_scores += int(change.isna().sum())
        self.scores_changed += int((change.notna() & (change != 0)).sum())
        return out.assign(**{c: changes[c].to_numpy() for c in CHANGE_COLUMNS})

    @property
    def alerts(self) -> pd.DataFrame:
        """Every crossing found so far (`ALERT_COLUMNS`)."""
        found = [a for a in self._alerts if len(a)]
        return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=list(ALERT_COLUMNS))

    def alerts_csv(self) -> str:
        """The alerts as CSV text (times in ISO 8601, UTC), formula-like cells neutralised as in every CSV output."""
        alerts = self.alerts.copy()
        for column in ("scored_at", "previous_scored_at"):
            if len(alerts):
                alerts[column] = pd.to_datetime(alerts[column], utc=True).map(lambda t: t.isoformat())
        return neutralise_formulas(alerts).to_csv(index=False)

    def stage(self) -> str:
        """Write the run's rows beside their partition file under a temporary name; the file's final path."""
        started = self._tables[0].column("scored_at")[0].as_py() if self._tables and len(self._tables[0]) else \
            datetime.now(timezone.utc)
        target = partition_file(self.path, started, self.run_id)
        _remove_stale_runs(target.parent)
        tmp = self._files.temporary(target)
        write_rows(tmp, self._tables)
        self._staged = (tmp, target)
        return str(target)

    def publish(self) -> None:
        """Rename the staged file into the history (after the scores were published)."""
        if self._staged is None:
            raise RuntimeError("the history file was not staged")
        self._files.publish(*self._staged)

    def discard(self) -> None:
        """Remove the staged file unless it was published."""
        self._files.discard()


def _remove_stale_runs(partition: Path) -> None:
    """Remove the temporaries that killed runs left in a partition folder (`leadscore.data.io`'s rule:
    only those of processes no longer running). Readers skip them anyway, as hidden files."""
    if not partition.is_dir():
        return
    for candidate in partition.glob(".*.tmp"):
        name = candidate.name[1:].rsplit(".", 2)[0]  # `.<name>.<pid>-<random>.tmp`
        remove_stale_temporaries(partition / name)
