"""Funnel analytics from the outcomes log: stage-to-stage conversion per episode, with exact intervals.

The outcomes log holds one row per stage a lead reached (lead id, stage, time). This module reads it as a
funnel (by default MQL → SAL → SQL → won, `FunnelConfig.stages`) and gives, for each step from one stage to
the next, how many episodes reached the first stage, how many of those reached the next one, the rate with
its exact (Clopper-Pearson) 95 % interval, and the median days between the two stages with the number of
episodes behind that median. With segments (a leads column, or a score band) every step is given per
segment as well as for all episodes.

Episodes. A lead that re-enters the funnel starts a new episode, and rates count episodes, not leads: an
entry stage (the first of `stages`) after a rejection (`rejected_stage`) or a closing outcome
(`recycle_stages`, default ``lost`` and ``recycled``) since the previous entry starts episode 2, 3, ...
Repeated entry rows with nothing closing in between belong to one episode. Outcomes before a lead's first
entry belong to no episode (a lead that went straight to ``won`` is not an MQL).

Rejections. On the step into the second stage (MQL → SAL: sales accepts or rejects) an episode is decided
when it reached the second stage (accepted) or has a rejection (rejected); the rate is accepted / decided. An
MQL with neither was never worked: a lead nobody looked at says nothing about sales' decisions, so it is
counted apart (`not_worked`) and left out of that rate. Without a `rejected_stage`, the step is an ordinary one.

Censoring (the rule). An episode that reached a step's first stage fewer than `too_recent_days` days before
the export time (`as_of`, by default the last outcome recorded), and has neither reached the next stage nor
closed since (a rejection, a recycle outcome, or the funnel's last stage), has not had the time to progress:
it is counted as `too_recent` and left out of that step's rate. Every other episode that has not reached the
next stage counts as not converted. An episode that did reach it counts as converted, however recent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from leadscore.config import FunnelConfig
from leadscore.data.validation import (
    parse_timestamps,
    require_columns,
    require_not_null,
)
from leadscore.errors import InputError

ALL = "(all)"  # the segment value of the rows that cover every episode
MISSING = "(missing)"  # the segment value of episodes whose lead has no value in the segment column
CONFIDENCE = 0.95
SCORE_BAND_EDGES = (0, 20, 40, 60, 80, 100)  # score bands of 20 points on the 0-100 scale
TABLE_COLUMNS = [
    "from_stage", "to_stage", "episodes", "recycled", "too_recent", "not_worked", "rejected", "eligible",
    "converted", "rate", "ci_low", "ci_high", "median_days", "median_days_n",
]
_DAY = pd.Timedelta(days=1)


def check_stage_names(stages_seen: Sequence[str], settings: FunnelConfig, stage_column: str = "stage") -> None:
    """Fail when a funnel stage of `settings` looks misnamed, listing the stages the outcomes hold.

    A funnel stage is misnamed when it never occurs while the outcomes hold names the settings do not know
    ("Won" for "won"), or when it is the entry stage (nothing could be counted). A later stage that no lead
    has reached yet, in outcomes whose names are all known, is simply counted as 0; the rejection and
    recycle stages may always be absent (no lead was rejected or recycled yet)."""
    seen = sorted({str(stage) for stage in stages_seen})
    known = {*settings.stages, *_closing(settings)}
    strangers = [stage for stage in seen if stage not in known]
    unknown = [stage for stage in settings.stages if stage not in seen and (strangers or stage == settings.stages[0])]
    if unknown:
        raise InputError(
            f"funnel stage(s) {', '.join(repr(s) for s in unknown)} never occur in the outcomes; stages seen: "
            f"{', '.join(repr(s) for s in seen) or 'none'}", column=stage_column,
            fix="name the funnel's stages as the outcomes log writes them (funnel.stages in the config, or --stages)",
        )


def episodes(outcomes: pd.DataFrame, settings: FunnelConfig, *, id_column: str = "lead_id",
             stage_column: str = "stage", timestamp_column: str = "timestamp") -> pd.DataFrame:
    """One row per episode (lead id, `episode` number from 1) with the first time of each funnel stage in it.

    Columns: the id column, ``episode``, one column per funnel stage, ``rejected_at`` (first rejection) and
    ``closed_at`` (first rejection, recycle outcome or last funnel stage); times missing where not reached."""
    entry = settings.stages[0]
    closing = _closing(settings)
    # At one moment a closing outcome comes before an entry, so a same-moment re-entry starts a new episode.
    order = {stage: i for i, stage in enumerate(settings.stages)} | dict.fromkeys(closing, -1)
    frame = pd.DataFrame({
        "lead": outcomes[id_column].astype(str).reset_index(drop=True),
        "stage": outcomes[stage_column].astype(str).reset_index(drop=True),
        "at": outcomes[timestamp_column].reset_index(drop=True),
    })
    frame["rank"] = frame["stage"].map(order).fillna(len(settings.stages))
    frame = frame.sort_values(["lead", "at", "rank"], kind="stable").reset_index(drop=True)
    is_entry = (frame["stage"] == entry).to_numpy()
    closes = frame["stage"].isin(closing).groupby(frame["lead"]).cumsum()
    entries = pd.DataFrame({"lead": frame["lead"][is_entry], "closes": closes[is_entry]})
    before = entries.groupby("lead")["closes"].shift(1)
    starts = np.zeros(len(frame), dtype=int)
    # The first entry opens episode 1; a later one opens the next only if something closed since the last entry.
    starts[is_entry] = (before.isna() | (entries["closes"] > before)).to_numpy(dtype=int)
    frame["episode"] = pd.Series(starts).groupby(frame["lead"]).cumsum().to_numpy()
    frame = frame[frame["episode"] > 0]

    marks = {stage: frame["stage"] == stage for stage in settings.stages}
    marks["rejected_at"] = frame["stage"] == (settings.rejected_stage or "")
    marks["closed_at"] = frame["stage"].isin([*closing, settings.stages[-1]])
    times = pd.DataFrame({name: frame["at"].where(mark) for name, mark in marks.items()})
    out = times.groupby([frame["lead"], frame["episode"]], sort=True).min().reset_index()
    out = out[out[entry].notna()].reset_index(drop=True)
    return out.rename(columns={"lead": id_column})


def step_figures(table: pd.DataFrame, from_stage: str, to_stage: str, *, as_of: pd.Timestamp,
                 too_recent_days: int, accept_step: bool) -> dict:
    """The figures of one step over the episodes in `table` (as `episodes` gives them); see the module doc."""
    start, end = table[from_stage], table[to_stage]
    reached = start.notna()
    converted = reached & end.notna() & (end >= start)
    closed = table["closed_at"].notna() & (table["closed_at"] >= start)
    recent = reached & ~converted & ~closed & ((as_of - start) < pd.Timedelta(days=too_recent_days))
    rejected = not_worked = None
    if accept_step:
        is_rejected = reached & ~converted & table["rejected_at"].notna()
        undecided = reached & ~converted & ~is_rejected
        recent &= undecided
        rejected, not_worked = int(is_rejected.sum()), int((undecided & ~recent).sum())
        eligible = int(converted.sum()) + rejected
    else:
        eligible = int(reached.sum() - recent.sum())
    k = int(converted.sum())
    low, high = _exact_interval(k, eligible)
    days = ((end - start)[converted] / _DAY).astype("float64")
    return {
        "from_stage": from_stage, "to_stage": to_stage, "episodes": int(reached.sum()),
        "recycled": int((reached & (table["episode"] > 1)).sum()), "too_recent": int(recent.sum()),
        "not_worked": not_worked, "rejected": rejected, "eligible": eligible, "converted": k,
        "rate": k / eligible if eligible else np.nan, "ci_low": low, "ci_high": high,
        "median_days": float(days.median()) if len(days) else np.nan, "median_days_n": len(days),
    }


def funnel_table(outcomes: pd.DataFrame, settings: FunnelConfig | None = None, *, segments: pd.Series | None = None,
                 segment_name: str = "segment", as_of: pd.Timestamp | None = None, id_column: str = "lead_id",
                 stage_column: str = "stage", timestamp_column: str = "timestamp") -> pd.DataFrame:
    """The funnel: one row per step (and per segment when `segments` is given), columns as `TABLE_COLUMNS`.

    `outcomes` is the outcomes log (id, stage, timestamp columns as named). `segments` maps a lead id (its
    index) to a segment value; the table then starts with a `segment_name` column whose value is `ALL` for
    the rows over every episode, `MISSING` for leads without a value. `as_of` is the export time (default:
    the last outcome recorded)."""
    settings = settings or FunnelConfig()
    fix = "export the outcomes with the lead id, the stage and its time"
    require_columns(outcomes, [id_column, stage_column, timestamp_column], "outcomes", fix)
    for column in (id_column, stage_column, timestamp_column):
        require_not_null(outcomes, column, "outcomes", "fill the value or remove the outcome")
    outcomes = outcomes.assign(**{timestamp_column: parse_timestamps(outcomes, timestamp_column, "outcomes")})
    check_stage_names(outcomes[stage_column].unique(), settings, stage_column)
    as_of = outcomes[timestamp_column].max() if as_of is None else _utc(as_of)
    table = episodes(outcomes, settings, id_column=id_column, stage_column=stage_column,
                     timestamp_column=timestamp_column)
    groups = [(None, table)]
    if segments is not None:
        values = table[id_column].map(segments.set_axis(segments.index.astype(str)))
        labels = values.astype("string").fillna(MISSING)
        groups = [(ALL, table)] + [(str(value), table[labels == value]) for value in sorted(labels.unique())]
    rows = []
    for segment, part in groups:
        for i, (a, b) in enumerate(pairwise(settings.stages)):
            figures = step_figures(part, a, b, as_of=as_of, too_recent_days=settings.too_recent_days,
                                   accept_step=i == 0 and settings.rejected_stage is not None)
            rows.append(({segment_name: segment} if segment is not None else {}) | figures)
    out = pd.DataFrame(rows)
    for column in ("not_worked", "rejected"):
        out[column] = out[column].astype("Int64")
    return out


def score_bands(scores: pd.Series) -> pd.Series:
    """Scores on the 0-100 scale as bands of 20 points (``0-20``, ..., ``80-100``); missing stays missing."""
    labels = [f"{lo}-{hi}" for lo, hi in pairwise(SCORE_BAND_EDGES)]
    bands = pd.cut(pd.to_numeric(scores, errors="coerce"), list(SCORE_BAND_EDGES), labels=labels,
                   include_lowest=True)
    return bands.astype("string")


def as_text(table: pd.DataFrame) -> str:
    """The funnel table for people: rates and bounds as percentages, days with one decimal."""
    shown = table.copy()
    for column in ("rate", "ci_low", "ci_high"):
        shown[column] = shown[column].map(lambda v: "–" if pd.isna(v) else f"{v:.1%}")
    shown["median_days"] = shown["median_days"].map(lambda v: "–" if pd.isna(v) else f"{v:.1f}")
    return shown.astype("string").fillna("–").to_string(index=False)


def as_markdown(table: pd.DataFrame) -> str:
    """The funnel table as a Markdown table (rates and bounds as fractions with four decimals)."""
    def cell(value) -> str:
        if pd.isna(value):
            return ""
        return f"{value:.4f}" if isinstance(value, float) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _closing(settings: FunnelConfig) -> set[str]:
    """The stages that close an episode: the rejection and the recycle outcomes."""
    return {*settings.recycle_stages, *([settings.rejected_stage] if settings.rejected_stage else [])}


def _exact_interval(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    interval = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(interval.low), float(interval.high)


def _utc(moment) -> pd.Timestamp:
    moment = pd.Timestamp(moment)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


# --------------------------------------------------------------------------------------------
# Reading an event-log folder and writing the table (`leadscore funnel`)
# --------------------------------------------------------------------------------------------

# Writers by file ending: each writes the table to the (temporary) path it is given.
OUTPUT_FORMATS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    ".csv": lambda table, tmp: table.to_csv(tmp, index=False),
    ".md": lambda table, tmp: Path(tmp).write_text(as_markdown(table), encoding="utf-8"),
}


def funnel_from_folder(folder, *, by: str | None = None, scores=None, config=None,
                       stages: Sequence[str] | None = None, as_of=None) -> pd.DataFrame:
    """The funnel table of an event-log folder (its outcomes table, and its leads table for `by`).

    `scores` is a scores file (`leadscore score --output`); `by` names a column of the scores file or, if
    it has none, of the leads table; with scores and no `by`, the segments are score bands of 20 points
    (`score_bands` of its ``score`` column). `config` (a path) gives the stage names (its ``funnel``
    section) and the table and column names of its event log; `stages` overrides the funnel stages; `as_of` is
    the export time (default: the last outcome recorded)."""
    from leadscore.config import load_config
    from leadscore.data.sources import (
        ReadOptions,
        open_event_log,
        open_table,
        read_rows,
    )
    from leadscore.features.events import EventLogLayout

    cfg = load_config(config) if config is not None else None
    settings = cfg.funnel if cfg is not None else FunnelConfig()
    if stages:
        settings = FunnelConfig.model_validate(settings.model_dump() | {"stages": list(stages)})
    layout = EventLogLayout.from_config(cfg) if cfg is not None and cfg.event_log is not None else EventLogLayout()
    options = ReadOptions(text_columns=(layout.id_column,))
    source = open_event_log(folder, options)
    outcomes = read_rows(source.table(layout.outcomes_table))

    segments, name = None, "segment"
    if scores is not None:
        scored = read_rows(open_table(scores, options))
        require_columns(scored, [layout.id_column], "scores", "give the scores file that leadscore score wrote")
        if by is None:
            require_columns(scored, ["score"], "scores", "give the scores file that leadscore score wrote, or name "
                            "a column of it with --by")
            segments, name = score_bands(scored["score"]).set_axis(scored[layout.id_column].astype(str)), "score_band"
        elif by in scored.columns:
            segments, name = scored.set_index(scored[layout.id_column].astype(str))[by], by
    if by is not None and segments is None:
        leads = read_rows(source.table(layout.leads_table))
        require_columns(leads, [layout.id_column, by], "leads",
                        "name a column of the leads table (or of the scores file) with --by")
        segments, name = leads.set_index(leads[layout.id_column].astype(str))[by], by
    if segments is not None and not segments.index.is_unique:
        raise InputError("a lead id occurs more than once where the segments are read", column=layout.id_column,
                         rows=[int(i) + 1 for i in np.flatnonzero(segments.index.duplicated())],
                         fix="give one row per lead (the latest score of each lead)")
    return funnel_table(outcomes, settings, segments=segments, segment_name=name, as_of=as_of,
                        id_column=layout.id_column, stage_column=layout.stage_column,
                        timestamp_column=layout.timestamp_column)


def output_format(path) -> str:
    """The format of an output file by its ending (``.csv`` or ``.md``); an `OutputError` for any other."""
    from leadscore.errors import OutputError

    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise OutputError(f"cannot tell the format of {Path(path).name}: name the file with one of "
                          f"{', '.join(OUTPUT_FORMATS)} (CSV, Markdown)")
    return suffix


def write_table(table: pd.DataFrame, path) -> None:
    """Write the funnel table atomically as CSV or Markdown, as the file's ending says."""
    from leadscore.data.io import write_atomically

    write = OUTPUT_FORMATS[output_format(path)]
    write_atomically(path, lambda tmp: write(table, tmp))
