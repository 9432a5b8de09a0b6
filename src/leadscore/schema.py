"""The output contract of every scorer, defined once: column names and the score scale.

- `p_convert`: calibrated probability that the lead converts within the training horizon.
- `score`: `100 * p_convert`, rounded to one decimal. A score of 30 means "about 30 in 100 leads like
  this one convert": the number keeps its meaning in conversion terms, unlike hand-set points.
- `fit_score`, `engagement_score`, `stage_score`, `stage`, `grade`: see `leadscore.model.dimensions`.
- `is_mql`, `is_sql`: `p_convert` at or above the cutoffs chosen by policy (see `leadscore.model.cutoffs`).
- `reasons` (JSON), `reason_1` ... `reason_k`: each lead's strongest reasons in score points (see
  `leadscore.model.explainer`).
A scoring job adds the provenance columns (and `lead_status` for an event log); with a score history
(`--history`) also `score_change` and `change_reasons` (see `leadscore.history.changes`).
"""

from __future__ import annotations

import numpy as np

ROW_ID = "row_number"  # the id of a lead in a table without an id column: its 1-based row number
SCORE_SCALE = 100.0
OUTPUT_COLUMNS = ("p_convert", "score")
PROVENANCE_COLUMNS = ("model_name", "model_version", "scored_at")
STATUS_COLUMN = "lead_status"
CHANGE_COLUMNS = ("score_change", "change_reasons")  # only with a score history

# Accounts (a model trained with an `accounts` section; see `leadscore.model.accounts`). Every lead row gains
# its account's columns; a second table has one row per account.
ACCOUNT_ID = "account_id"
LEAD_ACCOUNT_COLUMNS = (ACCOUNT_ID, "p_account", "account_score", "account_grade", "is_mqa")
ACCOUNT_COLUMNS = (ACCOUNT_ID, "contacts", "active_contacts", "p_account", "account_score", "account_grade",
                   "is_mqa", "buying_group_coverage", "roles_engaged", "roles_missing", "best_lead_id",
                   "best_lead_score")  # then `account_reasons` (JSON) and `account_reason_1` ... `account_reason_k`


def probability_to_score(p: np.ndarray) -> np.ndarray:
    """The 0-100 score of a probability."""
    return np.round(SCORE_SCALE * np.asarray(p, dtype="float64"), 1)
