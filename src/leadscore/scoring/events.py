"""The batch scoring job: stream leads through a registered model into outputs published atomically.

Input is a snapshot table (CSV or Parquet: one row per lead with the model's id and feature columns),
read `chunk_rows` rows at a time so that memory stays flat however many leads there are; or an
event-log folder, whose features are computed as of `as_of` with the training code. An event log is
featurised in memory (each lead's features need its whole history, which a row stream does not give)
and then scored chunk by chunk like a table.

Every input row ends as exactly one output row or one row of the rejects file, which names the row,
the id, the column and the reason (see `leadscore.data.row_checks`). A missing column is an error for the
whole job. Each chunk is scored by the registered model's own `predict` (the `LeadScorerModel` inside
the loaded pyfunc), which is also what Spark's `spark_udf` and `mlflow models serve` call.

Outputs, each written to a temporary file beside it and renamed into place:
- `output`: the columns `LeadScorer.predict` returns, plus model_name, model_version, scored_at (and
  lead_status for an event log), in input order;
- `<output stem>.rejects.csv` (or `rejects_path`): row, id, column, reason, detail;
- `<output stem>.drift.json`: population stability per feature and for the score (`leadscore.drift`).
The rejects and the drift report are published once the whole input has been read; the scores only
when the share of rejected rows is within `max_reject_share`. A failed or interrupted job therefore
leaves the previous scores untouched and no partial file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from leadscore.errors import InputError
from leadscore.features.events import EventFeatureSpec, features_as_of, load_event_log
from leadscore.registry.loading import LoadedModel

log = logging.getLogger(__name__)


def event_spec_of(scorer, folder: Path) -> EventFeatureSpec:
    """How the model computes features from an event log; an input error for a model trained on a snapshot table."""
    if scorer.event_spec is None:
        raise InputError(
            f"{folder} is a folder (event log), but this model was trained on a snapshot table",
            fix="give a CSV or Parquet file with the model's feature columns",
        )
    return scorer.event_spec


def scoring_time(activity_times: pd.Series, as_of: str | None) -> pd.Timestamp:
    """The moment an event log is scored at: `as_of` (UTC unless it names a zone), or else the export's
    cut-off, just after its last recorded activity."""
    if not as_of:
        return activity_times.max() + pd.Timedelta(seconds=1)
    moment = pd.Timestamp(as_of)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def event_log_features(loaded: LoadedModel, folder: Path, as_of: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """Features as of `as_of` (default: the last recorded event) for every lead in the log."""
    spec = event_spec_of(loaded.scorer, folder)
    layout = spec.layout
    has_outcomes = any((folder / f"{layout.outcomes_table}{s}").exists() for s in (".csv", ".parquet"))
    event_log = load_event_log(folder, layout, with_outcomes=has_outcomes)
    moment = scoring_time(event_log.activities[layout.timestamp_column], as_of)
    late = event_log.leads[layout.created_column] > moment
    if late.any():
        raise InputError(
            f"leads created after the scoring time {moment}", column=layout.created_column,
            rows=[int(i) + 1 for i in late.to_numpy().nonzero()[0]], fix="score as of a later time (--as-of)",
        )
    features = features_as_of(event_log.leads, event_log.activities, moment, spec)
    status = pd.Series("open", index=features.index)
    if event_log.outcomes is not None:
        outcomes = event_log.outcomes[event_log.outcomes[layout.timestamp_column] < moment]
        closing = outcomes[outcomes[layout.stage_column].isin(spec.terminal_stages)]
        final = closing.sort_values(layout.timestamp_column).groupby(layout.id_column)[layout.stage_column].last()
        status = features[layout.id_column].map(final).fillna("open").astype("string")
    return features, status
