"""Why a score changed since the lead's previous score, and which MQL / SQL lines it crossed.

Score change
------------
`score_change` is the new `score` minus the lead's previous `score` (both as published, one decimal),
empty for a lead scored for the first time.

`change_reasons` (JSON) is a list of `{"field": name, "points": change}`, largest change (by size) first,
one entry for every field that moved, such that for two scores of the same model (name and version)

    previous unrounded score + sum of the changes = new unrounded score

exactly, to float rounding (the unrounded score is `100 * p_convert`).

How the change is split. The model's raw output (log-odds) is a base value plus one contribution per
field (`leadscore.model.explainer`), so its change is exactly the sum of the fields' contribution
changes d_j. The score change is split in proportion, with the secant slope of the score between the two
raw outputs, as the explainer splits a score between base and lead:

    change_j = d_j * (s_new - s_old) / (f_new - f_old),    so that    sum_j change_j = s_new - s_old.

A field whose contribution did not move gets nothing, and each field keeps the sign of its own change
(the calibration is increasing). Taking the difference of the two scores' points instead would also add
up, but would show fields that did not change (a lead's company size "moving" because its visits did),
since each score's points carry that score's own slope. Where the raw output did not move (|f_new -
f_old| below 1e-12), or a row lacks its contributions, the change is the difference of the fields' points,
which adds up too (same base score). A field one row lacks counts as 0 there.

Across models (another name or version), fields' points come from two models whose base scores and
contributions do not subtract meaningfully, so the whole change is one entry, `{"field": "model changed",
"points": new - previous unrounded score, "from_version": "<previous version>"}`: still additive. So is
a change where either score has no decomposition (a model without an explainer): one entry
`"not explained"`.

Crossings (alerts)
------------------
Since the previous score: `became MQL`, `became SQL` (the flag was false and is true now), `dropped
below SQL`, `dropped below MQL` (true before, false now). A first score crosses nothing: the flags of a
new lead are in the scores themselves. Flags a model does not set (no cutoffs) cross nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from leadscore.schema import SCORE_SCALE

MODEL_CHANGED = "model changed"
NOT_EXPLAINED = "not explained"
CROSSINGS = (("is_mql", "became MQL", "dropped below MQL"), ("is_sql", "became SQL", "dropped below SQL"))
ALERT_COLUMNS = ("lead_id", "scored_at", "alert", "previous_score", "score", "score_change", "previous_scored_at",
                 "model_name", "model_version")
_FLAT = 1e-12  # a raw output change below this: the points' differences instead of the secant (as the explainer)


def score_changes(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """`score_change` and `change_reasons` (JSON text) of each row of `current`, in its order.

    `current`: one row per lead: `lead_id`, `model_name`, `model_version`, `p_convert`, `score`, `points`
    and `log_odds` (JSON objects of every field's points and raw contribution, or empty). `previous`: each
    lead's previous row with the same columns, indexed by `lead_id` (leads not in it are first scores: both
    values empty).
    """
    before = previous.reindex(current["lead_id"].astype(str).to_numpy())
    found = before["score"].notna().to_numpy()
    change = np.where(found, np.round(current["score"].to_numpy(dtype="float64")
                                      - before["score"].to_numpy(dtype="float64"), 1), np.nan)
    reasons = np.full(len(current), None, dtype=object)
    new_exact, old_exact = _unrounded(current), _unrounded(before)
    same_model = ((current["model_name"].astype(str).to_numpy() == before["model_name"].astype(str).to_numpy())
                  & (current["model_version"].astype(str).to_numpy() == before["model_version"].astype(str).to_numpy()))
    new_points, old_points = current["points"].to_numpy(dtype=object), before["points"].to_numpy(dtype=object)
    new_raw, old_raw = (frame["log_odds"].to_numpy(dtype=object) if "log_odds" in frame.columns
                        else np.full(len(frame), None, dtype=object) for frame in (current, before))
    for i in np.flatnonzero(found):
        if not same_model[i]:
            entry = {"field": MODEL_CHANGED, "points": new_exact[i] - old_exact[i],
                     "from_version": str(before["model_version"].iat[i])}
            reasons[i] = json.dumps([entry])
        elif _blank(new_points[i]) or _blank(old_points[i]):
            reasons[i] = json.dumps([{"field": NOT_EXPLAINED, "points": new_exact[i] - old_exact[i]}])
        else:
            raw = None if _blank(new_raw[i]) or _blank(old_raw[i]) else (json.loads(old_raw[i]), json.loads(new_raw[i]))
            changes = field_changes(json.loads(old_points[i]), json.loads(new_points[i]), raw,
                                    new_exact[i] - old_exact[i])
            reasons[i] = json.dumps(changes)
    return pd.DataFrame({"score_change": change, "change_reasons": pd.Series(reasons, dtype="string").to_numpy()},
                        index=current.index)


def field_changes(old: dict[str, float], new: dict[str, float], raw: tuple[dict, dict] | None = None,
                  change: float = 0.0) -> list[dict]:
    """Each moved field's share of a score change, largest first (see the module docstring).

    `old`, `new`: the two scores' points per field; `raw`: their raw (log-odds) contributions per field, old
    and new; `change`: the unrounded score change. Without `raw`, or where the raw output did not move, the
    shares are the differences of the points."""
    names = list(dict.fromkeys([*new, *old]))
    if raw is not None:
        moved_raw = {name: raw[1].get(name, 0.0) - raw[0].get(name, 0.0) for name in names}
        total = sum(moved_raw.values())
        if abs(total) > _FLAT:
            slope = change / total
            return _largest_first([(name, delta * slope) for name, delta in moved_raw.items()])
    return _largest_first([(name, new.get(name, 0.0) - old.get(name, 0.0)) for name in names])


def _largest_first(moved: list[tuple[str, float]]) -> list[dict]:
    moved = [(name, delta) for name, delta in moved if delta != 0.0]
    moved.sort(key=lambda item: -abs(item[1]))  # stable: ties keep the model's field order
    return [{"field": name, "points": delta} for name, delta in moved]


def threshold_crossings(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """One row per MQL / SQL line each lead of `current` crossed since its row in `previous` (`ALERT_COLUMNS`).

    `current` needs `lead_id`, `scored_at`, `score`, `score_change`, `is_mql`, `is_sql`, `model_name`,
    `model_version`; `previous` is indexed by `lead_id` with `score`, `scored_at`, `is_mql`, `is_sql`.
    """
    before = previous.reindex(current["lead_id"].astype(str).to_numpy())
    found = before["score"].notna().to_numpy()
    pieces = []
    for flag, up, down in CROSSINGS:
        if flag not in current.columns:
            continue
        now, then = _flags(current[flag]), _flags(before[flag]) if flag in before.columns else np.full(len(current), np.nan)
        for alert, crossed in ((up, (then == 0) & (now == 1)), (down, (then == 1) & (now == 0))):
            at = np.flatnonzero(found & crossed)
            if len(at):
                pieces.append(pd.DataFrame({
                    "lead_id": current["lead_id"].astype(str).to_numpy()[at],
                    "scored_at": current["scored_at"].to_numpy()[at],
                    "alert": alert,
                    "previous_score": before["score"].to_numpy(dtype="float64")[at],
                    "score": current["score"].to_numpy(dtype="float64")[at],
                    "score_change": current["score_change"].to_numpy(dtype="float64")[at],
                    "previous_scored_at": before["scored_at"].to_numpy()[at],
                    "model_name": current["model_name"].astype(str).to_numpy()[at],
                    "model_version": current["model_version"].astype(str).to_numpy()[at],
                }))
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    return pd.concat(pieces, ignore_index=True)[list(ALERT_COLUMNS)]


def alerts_by_lead(alerts: pd.DataFrame) -> pd.Series:
    """Each alerted lead's crossings joined as text ("became MQL; became SQL"), indexed by `lead_id`."""
    if alerts.empty:
        return pd.Series(dtype="string")
    return alerts.groupby("lead_id", sort=False)["alert"].agg("; ".join)


def _unrounded(scores: pd.DataFrame) -> np.ndarray:
    """100 p_convert; the published score where a model gives no probability (the cold-start points model)."""
    exact = SCORE_SCALE * scores["p_convert"].to_numpy(dtype="float64")
    return np.where(np.isfinite(exact), exact, scores["score"].to_numpy(dtype="float64"))


def _flags(values: pd.Series) -> np.ndarray:
    """1.0 / 0.0 for true / false, NaN for missing."""
    return pd.Series(values).astype("boolean").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value == ""
