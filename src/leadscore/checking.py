"""`leadscore check`: a config checked against its data without training.

It does what training does before it fits anything (read and validate the data, resolve every column the
config names, cut the windows, screen for leakage) and adds what a first config most often gets wrong: the
label's balance, the time span, personal columns found, and an estimate of where the cutoff policies land,
made with a quick logistic regression on the training window. Problems stop with the exit code training
would stop with (3 for the config, 4 for the data); warnings are printed and leave the exit code 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from os import PathLike

import numpy as np
import pandas as pd

from leadscore.config import Config, LeakageConfig, load_config
from leadscore.errors import ConfigError, InputError

# A time column whose earliest value is before this year was read from something that is not a date (month
# names such as "Feb" parse as year 1).
_EARLIEST_PLAUSIBLE_YEAR = 1900


@dataclass
class CheckReport:
    """What `check_config` found: facts about the data, warnings, and problems that would stop training."""

    config: str
    facts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    config_problems: list[str] = field(default_factory=list)
    data_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether training would get past its checks."""
        return not (self.config_problems or self.data_problems)

    def text(self) -> str:
        """The report as text for a terminal."""
        lines = [f"checked {self.config} against its data:"]
        lines += [f"  {fact}" for fact in self.facts]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        if self.ok:
            lines.append("ready to train" + (" (read the warnings first)" if self.warnings else ""))
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """Raise what training would: ConfigError (exit 3) for config problems, else InputError (exit 4)."""
        problems = [*self.config_problems, *self.data_problems]
        if not problems:
            return
        listed = "\n".join(f"  - {problem}" for problem in problems)
        message = f"{len(problems)} problem(s) would stop training:\n{listed}"
        if self.config_problems:
            raise ConfigError(message)
        raise InputError(message)


def check_config(config: str | PathLike) -> CheckReport:
    """Check the YAML config `config` against its data, without training; see the module docstring.

    A config that cannot be read, or data that cannot be read into a training table, raises at once
    (ConfigError, InputError) as training would; everything found after that is collected in the report."""
    from leadscore.training.dataset import load_training_table

    cfg = load_config(config)
    report = CheckReport(str(config))
    table = load_training_table(cfg)
    report.facts.append(_columns_fact(table, cfg))
    _personal(report, table)
    _balance(report, table, cfg)
    _time_span(report, table, cfg)
    _columns(report, cfg, table)
    split = _split(report, table, cfg)
    _leakage(report, table, cfg)
    if split is not None and table.conversions >= cfg.model.min_conversions:
        _cutoffs(report, table, cfg, split)
    return report


def _columns_fact(table, cfg: Config) -> str:
    where = f"{cfg.data.form} {cfg.data.resolved_path}"
    id_text = f"id '{table.id_column}'" if cfg.data.id_column or cfg.data.form == "event_log" else "id: the row number"
    return (f"data: {where}: {len(table.frame):,} rows, {len(table.feature_columns)} feature columns, {id_text}, "
            f"label '{table.label_column}'")


def _personal(report: CheckReport, table) -> None:
    if table.dropped_personal:
        report.facts.append(f"personal columns, dropped on reading and never used: {', '.join(table.dropped_personal)}")
    else:
        report.facts.append("personal columns: none found by name (list any others in data.personal_columns)")


def _balance(report: CheckReport, table, cfg: Config) -> None:
    rows, conversions = len(table.frame), table.conversions
    report.facts.append(f"label: {conversions:,} conversions in {rows:,} rows ({conversions / max(rows, 1):.1%})")
    if conversions < cfg.model.min_conversions:
        message = (f"only {conversions} conversions, fewer than model.min_conversions ({cfg.model.min_conversions}): "
                   "add history, lower model.min_conversions, or set model.fallback: points")
        if cfg.model.fallback == "points":
            report.warnings.append(message.split(":")[0] + ": training registers the points rules instead")
        else:
            report.data_problems.append(message)
    elif conversions > rows / 2:
        report.warnings.append(f"{conversions / rows:.0%} of rows are conversions: is data.positive_label the "
                               "converted value, not the other one?")


def _time_span(report: CheckReport, table, cfg: Config) -> None:
    if table.time_column is None:
        method = "row order" if cfg.split.method == "row_order" else "random (stratified)"
        report.facts.append(f"time: no time column; windows are cut by {method}")
        return
    times = pd.to_datetime(table.frame[table.time_column], utc=True, errors="coerce")
    first, last = times.min(), times.max()
    report.facts.append(f"time: '{table.time_column}' from {first:%Y-%m-%d} to {last:%Y-%m-%d}")
    if first.year < _EARLIEST_PLAUSIBLE_YEAR:
        report.config_problems.append(
            f"data.time_column: '{table.time_column}' starts in the year {first.year}: its values are not dates "
            "(a month name or a weekday reads as year 1). Name a column holding full dates, or remove "
            "data.time_column and use split.method: row_order or random")


def _columns(report: CheckReport, cfg: Config, table) -> None:
    from leadscore.training.preflight import column_problems, cutoff_problems

    problems = column_problems(cfg, table)
    report.config_problems += problems + cutoff_problems(cfg, table)
    if not problems:
        report.facts.append("columns: every column the config names was found")


def _split(report: CheckReport, table, cfg: Config):
    from leadscore.training.split import split_frame

    try:
        split = split_frame(table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
                            horizon_days=cfg.event_log.horizon_days if cfg.event_log else None, seed=cfg.model.seed)
    except InputError as exc:
        report.data_problems.append(str(exc))
        return None
    sizes = ", ".join(f"{name} {len(w):,} ({int(w[table.label_column].sum()):,} conversions)"
                      for name, w in split.windows().items())
    report.facts.append(f"split: {split.method}: {sizes}")
    return split


def _leakage(report: CheckReport, table, cfg: Config) -> None:
    from leadscore.training.leakage import screen_columns

    screen = LeakageConfig(**{**cfg.leakage.model_dump(), "strict": False})
    found = screen_columns(table.frame, table.feature_columns, table.label_column, screen,
                           cfg.data.post_outcome_columns, seed=cfg.model.seed)
    if not found.findings:
        report.facts.append(f"leakage screen: none of the {len(table.feature_columns)} feature columns flagged")
        return
    for finding in found.findings:
        text = (f"leakage screen: {finding.message}. If it is known only after the outcome, add it to "
                "data.exclude_columns; if it is known when a lead is scored, to leakage.allow_columns")
        (report.data_problems if cfg.leakage.strict else report.warnings).append(text)


def _cutoffs(report: CheckReport, table, cfg: Config, split) -> None:
    """Where the cutoff policies would land, estimated with a quick logistic regression (training picks the
    real model, which usually ranks better)."""
    from leadscore.training.candidates import logistic_pipeline
    from leadscore.training.cutoffs import choose_cutoffs

    features, label = table.feature_columns, table.label_column
    if split.calibration[label].nunique() < 2:
        return
    quick = logistic_pipeline(cfg.model.min_category_count, cfg.model.logistic_c, cfg.model.seed, signed_log=True)
    quick.fit(split.train[features], split.train[label].to_numpy())
    p = quick.predict_proba(split.calibration[features])[:, 1]
    y = split.calibration[label].to_numpy()
    lenient = cfg.cutoffs.model_copy(update={"strict": False})
    chooser_log = logging.getLogger("leadscore.training.cutoffs")
    was_disabled, chooser_log.disabled = chooser_log.disabled, True  # its warnings are in this report already
    try:
        cutoffs = choose_cutoffs(p, y, lenient)
    except ConfigError as exc:
        report.warnings.append(f"cutoffs (estimated with a quick logistic model): {exc}")
        return
    finally:
        chooser_log.disabled = was_disabled
    sql, mql = p >= cutoffs.sql, p >= cutoffs.mql
    report.facts.append(
        f"cutoffs (estimated with a quick logistic model on the calibration window): SQL {sql.mean():.1%} of leads "
        f"converting {_rate(y, sql)}, MQL {mql.mean():.1%} of leads keeping {y[mql].sum() / max(y.sum(), 1):.0%} of "
        f"conversions; average {y.mean():.1%}")
    report.warnings += [f"cutoffs (estimated): {warning}" for warning in cutoffs.warnings]


def _rate(y: np.ndarray, members: np.ndarray) -> str:
    return f"{y[members].mean():.1%}" if members.any() else "(none)"
