"""Account scores: the probability that an account (the company leads work for) converts, MQA, reasons, buying group.

B2B teams sell to accounts: three contacts of one company may each fall short of MQL while the account is plainly
in-market. `AccountScorer` is the account part of the one scoring artifact (`LeadScorer.accounts`), fitted by
`leadscore.training.accounts`; it imports nothing from training or reporting.

Mergeable partials (`AccountFeatures.partials`, `AccountScorer.partials` / `combine`)
------------------------------------------------------------------------------------
Everything an account score needs is an aggregate of its leads' rows that merges across chunks: counts (contacts,
active contacts, engaged contacts per buying role, contacts with each activity signal, contacts above the lead MQL
line), sums and maxima (of the leads' `<signal>_count` / `<signal>_decayed` columns, or of a snapshot table's numeric
columns), the minimum days since the last activity, the maximum of firmographic text (a category constant within the
account, such as `company_size`: its max is the value), and, from the lead scorer's probabilities, the sum of p, the
sum of log(1 - p), the maximum p and the lead that holds it (ties: the smallest id). A batch job that scores in chunks
merges the chunks' partials with `combine` into the partials of the whole frame: counts, maxima and minima exactly,
sums of floats to the last bits of their order of addition. The same function (`AccountFeatures.partials`, then
`features`) builds the account rows at training, grouped by account and snapshot time: train/serve parity by
construction.

Account features (`AccountFeatures.features`)
---------------------------------------------
`contacts`; `active_contacts` (leads whose `days_since_last_activity` is at most `active_days`, only when the lead
model has that event-log feature) and `min_days_since_last_activity`; `engaged__<role>`: engaged contacts of each
role seen in training (engaged = active when activity recency is known, else on record); `buying_group_coverage`: the
share of the buying group's roles with at least one engaged contact; per activity signal `with__<signal>` (contacts
with that activity), `sum__` / `max__` of its count and decayed columns (a snapshot table: of its numeric columns);
`firm__<column>` for firmographics.

The probability (`AccountScorer.method`): one of the options the training backtest compared, the one of lowest test
log loss (`leadscore.training.accounts`):
- `AccountModel` (option `account_model`): a calibrated model of the account features (the lead tournament's
  candidates and calibration);
- `RollUp` (options `noisy_or`, `max`, `mean`): a roll-up of the lead probabilities, 1 - prod(1 - p), max p or mean
  p, calibrated to account conversion (its raw input is the roll-up's log-odds).

Grade (`account_grade`), with `base_rate` the account conversion rate where the MQA cutoff was chosen:
- A: an MQA (p_account at or above the MQA cutoff) with p_account at least `GRADE_A_LIFT` (2) times the base rate;
- B: an MQA at or above the base rate;
- C: an MQA below the base rate (a policy that keeps most converting accounts, such as the default recall of 0.9,
  qualifies accounts below the average);
- D: not an MQA.
The grade orders the MQAs for sales; it never qualifies an account the MQA cutoff does not.

Reasons (`account_reasons` JSON, `account_reason_1` ... `account_reason_k`)
--------------------------------------------------------------------------
For the account model they are exact: the model's per-feature contributions (its kind's, `leadscore.model.kinds`:
TreeSHAP for LightGBM, linear terms for the logistic regression) scaled to score points by the secant slope of the
calibration, as `leadscore.model.explainer` does, so that the base score plus every feature's points is the account
score (100 p_account) exactly; features are summed into fields (one per activity signal, per role, ...), and the
`top_k` fields of largest |points| are written in plain language with their points: "3 contacts active in the last
14 days (+12)". For a roll-up the reasons name the contacts that carry it ("contact L0001 scores 45", "3 contacts
above the MQL line"), without points: a roll-up is not a sum of per-feature terms. Either way, when a buying-group
role has no engaged contact, "no one from finance yet" is among the reasons (it takes the last slot if the top
fields do not already say so).

Leads whose account column is empty are refused (an `InputError` naming the column and rows): an account score of a
lead without an account would be a second, differently calibrated lead score.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV

from leadscore.data.row_checks import missing_ids
from leadscore.data.validation import require_columns, row_numbers
from leadscore.errors import InputError
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.kinds import Contributions
from leadscore.schema import ACCOUNT_COLUMNS, ACCOUNT_ID, LEAD_ACCOUNT_COLUMNS, SCORE_SCALE, probability_to_score

RECENCY_COLUMN = "days_since_last_activity"  # the event-log lead feature that tells an active contact
EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before a logarithm
GRADE_A_LIFT = 2.0
REASONS_COLUMN = "account_reasons"
_FLAT = 1e-12  # |f(x) - f0| below this: the slope at the base instead of the secant (as `model.explainer`)

# Partial aggregates. Plain names are shown in the account table too; `_p...` ones are the lead probabilities'.
CONTACTS = "contacts"
ACTIVE = "active_contacts"
LAST_ACTIVE = "min_days_since_last_activity"
COVERAGE = "buying_group_coverage"
SUM_P = "_p_sum"
SUM_LOG_MISS = "_p_sum_log1m"  # sum of log(1 - p): noisy-OR = 1 - exp(it)
MAX_P = "_p_max"
ABOVE_MQL = "_p_above_mql"
BEST_ID = "best_lead_id"


def feature_name(name: str) -> str:
    """A name fit for a model's feature column (LightGBM refuses JSON's special characters)."""
    return re.sub(r"\W+", "_", str(name)).strip("_") or "blank"


def _words(name: str) -> str:
    return str(name).replace("_", " ")


def _plural(n: float, noun: str) -> str:
    n = int(round(float(n)))
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class AccountFeatures:
    """How lead rows become account aggregates and account features (see the module docstring), fixed at training.

    `roles`: every role seen in training, each with its feature column `engaged__<role>`; `buying_group`: the roles a
    complete buying group holds; `signals`: activity signals with a `<signal>_count` lead feature; `summed`: numeric
    lead columns summed and maximised; `firmographics`: category columns constant within an account; `lead_mql`: the
    lead MQL cutoff (contacts above it are counted for the reasons), None without one; `numeric_firmographics`: the
    firmographics that are numbers (a head count), the others are text."""

    account_column: str
    id_column: str
    role_column: str | None
    roles: tuple[tuple[str, str], ...]  # (role, its engaged-contacts column)
    buying_group: tuple[str, ...]
    active_days: float
    recency_column: str | None
    signals: tuple[str, ...]
    summed: tuple[str, ...]
    firmographics: tuple[str, ...]
    lead_mql: float | None = None
    numeric_firmographics: tuple[str, ...] = ()

    # -- mergeable partials ---------------------------------------------------------------------------------------
    @property
    def _sums(self) -> list[str]:
        counts = [CONTACTS, *([ACTIVE] if self.recency_column else []), *(column for _, column in self.roles),
                  *(f"with__{s}" for s in self.signals), *(f"sum__{c}" for c in self.summed)]
        return [*counts, SUM_P, SUM_LOG_MISS, ABOVE_MQL]

    @property
    def _text(self) -> list[str]:
        return [f"firm__{c}" for c in self.firmographics if c not in self.numeric_firmographics]

    @property
    def _maxima(self) -> list[str]:
        return [*(f"max__{c}" for c in self.summed), *(f"firm__{c}" for c in self.firmographics), MAX_P]

    @property
    def _minima(self) -> list[str]:
        return [LAST_ACTIVE] if self.recency_column else []

    @property
    def partial_columns(self) -> list[str]:
        """The aggregate columns of a partial (after the group keys), in order."""
        return [*self._sums, *self._maxima, *self._minima, BEST_ID]

    def account_ids(self, leads: pd.DataFrame) -> pd.Series:
        """The leads' account ids as text; an `InputError` naming the rows whose account is empty."""
        require_columns(leads, [self.account_column], "the leads",
                        "give every lead its account id (the model was trained with accounts.column)")
        ids = leads[self.account_column].astype("string").str.strip()
        empty = missing_ids(leads[self.account_column])
        if empty.any():
            raise InputError(
                f"{int(empty.sum())} lead(s) have no account id, and an account score needs the account",
                column=self.account_column, rows=row_numbers(leads, empty),
                fix="fill in the account of those leads (a one-contact account gets its own id), or leave them out "
                "of the account scoring",
            )
        return ids

    def partials(self, leads: pd.DataFrame, p: np.ndarray | None, keys: tuple[str, ...] = ()) -> pd.DataFrame:
        """One row per account (and per value of the extra group `keys`, e.g. a snapshot time) of `leads`, with the
        mergeable aggregates `partial_columns`. `p`: the leads' probabilities in row order (None: the probability
        aggregates are missing, as for rows no lead model scored out of sample)."""
        n = len(leads)
        frame = pd.DataFrame({ACCOUNT_ID: self.account_ids(leads).to_numpy()}, index=pd.RangeIndex(n))
        for key in keys:
            frame[key] = leads[key].to_numpy()
        frame[CONTACTS] = 1.0
        active = np.ones(n, dtype=bool)
        if self.recency_column:
            days = pd.to_numeric(leads[self.recency_column], errors="coerce").to_numpy(dtype="float64")
            active = np.nan_to_num(days, nan=np.inf) <= self.active_days
            frame[ACTIVE] = active.astype("float64")
        if self.role_column:
            role = leads[self.role_column].astype("string").to_numpy(dtype=object, na_value=None)
            for name, column in self.roles:
                frame[column] = ((role == name) & active).astype("float64")
        for signal in self.signals:
            frame[f"with__{signal}"] = (_numbers(leads, f"{signal}_count") > 0).astype("float64")
        for column in self.summed:
            frame[f"sum__{column}"] = np.nan_to_num(_numbers(leads, column))
        if p is None:
            p = np.full(n, np.nan)
        p = np.asarray(p, dtype="float64")
        frame[SUM_P] = p
        frame[SUM_LOG_MISS] = np.log1p(-np.clip(p, EPS, 1 - EPS))
        frame[ABOVE_MQL] = (p >= self.lead_mql).astype("float64") if self.lead_mql is not None else np.nan
        for column in self.summed:
            frame[f"max__{column}"] = _numbers(leads, column)
        for column in self.firmographics:
            frame[f"firm__{column}"] = (_numbers(leads, column) if column in self.numeric_firmographics
                                        else leads[column].astype("string").to_numpy())
        frame[MAX_P] = p
        if self.recency_column:
            frame[LAST_ACTIVE] = _numbers(leads, self.recency_column)
        frame[BEST_ID] = leads[self.id_column].astype("string").to_numpy()
        return self.combine(frame, keys)

    def combine(self, partials: pd.DataFrame, keys: tuple[str, ...] = ()) -> pd.DataFrame:
        """Merge rows of one group (account and `keys`) into one, ordered by the group: the partials of the rows
        the merged partials came from."""
        by = [ACCOUNT_ID, *keys]
        grouped = partials.groupby(by, sort=True, dropna=False)
        # min_count=1: a sum over nothing but missing values stays missing (probabilities nobody gave).
        out = grouped[self._sums].sum(min_count=1)
        firm = self._text
        numeric_maxima = [c for c in self._maxima if c not in firm]
        out = out.join(grouped[numeric_maxima].max())
        for column in firm:  # text: the max of the non-missing values (the value, where it is constant)
            out[column] = grouped[column].max().astype("string")
        if self._minima:
            out = out.join(grouped[self._minima].min())
        # The lead of the highest probability; ties (and no probabilities at all) go to the smallest id.
        ranked = partials.sort_values([MAX_P, BEST_ID], ascending=[False, True], kind="stable", na_position="last")
        out[BEST_ID] = ranked.drop_duplicates(by).set_index(by)[BEST_ID].astype("string")
        out[CONTACTS] = out[CONTACTS].fillna(0.0)
        return out.reset_index()[[*by, *self.partial_columns]]

    # -- account features -----------------------------------------------------------------------------------------
    @property
    def feature_columns(self) -> list[str]:
        """The account model's features, in order."""
        signal_columns = [f"{kind}__{s}_{part}" for s in self.signals for kind in ("sum", "max")
                          for part in ("count", "decayed") if f"{s}_{part}" in self.summed]
        other = [f"{kind}__{c}" for c in self.summed if not _of_signal(c, self.signals) for kind in ("sum", "max")]
        return [CONTACTS, *([ACTIVE, LAST_ACTIVE] if self.recency_column else []),
                *(column for _, column in self.roles), *([COVERAGE] if self.buying_group else []),
                *(f"with__{s}" for s in self.signals), *signal_columns, *other,
                *(f"firm__{c}" for c in self.firmographics)]

    def coverage(self, combined: pd.DataFrame) -> np.ndarray:
        """The share of the buying group's roles with at least one engaged contact, per account row."""
        if not self.buying_group:
            return np.full(len(combined), np.nan)
        column = dict(self.roles)
        engaged = np.column_stack([combined[column[r]].to_numpy(dtype="float64") > 0 for r in self.buying_group])
        return engaged.mean(axis=1)

    def features(self, combined: pd.DataFrame) -> pd.DataFrame:
        """The account model's feature rows of combined partials (one row per account row)."""
        out = combined.reindex(columns=[c for c in self.feature_columns if c != COVERAGE]).copy()
        if self.buying_group:
            out[COVERAGE] = self.coverage(combined)
        text = set(self._text)
        for column in out.columns:
            out[column] = out[column].astype("string" if column in text else "float64")
        return out[self.feature_columns]

    def roles_text(self, combined: pd.DataFrame) -> tuple[list[str], list[str]]:
        """Per account row: its engaged roles, and the buying group's roles without an engaged contact (";"-joined)."""
        column = dict(self.roles)
        engaged = {role: combined[c].to_numpy(dtype="float64") > 0 for role, c in self.roles}
        rows = range(len(combined))
        present = [";".join(r for r, _ in self.roles if engaged[r][i]) for i in rows]
        missing = [";".join(r for r in self.buying_group if r in column and not engaged[r][i]) for i in rows]
        return present, missing

    # -- reason fields --------------------------------------------------------------------------------------------
    def fields(self) -> list[tuple[str, tuple[str, ...]]]:
        """The reason fields: (name, the feature columns whose points it sums), in feature order."""
        fields: list[tuple[str, tuple[str, ...]]] = [(CONTACTS, (CONTACTS,))]
        if self.recency_column:
            fields.append(("activity", (ACTIVE, LAST_ACTIVE)))
        fields += [(f"role:{role}", (column,)) for role, column in self.roles]
        if self.buying_group:
            fields.append((COVERAGE, (COVERAGE,)))
        columns = set(self.feature_columns)
        for s in self.signals:
            own = (f"with__{s}", *(f"{k}__{s}_{p}" for k in ("sum", "max") for p in ("count", "decayed")))
            fields.append((f"signal:{s}", tuple(c for c in own if c in columns)))
        for c in self.summed:
            if not _of_signal(c, self.signals):
                fields.append((f"column:{c}", (f"sum__{c}", f"max__{c}")))
        fields += [(f"firm:{c}", (f"firm__{c}",)) for c in self.firmographics]
        return fields

    def field_text(self, field: str, row: pd.Series) -> str:
        """The plain-language text of one reason field for one account row (its combined partials)."""
        kind, _, name = field.partition(":")
        if field == CONTACTS:
            return f"{_plural(row[CONTACTS], 'contact')} at the account"
        if field == "activity":
            n, days = row[ACTIVE], row[LAST_ACTIVE]
            if n > 0:
                return f"{_plural(n, 'contact')} active in the last {self.active_days:g} days"
            if pd.isna(days):
                return "no contact has been active yet"
            return f"no contact active in the last {self.active_days:g} days (the latest {days:.0f} days ago)"
        if kind == "role":
            n = row[dict(self.roles)[name]]
            return f"{_words(name)}: {_plural(n, 'contact')} engaged" if n > 0 else f"no one from {_words(name)} yet"
        if field == COVERAGE:
            engaged = sum(row[dict(self.roles)[r]] > 0 for r in self.buying_group)
            return f"{engaged} of {len(self.buying_group)} buying-group roles engaged"
        if kind == "signal":
            n = row[f"with__{name}"]
            if n > 0:
                total = row.get(f"sum__{name}_count", np.nan)
                in_all = f" ({total:.0f} in all)" if pd.notna(total) and total > n else ""
                return f"{_plural(n, 'contact')} with {_words(name)}{in_all}"
            return f"no contact with {_words(name)} yet"
        if kind == "column":
            return f"{_words(name)}: {row[f'sum__{name}']:g} across contacts, at most {row[f'max__{name}']:g} for one"
        value = row[f"firm__{name}"]
        if pd.isna(value):
            return f"{_words(name)} unknown"
        return f"{_words(name)} {value:,.0f}" if name in self.numeric_firmographics else f"{_words(name)} {value}"


def _of_signal(column: str, signals: tuple[str, ...]) -> bool:
    return any(column in (f"{s}_count", f"{s}_decayed") for s in signals)


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")


# -- the probability: the account model, or a calibrated roll-up of the lead probabilities --------------------------
@dataclass(frozen=True)
class AccountModel:
    """A calibrated model of the account features, with its exact contributions for the reasons."""

    classifier: CalibratedModel
    feature_columns: tuple[str, ...]
    decomposition: Contributions
    base_score: float  # 100 g(f0): the score of an account whose every feature sits at the reference
    base_slope: float  # d score / d raw output at f0, for an account whose raw output is the base's

    name = "account_model"
    additive = True

    def probability(self, combined: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
        """The calibrated account probability of each row."""
        return self.classifier.predict_proba(features[list(self.feature_columns)])[:, 1]

    def points(self, features: pd.DataFrame, p: np.ndarray) -> np.ndarray:
        """Score points per feature (rows x features): base_score + row sum = 100 p exactly (see `model.explainer`)."""
        raw = self.decomposition(self.classifier.model, features[list(self.feature_columns)])
        delta = raw.sum(axis=1)
        gained = SCORE_SCALE * np.asarray(p, dtype="float64") - self.base_score
        flat = np.abs(delta) <= _FLAT
        slope = np.where(flat, self.base_slope, gained / np.where(flat, 1.0, delta))
        return raw * slope[:, None]


def build_account_model(classifier: CalibratedModel, train_features: pd.DataFrame) -> AccountModel:
    """The account model part of a calibrated model fitted on `train_features` (its contributions' reference)."""
    columns = list(train_features.columns)
    decomposition = classifier.model_kind.contributions(classifier.model, train_features, columns)
    base = decomposition.base_raw
    step = 1e-4

    def score(raw: np.ndarray) -> np.ndarray:
        return SCORE_SCALE * classifier.probability_of_raw(raw)

    return AccountModel(
        classifier=classifier, feature_columns=tuple(columns), decomposition=decomposition,
        base_score=float(score(np.array([base]))[0]),
        base_slope=float(np.diff(score(np.array([base - step, base + step])))[0] / (2 * step)),
    )


def _noisy_or(combined: pd.DataFrame) -> np.ndarray:
    return -np.expm1(combined[SUM_LOG_MISS].to_numpy(dtype="float64"))


def _max(combined: pd.DataFrame) -> np.ndarray:
    return combined[MAX_P].to_numpy(dtype="float64")


def _mean(combined: pd.DataFrame) -> np.ndarray:
    return combined[SUM_P].to_numpy(dtype="float64") / combined[CONTACTS].to_numpy(dtype="float64")


# The roll-ups of lead probabilities an account probability can be calibrated from; one entry adds one.
ROLLUPS: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {"noisy_or": _noisy_or, "max": _max, "mean": _mean}


def rollup_raw(name: str, combined: pd.DataFrame) -> np.ndarray:
    """The log-odds of roll-up `name` of each row's lead probabilities: what its calibrator reads."""
    try:
        rollup = ROLLUPS[name]
    except KeyError:
        raise ValueError(f"no roll-up '{name}'; known roll-ups: {', '.join(ROLLUPS)}") from None
    p = np.clip(rollup(combined), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class RollUp:
    """A roll-up of the lead probabilities (`ROLLUPS[name]`) and its calibrator to account conversion."""

    name: str
    calibrator: CalibratedClassifierCV  # reads one column: the roll-up's log-odds (`rollup_raw`)

    additive = False

    def probability(self, combined: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
        """The calibrated account probability of each row."""
        return self.calibrator.predict_proba(rollup_raw(self.name, combined).reshape(-1, 1))[:, 1]


@dataclass(frozen=True)
class AccountScorer:
    """The account part of the scoring artifact (see the module docstring), built whole at training."""

    account_column: str  # the account id column of the leads' input rows
    features: AccountFeatures
    method: AccountModel | RollUp  # the option the training backtest chose
    cutoff: float  # MQA: p_account >= cutoff
    cutoff_policy: str  # the policy behind it, in words
    base_rate: float  # account conversion where the cutoff was chosen (grades C / D)
    top_k: int = 3
    metadata: dict | None = None  # how it was chosen, in words (for the model card and the run)

    def partials(self, leads: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
        """One row per account present in `leads` (validated lead feature rows with the id and account column), with
        MERGEABLE aggregates only (counts, sums, maxima, minima, sum of log(1 - p)); `scores` is the lead scorer's
        output for the same rows in the same order (id, p_convert, score). Chunks of one run give partials that
        `combine` merges exactly."""
        if len(scores) != len(leads):
            raise ValueError(f"{len(scores)} score rows for {len(leads)} leads: give the lead scorer's output of the "
                             "same rows in the same order")
        return self.features.partials(leads, scores["p_convert"].to_numpy(dtype="float64"))

    def combine(self, partials: pd.DataFrame) -> pd.DataFrame:
        """Merge partial rows of the same account (from several chunks) into one row per account."""
        return self.features.combine(partials)

    def probability(self, combined: pd.DataFrame) -> np.ndarray:
        """p_account of each row of combined partials."""
        return self.method.probability(combined, self.features.features(combined))

    def grade(self, p: np.ndarray) -> np.ndarray:
        """A/B/C/D (see the module docstring)."""
        p = np.asarray(p, dtype="float64")
        mqa = p >= self.cutoff
        return np.select([mqa & (p >= GRADE_A_LIFT * self.base_rate), mqa & (p >= self.base_rate), mqa],
                         ["A", "B", "C"], "D")

    def score(self, combined: pd.DataFrame, *, reasons: bool = True) -> pd.DataFrame:
        """The account table: schema.ACCOUNT_COLUMNS, then `account_reasons` (JSON) and account_reason_1..k when
        reasons; one row per account, ordered by account id."""
        combined = combined.sort_values(ACCOUNT_ID, kind="stable").reset_index(drop=True)
        features = self.features.features(combined)
        p = self.method.probability(combined, features)
        engaged, missing = self.features.roles_text(combined)
        active = combined[ACTIVE] if ACTIVE in combined else pd.Series(np.nan, index=combined.index)
        out = pd.DataFrame({
            ACCOUNT_ID: combined[ACCOUNT_ID].astype("string"),
            "contacts": combined[CONTACTS].astype("int64"),
            "active_contacts": active.astype("Int64"),
            "p_account": p,
            "account_score": probability_to_score(p),
            "account_grade": self.grade(p),
            "is_mqa": p >= self.cutoff,
            "buying_group_coverage": self.features.coverage(combined),
            "roles_engaged": engaged,
            "roles_missing": missing,
            "best_lead_id": combined[BEST_ID].astype("string"),
            "best_lead_score": probability_to_score(combined[MAX_P].to_numpy(dtype="float64")),
        })[list(ACCOUNT_COLUMNS)]
        if reasons:
            out = pd.concat([out, self.reasons(combined, features, p, missing)], axis=1)
        return out

    def score_leads(self, leads: pd.DataFrame, scores: pd.DataFrame, *, reasons: bool = True) -> pd.DataFrame:
        """score(combine(partials(leads, scores))): the account table of whole accounts given in one frame."""
        return self.score(self.combine(self.partials(leads, scores)), reasons=reasons)

    def lead_columns(self, accounts: pd.DataFrame) -> pd.DataFrame:
        """schema.LEAD_ACCOUNT_COLUMNS per account id, to join onto lead rows."""
        return accounts[list(LEAD_ACCOUNT_COLUMNS)].reset_index(drop=True)

    def for_leads(self, leads: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
        """The account columns (`LEAD_ACCOUNT_COLUMNS`) of each lead row of `leads`, in its order."""
        per_account = self.lead_columns(accounts).set_index(ACCOUNT_ID)
        ids = self.features.account_ids(leads)
        out = per_account.reindex(pd.Index(ids.to_numpy(), dtype="string")).reset_index(names=ACCOUNT_ID)
        return out[list(LEAD_ACCOUNT_COLUMNS)]

    # -- reasons --------------------------------------------------------------------------------------------------
    def explain(self, combined: pd.DataFrame) -> tuple[float, pd.DataFrame]:
        """The account model's base score and its points per reason field (rows x fields): base + row sum = 100 p.

        Only for the account model; a roll-up's reasons are not additive (see the module docstring)."""
        if not isinstance(self.method, AccountModel):
            raise TypeError(f"the account probability is the {self.method.name} roll-up, whose reasons are not points")
        features = self.features.features(combined)
        p = self.method.probability(combined, features)
        return self.method.base_score, self._field_points(features, p)

    def _field_points(self, features: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
        points = self.method.points(features, p)
        position = {c: i for i, c in enumerate(self.method.feature_columns)}
        fields = self.features.fields()
        summed = np.column_stack([points[:, [position[c] for c in columns]].sum(axis=1) for _, columns in fields])
        return pd.DataFrame(summed, columns=[name for name, _ in fields], index=features.index)

    def reasons(self, combined: pd.DataFrame, features: pd.DataFrame, p: np.ndarray,
                missing: list[str]) -> pd.DataFrame:
        """`account_reasons` (JSON: field, text, points) and account_reason_1..k, one row per combined row."""
        if isinstance(self.method, AccountModel):
            lists = self._model_reasons(combined, self._field_points(features, p), missing)
        else:
            lists = self._rollup_reasons(combined, missing)
        columns = {REASONS_COLUMN: [json.dumps(entries) for entries in lists]}
        for k in range(self.top_k):
            columns[f"account_reason_{k + 1}"] = [_shown(entries[k]) if k < len(entries) else None
                                                  for entries in lists]
        return pd.DataFrame(columns, index=combined.index)

    def _model_reasons(self, combined: pd.DataFrame, points: pd.DataFrame, missing: list[str]) -> list[list[dict]]:
        names = list(points.columns)
        values = points.to_numpy()
        out = []
        for i in range(len(combined)):
            row = combined.iloc[i]
            order = [j for j in np.argsort(-np.abs(values[i]), kind="stable") if abs(values[i, j]) >= 0.05]
            entries = [{"field": names[j], "text": self.features.field_text(names[j], row),
                        "points": round(float(values[i, j]), 1)} for j in order[:self.top_k]]
            if missing[i]:
                roles = missing[i].split(";")
                told = {f"role:{r}" for r in roles} & {e["field"] for e in entries}
                if not told:
                    shown = sum(float(values[i, names.index(f"role:{r}")]) for r in roles)
                    entry = {"field": "roles_missing", "text": _missing_text(roles), "points": round(shown, 1)}
                    entries = [*entries[:self.top_k - 1], entry]
            out.append(entries)
        return out

    def _rollup_reasons(self, combined: pd.DataFrame, missing: list[str]) -> list[list[dict]]:
        out = []
        for i in range(len(combined)):
            row = combined.iloc[i]
            entries = []
            if pd.notna(row[MAX_P]):
                entries.append({"field": "best_contact", "points": None,
                                "text": f"contact {row[BEST_ID]} scores {probability_to_score(row[MAX_P]):g}"})
            if pd.notna(row[ABOVE_MQL]):
                n = row[ABOVE_MQL]
                text = f"{_plural(n, 'contact')} above the MQL line" if n > 0 else "no contact above the MQL line"
                entries.append({"field": "above_mql", "points": None, "text": text})
            if self.features.recency_column:
                entries.append({"field": "activity", "points": None,
                                "text": self.features.field_text("activity", row)})
            entries = entries[:self.top_k]
            if missing[i]:
                entries = [*entries[:self.top_k - 1],
                           {"field": "roles_missing", "points": None, "text": _missing_text(missing[i].split(";"))}]
            out.append(entries)
        return out


def _missing_text(roles: list[str]) -> str:
    names = [_words(r) for r in roles]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"no one from {listed} yet"


def _shown(entry: dict) -> str:
    """A reason as sales reads it: its text, and its points when they add up to the score ("... (+12)")."""
    points = entry["points"]
    if points is None or abs(points) < 0.05:  # a roll-up's reason, or a missing role that moves nothing
        return entry["text"]
    return f"{entry['text']} ({points:+.0f})" if abs(points) >= 1 else f"{entry['text']} ({points:+.1f})"
