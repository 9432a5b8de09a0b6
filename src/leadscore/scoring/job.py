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
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
from pydantic import ValidationError

from leadscore.config import ScoringConfig, load_config
from leadscore.data.row_checks import REJECT_COLUMNS
from leadscore.data.validation import require_columns
from leadscore.errors import ConfigError, InputError
from leadscore.schema import ROW_ID

log = logging.getLogger(__name__)
SPARK_MASTER_ENV = "LEADSCORE_SPARK_MASTER"
REJECTS_SCHEMA = pa.schema([("row", pa.int64()), *((c, pa.large_string()) for c in REJECT_COLUMNS[1:])])


@dataclass(frozen=True)
class ScoringReport:
    """What a scoring job did."""

    output: str
    rejects: str
    drift_report: str | None
    rows_read: int
    rows_scored: int
    rejected: dict[str, int]
    model_name: str
    model_version: str
    engine: str
    seconds: float
    unseen_categories: dict[str, int] = field(default_factory=dict)
    drifted: list[str] = field(default_factory=list)
    top: pd.DataFrame | None = None

    @property
    def rows_rejected(self) -> int:
        """Rejected rows, whatever the reason."""
        return sum(self.rejected.values())

    def summary(self) -> str:
        """One line for a log: counts, where the outputs went, and the model."""
        why = ", ".join(f"{n:,} {reason}" for reason, n in self.rejected.items() if n) or "none"
        return (f"scored {self.rows_scored:,} of {self.rows_read:,} leads with {self.model_name} version "
                f"{self.model_version} -> {self.output}; rejected {self.rows_rejected:,} ({why}) -> {self.rejects}")


def scoring_settings(config_path: str | Path | None = None, **overrides) -> ScoringConfig:
    """Scoring settings: the given overrides (None means not given), else the config's `scoring`
    section, else the defaults. The Spark master comes from an override, else LEADSCORE_SPARK_MASTER,
    else the config."""
    base = load_config(config_path).scoring if config_path else ScoringConfig()
    given = {key: value for key, value in overrides.items() if value is not None}
    if "spark_master" not in given and os.environ.get(SPARK_MASTER_ENV):
        given["spark_master"] = os.environ[SPARK_MASTER_ENV]
    try:
        return ScoringConfig(**{**base.model_dump(), **given})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid scoring option: {problems}") from None


def side_paths(output: str | Path, rejects: str | Path | None = None) -> tuple[str, str]:
    """The rejects file (unless given) and the drift report beside an output: `<stem>.rejects.csv`, `<stem>.drift.json`."""
    text = str(output).rstrip("/")
    stem = text.rsplit(".", 1)[0] if "." in text.rsplit("/", 1)[-1] else text
    return str(rejects) if rejects else f"{stem}.rejects.csv", f"{stem}.drift.json"


def model_params(reasons: bool) -> dict | None:
    """The pyfunc params for a job: none by default, so models logged without params take them too."""
    return None if reasons else {"reasons": False}


def require_input_columns(scorer, columns: list[str]) -> None:
    """Fail the whole job, before any row is read, when the input lacks a column the model needs."""
    header = pd.DataFrame(columns=columns)
    if scorer.id_column != ROW_ID:
        require_columns(header, [scorer.id_column], "the leads to score", "give every lead its id column")
    require_columns(header, scorer.feature_columns, "the leads to score",
                    "add the column: the model was trained with it (or retrain without it)")


def check_reject_share(report: ScoringReport, limit: float) -> None:
    """Fail as bad input when more than `limit` of the rows read were rejected."""
    share = report.rows_rejected / report.rows_read
    if share > limit:
        raise InputError(
            f"{report.rows_rejected:,} of {report.rows_read:,} rows rejected ({share:.2%}), above the limit of "
            f"{limit:.2%}: the scores were not published and any previous output is untouched",
            fix=f"see {report.rejects} for each row and its reason; correct the export, or raise --max-reject-share",
        )


def log_findings(report: ScoringReport, drift_path) -> None:
    """Warn about what a finished job found: unseen categories, rejected rows, drifted columns."""
    for column, count in report.unseen_categories.items():
        log.warning("column '%s': %d value(s) never seen in training, scored as missing", column, count)
    if report.rows_rejected:
        log.warning("%d row(s) rejected, listed with their reasons in %s", report.rows_rejected, report.rejects)
    if report.drifted:
        log.warning("drift: population stability index above the threshold for %s (see %s)",
                    ", ".join(report.drifted), drift_path)
