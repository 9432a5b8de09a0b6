"""The config checked against the training data, right after loading it and before anything is fitted.

Loading the config checks its form (`leadscore.config`); whether the columns it names exist can only be
known once the training table is loaded. Without this check a misspelt column is silently ignored (a
group, a template, a column marked post-outcome) or stops training only after the tournament and refit
(a reason combination, a cutoff policy no model could meet). Every problem is reported at once, each
with its config key, the name at fault and the closest name the data has.

What names are checked against:
- `groups.*`, `reasons.combine`: the feature columns. For an event log those are generated
  (`<signal>_count`, `<signal>_decayed`, `<signal>_days_since`, `lead_age_days`, ...), so a group names
  them or a pattern such as `pricing_page_*`, not the signal.
- `points_baseline`: the feature columns (the fallback scorer reads nothing else).
- `reasons.templates`: the reason fields: feature columns, activity signals and `reasons.combine` names.
- `data.exclude_columns`, `data.post_outcome_columns`, `leakage.allow_columns`: every column read.
  An event log's training table no longer holds the leads columns `data.exclude_columns` removed, so
  there only a name that is still a feature (a generated column, which exclusion cannot remove) is
  caught.

A plain name must exist; a shell pattern (`*`, `?`, `[...]`) must match at least one name.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Iterable

from leadscore.config import Config, MinConversionRate, is_pattern
from leadscore.errors import ConfigError, InputError
from leadscore.model.explainer import reason_fields
from leadscore.training.cutoffs import clopper_pearson_lower
from leadscore.training.dataset import TrainingTable
from leadscore.training.split import split_frame

_SHOWN = 8  # names listed when none is close to a misspelt one


def check_against_data(cfg: Config, table: TrainingTable) -> None:
    """Raise one ConfigError listing every way `cfg` does not fit `table`; return when it fits."""
    problems = [*column_problems(cfg, table), *cutoff_problems(cfg, table)]
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(f"the config does not fit the training data ({len(problems)} problem(s)), "
                          f"found before fitting:\n{listed}")


def column_problems(cfg: Config, table: TrainingTable) -> list[str]:
    """One message per column name or pattern in `cfg` that the training table does not have."""
    names = _Names(cfg, table)
    problems: list[str] = []
    for group in ("fit", "engagement", "stage"):
        problems += names.check(f"groups.{group}", getattr(cfg.groups, group), names.features, "feature column")
    if cfg.data.form == "event_log":
        problems += [
            f"data.exclude_columns: '{name}' is computed from the events, and exclusion removes columns of the leads "
            "table only, so it stays a feature; remove it from data.exclude_columns"
            for name in cfg.data.exclude_columns if name in names.features
        ]
    else:
        problems += names.check("data.exclude_columns", cfg.data.exclude_columns, names.read, "column")
    problems += names.check("data.post_outcome_columns", cfg.data.post_outcome_columns, names.read, "column")
    problems += names.check("leakage.allow_columns", cfg.leakage.allow_columns, names.read, "column")
    if cfg.segments is not None:  # the segment column stays a feature of the global model (`training.segments`)
        problems += names.check("segments.column", [cfg.segments.column], names.features, "feature column")
    for i, rule in enumerate(cfg.points_baseline):
        problems += names.check(f"points_baseline[{i}].column", [rule.column], names.features, "feature column")

    combine_problems = [
        problem for name, patterns in cfg.reasons.combine.items()
        for problem in names.check(f"reasons.combine.{name}", patterns, names.features, "feature column")
    ]
    problems += combine_problems
    owner = _field_owner(cfg, names)
    fields = [*(c for c in names.features if c not in owner), *names.signals, *cfg.reasons.combine]
    if not combine_problems:
        # The explainer's own assembly of fields: combinations that clash, and templates whose
        # placeholders the field cannot fill, are found here rather than after the tournament.
        try:
            fields = [f.name for f in reason_fields(names.features, cfg.groups, cfg.reasons, table.event_spec)]
        except ConfigError as exc:
            problems.append(str(exc))
    problems += names.check("reasons.templates", list(cfg.reasons.templates), fields, "reason field", owner=owner)
    return problems


def cutoff_problems(cfg: Config, table: TrainingTable) -> list[str]:
    """One message per `min_conversion_rate` cutoff policy that no model could meet on the calibration window.

    A screen, not the choice itself: it assumes a perfect ranking (every conversion above every other
    lead), under which the best one-sided lower bound is reached by flagging exactly the conversions. A
    policy that fails even then fails for any fitted model."""
    policies = [(which, policy) for which, policy in (("sql", cfg.cutoffs.sql), ("mql", cfg.cutoffs.mql))
                if isinstance(policy, MinConversionRate)]
    if not policies or table.conversions < cfg.model.min_conversions:
        return []  # nothing to screen, or cutoffs are not chosen (too few conversions, or the points fallback)
    try:
        split = split_frame(
            table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
            horizon_days=cfg.event_log.horizon_days if cfg.event_log else None, seed=cfg.model.seed,
        )
    except InputError:
        return []  # windows that cannot be cut are reported by the pipeline as bad input, in their place
    window = split.calibration
    conversions = int(window[table.label_column].sum())
    problems = []
    for which, policy in policies:
        best = float(clopper_pearson_lower(conversions, conversions, policy.confidence))
        if best >= policy.conversion_rate:
            continue
        needed = math.ceil(math.log(1 - policy.confidence) / math.log(policy.conversion_rate))
        problems.append(
            f"cutoffs.{which}: a conversion rate of at least {_percent(policy.conversion_rate)} with "
            f"{_percent(policy.confidence)} confidence "
            f"needs at least {needed} conversions above the cutoff, but the calibration window holds "
            f"{conversions} in {len(window)} rows: even a perfect ranking reaches a lower bound of {best:.1%}. Lower "
            "the rate or the confidence, choose another policy, or give the calibration window more history "
            "(split.calibration_fraction)"
        )
    return problems


class _Names:
    """The names a config may refer to, and the messages for names that are not among them."""

    def __init__(self, cfg: Config, table: TrainingTable):
        self.features = list(table.feature_columns)
        self.personal = list(table.dropped_personal)
        self.signals = list(table.event_spec.signals) if table.event_spec is not None else []
        # Every column read; for an event log also the leads columns excluded before the table was made.
        excluded = cfg.data.exclude_columns if cfg.data.form == "event_log" else []
        self.read = _unique([*table.frame.columns, *self.personal, *excluded])

    def check(self, key: str, entries: Iterable[str], candidates: list[str], kind: str,
              owner: dict[str, str] | None = None) -> list[str]:
        """Messages for the entries under `key` that name none of `candidates` (a `kind`)."""
        problems = []
        for entry in entries:
            if is_pattern(entry):
                if not any(fnmatch.fnmatchcase(name, entry) for name in candidates):
                    problems.append(f"{key}: the pattern '{entry}' matches no {kind}{_suggestion(entry, candidates, kind)}")
            elif entry not in candidates:
                problems.append(f"{key}: {self._why_not(entry, candidates, kind, owner or {})}")
        return problems

    def _why_not(self, name: str, candidates: list[str], kind: str, owner: dict[str, str]) -> str:
        if name in owner:
            return f"'{name}' is part of the reason field '{owner[name]}': name the field instead"
        if name in self.personal:
            return f"'{name}' is a personal column: it is dropped on reading and is never a feature"
        if name in self.signals:
            parts = ", ".join(f"{name}_{part}" for part in ("count", "decayed", "days_since"))
            return f"'{name}' is an activity signal, not a column: its columns are {parts} (or the pattern '{name}_*')"
        if name in self.read:
            return (f"'{name}' is not a {kind}: it is the id, label or time column, or data.exclude_columns "
                    "removes it")
        return f"no {kind} '{name}'{_suggestion(name, candidates, kind)}"


def _field_owner(cfg: Config, names: _Names) -> dict[str, str]:
    """Feature columns that belong to a larger reason field (a signal or a combination): {column: field}."""
    owner = {}
    for signal in names.signals:
        owner.update({f"{signal}_{part}": signal for part in ("count", "decayed", "days_since")})
    for field, patterns in cfg.reasons.combine.items():
        owner.update({c: field for c in names.features if any(fnmatch.fnmatchcase(c, p) for p in patterns)})
    return {column: field for column, field in owner.items() if column in names.features}


def _suggestion(name: str, candidates: list[str], kind: str) -> str:
    """'; did you mean ...' with the closest candidate (ignoring case), else the first few candidates."""
    if not candidates:
        return f" (the data has no {kind}s)"
    by_lower = {c.lower(): c for c in reversed(candidates)}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{by_lower[close[0]]}'?"
    shown = ", ".join(candidates[:_SHOWN]) + (", ..." if len(candidates) > _SHOWN else "")
    return f"; the {kind}s are: {shown}"


def _percent(share: float) -> str:
    return f"{100 * share:g}%"


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
