"""The score history: a Parquet dataset folder, one file per scoring run, partitioned by scoring date.

Layout: `<history>/scored_date=YYYY-MM-DD/<run id>.parquet` (Hive partitioning: pyarrow, DuckDB, Spark
and pandas read the folder as one table). A run id is the run's start in UTC and a random suffix
(`20261101T093000123456Z-1a2b3c4d`), so runs never write the same file and sort by time. A run's file is
written beside its place under a hidden name (`.<run id>.parquet.<pid>-<random>.tmp`, which readers
skip) and renamed in whole, so a reader sees a run's rows all or not at all.

One row per scored lead and run (`HISTORY_SCHEMA`):
- `lead_id` (text): the value of the model's id column. A model trained without an id column numbers the
  rows of each file (`row_number`), which means nothing from one run to the next: such a model has no
  history (the job refuses `--history` with a `ConfigError`);
- `scored_at` (timestamp, UTC): the job's start, to the second; `run_id`; `as_of`: the event log's
  as-of date of the run (empty for a snapshot table);
- `model_name`, `model_version` (text), `p_convert`, `score`, `grade`, `stage`, `is_mql`, `is_sql`
  (empty where the model has no such part);
- `base_score` and `points`: the exact decomposition of the score (`leadscore.model.explainer`):
  `points` is a JSON object of every reason field's points, `{"company_size": 5.2, ...}`, and
  `base_score + sum(points) = 100 * p_convert` to float rounding; `log_odds`: the same fields' contributions
  to the model's raw output (log-odds), from which changes are attributed (`leadscore.history.changes`).
  JSON text, rather than a column per field, because models of different versions have different fields
  and one dataset holds them all; DuckDB (`json_extract`) and Spark (`from_json`) read it in place. Empty
  for a model without an explainer;
- `score_change`, `change_reasons`, `alerts`: what changed since the lead's previous row
  (`leadscore.history.changes`), as the scoring output carries them.

No personal data: ids, scores, model provenance and field *names* with their points; never a field's value.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from leadscore.errors import InputError

PARTITION = "scored_date"
HISTORY_SCHEMA = pa.schema([
    ("lead_id", pa.string()),
    ("scored_at", pa.timestamp("us", tz="UTC")),
    ("run_id", pa.string()),
    ("as_of", pa.string()),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("p_convert", pa.float64()),
    ("score", pa.float64()),
    ("grade", pa.string()),
    ("stage", pa.string()),
    ("is_mql", pa.bool_()),
    ("is_sql", pa.bool_()),
    ("base_score", pa.float64()),
    ("points", pa.string()),
    ("log_odds", pa.string()),
    ("score_change", pa.float64()),
    ("change_reasons", pa.string()),
    ("alerts", pa.string()),
])
HISTORY_COLUMNS = tuple(HISTORY_SCHEMA.names)
_ORDER = ["lead_id", "scored_at", "run_id"]


def read_history(
    path: str | os.PathLike, *, lead_ids=None, since=None, until=None, columns=None,
) -> pd.DataFrame:
    """The history at `path` as a frame, one row per lead and run, ordered by lead, then time.

    `lead_ids`: only these leads (any iterable; compared as text). `since` / `until`: only rows scored
    at or after `since` and before `until` (a datetime, a pandas Timestamp or an ISO 8601 text; a time
    without a zone is read as UTC). `columns`: only these columns (default: all of `HISTORY_COLUMNS`;
    `lead_id`, `scored_at` and `run_id` always come along, for the order).

    A folder that holds no run yet gives an empty frame with the columns; a path that does not exist is
    an `InputError` (a mistyped path should not read as "no history").
    """
    root = Path(os.fspath(path))
    if not root.is_dir():
        raise InputError(f"no score history at {os.fspath(path)}: the folder does not exist",
                         fix="give the folder a scoring job wrote with --history (or scoring.history)")
    wanted = list(HISTORY_COLUMNS) if columns is None else list(dict.fromkeys([*_ORDER, *columns]))
    unknown = [c for c in wanted if c not in HISTORY_COLUMNS]
    if unknown:
        raise InputError(f"the history has no column(s) {unknown}", fix=f"choose among {list(HISTORY_COLUMNS)}")
    dataset = ds.dataset(root, format="parquet", partitioning="hive",
                         schema=HISTORY_SCHEMA.append(pa.field(PARTITION, pa.string())))
    condition = None
    if lead_ids is not None:
        condition = pc.field("lead_id").isin(pa.array([str(i) for i in lead_ids], pa.string()))
    for bound, keep in ((since, lambda t: pc.field("scored_at") >= t), (until, lambda t: pc.field("scored_at") < t)):
        if bound is not None:
            test = keep(pa.scalar(_utc(bound), HISTORY_SCHEMA.field("scored_at").type))
            condition = test if condition is None else condition & test
    table = dataset.to_table(columns=wanted, filter=condition)
    frame = table.to_pandas()
    return frame.sort_values(_ORDER, kind="stable").reset_index(drop=True)


def latest_scores(path: str | os.PathLike, columns) -> pd.DataFrame:
    """Each lead's latest row in the history at `path`, indexed by `lead_id` (empty when there is no history yet)."""
    if not Path(os.fspath(path)).is_dir():
        return pd.DataFrame(columns=list(dict.fromkeys([*_ORDER, *columns]))).set_index("lead_id")
    frame = read_history(path, columns=columns)
    return frame.drop_duplicates("lead_id", keep="last").set_index("lead_id")


def new_run_id(started: datetime | None = None) -> str:
    """A unique id for a scoring run: its start in UTC, to the microsecond (so ids sort by time), and a random suffix."""
    started = (started or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{started:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def partition_file(path: str | os.PathLike, scored_at: datetime, run_id: str) -> Path:
    """Where a run's file goes: `<path>/scored_date=YYYY-MM-DD/<run_id>.parquet` (the date in UTC)."""
    day = pd.Timestamp(scored_at).tz_convert("UTC") if pd.Timestamp(scored_at).tzinfo else pd.Timestamp(scored_at)
    return Path(os.fspath(path)) / f"{PARTITION}={day:%Y-%m-%d}" / f"{run_id}.parquet"


def history_table(rows: pd.DataFrame) -> pa.Table:
    """`rows` (the history columns) as a table of `HISTORY_SCHEMA`, column by column."""
    arrays = []
    for spec in HISTORY_SCHEMA:
        values = rows[spec.name] if spec.name in rows.columns else pd.Series(None, index=rows.index, dtype=object)
        if spec.name == "scored_at":  # UTC instants as numpy datetimes, which Arrow reads as UTC
            values = pd.to_datetime(values, utc=True).dt.tz_convert(None).to_numpy()
        elif pa.types.is_string(spec.type):
            values = values.astype("string")
        arrays.append(pa.array(values, type=spec.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=HISTORY_SCHEMA)


def write_rows(file: str | os.PathLike, tables: list[pa.Table]) -> None:
    """Write a run's rows (tables of `HISTORY_SCHEMA`) as one Parquet file (an empty run: a file without rows)."""
    table = pa.concat_tables(tables) if tables else HISTORY_SCHEMA.empty_table()
    pq.write_table(table, file)


def _utc(value) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
