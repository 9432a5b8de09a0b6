"""Cold start: the hand-set points rules, scored and cut like a learned model, until there is data.

With fewer conversions than `model.min_conversions`, a config with `model.fallback: points` gets a
`PointsScorer` instead of an error. It returns the same columns as the learned scorer so that CRM
fields and jobs need no change when the first learned model replaces it:
- `score`: the rules' points, clipped to 0-100; `p_convert` is missing, because no probability can
  be learned yet (a number here would be invented).
- `fit_score`, `engagement_score`, `stage_score`: the points of the rules on that group's columns
  (missing when no rule touches the group).
- `is_mql`, `is_sql`: points at or above `points_cutoffs.mql` / `.sql` (defaults 40 and 70).
- `stage`: decision at or above the SQL points, consideration at or above the MQL points (on the
  stage points); `grade`: fit and engagement points in fixed quarters (A1: both at 75 or more).

The hand-set points baseline that most CRMs use: +N points per rule that holds, capped to 0-100.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadscore.config import FeatureGroups, PointsCutoffs, PointsRule
from leadscore.errors import ConfigError
from leadscore.features.events import EventFeatureSpec
from leadscore.model.dimensions import DIMENSIONS, grade_of, resolve_group, stage_of
from leadscore.model.scorer import ScoringContract

_QUARTERS = np.array([25.0, 50.0, 75.0])


@dataclass(frozen=True)
class PointsScorer(ScoringContract):
    """The points baseline with the scorer's input contract and output columns."""

    rules: list[PointsRule]
    cutoffs: PointsCutoffs
    id_column: str
    feature_columns: list[str]
    numeric_feature_columns: list[str]
    dimension_rules: dict[str, list[PointsRule]] = field(default_factory=dict)
    event_spec: EventFeatureSpec | None = None
    metadata: dict = field(default_factory=dict)
    na_values: tuple[str, ...] = ()
    decimal: str = "."

    # The parts a learned scorer may carry, absent here: the rules are all there is.
    @property
    def dimensions(self) -> None:
        """No dimension models: the dimension scores come from `dimension_rules`."""
        return None

    @property
    def reference(self) -> None:
        """No drift reference: nothing was fitted on a distribution of leads."""
        return None

    @property
    def explainer(self) -> None:
        """No explainer: the fallback gives no reason columns."""
        return None

    @property
    def numeric_columns(self) -> list[str]:
        return self.numeric_feature_columns

    def unseen_categories(self, frame: pd.DataFrame) -> dict[str, int]:
        return {}  # rules compare values; there are no learned categories

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), np.nan)

    def predict(self, frame: pd.DataFrame, *, reasons: bool = True) -> pd.DataFrame:
        """Score leads with the rules: one output row per input row, in input order.

        `reasons` is accepted for the scorer contract; the fallback gives no reason columns."""
        valid = self.validate(frame).reset_index(drop=True)
        points = points_score(valid, self.rules)
        out = pd.DataFrame({self.id_column: valid[self.id_column].to_numpy(), "p_convert": np.nan, "score": points})
        dims = {name: points_score(valid, rules) for name, rules in self.dimension_rules.items() if rules}
        for name in DIMENSIONS:
            out[f"{name}_score"] = dims.get(name, np.nan)
        stage = dims.get("stage")
        out["stage"] = pd.Series(None if stage is None else stage_of(stage, self.cutoffs.mql, self.cutoffs.sql),
                                 index=out.index, dtype="string")
        grade = None
        if "fit" in dims and "engagement" in dims:
            grade = grade_of(np.searchsorted(_QUARTERS, dims["fit"], side="right"),
                             np.searchsorted(_QUARTERS, dims["engagement"], side="right"))
        out["grade"] = pd.Series(grade, index=out.index, dtype="string")
        out["is_mql"] = points >= self.cutoffs.mql
        out["is_sql"] = points >= self.cutoffs.sql
        return out


def points_fallback(rules: list[PointsRule], cutoffs: PointsCutoffs, groups: FeatureGroups, na_values: list[str],
                    id_column: str, feature_columns: list[str], numeric_columns: list[str],
                    event_spec: EventFeatureSpec | None, metadata: dict, decimal: str = ".") -> PointsScorer:
    """Build the points scorer from the `points_baseline` rules, cut at `points_cutoffs`, with a
    dimension score from the rules on each of the `groups`' columns; `na_values` and `decimal` are the
    training data's, applied again at scoring."""
    if not rules:
        raise ConfigError("model.fallback is 'points' but points_baseline has no rules to score with")
    rule_columns = sorted({rule.column for rule in rules})
    missing = [c for c in rule_columns if c not in feature_columns]
    if missing:
        raise ConfigError(f"points_baseline rules use columns that are not features: {missing}")
    dimension_rules = {
        name: [r for r in rules if r.column in resolve_group(groups.patterns(name), rule_columns)]
        for name in DIMENSIONS
    }
    return PointsScorer(
        rules=list(rules), cutoffs=cutoffs, id_column=id_column,
        feature_columns=rule_columns, numeric_feature_columns=[c for c in rule_columns if c in numeric_columns],
        dimension_rules=dimension_rules, event_spec=event_spec, metadata=metadata,
        na_values=tuple(na_values), decimal=decimal,
    )


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}


def points_score(frame: pd.DataFrame, rules: list[PointsRule]) -> np.ndarray:
    """Sum the points of every rule that holds for each row, clipped to [0, 100]."""
    missing = sorted({r.column for r in rules} - set(frame.columns))
    if missing:
        raise ConfigError(f"points_baseline rules use columns the data does not have: {missing}")
    total = np.zeros(len(frame))
    for rule in rules:
        values = frame[rule.column]
        if rule.op == "in":
            holds = values.astype("string").isin([str(v) for v in rule.value])
        elif isinstance(rule.value, (int, float)) and not isinstance(rule.value, bool):
            # A number compares with numbers: a cell that is not one (text, missing) does not meet the rule.
            holds = _COMPARE[rule.op](pd.to_numeric(values, errors="coerce"), rule.value)
        else:
            holds = _COMPARE[rule.op](values.astype("string"), str(rule.value))
        total += np.where(pd.Series(holds).fillna(False).to_numpy(dtype=bool), rule.points, 0.0)
    return np.clip(total, 0, 100)
