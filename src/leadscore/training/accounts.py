"""Account scores fitted by the training pipeline: the options, their backtest, the choice, the deployed part.

Called once by `leadscore.training.pipeline.fit_table` when the config has an `accounts` section, after the lead
model's backtest and deployed refits; the result's parts go into the backtest's figures and into the deployed
`LeadScorer` (`accounts=`). The scoring side is `leadscore.model.accounts` (read its docstring first).

Account rows
------------
Each window's lead rows (the lead split's train, calibration and test windows, so the lead split's time boundaries
and purge hold) are grouped into account rows by `AccountFeatures.partials`, the very function scoring uses: by
account and snapshot time for an event log, by account for a snapshot table (its time: the latest lead's). An account
row is labelled converted when any of its lead rows is. A lead matched to no account (its account id empty) trains the
lead model and belongs to no account row (the count is tagged on the run); at scoring it gets no account score. With
a random split, one account's leads can fall in several windows; each window then sees the part of the account it
holds.

Options and the choice
----------------------
- `account_model`: the lead tournament's machinery on the account rows: every configured candidate fitted on the
  training window (`fit_candidates`, same `model` section), the winner by out-of-fold calibrated log loss on the
  calibration window (`run_tournament`), refitted on training + calibration and calibrated out of fold there
  (`refit_winner`, folds grouped by account). One out-of-time window decides; there is no rolling-origin backtest for
  the account model (the account rows are ten times fewer than the lead rows, and every origin would refit every
  candidate once more).
- `noisy_or`, `max`, `mean`: roll-ups of the lead probabilities (1 - prod(1 - p), max p, mean p), each calibrated to
  account conversion (sigmoid or isotonic, by `model.calibration`; `auto`: the lower out-of-fold log loss) on the
  calibration window's account rows, from the backtest lead model's out-of-fold probabilities there (each lead's
  segment model where it has one, `leadscore.training.segments`), as the lead model is calibrated on its own.
Every option is measured on the test window's account rows, out of time: the roll-ups read the backtest lead model's
probabilities (it never saw the test window), the account model is the one fitted without it. The option of lowest
test log loss is chosen. Beside each option's log loss, ROC AUC and Brier score, the run records its log-loss
difference to the chosen option and to the `max` roll-up (the best single lead of each account), each with its
standard error clustered by account (an account's rows at several snapshots are not independent).

The deployed part: the chosen option refitted as the lead model is. The account model is refitted on the training and
calibration windows' account rows and calibrated out of fold on the test window's (`refit_winner`, grouped by
account); a roll-up's calibrator is fitted on the test window's account rows from the deployed lead model's
out-of-fold probabilities there, with the method the backtest chose. The MQA cutoff is
chosen from `accounts.mqa` on the test window's out-of-fold account probabilities, where the deployed lead cutoffs are
chosen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.config import Config
from leadscore.errors import ConfigError, InputError
from leadscore.model.accounts import (
    ACCOUNT_ID,
    RECENCY_COLUMN,
    ROLLUPS,
    AccountFeatures,
    AccountScorer,
    RollUp,
    build_account_model,
    feature_name,
    rollup_raw,
)
from leadscore.reporting.metrics import probability_metrics
from leadscore.training.calibration import EPS, fit_calibrator, out_of_fold_log_loss
from leadscore.training.candidates import fit_candidates
from leadscore.training.cutoffs import choose_cutoff
from leadscore.training.dataset import TrainingTable
from leadscore.training.split import Split
from leadscore.training.tournament import refit_winner, run_tournament

log = logging.getLogger(__name__)

MODEL_OPTION = "account_model"
OPTIONS = (MODEL_OPTION, *ROLLUPS)
BEST_SINGLE_LEAD = "max"  # the roll-up that is the best single lead of each account
_FIRMOGRAPHIC_SHARE = 0.99  # a category is firmographic when constant within this share of multi-contact accounts
_MIN_PER_CLASS = 5  # account rows of each class a window needs for the account model to be fitted on it
CHOICE_RULE = ("the option of lowest log loss on the test window's account rows (out of time: the account model "
               "fitted without the test window, the roll-ups from the backtest lead model's probabilities)")


@dataclass(frozen=True)
class AccountsResult:
    """What account training produced: the backtest and deployed account parts, and what the run records."""

    backtest: AccountScorer  # fitted without the test window; measured there
    deployed: AccountScorer  # the chosen option refitted on every window; goes into the deployed LeadScorer
    method: str  # the chosen option
    metrics: dict[str, dict[str, float]]  # `accounts_<option>`: test-window figures of every option
    tables: dict[str, pd.DataFrame]  # `accounts_backtest`: the same, one row per option
    tags: dict[str, str]  # the choice and its rule, in words
    run_metrics: dict[str, float]  # the deployed part's MQA cutoff and row counts


def check_accounts(cfg: Config, table: TrainingTable) -> None:
    """Before anything is fitted: the account column is on every row, the role column is a lead feature and the
    buying group names roles the data has; an `InputError` or `ConfigError` with the fix otherwise."""
    accounts = cfg.accounts
    if accounts is None:
        return
    column = table.account_column
    if column is None or column not in table.frame.columns:
        raise InputError("the training rows have no account id column", column=accounts.column,
                         fix="export the account id of every lead in that column (accounts.column), or remove the "
                         "accounts section")
    empty = _without_account(table.frame[column])
    if empty.all():
        raise InputError("no training row has an account id", column=column,
                         fix="export the account id of every lead in that column (accounts.column), or remove the "
                         "accounts section")
    role = accounts.role_column
    if role is not None and role not in table.feature_columns:
        where = ("is in the data but not a lead feature (excluded, personal or free text)"
                 if role in table.frame.columns else "is not a column of the data")
        raise ConfigError(f"accounts.role_column names '{role}', which {where}. Fix: name the column that holds each "
                          "lead's buying role (a lead feature), or remove accounts.role_column")
    if accounts.buying_group:
        if role is None:
            raise ConfigError("accounts.buying_group lists roles but accounts.role_column is not set. Fix: name the "
                              "role column in accounts.role_column")
        seen = set(table.frame[role].astype("string").dropna().unique())
        unseen = [r for r in accounts.buying_group if r not in seen]
        if unseen:
            raise ConfigError(f"accounts.buying_group names role(s) the data never holds: {unseen}; roles seen in "
                              f"'{role}': {sorted(seen)}. Fix: spell them as the data does, or leave buying_group "
                              "empty for every role seen")


def account_features(cfg: Config, table: TrainingTable, lead_mql: float | None) -> AccountFeatures:
    """The account feature definitions for this training table (see `leadscore.model.accounts`)."""
    accounts = cfg.accounts
    frame, features = table.frame, table.feature_columns
    role = accounts.role_column
    roles = sorted(frame[role].astype("string").dropna().unique()) if role else []
    columns, used = [], set()
    for name in roles:  # one model feature per role, unique whatever the role's spelling
        column = f"engaged__{feature_name(name)}"
        while column in used:
            column += "_"
        used.add(column)
        columns.append((name, column))
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c]) and c != role]
    recency = RECENCY_COLUMN if RECENCY_COLUMN in numeric else None
    activity: set[str] = {recency} if recency else set()
    if table.event_spec is not None:
        signals = [s for s in table.event_spec.signals if f"{s}_count" in numeric]
        summed = [f"{s}_{part}" for s in signals for part in ("count", "decayed") if f"{s}_{part}" in numeric]
        # Every column computed from the events (counts, recency, the lead's age) differs between contacts.
        activity |= set(table.event_spec.feature_columns) - set(table.event_spec.profile_columns)
    else:
        signals, summed = [], []
    firmographics = _firmographics(frame, [c for c in features if c != role and c not in activity], _keys(table),
                                   table.account_column)
    if table.event_spec is None:  # a snapshot table's other numbers are summed over the account's contacts
        summed = [c for c in numeric if c not in activity and c not in firmographics]
    return AccountFeatures(
        account_column=table.account_column, id_column=table.id_column, role_column=role, roles=tuple(columns),
        buying_group=tuple(accounts.buying_group or roles), active_days=float(accounts.active_days),
        recency_column=recency, signals=tuple(signals), summed=tuple(summed),
        firmographics=tuple(firmographics), lead_mql=lead_mql,
        numeric_firmographics=tuple(c for c in firmographics if c in numeric),
    )


def _keys(table: TrainingTable) -> tuple[str, ...]:
    """The group keys beside the account: the snapshot time of an event log (one account row per snapshot)."""
    return (table.time_column,) if table.event_spec is not None and table.time_column else ()


def _firmographics(frame: pd.DataFrame, candidates: list[str], keys: tuple[str, ...], account: str) -> list[str]:
    """The columns constant within nearly every account of two or more contacts (firmographics: company size, a
    head count), ignoring missing values."""
    if not candidates:
        return []
    frame = frame[~_without_account(frame[account])]
    groups = frame.groupby([frame[account].astype("string"), *(frame[k] for k in keys)], sort=False)
    sizes = groups.size()
    if not (sizes >= 2).any():
        return []
    distinct = groups[candidates].nunique(dropna=True)[sizes >= 2]
    return [c for c in candidates if (distinct[c] <= 1).mean() >= _FIRMOGRAPHIC_SHARE]


@dataclass(frozen=True)
class _Rows:
    """One window's account rows: combined partials, label, time and model features."""

    combined: pd.DataFrame
    y: np.ndarray
    time: np.ndarray | None
    X: pd.DataFrame

    @property
    def accounts(self) -> np.ndarray:
        return self.combined[ACCOUNT_ID].to_numpy(dtype=object)


def account_rows(features: AccountFeatures, window: pd.DataFrame, table: TrainingTable,
                 p: np.ndarray | None) -> _Rows:
    """The account rows of one window's lead rows (`p`: their lead probabilities, or None)."""
    keys = _keys(table)
    window, p = _with_account(window, p, features.account_column)
    combined = features.partials(window, p, keys)
    by = [ACCOUNT_ID, *keys]
    grouping = window.assign(**{ACCOUNT_ID: features.account_ids(window).to_numpy()})
    aggregated = {"_label": (table.label_column, "max")}
    time = table.time_column if table.time_column and table.time_column not in keys else None
    if time:
        aggregated["_time"] = (time, "max")
    labels = grouping.groupby(by, sort=True, dropna=False).agg(**aggregated).reset_index()
    merged = combined.merge(labels, on=by, how="left", validate="one_to_one")
    times = merged[keys[0]] if keys else (merged["_time"] if time else None)
    return _Rows(combined=combined, y=merged["_label"].to_numpy(dtype="int64"),
                 time=None if times is None else pd.to_datetime(times, utc=True).to_numpy(),
                 X=features.features(combined))


def _without_account(ids: pd.Series) -> np.ndarray:
    """Where a row names no account (missing or blank)."""
    text = ids.astype("string").str.strip()
    return (text.isna() | (text == "")).to_numpy(dtype=bool)


def _with_account(window: pd.DataFrame, p: np.ndarray | None, column: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The rows of `window` that name an account, and their probabilities: a lead matched to no account still
    trains the lead model, but belongs to no account row (scoring refuses such a lead an account score)."""
    keep = ~_without_account(window[column])
    return window[keep], (None if p is None else np.asarray(p)[keep])


def _enough(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2 and int(np.bincount(y).min()) >= _MIN_PER_CLASS


def _order(rows: _Rows) -> np.ndarray:
    """Rank of each row for LightGBM's early stopping: latest last (row order without time)."""
    if rows.time is None:
        return np.arange(len(rows.y))
    return pd.Series(rows.time).rank(method="first").to_numpy()


def _clustered_se(difference: np.ndarray, clusters: np.ndarray) -> float:
    """Standard error of the mean of per-row `difference`, rows of one cluster (account) counted together."""
    n = len(difference)
    centred = pd.Series(difference - difference.mean()).groupby(clusters).sum().to_numpy()
    c = len(centred)
    if c < 2:
        return float("nan")
    return float(np.sqrt(c / (c - 1) * np.sum(centred ** 2)) / n)


def _row_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def _calibrate_rollup(name: str, rows: _Rows, method: str, seed: int) -> tuple[RollUp, str]:
    """Roll-up `name` calibrated to account conversion on `rows` (`auto`: the method of lower out-of-fold loss)."""
    raw = rollup_raw(name, rows.combined)
    if method == "auto":
        method = min(("sigmoid", "isotonic"), key=lambda m: out_of_fold_log_loss(raw, rows.y, m, seed))
    fitted = fit_calibrator(raw, rows.y, method)
    return RollUp(name, fitted.calibrator), fitted.method


def fit_accounts(cfg: Config, table: TrainingTable, split: Split, *, p_calibration: np.ndarray, p_test: np.ndarray,
                 p_deployed: np.ndarray, lead_mql: float | None) -> AccountsResult:
    """Fit, compare and choose the account options, and build the backtest and deployed account parts.

    `p_calibration`: the backtest lead model's out-of-fold probabilities of the calibration window's rows;
    `p_test`: its probabilities of the test window's rows; `p_deployed`: the deployed lead model's out-of-fold
    probabilities of the test window's rows; `lead_mql`: the deployed lead MQL cutoff (for the roll-up reasons)."""
    accounts, model_cfg = cfg.accounts, cfg.model
    features = account_features(cfg, table, lead_mql)
    train = account_rows(features, split.train, table, None)
    calibration = account_rows(features, split.calibration, table, p_calibration)
    test = account_rows(features, split.test, table, p_test)
    if not (len(np.unique(test.y)) == 2 and len(np.unique(calibration.y)) == 2):
        raise InputError(
            "the calibration and test windows need converted and unconverted accounts to fit and compare account "
            f"scores (calibration: {int(calibration.y.sum())} of {len(calibration.y)}, test: {int(test.y.sum())} of "
            f"{len(test.y)} account rows converted)", column=table.label_column,
            fix="add history, or remove the accounts section",
        )

    # The options, each measured on the test window's account rows.
    p_options: dict[str, np.ndarray] = {}
    parts: dict[str, object] = {}
    details: dict[str, str] = {}
    if _enough(train.y) and _enough(calibration.y):
        fitted = fit_candidates(train.X, train.y, _order(train), model_cfg)
        winner, _ = run_tournament(fitted, calibration.X, calibration.y, model_cfg)
        refit = refit_winner(winner, fitted[winner.name], train.X, train.y, calibration.X, calibration.y, model_cfg,
                             groups=calibration.accounts)
        model = build_account_model(refit.candidate.classifier, pd.concat([train.X, calibration.X]))
        p_options[MODEL_OPTION] = model.probability(test.combined, test.X)
        parts[MODEL_OPTION] = (model, refit.p_calibration)
        details[MODEL_OPTION] = f"{winner.name}, {refit.candidate.calibration_method} calibration"
    else:
        log.warning("accounts: too few converted or unconverted account rows in the training or calibration window "
                    "to fit an account model; only the roll-ups of lead probabilities compete")
    for name in ROLLUPS:
        rollup, method = _calibrate_rollup(name, calibration, model_cfg.calibration, model_cfg.seed)
        p_options[name] = rollup.probability(test.combined, test.X)
        parts[name] = (rollup, rollup.probability(calibration.combined, calibration.X))
        details[name] = f"{method} calibration"

    figures = {name: probability_metrics(test.y, p) for name, p in p_options.items()}
    chosen = min(p_options, key=lambda name: figures[name]["log_loss"])
    losses = {name: _row_losses(test.y, p) for name, p in p_options.items()}
    metrics: dict[str, dict[str, float]] = {}
    for name in p_options:
        to_chosen, to_max = losses[name] - losses[chosen], losses[BEST_SINGLE_LEAD] - losses[name]
        metrics[f"accounts_{name}"] = {
            **figures[name], "rows": float(len(test.y)), "accounts": float(len(np.unique(test.accounts))),
            "log_loss_minus_chosen": float(to_chosen.mean()),
            "log_loss_minus_chosen_se": _clustered_se(to_chosen, test.accounts),
            "gain_over_max": float(to_max.mean()), "gain_over_max_se": _clustered_se(to_max, test.accounts),
            "chosen": float(name == chosen),
        }
    table_rows = [{"option": name, "how": details[name], **values} for name, values in
                  ((n, metrics[f"accounts_{n}"]) for n in p_options)]
    backtest_table = pd.DataFrame(table_rows).sort_values("log_loss", kind="stable").reset_index(drop=True)

    # The backtest part: the chosen option as fitted without the test window; its cutoff from the calibration window.
    method, p_cal = parts[chosen]
    backtest = _scorer(features, method, p_cal, calibration.y, accounts, f"backtest: {chosen} ({details[chosen]})")
    p_back = p_options[chosen]
    mqa = p_back >= backtest.cutoff
    metrics["accounts_mqa"] = {
        "share_of_accounts": float(mqa.mean()), "base_rate": float(test.y.mean()),
        "conversion_rate": float(test.y[mqa].mean()) if mqa.any() else float("nan"),
        "conversion_rate_below": float(test.y[~mqa].mean()) if (~mqa).any() else float("nan"),
    }

    # The deployed part: the chosen option refitted as the lead model is; its cutoff from the test window's
    # out-of-fold account probabilities.
    earlier_X = pd.concat([train.X, calibration.X])
    earlier_y = np.concatenate([train.y, calibration.y])
    if chosen == MODEL_OPTION:
        deployed_fit = refit_winner(refit.candidate, fitted[winner.name], earlier_X, earlier_y, test.X, test.y,
                                    model_cfg, groups=test.accounts)
        deployed_method = build_account_model(deployed_fit.candidate.classifier, pd.concat([earlier_X, test.X]))
        p_oof = deployed_fit.p_calibration
    else:
        latest = account_rows(features, split.test, table, p_deployed)
        deployed_method, _ = _calibrate_rollup(chosen, latest, backtest.method.calibrator.method, model_cfg.seed)
        p_oof = deployed_method.probability(latest.combined, latest.X)
    deployed = _scorer(features, deployed_method, p_oof, test.y, accounts, f"deployed: {chosen} ({details[chosen]})")

    others = ", ".join(f"{name} {figures[name]['log_loss']:.4f}" for name in p_options if name != chosen)
    tags = {
        "accounts.method": (f"{chosen} ({details[chosen]}), test log loss {figures[chosen]['log_loss']:.4f} against "
                            f"{others}; rule: {CHOICE_RULE}"),
        "accounts.mqa_policy": deployed.cutoff_policy,
        "accounts.buying_group": ";".join(features.buying_group) or "none (no role column)",
        "accounts.validation": ("one out-of-time window (the lead split's test window), no rolling origins for the "
                                "account model"),
    }
    without = int(_without_account(table.frame[table.account_column]).sum())
    if without:
        tags["accounts.rows_without_account"] = (f"{without:,} training rows name no account: they train the lead "
                                                 "model and belong to no account row")
    run_metrics = {"accounts_mqa_cutoff": deployed.cutoff, "accounts_train_rows": float(len(train.y)),
                   "accounts_calibration_rows": float(len(calibration.y)), "accounts_test_rows": float(len(test.y))}
    return AccountsResult(backtest=backtest, deployed=deployed, method=chosen, metrics=metrics,
                          tables={"accounts_backtest": backtest_table}, tags=tags, run_metrics=run_metrics)


def _scorer(features: AccountFeatures, method, p: np.ndarray, y: np.ndarray, accounts, role: str) -> AccountScorer:
    """An account part with its MQA cutoff chosen from the policy on (`p`, `y`)."""
    cutoff, policy = choose_cutoff(p, y, accounts.mqa, which="mql")
    return AccountScorer(account_column=features.account_column, features=features, method=method,
                         cutoff=float(cutoff), cutoff_policy=policy, base_rate=float(np.mean(y)),
                         metadata={"method": getattr(method, "name", ""), "fitted": role})
