"""The hand-set points baseline that most CRMs use: +N points per rule that holds, capped to 0-100."""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd

from leadscore.config import PointsRule
from leadscore.errors import ConfigError

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
