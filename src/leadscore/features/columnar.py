"""Point-in-time features and labels from an event log, computed by DuckDB from one SQL query.

The same rows as `leadscore.features.events` (`training_rows`, `features_as_of`), the pandas builder, which
stays the reference: ids, profile columns, counts and labels exactly equal, other values to rounding (sums
are taken in another order), and the rows in the same order (snapshot by snapshot, leads in the order of the
leads table). Training uses it by default (`event_log.engine: duckdb`, `leadscore.features.engines`).

The query (`feature_sql`) is generated once from the `EventFeatureSpec` and covers every snapshot at once:
activities are summed per lead and snapshot interval, the intervals are added up in each lead's snapshot
order, every lead open at a snapshot (created before it, no terminal stage before it) takes its running sums
as of the snapshot, and the label looks ahead from it. It is plain SQL (CTEs, joins, GROUP BY, window
functions: LAG, LEAD, running SUM and MAX; CASE, COALESCE, POWER, CAST, CONCAT, CHR) that Spark SQL runs as well: it
names only its own tables and columns, never a column of the export (activity-property filters arrive as
`w0`, `w1`, ...; outputs are `s0_count`, ...), and takes timestamps as epoch microseconds (BIGINT), so no
date function of either dialect is needed. Its input tables:

    lead_rows(lead_row BIGINT, created_us BIGINT)            lead_row: the lead's position in the leads table
    activity_rows(lead_row BIGINT, ts_us BIGINT, activity_type VARCHAR, w0 VARCHAR, ...)
    outcome_rows(lead_row BIGINT, ts_us BIGINT, stage VARCHAR)          (training rows only)
    snapshot_rows(snapshot_row BIGINT, as_of_us BIGINT)

Events carry their lead's row number, not its id (looked up once with `pyarrow.compute.index_in`), so every
join is on integers; an engine reading the export itself would get it by joining on the id. Profile columns
are not in the query: they are taken from the leads table by `lead_row`, so they keep their pandas types.
Engine-specific is only the runner (a `Runner`: the input tables in, the result out as Arrow), not the query:
DuckDB's here (`connect`: Arrow tables registered as views; the spill folder, the optional memory limit and
threads; `leadscore.features.staged` runs the query in parts over a log staged on disk), Spark's in
`leadscore.features.spark`; `training_rows_on` and `features_as_of_on` take either.
Timestamps are read at microsecond precision (finer parts are dropped), and a `where` filter compares the
activity property as text, as the pandas builder does. Text constants of the spec (activity types, `where`
values) are written so that both dialects read them alike (`sql_text`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadscore.config import EventLogConfig
from leadscore.errors import ConfigError
from leadscore.features.events import (
    DAYS_TO_CONVERSION,
    LABEL_COLUMN,
    SNAPSHOT_COLUMN,
    EventFeatureSpec,
    EventLog,
    check_label_windows,
    no_open_lead,
)

_US_PER_DAY = 86_400_000_000
_KINDS = ("count", "decayed", "days_since")
_FIRST_US = -(2**62)  # before any time (146,000 years BC): where the first snapshot's interval starts
# Runs the query on its input tables (by name) and returns its result: the one engine-specific part.
Runner = Callable[[dict[str, pa.Table], str], pa.Table]


def sql_text(value: str) -> str:
    """A SQL string literal that DuckDB and Spark SQL both read as `value`.

    The dialects escape differently (DuckDB doubles a quote, Spark reads `''` as two literals to concatenate and a
    backslash as an escape), so a quote or a backslash is spelled `CHR(39)` or `CHR(92)`, joined with CONCAT."""
    parts, plain = [], ""
    for char in str(value):
        if char in "'\\":
            parts += ([f"'{plain}'"] if plain else []) + [f"CHR({ord(char)})"]
            plain = ""
        else:
            plain += char
    if plain or not parts:
        parts.append(f"'{plain}'")
    return parts[0] if len(parts) == 1 else f"CONCAT({', '.join(parts)})"


def _days(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE) / CAST({_US_PER_DAY} AS DOUBLE)"


def _exact(expr: str) -> str:
    """A weight as a fixed-point decimal, so that its sums are exact and the same in any order.

    A database sums floating-point values in whatever order its threads meet them, and the last bits of the
    sum then change from run to run (measured: the decayed counts of one synthetic funnel differed between
    two runs of the same query), so a model trained on them would too. Sums of decimals are exact; each weight
    (at most 1) is rounded once to 18 decimal places, far below the features' own precision."""
    return f"CAST({expr} AS DECIMAL(38, 18))"


def where_columns(spec: EventFeatureSpec) -> list[str]:
    """The activity columns the signals filter on, in the order they are passed as `w0`, `w1`, ..."""
    return list(dict.fromkeys(key for signal in spec.signals.values() for key in signal.where))


def _interval_ctes(spec: EventFeatureSpec) -> list[str]:
    """The query's first stage: every activity summed per lead and snapshot interval (`per_interval`)."""
    filters = {key: f"w{i}" for i, key in enumerate(where_columns(spec))}
    half_life = repr(float(spec.half_life_days))
    flags, partial = [], []
    for i, signal in enumerate(spec.signals.values()):
        condition = " AND ".join([f"activity_type = {sql_text(signal.activity_type)}",
                                  *(f"{filters[key]} = {sql_text(value)}" for key, value in signal.where.items())])
        flags.append(f"CASE WHEN {condition} THEN 1 END AS m{i}")  # null where not: counted by COUNT
        # The weight is computed and cast only where the signal counts (an activity counts for one signal of
        # many); elsewhere it is null, which the sum skips (cheaper than adding zeros: 9 % of this stage).
        decay = _exact(f"POWER(0.5, {_days('i.as_of_us - a.ts_us')} / {half_life})")
        weight = f"CASE WHEN a.m{i} = 1 THEN {decay} END"
        partial += [f"COUNT(a.m{i}) AS n{i}", f"SUM({weight}) AS d{i}",
                    f"MAX(CASE WHEN a.m{i} = 1 THEN a.ts_us END) AS t{i}"]
    return [
        # which signals each activity counts for, decided once per activity
        "flagged AS (SELECT lead_row, ts_us" + "".join(f", {flag}" for flag in flags)
        + " FROM activity_rows WHERE lead_row IS NOT NULL)",
        f"intervals AS (SELECT snapshot_row, as_of_us, COALESCE(LAG(as_of_us) OVER (ORDER BY snapshot_row), "
        f"{_FIRST_US}) AS from_us FROM snapshot_rows)",
        "per_interval AS (SELECT a.lead_row, i.snapshot_row, i.as_of_us AS end_us, MAX(a.ts_us) AS last_us"
        + "".join(f", {x}" for x in partial)
        + " FROM flagged a JOIN intervals i ON a.ts_us >= i.from_us AND a.ts_us < i.as_of_us "
        "GROUP BY a.lead_row, i.snapshot_row, i.as_of_us)",
    ]


def _cumulative_cte(spec: EventFeatureSpec) -> str:
    """The query's second stage: each lead's interval sums added up in snapshot order (`cumulative`), a row per
    interval with activity, valid from its snapshot until the lead's next such interval (`next_row`, null for the
    last).

    Counts, the latest times and so recency are exact (integers). A decayed sum cannot be carried from one
    interval to the next in a window function (that is a recurrence), so each interval's sum is scaled up to a
    time of reference, the first snapshot (`ref_us`): by 2 ** (days after it / half-life), at most
    2 ** `MAX_DECAY_HALF_LIVES` (`snapshot_rows` refuses a wider schedule), so the running sum of scaled values
    times 0.5 ** (days from the reference to a snapshot / half-life) is the decayed sum at that snapshot, to
    rounding. The running sums of doubles are taken in each lead's snapshot order, so they do not depend on
    threads or on which other leads are in the query (tested: staged parts give the whole query's values)."""
    half_life = repr(float(spec.half_life_days))
    window = "OVER (PARTITION BY lead_row ORDER BY snapshot_row)"
    columns = [f"LEAD(snapshot_row) {window} AS next_row", f"MAX(last_us) {window} AS last_us"]
    for i in range(len(spec.signals)):
        scaled = f"CAST(d{i} AS DOUBLE) * POWER(2.0, {_days('end_us - ref_us')} / {half_life})"
        columns += [f"SUM(n{i}) {window} AS n{i}", f"SUM({scaled}) {window} AS d{i}", f"MAX(t{i}) {window} AS t{i}"]
    return ("cumulative AS (SELECT lead_row, snapshot_row, ref_us, " + ", ".join(columns)
            + " FROM per_interval CROSS JOIN (SELECT MIN(as_of_us) AS ref_us FROM snapshot_rows) r)")


def cumulative_sql(spec: EventFeatureSpec) -> str:
    """The first two stages of `feature_sql` on their own, over `activity_rows` and every snapshot of
    `snapshot_rows`: the rows that `feature_sql(spec, staged=True)` reads as `cumulative_rows`."""
    return "WITH " + ",\n".join([*_interval_ctes(spec), _cumulative_cte(spec)]) + "\nSELECT * FROM cumulative"


def _lead_state_ctes(spec: EventFeatureSpec, labels: EventLogConfig) -> list[str]:
    """Each lead's creation time and the first times it closed, converted and (for a transition target) entered
    `labels.from_stage` (`lead_states`): what decides at which snapshots it is open, and its label."""
    terminal = ", ".join(map(sql_text, spec.terminal_stages)) or "NULL"
    firsts = {"closed": f"stage IN ({terminal})", "converted": f"stage = {sql_text(labels.conversion_stage)}"}
    if labels.from_stage is not None:
        firsts["entered"] = f"stage = {sql_text(labels.from_stage)}"
    ctes = [f"{name} AS (SELECT lead_row, MIN(ts_us) AS {name}_us FROM outcome_rows WHERE {condition} GROUP BY lead_row)"
            for name, condition in firsts.items()]
    joins = "".join(f" LEFT JOIN {name} ON {name}.lead_row = l.lead_row" for name in firsts)
    columns = "".join(f", {name}.{name}_us" for name in firsts)
    return [*ctes, f"lead_states AS (SELECT l.lead_row, l.created_us{columns} FROM lead_rows l{joins})"]


def lead_state_sql(spec: EventFeatureSpec, labels: EventLogConfig) -> str:
    """The lead states of `feature_sql` on their own, over `lead_rows` and `outcome_rows`: the rows that
    `feature_sql(spec, labels=labels, staged=True)` reads as `lead_state_rows`."""
    return "WITH " + ",\n".join(_lead_state_ctes(spec, labels)) + "\nSELECT * FROM lead_states"


def feature_sql(spec: EventFeatureSpec, *, labels: EventLogConfig | None = None, staged: bool = False) -> str:
    """The feature query for `spec`: every (snapshot, lead) row with its features, ordered as the pandas builder.

    With `labels` (training), only leads open at each snapshot are kept and the label and days to conversion
    of `labels.conversion_stage` within `labels.horizon_days` are added; without, every lead of `lead_rows`
    gets a row at each snapshot (scoring as of a time).

    Activities are first summed per lead and snapshot interval (from one snapshot time up to the next), each
    weight taken at the interval's end; the intervals are then added up in each lead's snapshot order
    (`_cumulative_cte`), and a row at a snapshot takes its lead's running sums as of the latest interval up to
    it, the decayed sums carried to the snapshot by one more factor. So each activity is read once, and each
    row joins one row of sums: summing a lead's intervals again at every later snapshot cost three times as
    much CPU at 1,000,000 leads.

    With `staged` the running sums and the lead states are not computed but read from tables `cumulative_rows`
    and `lead_state_rows` (the results of `cumulative_sql` and `lead_state_sql`), so that a build out of core runs
    the query in parts (`leadscore.features.staged`), each computed once per range of leads, not once per part."""
    half_life = repr(float(spec.half_life_days))
    outputs = []
    for i in range(len(spec.signals)):
        carried = f"p.d{i} * POWER(0.5, {_days('o.as_of_us - p.ref_us')} / {half_life})"
        outputs += [f"CAST(COALESCE(p.n{i}, 0) AS DOUBLE) AS s{i}_count",
                    f"CAST(CASE WHEN p.n{i} > 0 THEN {carried} ELSE 0 END AS DOUBLE) AS s{i}_decayed",
                    f"{_days('o.as_of_us - p.t' + str(i))} AS s{i}_days_since"]

    if staged:
        ctes = ["cumulative AS (SELECT * FROM cumulative_rows)",
                *(["lead_states AS (SELECT * FROM lead_state_rows)"] if labels is not None else [])]
    else:
        ctes = [*_interval_ctes(spec), _cumulative_cte(spec),
                *(_lead_state_ctes(spec, labels) if labels is not None else [])]
    if labels is not None:
        entered = ""
        if labels.from_stage is not None:
            # A transition target (event_log.from_stage): only leads that reached from_stage before the snapshot and
            # had not yet converted, as in the pandas builder.
            entered = (" AND l.entered_us < s.as_of_us "
                       "AND (l.converted_us IS NULL OR l.converted_us >= s.as_of_us)")
        ctes.append("open_leads AS (SELECT s.snapshot_row, s.as_of_us, l.lead_row, l.created_us, l.converted_us "
                    "FROM snapshot_rows s JOIN lead_states l ON l.created_us < s.as_of_us "
                    f"WHERE (l.closed_us IS NULL OR l.closed_us >= s.as_of_us){entered})")
    else:
        ctes.append("open_leads AS (SELECT s.snapshot_row, s.as_of_us, l.lead_row, l.created_us "
                    "FROM snapshot_rows s CROSS JOIN lead_rows l)")
    sums = "".join(f", c.{x}{i}" for i in range(len(spec.signals)) for x in "ndt")
    # Each open lead's running sums as of the snapshot: the row of its latest interval up to the snapshot.
    ctes.append(f"per_lead AS (SELECT o.snapshot_row AS at_row, c.lead_row, c.ref_us, c.last_us{sums} "
                "FROM open_leads o JOIN cumulative c ON c.lead_row = o.lead_row AND c.snapshot_row <= o.snapshot_row "
                "AND (c.next_row IS NULL OR c.next_row > o.snapshot_row))")
    label_columns = []
    if labels is not None:
        horizon_us = int(labels.horizon_days) * _US_PER_DAY
        label_columns = [
            f"CASE WHEN o.converted_us >= o.as_of_us AND o.converted_us < o.as_of_us + {horizon_us} THEN 1 ELSE 0 END"
            f" AS {LABEL_COLUMN}",
            f"{_days('o.converted_us - o.as_of_us')} AS {DAYS_TO_CONVERSION}",
        ]
    select = ["o.snapshot_row", "o.lead_row", f"{_days('o.as_of_us - o.created_us')} AS lead_age_days",
              f"{_days('o.as_of_us - p.last_us')} AS days_since_last_activity", *outputs, *label_columns]
    return (
        "WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n  ".join(select)
        + "\nFROM open_leads o LEFT JOIN per_lead p ON p.at_row = o.snapshot_row AND p.lead_row = o.lead_row"
        + "\nORDER BY o.snapshot_row, o.lead_row"
    )


def _epoch_us(values: pd.Series) -> pa.Array:
    """Epoch microseconds of UTC timestamps (sub-microsecond parts are dropped)."""
    ticks = values.array.asi8  # in the column's own unit, UTC
    unit = values.dt.unit
    micros = ticks // 1_000 if unit == "ns" else ticks * {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
    return pa.array(micros, type=pa.int64())


def text_array(values: pd.Series) -> pa.Array:
    """Text as the pandas builder compares it (`astype("string")`), missing values kept missing."""
    if not (pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values)):
        values = values.astype("string")
    return pa.array(values, type=pa.large_string(), from_pandas=True)


def lead_rows(leads: pd.DataFrame, spec: EventFeatureSpec) -> pa.Table:
    """The query's `lead_rows`: each lead's position in `leads` and its creation time."""
    return pa.table({"lead_row": pa.array(np.arange(len(leads), dtype="int64")),
                     "created_us": _epoch_us(leads[spec.layout.created_column])})


def activity_rows(activities: pd.DataFrame, lead_row: pa.Array, spec: EventFeatureSpec) -> pa.Table:
    """The query's `activity_rows`: each activity's lead (`lead_row`, null for no lead), time, type and filters."""
    layout = spec.layout
    return pa.table({
        "lead_row": lead_row,
        "ts_us": _epoch_us(activities[layout.timestamp_column]),
        "activity_type": text_array(activities[layout.activity_type_column]),
        **{f"w{i}": text_array(activities[key]) for i, key in enumerate(where_columns(spec))},
    })


MAX_DECAY_HALF_LIVES = 960  # 2 ** 960 times a count stays far inside a double's range (2 ** 1024)


def snapshot_rows(snapshots: pd.DatetimeIndex, spec: EventFeatureSpec) -> pa.Table:
    """The query's `snapshot_rows`: the snapshot times in order.

    A `ConfigError` if they span more than `MAX_DECAY_HALF_LIVES` half-lives: the running decayed sums are
    scaled by 2 ** (half-lives since the first snapshot) and would overflow (see `_cumulative_cte`)."""
    span = (snapshots.max() - snapshots.min()) / pd.Timedelta(days=spec.half_life_days) if len(snapshots) else 0
    if span > MAX_DECAY_HALF_LIVES:
        raise ConfigError(
            f"the snapshots ({snapshots.min().date()} to {snapshots.max().date()}) span {span:,.0f} half-lives of "
            f"{spec.half_life_days:g} days, more than the {MAX_DECAY_HALF_LIVES} this engine's decayed sums can hold; "
            "set a longer event_log.half_life_days, a shorter snapshot schedule, or event_log.engine: pandas")
    return pa.table({"snapshot_row": pa.array(np.arange(len(snapshots), dtype="int64")),
                     "as_of_us": _epoch_us(pd.Series(snapshots))})


def _tables(leads: pd.DataFrame, activities: pd.DataFrame, outcomes: pd.DataFrame | None,
            snapshots: pd.DatetimeIndex, spec: EventFeatureSpec) -> dict[str, pa.Table]:
    """The query's input tables; events are keyed by their lead's row (events of other leads: no key)."""
    layout = spec.layout
    ids = text_array(leads[layout.id_column])

    def lead_row(events: pd.DataFrame) -> pa.Array:
        return pc.cast(pc.index_in(text_array(events[layout.id_column]), value_set=ids), pa.int64())

    tables = {"lead_rows": lead_rows(leads, spec), "activity_rows": activity_rows(activities, lead_row(activities), spec),
              "snapshot_rows": snapshot_rows(snapshots, spec)}
    if outcomes is not None:
        tables["outcome_rows"] = outcome_rows(outcomes, lead_row(outcomes), spec)
    return tables


def outcome_rows(outcomes: pd.DataFrame, lead_row: pa.Array, spec: EventFeatureSpec) -> pa.Table:
    """The query's `outcome_rows`: each outcome's lead (`lead_row`), time and stage."""
    layout = spec.layout
    return pa.table({"lead_row": lead_row, "ts_us": _epoch_us(outcomes[layout.timestamp_column]),
                     "stage": text_array(outcomes[layout.stage_column])})


@contextmanager
def connect(threads: int | None = None, memory_limit: str | None = None) -> Iterator:
    """An in-memory DuckDB connection that spills to a folder of its own (removed afterwards). `threads` and
    `memory_limit` (e.g. "1GB") are DuckDB's settings (default: all cores, 80% of memory)."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="leadscore-duckdb-") as spill:
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"SET temp_directory = {sql_text(spill)}")
            con.execute("SET preserve_insertion_order = false")  # the query orders its rows itself
            if memory_limit:
                con.execute(f"SET memory_limit = {sql_text(memory_limit)}")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            yield con
        finally:
            con.close()


def arrow_batches(con, sql: str, batch_rows: int) -> pa.RecordBatchReader:
    """The result of `sql` on the DuckDB connection `con`, streamed as Arrow batches of up to `batch_rows` rows."""
    result = con.execute(sql)
    if hasattr(result, "to_arrow_reader"):  # DuckDB 1.4 and later; fetch_record_batch is its older name
        return result.to_arrow_reader(batch_rows)
    return result.fetch_record_batch(batch_rows)


def _duckdb(threads: int | None, memory_limit: str | None) -> Runner:
    """The DuckDB runner: the tables registered as views of an in-memory connection, the result read as Arrow."""
    def run(tables: dict[str, pa.Table], sql: str) -> pa.Table:
        with connect(threads, memory_limit) as con:
            for name, table in tables.items():
                con.register(name, table)
            return arrow_batches(con, sql, 1_000_000).read_all()

    return run


def feature_frame(result: pa.Table | pa.RecordBatch, leads: pd.DataFrame, spec: EventFeatureSpec,
                  lead_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of the query's result as features: the id and profile columns taken from `leads` by row, the derived
    features under their names, then `lead_columns` of `leads` (not features: the account id)."""
    layout = spec.layout
    positions = result.column("lead_row").to_numpy()
    taken = leads[[layout.id_column, *spec.profile_columns, *lead_columns]].iloc[positions].reset_index(drop=True)
    out = taken.drop(columns=list(lead_columns))
    derived = {"lead_age_days": result.column("lead_age_days"),
               "days_since_last_activity": result.column("days_since_last_activity")}
    for i, name in enumerate(spec.signals):
        for kind in _KINDS:
            derived[f"{name}_{kind}"] = result.column(f"s{i}_{kind}")
    for column, values in derived.items():
        out[column] = values.to_numpy(zero_copy_only=False).astype("float64", copy=False)
    for column in lead_columns:
        out[column] = taken[column]
    return out


def features_as_of_on(run: Runner, leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp,
                      spec: EventFeatureSpec) -> pd.DataFrame:
    """`leadscore.features.events.features_as_of` from `feature_sql` run by `run`: one row per lead, in the order
    of `leads`."""
    tables = _tables(leads, activities, None, pd.DatetimeIndex([as_of]), spec)
    return feature_frame(run(tables, feature_sql(spec)), leads, spec)


def training_rows_on(run: Runner, log: EventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                     observed_until: pd.Timestamp | None = None) -> pd.DataFrame:
    """`leadscore.features.events.training_rows` from `feature_sql` run by `run`, one query over all snapshots."""
    snapshots = pd.DatetimeIndex(check_label_windows(log, spec, log_cfg, observed_until))
    tables = _tables(log.leads, log.activities, log.outcomes, snapshots, spec)
    result = run(tables, feature_sql(spec, labels=log_cfg))
    if result.num_rows == 0:
        raise no_open_lead(spec)
    return training_frame(result, log.leads, spec, snapshots)


def training_frame(result: pa.Table | pa.RecordBatch, leads: pd.DataFrame, spec: EventFeatureSpec,
                   snapshots: pd.DatetimeIndex) -> pd.DataFrame:
    """Rows of the training query's result as training rows: features, label, days to conversion, snapshot."""
    out = feature_frame(result, leads, spec)
    out[LABEL_COLUMN] = result.column(LABEL_COLUMN).to_numpy().astype("int8")
    out[DAYS_TO_CONVERSION] = result.column(DAYS_TO_CONVERSION).to_numpy(zero_copy_only=False).astype("float64")
    out[SNAPSHOT_COLUMN] = snapshots.take(result.column("snapshot_row").to_numpy())
    return out


def features_as_of(leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp, spec: EventFeatureSpec, *,
                   threads: int | None = None, memory_limit: str | None = None) -> pd.DataFrame:
    """`leadscore.features.events.features_as_of` computed by DuckDB: one row per lead, in the order of `leads`."""
    return features_as_of_on(_duckdb(threads, memory_limit), leads, activities, as_of, spec)


def training_rows(log: EventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                  observed_until: pd.Timestamp | None = None, *, threads: int | None = None,
                  memory_limit: str | None = None) -> pd.DataFrame:
    """`leadscore.features.events.training_rows` computed by DuckDB, in one query over all snapshots.

    `threads` and `memory_limit` (e.g. "4GB") are DuckDB's settings (default: all cores, 80% of memory);
    past the limit the query spills to a temporary folder."""
    return training_rows_on(_duckdb(threads, memory_limit), log, spec, log_cfg, observed_until)
