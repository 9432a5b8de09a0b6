"""The batch scoring job: read leads, score them with a registered model, write atomically.

Input is a snapshot table (CSV or Parquet: one row per lead with the model's feature columns) or an
event-log folder (leads + activities), whose features are computed as of `as_of` with the same
point-in-time code used in training. Every input lead gets exactly one output row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from leadscore.errors import InputError
from leadscore.features import features_as_of, load_event_log
from leadscore.io import read_table, write_table
from leadscore.personal import personal_columns
from leadscore.tracking import LoadedModel, load_model

log = logging.getLogger(__name__)
STATUS_COLUMN = "lead_status"


@dataclass(frozen=True)
class ScoringReport:
    """What a scoring job did."""

    output: Path
    rows: int
    model_name: str
    model_version: str
    unseen_categories: dict[str, int]
    scores: pd.DataFrame


def score_file(model_uri: str, input_path: str | Path, output_path: str | Path, *, as_of: str | None = None) -> ScoringReport:
    """Score every lead in `input_path` with the model at `model_uri` and write `output_path`."""
    loaded = load_model(model_uri)
    input_path = Path(input_path)
    if input_path.is_dir():
        frame, status = _event_log_features(loaded, input_path, as_of)
    else:
        frame, status = read_table(input_path), None
        frame = frame.drop(columns=personal_columns(frame.columns, []))
    scorer = loaded.scorer
    valid = scorer.validate(frame)[[scorer.id_column, *scorer.feature_columns]]
    unseen = scorer.unseen_categories(valid)
    for column, count in unseen.items():
        log.warning("column '%s': %d value(s) never seen in training, scored as missing", column, count)

    scores = loaded.pyfunc.predict(valid)
    scores["model_name"] = loaded.name
    scores["model_version"] = loaded.version
    scores["scored_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if status is not None:
        scores[STATUS_COLUMN] = status.to_numpy()
    if len(scores) != len(frame):  # a broken scorer must never write a short file
        raise RuntimeError(f"scorer returned {len(scores)} rows for {len(frame)} leads")
    output = write_table(scores, output_path)
    return ScoringReport(output, len(scores), loaded.name, loaded.version, unseen, scores)


def _event_log_features(loaded: LoadedModel, folder: Path, as_of: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """Features as of `as_of` (default: the last recorded event) for every lead in the log."""
    spec = loaded.scorer.event_spec
    if spec is None:
        raise InputError(
            f"{folder} is a folder (event log), but this model was trained on a snapshot table",
            fix="score a CSV or Parquet file with the model's feature columns",
        )
    layout = spec.layout
    has_outcomes = any((folder / f"{layout.outcomes_table}{s}").exists() for s in (".csv", ".parquet"))
    event_log = load_event_log(folder, layout, with_outcomes=has_outcomes)
    if as_of:
        moment = pd.Timestamp(as_of)
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    else:  # an export's cut-off: just after the last recorded activity
        moment = event_log.activities[layout.timestamp_column].max() + pd.Timedelta(seconds=1)
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
