"""The one typed configuration object, validated once at the edge.

Every key has a default where a sensible one exists; unknown keys are an error (a misspelt key
silently ignored is a setting silently lost). Paths may use `${VAR}` or `${VAR:-default}` so that data
locations come from the environment; relative paths are resolved against the working directory.
Tracking URIs and secrets never live here: MLflow reads them from the environment.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    na_values: list[str] = Field(default_factory=list, description="strings that mean 'missing', e.g. 'unknown'")
    csv_separator: str = ","

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
    snapshots: SnapshotSchedule
    horizon_days: int = Field(90, gt=0, description="label: converted within this many days after the snapshot")
    half_life_days: float = Field(30.0, gt=0, description="engagement decay: an event's weight halves every half-life")
    signals: dict[str, Signal] = Field(
        default_factory=dict, description="named activity patterns; empty means one signal per activity type seen"
    )


class FeatureGroups(_Strict):
    """Which columns stand for which scoring dimension; names or shell-style patterns (`pricing_*`)."""

    fit: list[str] = Field(default_factory=list)
    engagement: list[str] = Field(default_factory=list)
    stage: list[str] = Field(default_factory=list)


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
    early_stopping_rounds: int = Field(100, gt=0)
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="latest part of the training window used for early stopping")


class ModelConfig(_Strict):
    """The model tournament and its calibration."""

    candidates: list[Literal["lightgbm", "logistic"]] = Field(default_factory=lambda: ["lightgbm", "logistic"], min_length=1)
    seed: int = 0
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    logistic_c: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    min_conversions: int = Field(120, ge=1, description="training stops with fewer conversions than this")
    min_category_count: int = Field(5, ge=1, description="rarer categories are treated as missing")


class PointsRule(_Strict):
    """One hand-set scoring rule: `points` when `column op value` holds."""

    column: str
    op: Literal[">=", ">", "<=", "<", "==", "!=", "in"]
    value: Any
    points: float


class TrackingConfig(_Strict):
    """MLflow names; the tracking URI comes from MLFLOW_TRACKING_URI, never from here."""

    experiment: str = "leadscore"
    registered_model: str = "leadscore"
    promote_metric: Literal["log_loss", "roc_auc", "pr_auc", "brier"] = "log_loss"


class Config(_Strict):
    """A whole leadscore configuration."""

    data: DataConfig
    event_log: EventLogConfig | None = None
    groups: FeatureGroups = Field(default_factory=FeatureGroups)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    points_baseline: list[PointsRule] = Field(default_factory=list)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _form_has_its_section(self) -> Config:
        if self.data.form == "event_log":
            if self.event_log is None:
                raise ValueError("data.form is event_log but the event_log section is missing")
        else:
            if self.data.label_column is None:
                raise ValueError("data.form is snapshot but data.label_column is not set")
            if self.event_log is not None:
                raise ValueError("the event_log section is only for data.form: event_log")
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
