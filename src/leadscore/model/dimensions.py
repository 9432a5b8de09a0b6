"""Fit, engagement and buying-stage scores: one calibrated model per dimension.

Each dimension is a model trained on its own column group alone and calibrated on the calibration
window, so each score is a probability in its own right (times 100):
- `fit_score`: conversion within the horizon, from profile columns only.
- `engagement_score`: conversion within the horizon, from behaviour only. In event-log form it uses
  only the decayed activity columns of its group, under a monotone-increasing constraint, so the same
  activities further in the past can only score lower (counts never fade and are left out).
- `stage_score`: in event-log form, conversion within `stage.horizon_days` (default 14) from intent
  signals: readiness to buy now. Snapshot tables carry no conversion time, so there it predicts the
  main label from the stage columns.
The `stage` label bands the stage probability by its lift over the average lead: `decision` at
`decision_lift` times the average or more, `consideration` from `consideration_lift` times, else
`awareness`. The `grade` reads fit and engagement together as sales teams read a Pardot matrix:
a letter A-D for the fit quartile and a digit 1-4 for the engagement quartile (A1 best), with the
quartiles taken on the calibration window. A group left empty is absent: its columns are missing.

Each dimension is one `DimensionSpec` entry of `DIMENSION_SPECS` (its target, which of its group's columns it
uses, whether its model is constrained) plus its column group in `leadscore.config.FeatureGroups`; its output
column, `<name>_score`, follows from the name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.config import StageConfig
from leadscore.features.events import DAYS_TO_CONVERSION
from leadscore.model.calibrated import CalibratedModel
from leadscore.schema import probability_to_score

STAGES = ("awareness", "consideration", "decision")
FIT_LETTERS = ("D", "C", "B", "A")
ENGAGEMENT_DIGITS = ("4", "3", "2", "1")


@dataclass(frozen=True)
class DimensionModel:
    """A calibrated model of one dimension and what it predicts."""

    name: str
    columns: list[str]
    classifier: CalibratedModel
    target: str
    model: str

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the dimension's target for each row."""
        return self.classifier.predict_proba(frame[self.columns])[:, 1]


@dataclass(frozen=True)
class DimensionScorer:
    """All dimension models, with the stage bands and grade quartiles learned on the calibration window.

    Built whole by `leadscore.training.dimensions.fit_dimensions` once every model is fitted.
    """

    models: dict[str, DimensionModel]
    absent: dict[str, str]  # dimension -> why it has no model
    stage_average: float | None  # mean stage probability on the calibration window; None without a stage model
    stage_lifts: tuple[float, float]  # (consideration, decision) lifts over the average
    quartiles: dict[str, np.ndarray]  # fit and engagement: their quartiles on the calibration window

    def probabilities(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Calibrated probability of each present dimension."""
        return {name: model.predict_proba(frame) for name, model in self.models.items()}

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The dimension columns of the scoring output, in input order."""
        p = self.probabilities(frame)
        missing = np.full(len(frame), np.nan)
        out = pd.DataFrame(
            {f"{name}_score": probability_to_score(p[name]) if name in p else missing for name in DIMENSIONS},
            index=frame.index,
        )
        out["stage"] = pd.Series(self.stage_labels(p["stage"]) if "stage" in p else None, index=frame.index, dtype="string")
        out["grade"] = pd.Series(self.grades(p), index=frame.index, dtype="string")
        return out.reset_index(drop=True)

    def stage_labels(self, p_stage: np.ndarray) -> np.ndarray:
        consideration, decision = (lift * self.stage_average for lift in self.stage_lifts)
        return stage_of(p_stage, consideration, decision)

    def grades(self, p: dict[str, np.ndarray]) -> np.ndarray | None:
        if "fit" not in p or "engagement" not in p:
            return None
        return grade_of(_quartile_index(p["fit"], self.quartiles["fit"]),
                        _quartile_index(p["engagement"], self.quartiles["engagement"]))


def stage_of(values: np.ndarray, consideration: float, decision: float) -> np.ndarray:
    """The stage label of each value: decision from `decision` up, consideration from `consideration` up, else awareness."""
    return np.where(values >= decision, STAGES[2], np.where(values >= consideration, STAGES[1], STAGES[0]))


def grade_of(fit_quartile: np.ndarray, engagement_quartile: np.ndarray) -> np.ndarray:
    """Grades such as "A1" from quartile positions (0 lowest, 3 highest) of fit and engagement."""
    letters = np.asarray(FIT_LETTERS)[fit_quartile]
    digits = np.asarray(ENGAGEMENT_DIGITS)[engagement_quartile]
    return np.char.add(letters.astype(str), digits.astype(str))


def _quartile_index(p: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    # Strictly above a quartile moves up one step, so ties at a floor (e.g. no activity) stay at the bottom.
    return np.searchsorted(cuts, p, side="left")


def matches_any(column: str, patterns) -> bool:
    """Whether a column is one of the names, or matches one of the shell patterns, in `patterns`."""
    return any(fnmatch.fnmatchcase(column, pattern) for pattern in patterns)


def resolve_group(patterns: list[str], columns: list[str]) -> list[str]:
    """Columns matching any name or shell pattern, in the order of `columns`."""
    return [c for c in columns if matches_any(c, patterns)]


def stage_target(frame: pd.DataFrame, label_column: str, stage: StageConfig) -> np.ndarray:
    """Converts within the stage horizon (event log) or the main label (snapshot)."""
    if DAYS_TO_CONVERSION in frame.columns:
        days = frame[DAYS_TO_CONVERSION].to_numpy()
        return ((days >= 0) & (days < stage.horizon_days)).astype(int)
    return frame[label_column].to_numpy()


def conversion_target(frame: pd.DataFrame, label_column: str, stage: StageConfig) -> np.ndarray:
    """The main label: converts within the horizon."""
    return frame[label_column].to_numpy()


def _all_columns(columns: list[str], form: str) -> list[str]:
    return columns


def _decayed_in_event_logs(columns: list[str], form: str) -> list[str]:
    # Counts never fade: in an event log only the decayed columns say how recent the behaviour is.
    return [c for c in columns if c.endswith("_decayed")] if form == "event_log" else columns


def _never(form: str) -> bool:
    return False


def _in_event_logs(form: str) -> bool:
    return form == "event_log"


def _horizon_text(frame: pd.DataFrame, stage: StageConfig) -> str:
    return "conversion within the horizon"


def _stage_text(frame: pd.DataFrame, stage: StageConfig) -> str:
    return (f"conversion within {stage.horizon_days} days" if DAYS_TO_CONVERSION in frame.columns
            else "conversion within the horizon")


@dataclass(frozen=True)
class DimensionSpec:
    """One scoring dimension.

    `target(frame, label_column, stage_cfg)` is what its model predicts, `target_text(frame, stage_cfg)` says it
    in words; `columns(group_columns, form)` picks the columns it uses from its group's (in data form `form`);
    `monotone(form)` says whether its model must rise with every one of them (then it is a LightGBM model under
    that constraint rather than the tournament's winner). Its column group is the `FeatureGroups` field of its name.
    """

    name: str
    description: str
    target: Callable[[pd.DataFrame, str, StageConfig], np.ndarray] = conversion_target
    target_text: Callable[[pd.DataFrame, StageConfig], str] = _horizon_text
    columns: Callable[[list[str], str], list[str]] = _all_columns
    monotone: Callable[[str], bool] = _never


DIMENSION_SPECS: dict[str, DimensionSpec] = {spec.name: spec for spec in (
    DimensionSpec("fit", "conversion within the horizon, from profile columns only"),
    DimensionSpec("engagement", "conversion within the horizon, from behaviour only (event log: decayed activity, "
                  "monotone increasing)", columns=_decayed_in_event_logs, monotone=_in_event_logs),
    DimensionSpec("stage", "readiness to buy now: conversion within stage.horizon_days (event log), else the main "
                  "label, from intent signals", target=stage_target, target_text=_stage_text),
)}
DIMENSIONS = tuple(DIMENSION_SPECS)


def dimension_spec(name: str) -> DimensionSpec:
    """The registry entry of one dimension; an unknown name is a `KeyError` listing the known ones."""
    if name not in DIMENSION_SPECS:
        raise KeyError(f"no dimension named {name!r}; known dimensions: {', '.join(DIMENSION_SPECS)}")
    return DIMENSION_SPECS[name]
