"""`leadscore init`: a commented starter config guessed from a data file or an event-log folder.

Every guess (id, label and its converted value, time column, separator, encoding, missing-value
placeholders, personal columns, number-like categories, columns known only after the outcome, dimension
groups, cutoff policies) is written with a comment that says what it was read from, so that a person can
confirm or correct it in one look. The config trains without edits: whatever cannot be guessed safely is
left at a default that works on any data (the cutoff policies are relative to the data's own conversion
rate and never stop training).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from leadscore.config import DEFAULT_MQL_RECALL, DEFAULT_SQL_LIFT, DataConfig, tracking_for_file
from leadscore.errors import InputError, OutputError

# Label columns by name (lower case, separators dropped), most telling first.
_LABEL_NAMES = ("converted", "conversion", "won", "closedwon", "iswon", "purchased", "purchase", "revenue",
                "subscribed", "target", "label", "outcome", "y")
_POSITIVE_VALUES = ("1", "true", "yes", "y", "won", "converted", "closed won", "closedwon", "success", "ja", "j")
# Placeholders CRM exports use for "missing" (compared case-insensitively).
_PLACEHOLDERS = ("unknown", "select", "k. a.", "k.a.", "unbekannt", "not specified", "n.a.", "none given", "-", "?")
# Columns filled in only after contact or after the outcome: excluded, with a comment to undo it.
_POST_OUTCOME_NAMES = ("duration", "callduration", "calllength", "talktime", "leadquality", "lostreason", "notes",
                       "callnotes", "status", "leadstatus", "closedate", "closedat", "outcome", "tags")
_STAGE_WORDS = ("pricing", "demo", "quote", "trial", "cart", "checkout", "pagevalue", "specialday", "intent")
_ENGAGEMENT_WORDS = ("visit", "view", "page", "click", "open", "email", "session", "duration", "bounce", "exit",
                     "download", "webinar", "campaign", "contact", "call", "previous", "pdays", "activity", "last",
                     "count", "product", "administrative", "informational", "poutcome", "event")
_FIT_WORDS = ("job", "title", "seniority", "department", "industry", "size", "employees", "country", "region",
              "city", "state", "age", "education", "marital", "default", "housing", "loan", "visitortype",
              "operatingsystem", "browser", "traffictype", "source", "segment", "revenue_band", "company")
_CODE_WORDS = ("type", "region", "browser", "system", "code", "category", "segment", "class", "group", "channel")
_MONTH_OR_DAY = re.compile(r"^(jan|feb|mar|apr|may|jun|june|jul|aug|sep|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun)\w*$",
                           re.IGNORECASE)


@dataclass
class Starter:
    """A starter config: where it was written, its text, and the guesses it holds in words."""

    path: Path
    text: str
    guesses: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What `leadscore init` prints: the file, the main guesses and the next two commands."""
        lines = [f"wrote {self.path}; guessed from the data (each guess is explained in a comment there):"]
        lines += [f"  {guess}" for guess in self.guesses]
        lines += [f"next: leadscore check --config {self.path}", f"then: leadscore train --config {self.path}"]
        return "\n".join(lines)


def write_starter_config(data: str | PathLike, *, label: str | None = None, output: str | PathLike | None = None,
                         force: bool = False) -> Starter:
    """Write the starter config for `data` to `output` (default `<data name>.yaml` in the working folder).

    Refuses to overwrite an existing file unless `force`. Raises InputError when the data cannot be read or
    has no column that can be the label (name it with `label`)."""
    location = Path(data)
    if not location.exists():
        raise InputError(f"{location} does not exist", fix="give a CSV or Parquet file, or an event-log folder")
    path = Path(output) if output else Path.cwd() / f"{_stem(location)}.yaml"
    if path.exists() and not force:
        raise OutputError(f"{path} exists already; give another --output, or --force to overwrite it")
    starter = starter_config(location, label=label, config_path=path)
    try:
        path.write_text(starter.text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return starter


def starter_config(data: Path, *, label: str | None = None, config_path: Path) -> Starter:
    """The starter config for the file or folder `data`, as it would be written to `config_path`."""
    if data.is_dir() and not data.name.endswith(".parquet"):
        return _event_log_starter(data, config_path)
    return _snapshot_starter(data, label, config_path)


def _stem(location: Path) -> str:
    name = location.name.removesuffix(".parquet").removesuffix(".csv")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "leads"


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


# Snapshot tables.
def _snapshot_starter(path: Path, label: str | None, config_path: Path) -> Starter:
    from leadscore.data.personal import personal_decisions
    from leadscore.data.sources import open_table, read_table

    source = open_table(path)
    separator = getattr(source, "separator", None)
    encoding = getattr(source, "encoding", None)
    frame = read_table(path)
    guesses: list[str] = []
    lines = [f"# Starter config written by `leadscore init` from {path.name} ({len(frame):,} rows, "
             f"{frame.shape[1]} columns).",
             "# Each guess says what it was read from: check them, then `leadscore check --config <this file>`.",
             "data:", "  form: snapshot", f"  path: {_path_text(path, config_path)}"]
    if separator is not None:
        lines.append(f"  csv_separator: {_quote(separator)}   # detected from the header line")
    if encoding is not None and "encoding" in DataConfig.model_fields:
        lines.append(f"  encoding: {encoding}   # detected from the file's bytes")

    placeholders = _placeholders(frame)
    if placeholders:
        lines.append(f"  na_values: {_flow(placeholders)}   # placeholders found in text columns: read as missing")
        frame = frame.replace({value: np.nan for value in placeholders})
        guesses.append(f"missing-value placeholders: {', '.join(placeholders)}")

    if "decimal" in DataConfig.model_fields and separator is not None:
        mark, mark_lines = _decimal_mark(path, frame, placeholders)
        lines += mark_lines
        if mark == ",":
            # Read again as training will, so that the guesses below see those columns as numbers.
            frame = read_table(path, na_values=placeholders, decimal=",")
            guesses.append("decimal comma (3,5)")

    label_column, why = _label(frame, label)
    positive, positive_why = _positive(frame[label_column])
    rate = float((frame[label_column].astype("string") == str(positive)).mean())
    lines.append(f"  label_column: {_quote(label_column)}   # {why}")
    lines.append(f"  positive_label: {_quote(positive)}   # {positive_why}; {rate:.1%} of rows")
    guesses.append(f"label: {label_column} = {positive} ({rate:.1%} of rows convert)")

    id_column, id_why = _id(frame, label_column)
    lines.append(f"  id_column: {_quote(id_column) if id_column else 'null'}   # {id_why}")
    guesses.append(f"id: {id_column or 'none (the row number)'}")

    time_column, time_why, other_dates = _time(frame, {label_column, id_column})
    if time_column:
        lines.append(f"  time_column: {_quote(time_column)}   # {time_why}: windows are cut by time")
        guesses.append(f"time: {time_column} (out-of-time split)")
    else:
        guesses.append("time: none (random split; use split.method: row_order if rows are in time order)")

    decisions = [d for d in personal_decisions(frame) if d.column not in {label_column, id_column}]
    personal = [d for d in decisions if d.personal]
    if personal:
        lines.append(f"  personal_columns: {_flow([d.column for d in personal])}   # never used, never logged")
        lines += [f"  #   {d.column}: {d.why}" for d in personal]
        guesses.append(f"personal: {', '.join(d.column for d in personal)}")
    free_text = [d.column for d in decisions if d.free_text and not d.personal and d.column != time_column]

    taken = {label_column, id_column, time_column, *(d.column for d in personal)}
    post_outcome = [c for c in frame.columns if c not in taken and _key(c) in _POST_OUTCOME_NAMES]
    excluded = [*post_outcome, *other_dates, *free_text]
    if excluded:
        lines.append(f"  exclude_columns: {_flow(excluded)}")
        lines += [f"  #   {c}: usually known only after contact or the outcome; it would leak it. Remove it from "
                  "this list if it is known when a lead is scored" for c in post_outcome]
        lines += [f"  #   {c}: a date, not a feature" for c in other_dates]
        lines += [f"  #   {c}: free text (mostly distinct values), not a category" for c in free_text]
        guesses.append(f"excluded: {', '.join(excluded)}")

    features = [c for c in frame.columns if c not in taken and c not in excluded]
    codes, code_lines = _number_like_categories(frame, features)
    if codes:
        lines.append(f"  categorical_columns: {_flow(codes)}")
        lines += code_lines
        guesses.append(f"number-like categories: {', '.join(codes)}")

    if not time_column:
        lines += ["", "# No column holds full dates, so windows are drawn at random (stratified). If the rows are in",
                  "# time order, `method: row_order` tests out of time, which is more honest.",
                  "split:", "  method: random"]

    lines += ["", *_groups_section(features, frame, guesses)]
    conversions = int(round(rate * len(frame)))
    lines += ["", *_cutoffs_section(rate)]
    if conversions < 120:
        lines += ["", f"# Only {conversions} conversions: fewer than the 120 a reliable model needs. Until there are more,",
                  "# the hand-set points_baseline rules score instead (add rules there).",
                  "model:", "  min_conversions: 120", "  fallback: points"]
    lines += ["", *_tracking_section(config_path)]
    return Starter(config_path, "\n".join(lines) + "\n", guesses)


def _path_text(path: Path, config_path: Path) -> str:
    """The data path as the config should hold it: relative to the working folder when it is inside it."""
    resolved = path.resolve()
    try:
        return _quote(str(resolved.relative_to(Path.cwd().resolve())))
    except ValueError:
        return _quote(str(resolved))


def _placeholders(frame: pd.DataFrame) -> list[str]:
    found = set()
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values.dropna().astype(str).str.strip()
        found |= {v for v in text.unique()[:10_000] if v.lower() in _PLACEHOLDERS}
    return sorted(found)


# A cell whose comma can only be a decimal comma: `3,5`, `-0,25`, `1.234,5`, `12,0` (not `1,234` alone, which
# English exports write for 1234).
_SURE_DECIMAL_COMMA = re.compile(r"^[+-]?(?:[0-9]*,(?:[0-9]{0,2}|[0-9]{4,})|[0-9]{1,3}(?:\.[0-9]{3})+,[0-9]*)"
                                 r"(?:[eE][+-]?[0-9]+)?$")


def _decimal_mark(path: Path, frame: pd.DataFrame, placeholders: list[str]) -> tuple[str, list[str]]:
    """The decimal mark the CSV file writes its numbers with ("." or ","), and the config lines that say so.

    A column of numbers with a decimal comma (`3,5`, `1.234,5`) is one whose every filled cell is such a number,
    some of them not numbers with a decimal point, and one at least a cell whose comma cannot group thousands.
    `,` is guessed when such columns exist and no column writes numbers with a decimal point (`3.5`, which a
    decimal comma would make text). Otherwise the lines only point at what was seen."""
    from leadscore.data.sources import read_table
    from leadscore.data.validation import read_numbers

    text_columns = [c for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c])
                                                     or pd.api.types.is_bool_dtype(frame[c]))]
    if not any(frame[c].astype("string").str.contains(r"[0-9],[0-9]", regex=True).any() for c in text_columns):
        return ".", []
    cells = read_table(path, na_values=placeholders, text_columns=list(frame.columns))  # every cell as written
    comma, unsure, point = [], [], []
    for column in cells.columns:
        values = cells[column]
        _, filled, not_comma = read_numbers(values, ",")
        _, _, not_point = read_numbers(values, ".")
        if not filled.any():
            continue
        if not not_comma.any() and not_point.any():
            sure = values[filled].astype("string").str.strip().str.fullmatch(_SURE_DECIMAL_COMMA).fillna(False).any()
            (comma if sure else unsure).append(str(column))
        elif not not_point.any() and not_comma.any():
            point.append(str(column))
    if comma and not point:
        return ",", [f'  decimal: ","   # numbers written with a decimal comma (3,5 or 1.234,5) in {", ".join(comma)}']
    if comma:
        return ".", [
            f"  # decimal: the numbers in {', '.join(comma)} have a decimal comma (3,5), those in {', '.join(point)}",
            '  #   a decimal point (3.5): export the file again with one mark, then set decimal: "," if it is the comma',
        ]
    if unsure:
        return ".", [
            f"  # decimal: the numbers in {', '.join(unsure)} look like 1,234: if that comma is a decimal comma",
            '  #   (1.234 in English), set decimal: ","; if it groups thousands, export the numbers without it',
        ]
    return ".", []


def _label(frame: pd.DataFrame, label: str | None) -> tuple[str, str]:
    if label is not None:
        if label not in frame.columns:
            import difflib

            close = difflib.get_close_matches(label, [str(c) for c in frame.columns], n=1)
            raise InputError(f"--label {label}: the data has no such column" + (f"; did you mean '{close[0]}'?" if close else ""),
                             fix="name one of the data's columns")
        if frame[label].dropna().nunique() != 2:
            raise InputError(f"--label {label}: the column holds {frame[label].dropna().nunique()} distinct values, "
                             "not two", column=label, fix="name a column that says converted or not")
        return label, "named with --label"
    binary = [c for c in frame.columns if frame[c].dropna().nunique() == 2]
    by_name = [c for name in _LABEL_NAMES for c in binary if _key(c) == name]
    if by_name:
        return by_name[0], "two values and a name that means conversion"
    if binary:
        return binary[-1], f"the last of the {len(binary)} two-valued columns: check it, or run init with --label"
    raise InputError("no column with exactly two values, so none can be the label",
                     fix="run `leadscore init DATA --label COLUMN` naming the column that says whether a lead converted")


def _positive(values: pd.Series):
    distinct = list(values.dropna().unique())
    for value in distinct:
        if str(value).strip().lower() in _POSITIVE_VALUES:
            return _plain(value), "the value that means yes"
    counts = values.value_counts()
    return _plain(counts.index[-1]), "the rarer of the two values"


def _plain(value):
    """A numpy or pandas scalar as the plain Python value YAML writes."""
    return value.item() if hasattr(value, "item") else value


def _id(frame: pd.DataFrame, label_column: str) -> tuple[str | None, str]:
    candidates = [c for c in frame.columns if c != label_column and re.search(r"(^|[^a-z])id$|^id|_id$|(?<=[a-z])Id$", str(c), re.I)]
    for column in candidates:
        values = frame[column]
        if values.notna().all() and values.is_unique:
            return str(column), "its name says id and every row has its own value"
    if candidates:
        return None, (f"{', '.join(map(str, candidates))} repeat or are empty on some rows, so the row number is the id")
    return None, "no id column: the row number is the id"


def _time(frame: pd.DataFrame, taken: set) -> tuple[str | None, str, list[str]]:
    dated = []
    for column in frame.columns:
        if column in taken or pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            continue
        sample = frame[column].dropna().astype(str).head(2000)
        if sample.empty or sample.str.fullmatch(_MONTH_OR_DAY).mean() > 0.5 or not sample.str.contains(r"\d").all():
            continue  # month or weekday names are not dates (they would read as year 1)
        parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="mixed", dayfirst=sample.str.contains(r"^\d{1,2}\.").any())
        if parsed.notna().mean() >= 0.95 and parsed.min().year >= 1900:
            dated.append(str(column))
    if not dated:
        return None, "", []
    preferred = sorted(dated, key=lambda c: 0 if re.search(r"creat|date|time|since|first", c, re.I) else 1)
    return preferred[0], f"full dates ({', '.join(dated)} hold dates; this name fits best)", preferred[1:]


def _number_like_categories(frame: pd.DataFrame, features: list[str]) -> tuple[list[str], list[str]]:
    from leadscore.data.validation import read_numbers

    codes, lines = [], []
    for column in features:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.is_integer_dtype(values):
            if values.nunique() <= 30 and any(word in _key(column) for word in _CODE_WORDS):
                codes.append(str(column))
                lines.append(f"  #   {column}: whole numbers with {values.nunique()} values and a name of codes: a category, "
                             "not an amount")
            continue
        if pd.api.types.is_numeric_dtype(values):
            continue
        _, filled, stray = read_numbers(values)
        if filled.any() and 0 < stray.sum() <= 0.2 * filled.sum():
            examples = ", ".join(sorted(values[stray].astype(str).str.strip().unique())[:3])
            codes.append(str(column))
            lines.append(f"  #   {column}: numbers but for values such as {examples}: bands or codes, read as a category")
    return codes, lines


def _groups_section(features: list[str], frame: pd.DataFrame, guesses: list[str]) -> list[str]:
    groups: dict[str, list[str]] = {"fit": [], "engagement": [], "stage": []}
    for column in features:
        key = _key(column)
        if any(word in key for word in _STAGE_WORDS):
            groups["stage"].append(column)
        elif any(word in key for word in _FIT_WORDS):
            groups["fit"].append(column)
        elif any(word in key for word in _ENGAGEMENT_WORDS):
            groups["engagement"].append(column)
    other = [c for c in features if not any(c in g for g in groups.values())]
    lines = ["# Dimension scores, each learned from its own columns alone (guessed from the column names; move",
             "# columns between the lists as they fit your business). An empty list leaves that score out.",
             "#   fit: who the lead is; engagement: what they did; stage: signals of buying now.",
             "groups:"]
    lines += [f"  {name}: {_flow(columns)}" for name, columns in groups.items()]
    if other:
        lines.append(f"# In the overall score only (no dimension): {', '.join(map(str, other))}")
    guesses.append("groups: " + "; ".join(f"{name} {len(columns)}" for name, columns in groups.items()))
    return lines


def _cutoffs_section(rate: float | None) -> list[str]:
    # A lift above 1/rate is impossible; keep the SQL band well within reach on data that converts often.
    lift = DEFAULT_SQL_LIFT if not rate else max(1.2, min(DEFAULT_SQL_LIFT, round(0.6 / rate, 1)))
    average = f" ({rate:.1%} here)" if rate else ""
    reached = f" ({min(lift * rate, 1):.0%})" if rate else ""
    return [f"# MQL and SQL, relative to the average conversion rate{average}, so they hold on any data:",
            f"#   SQL: leads converting at {lift:g}x the average{reached} with 90 % confidence, or, where no cutoff",
            "#   shows that, the best the model can show (with a warning);",
            f"#   MQL: the highest cutoff that keeps {DEFAULT_MQL_RECALL:.0%} of the conversions.",
            "# Other policies: top_fraction, capacity, min_conversion_rate (see docs/training.md, Cutoffs).",
            "cutoffs:",
            f"  sql: {{policy: min_lift, lift: {lift:g}, confidence: 0.9}}",
            f"  mql: {{policy: recall, recall: {DEFAULT_MQL_RECALL:g}}}"]


def _tracking_section(config_path: Path) -> list[str]:
    names = tracking_for_file(config_path)
    return ["# Where runs and the registered model go in MLflow (the tracking URI comes from MLFLOW_TRACKING_URI).",
            "tracking:", f"  experiment: {names['experiment']}", f"  registered_model: {names['registered_model']}"]


def _quote(value) -> str:
    """A scalar as YAML writes it, on one line."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _flow(values: list) -> str:
    return yaml.safe_dump([str(v) for v in values], default_flow_style=True, width=10_000).strip()


# Event logs.
# Records dated after the moment init runs: when more than this share of all records are, the data as a whole
# reach past today (simulated data, or a clock set ahead); when fewer are, they are typing errors (2150 for 2015).
_FUTURE_SHARE = 0.01


def export_time_guess(recorded: pd.Series, now: pd.Timestamp) -> tuple[pd.Timestamp, list[str]]:
    """The guess for `event_log.exported_at` from every recorded time (lead creations, activities, outcomes, UTC),
    and the comment lines that say what it was read from.

    The guess is the latest recorded time, rounded up to the second (nothing in an export can happen after it
    was taken, and training refuses what does). Records dated after `now` are typing errors when they are a
    few (at most `_FUTURE_SHARE` of all records): the guess is then the latest time up to `now`, as training
    takes it without `exported_at`, so that training names those records instead of taking them as true.
    """
    late = int((recorded > now).sum())
    if late and late <= _FUTURE_SHARE * len(recorded):
        moment = recorded[recorded <= now].max()
        moment = now if pd.isna(moment) else moment
        return moment.ceil("s"), [
            f"the latest recorded time up to today ({now:%Y-%m-%d}), rounded up to the second:",
            f"{late} record(s) are dated after today (typing errors?): training refuses them until they are corrected,",
            "or set drop_events_after_export: true to leave them out. Set this to when the export was taken.",
        ]
    if late:
        return recorded.max().ceil("s"), [
            "the latest recorded time (lead creation, activity or outcome), rounded up to the second:",
            (f"{late:,} records ({late / len(recorded):.0%}) are dated after today ({now:%Y-%m-%d}): the data reach "
             "past today (simulated?)."),
            "If those dates are errors, correct them and set this to when the export was taken.",
        ]
    return recorded.max().ceil("s"), [
        "the latest recorded time (lead creation, activity or outcome), rounded up to the second:",
        "set it to when the export was taken, and again for each new export (records dated after it are",
        "refused); without it, the last recorded time up to the moment training runs is taken.",
    ]


def _event_log_starter(folder: Path, config_path: Path) -> Starter:
    from leadscore.config import EventLogConfig
    from leadscore.data.personal import personal_decisions
    from leadscore.data.sources import open_event_log, read_rows
    from leadscore.data.validation import parse_timestamps, require_columns

    defaults = EventLogConfig.model_fields
    log = open_event_log(folder)
    tables = {name: read_rows(log.table(defaults[f"{name}_table"].default))
              for name in ("leads", "activities", "outcomes")}
    leads, activities, outcomes = tables["leads"], tables["activities"], tables["outcomes"]
    id_column, id_why = _event_log_id(tables)
    created, stamp = defaults["created_column"].default, defaults["timestamp_column"].default
    kind = defaults["activity_type_column"].default
    fix = "name the columns as the event_log section's defaults do (see docs/configuration.md), or write the config by hand"
    require_columns(leads, [created], "the leads table", fix)
    require_columns(activities, [stamp, kind], "the activities table", fix)
    require_columns(outcomes, [stamp], "the outcomes table", fix)
    times = pd.concat([parse_timestamps(leads, created, "the leads table"),
                       parse_timestamps(activities, stamp, "the activities table"),
                       parse_timestamps(outcomes, stamp, "the outcomes table")], ignore_index=True)
    exported, exported_why = export_time_guess(times, pd.Timestamp.now(tz="UTC"))
    start, end = times.min(), min(times.max(), exported)
    horizon = 90
    first = (start + pd.Timedelta(days=60)).date()
    last = (end - pd.Timedelta(days=horizon + 1)).date()
    if last <= first:
        raise InputError(f"the event log spans {start:%Y-%m-%d} to {end:%Y-%m-%d}, too short for snapshots with a "
                         f"{horizon}-day label window after two months of history", fix="give a longer history")
    every = max(7, (last - first).days // 24)
    decisions = [d for d in personal_decisions(leads) if d.column not in (id_column, created)]
    personal = [d.column for d in decisions if d.personal]
    profile = [c for c in leads.columns if c not in (id_column, created, *personal)]
    types = sorted(str(t) for t in activities[kind].dropna().unique())
    stage_types = [t for t in types if any(word in _key(t) for word in _STAGE_WORDS)]
    exported_text = exported.strftime("%Y-%m-%dT%H:%M:%SZ")
    guesses = [(f"leads {len(leads):,}, activities {len(activities):,}, outcomes {len(outcomes):,}; "
                f"{start:%Y-%m-%d} to {times.max():%Y-%m-%d}"), f"id: {id_column}",
               f"exported at: {exported_text} (a guess: set event_log.exported_at to when the export was taken)",
               f"snapshots every {every} days from {first} to {last}, label: won within {horizon} days",
               f"personal: {', '.join(personal) or 'none'}", f"signals: {', '.join(types)}"]
    lines = [f"# Starter config written by `leadscore init` from the event log {folder.name} "
             f"({len(leads):,} leads, {len(activities):,} activities, {len(outcomes):,} outcomes).",
             "# Each guess says what it was read from: check them, then `leadscore check --config <this file>`.",
             "data:", "  form: event_log", f"  path: {_path_text(folder, config_path)}",
             f"  id_column: {_quote(id_column)}   # {id_why}"]
    if personal:
        lines.append(f"  personal_columns: {_flow(personal)}   # never used, never logged")
    lines += ["",
              f"# Training rows are the leads as they looked at each snapshot ({start:%Y-%m-%d} to {end:%Y-%m-%d} in the "
              "data):", "# from two months after the first record, until the last whose label window fits in the data.",
              "# Every activity type is a signal (list `signals:` to name patterns, e.g. one page).",
              "event_log:", f"  snapshots: {{first: {first}, last: {last}, every_days: {every}}}",
              f"  horizon_days: {horizon}   # label: won within this many days after the snapshot", "  half_life_days: 30",
              f"  exported_at: {exported_text}   # {exported_why[0]}",
              *(f"  #   {line}" for line in exported_why[1:])]
    lines += ["", "# Purged label windows cost the calibration window some history: give it a larger share.",
              "split: {train_fraction: 0.5, calibration_fraction: 0.3, test_fraction: 0.2}"]
    engagement = [f"{t}_*" for t in types if t not in stage_types] + ["days_since_last_activity"]
    lines += ["", "# Dimension scores: profile columns are fit, activity signals engagement, buying signals stage.",
              "groups:", f"  fit: {_flow(profile)}", f"  engagement: {_flow(engagement)}",
              f"  stage: {_flow([f'{t}_*' for t in stage_types])}"]
    lines += ["", *_cutoffs_section(None)]
    lines += ["", *_tracking_section(config_path)]
    return Starter(config_path, "\n".join(lines) + "\n", guesses)


def _event_log_id(tables: dict[str, pd.DataFrame]) -> tuple[str, str]:
    """The lead id column every table of an event log holds: `data.id_column`'s default when all hold it, else
    the one column with an id's name that all share."""
    default = DataConfig.model_fields["id_column"].default
    if all(default in table.columns for table in tables.values()):
        return default, "in every table (leads, activities, outcomes)"
    shared = [c for c in tables["leads"].columns if all(c in t.columns for t in tables.values())
              and re.search(r"(^|[^a-z])id$|^id|_id$|(?<=[a-z])Id$", str(c), re.IGNORECASE)]
    if len(shared) == 1:
        return str(shared[0]), "the one column with an id's name in every table (leads, activities, outcomes)"
    lacking = ", ".join(name for name, table in tables.items() if default not in table.columns)
    raise InputError(
        f"the event log's tables share no lead id column: '{default}' is not in {lacking}"
        + (f", and {', '.join(map(str, shared))} could each be the id" if shared else ""),
        fix=f"name the lead id column '{default}' in the leads, activities and outcomes tables",
    )
