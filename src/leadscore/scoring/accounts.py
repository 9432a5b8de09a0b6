"""The account side of a scoring job whose model has an account part (`leadscore.model.accounts.AccountScorer`).

Accounts may straddle the chunks of a pandas run: each chunk's accepted leads add mergeable aggregates per account
(`AccountTally.add`), the account table is computed once from all of them (`AccountTally.table`), and the staged lead
rows, written with their account id only (`staged_lead_rows`), get their account's columns in one streaming pass
(`with_account_columns`) before they are published. The Spark engine scores whole accounts itself and counts its
table here. Both engines reject a lead whose account id is empty (`MISSING_ACCOUNT`) instead of failing the job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadscore.data.row_checks import missing_ids
from leadscore.errors import InputError
from leadscore.schema import ACCOUNT_COLUMNS, ACCOUNT_ID, LEAD_ACCOUNT_COLUMNS

if TYPE_CHECKING:
    from leadscore.model.accounts import AccountScorer

# A row the account part cannot count (it refuses a lead without an account: its account score would be a second
# lead score): with an account part, a row that passes the row checks and has no account id is rejected for it.
MISSING_ACCOUNT = "missing account"
MISSING_ACCOUNT_DETAIL = "the account id is empty; an account score needs every lead's account"


class AccountTally:
    """The account side of a run whose model has an account part (`leadscore.model.accounts.AccountScorer`).

    The pandas engine hands it each chunk's accepted leads with their scores (`add`), of which it keeps only
    the mergeable aggregates (`AccountScorer.partials`: one row per account and chunk), and asks for the
    account table once the whole input is read (`table`); the spark engine scores whole accounts itself and
    counts its table here (`count`, `keep_top`). Rejected rows are never handed to it.
    """

    # Partial rows kept before they are merged into one row per account. An export sorted by time rather than
    # by account spreads an account over many chunks; merging as they pile up keeps memory bounded by the
    # number of accounts, not of chunks.
    compact_rows = 250_000

    def __init__(self, part: AccountScorer, reasons: bool, top: int):
        self.part, self.reasons, self.top_n = part, reasons, top
        self.scored = self.mqas = 0
        self.top: pd.DataFrame | None = None
        self._partials: list[pd.DataFrame] = []
        self._rows = self._merged_rows = 0

    def add(self, leads: pd.DataFrame, scores: pd.DataFrame) -> None:
        """Count a batch of accepted leads (their feature rows with the id and account columns) towards their
        accounts; `scores` are the model's output rows for them, in the same order."""
        partials = self.part.partials(leads.reset_index(drop=True), scores.reset_index(drop=True))
        self._partials.append(partials)
        self._rows += len(partials)
        if self._rows > max(self.compact_rows, 2 * self._merged_rows):
            merged = self.part.combine(pd.concat(self._partials, ignore_index=True))
            self._partials, self._rows, self._merged_rows = [merged], len(merged), len(merged)

    def table(self) -> pd.DataFrame:
        """The account table of every lead added (one row per account; see `AccountScorer.score`), counted."""
        if not self._partials:  # no lead was accepted: a table without rows
            table = pd.DataFrame({c: pd.Series(dtype=object) for c in ACCOUNT_COLUMNS})
        else:
            combined = self.part.combine(pd.concat(self._partials, ignore_index=True))
            table = self.part.score(combined, reasons=self.reasons)
        self._partials, self._rows = [], 0
        self.count(len(table), int(mqa_flags(table).sum()))
        self.keep_top(table)
        return table

    def count(self, accounts: int, mqas: int) -> None:
        """Count accounts scored and, among them, marketing-qualified accounts."""
        self.scored += accounts
        self.mqas += mqas

    def keep_top(self, table: pd.DataFrame) -> None:
        """Keep the best `top` accounts among those kept so far and `table` (see `top_accounts`)."""
        if not self.top_n:
            return
        best = top_accounts(table, self.top_n)
        self.top = best if self.top is None else top_accounts(pd.concat([self.top, best], ignore_index=True), self.top_n)

    def report_fields(self, path: str) -> dict:
        """The report's account fields."""
        return {"accounts": path, "accounts_scored": self.scored, "mqas": self.mqas, "top_accounts": self.top}


# The account columns of a lead row but the account id: the lead rows carry the id from the start, the values
# only once the whole input is read.
ACCOUNT_VALUES = tuple(c for c in LEAD_ACCOUNT_COLUMNS if c != ACCOUNT_ID)


def mqa_flags(table: pd.DataFrame) -> pd.Series:
    """`is_mqa` of an account table as booleans (missing: not an MQA)."""
    return table["is_mqa"].astype("boolean").fillna(False).astype(bool)


def top_accounts(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The `n` accounts with the highest `p_account`, ties by account id (as text), so the choice is deterministic."""
    ranked = table.assign(_key=table[ACCOUNT_ID].astype("string")).sort_values(
        ["p_account", "_key"], ascending=[False, True], kind="stable", na_position="last")
    return ranked.drop(columns="_key").head(n).reset_index(drop=True)


def account_inputs(scorer) -> list[str]:
    """The input columns the model's account part reads beyond its id and features: the account column (never a
    feature), and the buying-group role column when it is not a feature either; none without an account part."""
    part = scorer.accounts
    if part is None:
        return []
    known = {scorer.id_column, *scorer.feature_columns}
    wanted = [part.account_column, part.features.role_column]
    return [c for i, c in enumerate(wanted) if c and c not in known and c not in wanted[:i]]


def staged_lead_rows(out: pd.DataFrame, leads: pd.DataFrame, account_column: str) -> pd.DataFrame:
    """A batch of the model's output as it is staged until the account table is known: with each lead's
    account id (`ACCOUNT_ID`), without the account values the model computed from this batch's leads alone
    (an account may straddle batches; `with_account_columns` adds the values of all its leads)."""
    staged = out.drop(columns=[c for c in ACCOUNT_VALUES if c in out.columns])
    if ACCOUNT_ID not in staged.columns:
        staged[ACCOUNT_ID] = leads[account_column].to_numpy()
    return staged


def with_account_columns(rows: pd.DataFrame, lead_columns: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Lead rows with their account's columns from `lead_columns` (one row per account,
    `AccountScorer.lead_columns`), matched on `ACCOUNT_ID` as text; missing for a lead without an account.

    `order` is the column order of the result (that of the model's own output); else the values come last."""
    keys = lead_columns[ACCOUNT_ID].astype("string")
    if keys.duplicated().any():  # the account part's contract: one row per account
        raise RuntimeError(f"{int(keys.duplicated().sum())} account(s) have more than one row in the account table")
    values = lead_columns[list(ACCOUNT_VALUES)].set_axis(pd.Index(keys.to_numpy(), dtype="string"))
    found = values.reindex(pd.Index(rows[ACCOUNT_ID].astype("string").to_numpy(), dtype="string"))
    out = rows.drop(columns=[c for c in ACCOUNT_VALUES if c in rows.columns])
    out = out.assign(**{c: found[c].to_numpy() for c in ACCOUNT_VALUES})
    return out[[c for c in order if c in out.columns]] if order else out


def missing_accounts(values: pd.Series) -> np.ndarray:
    """Where a lead's account id is empty (missing, or blanks only): the leads the account part refuses."""
    return missing_ids(values)


def require_account_column(scorer, columns: list[str]) -> None:
    """Fail the whole job, before any row is read, when a model with an account part is given a table without
    the account column (an event log's account column is checked when its leads table is read)."""
    missing = [c for c in account_inputs(scorer) if c not in columns]
    if missing:
        raise InputError(
            f"the leads to score lack the account column '{missing[0]}', which this model's account scores need",
            column=missing[0],
            fix=f"add each lead's account id as the column '{missing[0]}' (leads without an account may leave it "
            "empty), or score with a model trained without an `accounts` section",
        )
