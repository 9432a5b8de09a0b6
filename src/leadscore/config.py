"""The one typed configuration object, validated once at the edge.

Every key has a default where a sensible one exists; unknown keys are an error (a misspelt key
silently ignored is a setting silently lost). Paths may use `${VAR}` or `${VAR:-default}` so that data
locations come from the environment; relative paths are resolved against the working directory.
Tracking URIs and secrets never live here: MLflow reads them from the environment.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from leadscore.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Where the training data is and what its columns mean."""

    form: Literal["event_log", "snapshot"]
    path: str = Field(description="snapshot file, or folder holding the event-log tables")
    id_column: str | None = Field("lead_id", description="unique lead id; None means the row number is the id")
    label_column: str | None = Field(None, description="snapshot form: the conversion label")
    positive_label: str | int | bool = Field(1, description="snapshot form: the label value that means converted")
    time_column: str | None = Field(None, description="snapshot form: when the row was observed, for out-of-time splits")
    personal_columns: list[str] = Field(default_factory=list, description="never used as features nor logged")
    exclude_columns: list[str] = Field(default_factory=list, description="never used as features (e.g. known only after contact)")
    post_outcome_columns: list[str] = Field(
        default_factory=list,
        description="known only after the outcome (names or shell patterns): the leakage guard flags any still used as a feature",
    )
    na_values: list[str] = Field(default_factory=list, description="strings that mean 'missing', e.g. 'unknown'")
    categorical_columns: list[str] = Field(
        default_factory=list,
        description="snapshot form: columns that are categories even though nearly all their values are numbers "
        "(codes, bands such as '1000+'); any other such column with a few non-numbers is refused as a data error",
    )
    not_personal: list[str] = Field(
        default_factory=list,
        description="columns that look personal by name or value but are not (e.g. an opt-out flag): kept as data",
    )
    csv_separator: str | None = Field(
        None, description="CSV separator; None: detected from the header line (',', ';', tab or '|')"
    )
    encoding: str | None = Field(
        None, description="text encoding of CSV files; None: detected (UTF-8, UTF-8 with BOM, else cp1252/latin-1)"
    )
    decimal: Literal[".", ","] = Field(
        ".", description="decimal mark of numbers written as text (CSV): ',' reads 3,5, -0,25 and 1.234,5 (thousands "
        "grouped by '.') as numbers, as German, French or Spanish exports write them, and then 3.5 or 1,234.5 as "
        "not a number; ids and data.categorical_columns are never read as numbers. The model keeps it for scoring",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown text encoding '{value}'; give one such as utf-8, utf-8-sig, cp1252 or latin-1") from None
        return value

    @field_validator("csv_separator")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError(f"csv_separator must be one character, got {value!r}")
        return value

    @model_validator(mode="after")
    def _roles_are_distinct(self) -> DataConfig:
        named = {"id_column": self.id_column, "label_column": self.label_column, "time_column": self.time_column}
        given = {key: column for key, column in named.items() if column is not None}
        if len(set(given.values())) < len(given):
            raise ValueError(f"data.id_column, label_column and time_column must name different columns, got {given}")
        return self

    @property
    def resolved_path(self) -> Path:
        return Path(_expand_env(self.path))


class SnapshotSchedule(_Strict):
    """The as-of times at which training rows are taken from an event log."""

    first: date
    last: date
    every_days: int = Field(14, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> SnapshotSchedule:
        if self.last < self.first:
            raise ValueError("snapshots.last is before snapshots.first")
        return self


class Signal(_Strict):
    """An activity pattern counted as a feature, e.g. page views of the pricing page."""

    activity_type: str
    where: dict[str, str] = Field(default_factory=dict, description="activity property equalities, e.g. {page: pricing}")


class EventLogConfig(_Strict):
    """How point-in-time features and labels are built from leads, activities and outcomes."""

    leads_table: str = "leads"
    activities_table: str = "activities"
    outcomes_table: str = "outcomes"
    created_column: str = "created_at"
    timestamp_column: str = "timestamp"
    activity_type_column: str = "activity_type"
    stage_column: str = "stage"
    conversion_stage: str = "won"
    terminal_stages: list[str] = Field(default_factory=lambda: ["won", "lost"])
    from_stage: str | None = Field(
        None, description="transition target: rows only for leads that reached this stage before the snapshot and "
        "not yet conversion_stage or a terminal stage; the label is reaching conversion_stage within horizon_days",
    )
    snapshots: SnapshotSchedule
    horizon_days: int = Field(90, gt=0, description="label: converted within this many days after the snapshot")
    half_life_days: float = Field(30.0, gt=0, description="engagement decay: an event's weight halves every half-life")
    signals: dict[str, Signal] = Field(
        default_factory=dict, description="named activity patterns; empty means one signal per activity type seen"
    )
    exported_at: datetime | None = Field(
        None,
        description="when the export was taken (UTC unless a zone is given): events after it are errors; None: the "
        "last recorded time, but never later than the moment training runs",
    )
    drop_events_after_export: bool = Field(
        False, description="leave out (with their count logged) events and leads dated after the export time "
        "instead of refusing them",
    )
    engine: Literal["duckdb", "pandas", "spark"] = Field(
        "duckdb", description="what builds the training rows: duckdb (one SQL query over all snapshots, about 4 "
        "times less CPU than pandas at 100,000 leads), spark (the same query on a Spark session; the spark extra) "
        "or pandas (the reference builder); all give the same rows",
    )

    @field_validator("exported_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @model_validator(mode="after")
    def _transition_is_a_step(self) -> EventLogConfig:
        if self.from_stage is not None:
            if self.from_stage == self.conversion_stage:
                raise ValueError(f"event_log.from_stage and conversion_stage are both '{self.from_stage}': a transition "
                                 "goes from one stage to another")
            if self.from_stage in self.terminal_stages:
                raise ValueError(f"event_log.from_stage '{self.from_stage}' is a terminal stage, so no lead is still "
                                 "open after it: choose a stage before the end of the funnel")
        return self


class FunnelConfig(_Strict):
    """Funnel analytics (`leadscore funnel`, `leadscore.monitoring.funnel`): the stage names of the outcomes log."""

    stages: list[str] = Field(
        default_factory=lambda: ["MQL", "SAL", "SQL", "won"], min_length=2,
        description="the funnel in order; the first is the entry stage that starts an episode",
    )
    rejected_stage: str | None = Field(
        "SAL_rejected", description="sales rejected the lead: a decided 'no' on the step into the second stage",
    )
    recycle_stages: list[str] = Field(
        default_factory=lambda: ["lost", "recycled"],
        description="outcomes that close an episode (as a rejection does): a later entry stage starts a new one",
    )
    too_recent_days: int = Field(
        30, gt=0, description="an episode that reached a stage fewer days than this before the export, with no "
        "later outcome, is counted as too recent instead of as not converted",
    )

    @model_validator(mode="after")
    def _distinct_names(self) -> FunnelConfig:
        named = [*self.stages, *([self.rejected_stage] if self.rejected_stage else []), *self.recycle_stages]
        repeated = sorted({name for name in named if named.count(name) > 1})
        if repeated:
            raise ValueError(f"funnel: each stage name has one role only; named twice: {', '.join(repeated)}")
        return self


class FeatureGroups(_Strict):
    """Which columns stand for which scoring dimension; names or shell-style patterns (`pricing_*`).

    One field per entry of `leadscore.model.dimensions.DIMENSION_SPECS`, named as the dimension."""

    fit: list[str] = Field(default_factory=list)
    engagement: list[str] = Field(default_factory=list)
    stage: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> FeatureGroups:
        # Each dimension is read from its own columns alone ("fit" from profile only): a column in two
        # groups would blur what both scores mean. Patterns can only be compared with the data's columns.
        _refuse_shared_names({f"groups.{name}": self.patterns(name) for name in type(self).model_fields})
        return self

    def patterns(self, dimension: str) -> list[str]:
        """The names and patterns of one dimension's group; an unknown dimension is a `KeyError` listing the groups."""
        if dimension not in type(self).model_fields:
            raise KeyError(f"no column group named {dimension!r}; groups: {', '.join(type(self).model_fields)}")
        return getattr(self, dimension)


class SplitConfig(_Strict):
    """Train / calibration / test windows."""

    method: Literal["auto", "time", "row_order", "random"] = Field(
        "auto", description="auto: by time when there is a time column, else random stratified"
    )
    train_fraction: float = Field(0.6, gt=0, lt=1)
    calibration_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    purge: bool = Field(True, description="event log: drop rows whose label window reaches into the next window")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train_fraction + self.calibration_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"split fractions must sum to 1, got {total:.3f}")
        return self


class LightGBMConfig(_Strict):
    """LightGBM candidate; `n_estimators` is an upper bound found by early stopping."""

    n_estimators: int = Field(2000, gt=0)
    learning_rate: float = Field(0.03, gt=0)
    num_leaves: int = Field(15, ge=2)
    min_child_samples: int = Field(50, ge=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(1.0, ge=0)
    early_stopping_rounds: int = Field(
        100, gt=0, description="stop when this many trees in a row bring no improvement of the validation log loss "
        "beyond one standard error of the per-row differences (leadscore.training.candidates.StopWithinNoise)",
    )
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="latest part of the training window used for early stopping")
    threads: int | None = Field(
        None, ge=1, description="LightGBM training threads; default one below 100,000 training rows (where "
        "coordinating threads costs more than it saves, and far more on a busy machine), else every core. Results "
        "are identical for the same thread count: set it to train identical models on machines of other sizes",
    )


class ModelConfig(_Strict):
    """The model tournament and its calibration."""

    candidates: list[str] = Field(
        default_factory=lambda: ["lightgbm", "logistic", "linear"], min_length=1,
        description="names from the candidate registry (leadscore.training.candidates); an unknown name is refused before any fitting",
    )
    seed: int = 0
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    logistic_c: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    min_conversions: int = Field(120, ge=1, description="training stops with fewer conversions than this")
    fallback: Literal["none", "points"] = Field(
        "none", description="with too few conversions: 'points' scores the hand-set rules instead of stopping"
    )
    min_category_count: int = Field(5, ge=1, description="rarer categories are treated as missing")
    max_rows: int | None = Field(
        150_000, ge=1000, description="the largest training table fitted: beyond it, a uniform sample of whole leads "
        "(whole accounts with `accounts`), drawn by a seeded hash of the id before any feature is built, every kept "
        "row weighing 1 / fraction (leadscore.training.sampling); null fits every row",
    )
    recency_variants: bool = Field(
        False, description="also enter each candidate weighted by recency (`<name>-recency`: weights halving every "
        "third of the training span) into the rolling-origin backtest, which alone decides whether it is chosen; "
        "time or row-order splits only. Off by default: it doubles the tournament's fits",
    )


class PointsRule(_Strict):
    """One hand-set scoring rule: `points` when `column op value` holds."""

    column: str
    op: Literal[">=", ">", "<=", "<", "==", "!=", "in"]
    value: Any
    points: float


class StageConfig(_Strict):
    """Buying stage: readiness to convert soon, read from intent signals."""

    horizon_days: int = Field(14, gt=0, description="event log: the stage model predicts conversion within this many days")
    consideration_lift: float = Field(1.0, gt=0, description="stage probability at least this multiple of the average")
    decision_lift: float = Field(4.0, gt=0, description="stage probability at least this multiple of the average")

    @model_validator(mode="after")
    def _ordered(self) -> StageConfig:
        if self.decision_lift <= self.consideration_lift:
            raise ValueError("stage.decision_lift must be above stage.consideration_lift")
        return self


class MinConversionRate(_Strict):
    """Lowest cutoff where conversion above it is at least `conversion_rate` with `confidence` (one-sided)."""

    policy: Literal["min_conversion_rate"]
    conversion_rate: float = Field(gt=0, lt=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)


class MinLift(_Strict):
    """Lowest cutoff where conversion above it is at least `lift` times the average, with `confidence` (one-sided).

    The average is the conversion rate of the window the cutoff is chosen on, so one setting means the same on
    data converting 2 % or 30 % of leads. A lift that no cutoff reaches with that confidence takes, with
    `if_unreachable: best` (the default), the cutoff whose lower bound of the conversion rate is highest, with a
    warning in the run and the model card; with `stop`, training stops as for `min_conversion_rate`.
    """

    policy: Literal["min_lift"]
    lift: float = Field(gt=0, description="conversion above the cutoff as a multiple of the average conversion rate")
    confidence: float = Field(0.9, gt=0.5, lt=1)
    if_unreachable: Literal["best", "stop"] = Field(
        "best", description="best: take the cutoff with the highest lower bound, with a warning; stop: stop training",
    )


class KeepConversions(_Strict):
    """Highest cutoff that keeps at least `recall` of all eventual conversions above it."""

    policy: Literal["recall"]
    recall: float = Field(gt=0, le=1)


class Capacity(_Strict):
    """Highest-scoring `leads_per_week` out of `weekly_volume` leads scored per week."""

    policy: Literal["capacity"]
    leads_per_week: int = Field(gt=0)
    weekly_volume: int = Field(gt=0)

    @model_validator(mode="after")
    def _within_volume(self) -> Capacity:
        if self.leads_per_week > self.weekly_volume:
            raise ValueError(f"capacity: leads_per_week ({self.leads_per_week}) is above weekly_volume ({self.weekly_volume})")
        return self


class TopFraction(_Strict):
    """The top `fraction` of leads by probability."""

    policy: Literal["top_fraction"]
    fraction: float = Field(gt=0, le=1)


CutoffPolicy = Annotated[MinConversionRate | MinLift | KeepConversions | Capacity | TopFraction, Field(discriminator="policy")]

# The defaults hold on any data (a perfect ranking is not needed): SQL is the leads converting at three times
# the average or, where no cutoff shows that with 90 % confidence, the best the model can show; MQL keeps 90 % of
# the conversions. Absolute rates (`min_conversion_rate`) fail on data whose average is far from them.
DEFAULT_SQL_LIFT = 3.0
DEFAULT_MQL_RECALL = 0.9


class CutoffsConfig(_Strict):
    """How the MQL and SQL cutoffs are chosen, on the calibration window."""

    mql: CutoffPolicy = Field(default_factory=lambda: KeepConversions(policy="recall", recall=DEFAULT_MQL_RECALL))
    sql: CutoffPolicy = Field(default_factory=lambda: MinLift(policy="min_lift", lift=DEFAULT_SQL_LIFT))
    strict: bool = Field(
        False, description="stop training when a band comes out empty (no MQL between the cutoffs), instead of warning",
    )

    @model_validator(mode="after")
    def _mql_not_stricter(self) -> CutoffsConfig:
        # Only policies of one kind compare without the data; across kinds the MQL cutoff is lowered to the
        # SQL cutoff when training finds it above (see `leadscore.training.cutoffs.choose_cutoffs`).
        if _strictly_stricter(self.mql, self.sql):
            raise ValueError(
                f"cutoffs.mql ({_policy_text(self.mql)}) is stricter than cutoffs.sql ({_policy_text(self.sql)}), "
                "but every SQL must also be an MQL: loosen the MQL policy or tighten the SQL one (were they swapped?)"
            )
        return self


def _lead_share(policy: CutoffPolicy) -> float | None:
    """The share of leads a volume policy flags (top fraction or capacity), else None."""
    if isinstance(policy, TopFraction):
        return policy.fraction
    if isinstance(policy, Capacity):
        return policy.leads_per_week / policy.weekly_volume
    return None


def _strictly_stricter(mql: CutoffPolicy, sql: CutoffPolicy) -> bool:
    """Whether the MQL policy asks for a higher cutoff than the SQL policy on any data (same kind of policy only)."""
    if isinstance(mql, MinConversionRate) and isinstance(sql, MinConversionRate):
        at_least = mql.conversion_rate >= sql.conversion_rate and mql.confidence >= sql.confidence
        return at_least and (mql.conversion_rate, mql.confidence) != (sql.conversion_rate, sql.confidence)
    if isinstance(mql, MinLift) and isinstance(sql, MinLift):
        at_least = mql.lift >= sql.lift and mql.confidence >= sql.confidence
        return at_least and (mql.lift, mql.confidence) != (sql.lift, sql.confidence)
    if isinstance(mql, KeepConversions) and isinstance(sql, KeepConversions):
        return mql.recall < sql.recall
    mql_share, sql_share = _lead_share(mql), _lead_share(sql)
    return mql_share is not None and sql_share is not None and mql_share < sql_share


def _policy_text(policy: CutoffPolicy) -> str:
    return ", ".join(f"{key}: {value}" for key, value in policy.model_dump().items())


class PointsCutoffs(_Strict):
    """Points fallback: the classic hand-set thresholds on the 0-100 points scale."""

    mql: float = Field(40, ge=0, le=100)
    sql: float = Field(70, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> PointsCutoffs:
        if self.mql > self.sql:
            raise ValueError("points_cutoffs.mql must not be above points_cutoffs.sql")
        return self


class ReasonTemplate(_Strict):
    """A field's reason text (see `leadscore.reasons` for placeholders such as `{value}` and `{days_since:ago}`)."""

    positive: str | None = Field(None, description="when the field raises the score; default '{field}: {value}'")
    negative: str | None = Field(None, description="when the field lowers the score; default as positive")
    missing: str | None = Field(None, description="when the value is missing (a signal: no such activity yet)")
    values: dict[str, str] = Field(default_factory=dict, description="words for raw values, e.g. {'999': 'never'}")

    @field_validator("positive", "negative", "missing")
    @classmethod
    def _parses(cls, text: str | None) -> str | None:
        return None if text is None else _check_reason_text(text)


class ReasonsConfig(_Strict):
    """Per-lead reasons: how many, how long, and their plain-language text."""

    top_k: int = Field(3, ge=1, le=10, description="strongest positive and strongest negative reasons kept per lead")
    max_chars: int = Field(80, ge=24, le=1000, description="longest reason_i text, to fit a CRM field")
    templates: dict[str, str | ReasonTemplate] = Field(
        default_factory=dict,
        description="by field (a column or an activity signal) or shell pattern; a plain string serves both signs",
    )
    combine: dict[str, list[str]] = Field(
        default_factory=dict,
        description="one reason from several columns (names or shell patterns), e.g. indicators that move together",
    )

    @field_validator("templates")
    @classmethod
    def _plain_strings_parse(cls, templates: dict) -> dict:
        for text in templates.values():
            if isinstance(text, str):
                _check_reason_text(text)
        return templates

    @field_validator("combine")
    @classmethod
    def _one_field_per_column(cls, combine: dict[str, list[str]]) -> dict[str, list[str]]:
        _refuse_shared_names({f"reasons.combine.{name}": patterns for name, patterns in combine.items()})
        return combine


def is_pattern(name: str) -> bool:
    """Whether a column entry is a shell pattern (`pricing_*`) rather than a plain column name."""
    return any(char in name for char in "*?[")


def _refuse_shared_names(lists: dict[str, list[str]]) -> None:
    """Fail when one plain column name appears under two keys of `lists` ({config key: names})."""
    owner: dict[str, str] = {}
    shared = []
    for key, names in lists.items():
        for name in names:
            if is_pattern(name):
                continue
            if name in owner and owner[name] != key:
                shared.append(f"'{name}' in {owner[name]} and {key}")
            owner.setdefault(name, key)
    if shared:
        raise ValueError(f"a column belongs to one place only: {'; '.join(shared)}")


def _check_reason_text(text: str) -> str:
    """Template syntax and placeholder names; whether a field offers them is checked when a model is trained."""
    from leadscore.model.reasons import PLACEHOLDERS, template_placeholders

    unknown = sorted({name for name, _ in template_placeholders(text)} - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"unknown placeholders {unknown} in {text!r}; known: {list(PLACEHOLDERS)}")
    return text


class AccountsConfig(_Strict):
    """Accounts (the companies leads work for): account scores, MQA and buying groups (`leadscore.model.accounts`)."""

    column: str = Field(description="the account id on every lead: a column of the leads table (event log) or of "
                        "the snapshot table; never a feature")
    table: str | None = Field(
        None, description="event log: the accounts table in the folder (the account id and firmographics); its "
        "columns that the leads table lacks are joined onto every lead of the account",
    )
    role_column: str | None = Field(
        None, description="the lead's buying-group role or persona (e.g. decision_maker, finance, user)",
    )
    buying_group: list[str] = Field(
        default_factory=list, description="the roles a complete buying group holds; empty: every role seen in training",
    )
    active_days: int = Field(14, gt=0, description="a contact is active with an activity within this many days")
    mqa: CutoffPolicy = Field(
        default_factory=lambda: KeepConversions(policy="recall", recall=DEFAULT_MQL_RECALL),
        description="how the marketing-qualified-account cutoff on p_account is chosen (the cutoff policies)",
    )


class SegmentsConfig(_Strict):
    """One model per segment (a product line, region or motion) where the data allows, the global model elsewhere."""

    column: str = Field(description="the segment of each lead: a feature column of the leads or snapshot table (it "
                        "stays a feature of the global model; see leadscore.training.segments)")
    min_conversions: int = Field(
        200, ge=1, description="a segment with fewer conversions in its training rows keeps the global model",
    )
    per_segment_cutoffs: bool = Field(False, description="choose MQL/SQL cutoffs per segment with its own model")


class LeakageConfig(_Strict):
    """The leakage guard, run on the training table before any fitting (see `leadscore.leakage`)."""

    strict: bool = Field(False, description="refuse to train when a column is flagged, instead of warning")
    allow_columns: list[str] = Field(
        default_factory=list, description="reviewed columns known at scoring time (names or shell patterns): not flagged"
    )
    max_single_auc: float = Field(0.9, gt=0.5, le=1, description="flag a column whose ROC AUC alone reaches this")
    min_segment_share: float = Field(
        0.05, gt=0, le=1, description="flag a column with a value range holding this share of one class and none of the other"
    )
    absent_ratio: float = Field(0.02, ge=0, lt=1, description="'none' means at most this share of the count the base rate predicts")
    min_expected: float = Field(10, gt=0, description="judge a value range only where the base rate predicts this many rows")


class TrackingConfig(_Strict):
    """MLflow names; the tracking URI comes from MLFLOW_TRACKING_URI, never from here.

    A config file without a `tracking` section is named after the file (`tracking_for_file`), so that two
    projects never register into one model and take each other's aliases."""

    experiment: str = "leadscore"
    registered_model: str = "leadscore"
    promote_metric: Literal["log_loss", "roc_auc", "pr_auc", "brier"] = "log_loss"


def tracking_for_file(path: str | Path) -> dict[str, str]:
    """The tracking names of a config file that has no `tracking` section: `leadscore-<file stem>`."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem).strip("-") or "model"
    return {"experiment": f"leadscore-{stem}", "registered_model": f"leadscore-{stem}"}


class ScoringConfig(_Strict):
    """The batch scoring job (`leadscore score`); its command-line options override these."""

    engine: Literal["pandas", "spark"] = "pandas"
    chunk_rows: int = Field(100_000, gt=0, description="pandas engine: leads read, scored and written at a time")
    event_log_memory: str = Field("1GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$",
                                  description="pandas engine, event logs: memory DuckDB may use for the features "
                                  "before it spills to disk, e.g. 1GB")
    max_reject_share: float = Field(0.01, ge=0, le=1, description="fail without publishing scores above this share of rejected rows")
    drift_threshold: float = Field(0.2, gt=0, description="population stability index above which a column is reported as drifted")
    reasons: bool = Field(True, description="write each lead's reasons; false leaves those columns out (faster)")
    spark_master: str | None = Field(None, description="Spark master URL (LEADSCORE_SPARK_MASTER overrides it); default local[*]")
    history: str | None = Field(None, description="score history folder: each run appends its scores, with changes and alerts")


class Config(_Strict):
    """A whole leadscore configuration."""

    data: DataConfig
    event_log: EventLogConfig | None = None
    groups: FeatureGroups = Field(default_factory=FeatureGroups)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    stage: StageConfig = Field(default_factory=StageConfig)
    cutoffs: CutoffsConfig = Field(default_factory=CutoffsConfig)
    points_baseline: list[PointsRule] = Field(default_factory=list)
    points_cutoffs: PointsCutoffs = Field(default_factory=PointsCutoffs)
    reasons: ReasonsConfig = Field(default_factory=ReasonsConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    leakage: LeakageConfig = Field(default_factory=LeakageConfig)
    funnel: FunnelConfig = Field(default_factory=FunnelConfig)
    accounts: AccountsConfig | None = None
    segments: SegmentsConfig | None = None

    @model_validator(mode="after")
    def _form_has_its_section(self) -> Config:
        if self.data.form == "event_log":
            if self.event_log is None:
                raise ValueError("data.form is event_log but the event_log section is missing")
            if self.stage.horizon_days > self.event_log.horizon_days:
                raise ValueError("stage.horizon_days must not exceed event_log.horizon_days")
            # An event log makes its own label and snapshot times: these keys would be silently ignored.
            snapshot_only = [f"data.{key}" for key in ("label_column", "time_column", "categorical_columns")
                             if getattr(self.data, key)]
            if snapshot_only:
                raise ValueError(f"{', '.join(snapshot_only)} only apply to data.form: snapshot; an event log's label "
                                 "and times come from the event_log section")
        else:
            if self.data.label_column is None:
                raise ValueError("data.form is snapshot but data.label_column is not set")
            if self.event_log is not None:
                raise ValueError("the event_log section is only for data.form: event_log")
            if self.split.method == "time" and self.data.time_column is None:
                raise ValueError("split.method is time but data.time_column is not set: name the time column, or use "
                                 "split.method row_order or random")
        return self

    @model_validator(mode="after")
    def _fallback_has_rules(self) -> Config:
        if self.model.fallback == "points" and not self.points_baseline:
            raise ValueError("model.fallback is points but points_baseline has no rules to score with")
        return self

    @field_validator("points_baseline")
    @classmethod
    def _in_rules_take_lists(cls, rules: list[PointsRule]) -> list[PointsRule]:
        for rule in rules:
            if rule.op == "in" and not isinstance(rule.value, list):
                raise ValueError(f"points rule on '{rule.column}': op 'in' needs a list value")
        return rules


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config, or raise ConfigError listing every problem with its key."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if isinstance(raw, dict) and "tracking" not in raw:
        raw["tracking"] = tracking_for_file(path)
    return parse_config(raw, source=str(path))


def parse_config(raw: dict, *, source: str = "config") -> Config:
    """Validate a config given as a dict (as loaded from YAML)."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source} is invalid: {problems}") from None


_ENV_PATTERN = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _expand_env(text: str) -> str:
    def substitute(match: re.Match) -> str:
        value = os.environ.get(match["name"])
        if value:
            return value
        if match["default"] is not None:
            return match["default"]
        raise ConfigError(f"environment variable {match['name']} is not set (used in '{text}')")

    return _ENV_PATTERN.sub(substitute, text)
