"""Why a lead has its score: exact contributions of the conversion model, in score points, and reasons.

Contributions (log-odds)
------------------------
The model's raw output f(x) (LightGBM's raw margin, the logistic regression's decision function)
is split exactly into a base value and one contribution per feature column, f(x) = f0 + sum_j phi_j,
as its kind of model defines (`leadscore.model.kinds`: TreeSHAP for LightGBM, coefficient times
distance from the training mean for the logistic regression).

Score points
------------
The score is 100 p with p = g(f(x)), where g is the calibration (sigmoid or isotonic, applied to
the raw output; increasing in f), taken from the scorer's own `CalibratedModel.probability_of_raw`:
the very mapping that scores leads. The base score is
s0 = 100 g(f0), the score of a lead whose every field sits at the reference above (not the average
score). A field's points are its log-odds contribution times the secant slope of the score between
base and lead:

    points_j = phi_j * (s - s0) / (f(x) - f0),    so that    s0 + sum_j points_j = s   exactly,

with s = 100 p unrounded (the `score` column is s rounded to one decimal). Because g is increasing,
the slope is never negative: every field keeps the sign of its log-odds contribution and the
fields of one lead rank the same in points as in log-odds, which the additive log-odds scale
justifies. Where f(x) = f0 the slope of the score at f0 is used (the points then sum to 0 either
way). Where isotonic calibration gives lead and base the same score, every field gets 0 points.
The alternatives are worse: scoring each field's contribution alone (s(f0 + phi_j) - s0) does not
add up to the score, and Shapley values of the calibrated score need far more model evaluations.

Fields
------
Points are summed per *field*: a feature column, or an activity signal of an event log, whose
`_count`, `_decayed` and `_days_since` columns are one reason ("Requested a demo 3 days ago"), not
three, or columns the config combines (`reasons.combine`, e.g. economic indicators that move
together and would otherwise show as large reasons cancelling each other). A field's dimension
comes from `groups` (fit, engagement, stage; by its first column), else it is "other". Text comes
from `leadscore.reasons`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.config import FeatureGroups, ReasonsConfig, ReasonTemplate
from leadscore.errors import ConfigError
from leadscore.features.events import EventFeatureSpec
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.dimensions import DIMENSIONS, matches_any, resolve_group
from leadscore.model.kinds import Contributions
from leadscore.model.reasons import (
    COLUMN,
    COMBINED,
    DEFAULT_TEXTS,
    SIGNAL,
    SIGNAL_PARTS,
    ReasonField,
    ReasonWriter,
    Templates,
    check_template,
)
from leadscore.schema import SCORE_SCALE

OTHER = "other"
_FLAT = 1e-12  # |f(x) - f0| below this: use the slope at the base instead of the secant


@dataclass(frozen=True)
class Explanation:
    """The exact decomposition of a batch of leads.

    `raw`: log-odds contributions per feature column, base_raw + row sum = the model's raw output.
    `points`: score points per feature column, base_score + row sum = `score` (100 p, unrounded).
    `fields`: the points summed per reason field (a column, an activity signal, or combined columns).
    """

    base_raw: float
    base_score: float
    raw: pd.DataFrame
    points: pd.DataFrame
    fields: pd.DataFrame
    score: np.ndarray


@dataclass(frozen=True)
class Explainer:
    """Exact contributions of a fitted scorer's calibrated model, its points mapping and its reason writer.

    Built at training time by `build_explainer` and carried inside `LeadScorer`, so batch, Spark
    and REST scoring return the same reasons.
    """

    model: CalibratedModel  # or the `SegmentedModel` of a `SegmentedExplainer` (`leadscore.model.segments`)
    feature_columns: list[str]
    decomposition: Contributions  # the model's exact contributions, built from its training rows
    base_score: float
    base_slope: float
    field_columns: np.ndarray  # columns x fields, 1 where a column belongs to a field
    writer: ReasonWriter

    @property
    def base_raw(self) -> float:
        """The model's raw output for a lead whose every field sits at the reference."""
        return self.decomposition.base_raw

    @property
    def fields(self) -> list[ReasonField]:
        return self.writer.fields

    @property
    def output_columns(self) -> list[str]:
        return self.writer.output_columns

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """Log-odds contributions, rows x feature columns; with `base_raw` they sum to the raw output."""
        return self.decomposition(self.model.model, features[self.feature_columns])

    def points(self, contributions: np.ndarray, p: np.ndarray, features: pd.DataFrame | None = None) -> np.ndarray:
        """Score points per column: contributions scaled by the secant slope (see the module docstring).

        `features` (the rows of `contributions`) are read by models whose base depends on the row (a segmented
        model, `leadscore.model.segments`); a single model's points need only the contributions and `p`."""
        return secant_points(contributions, p, self.base_score, self.base_slope)

    def explain(self, features: pd.DataFrame, p: np.ndarray) -> Explanation:
        """The whole decomposition of each lead, given its calibrated probability `p`."""
        raw = self.contributions(features)
        points = self.points(raw, p, features)
        names = [f.name for f in self.fields]
        index = features.index
        return Explanation(
            base_raw=self.base_raw, base_score=self.base_score,
            raw=pd.DataFrame(raw, columns=self.feature_columns, index=index),
            points=pd.DataFrame(points, columns=self.feature_columns, index=index),
            fields=pd.DataFrame(points @ self.field_columns, columns=names, index=index),
            score=SCORE_SCALE * np.asarray(p, dtype="float64"),
        )

    def reasons(self, features: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
        """The `reasons` JSON column and `reason_1` ... `reason_k` for validated feature rows."""
        field_points = self.points(self.contributions(features), p, features) @ self.field_columns
        return self.writer.write(features.reset_index(drop=True), field_points)


def secant_points(contributions: np.ndarray, p: np.ndarray, base_score: float, base_slope: float) -> np.ndarray:
    """Log-odds `contributions` (rows x columns) in score points: scaled by each row's secant slope of the score
    between the base (`base_score`, slope `base_slope` there) and the lead's probability `p`, so that they add up
    to 100 p - `base_score` (see the module docstring)."""
    delta = contributions.sum(axis=1)
    gained = SCORE_SCALE * np.asarray(p, dtype="float64") - base_score
    flat = np.abs(delta) <= _FLAT
    slope = np.where(flat, base_slope, gained / np.where(flat, 1.0, delta))
    return contributions * slope[:, None]


def build_explainer(
    model: CalibratedModel, train_features: pd.DataFrame, feature_columns: list[str], groups: FeatureGroups,
    reasons: ReasonsConfig, event_spec: EventFeatureSpec | None = None,
) -> Explainer:
    """The explainer of a calibrated model, with its reason fields (`groups`, `reasons`) resolved.

    `train_features` are the rows the model was fitted on: the reference values of the contributions
    (e.g. the logistic model's input means) come from them.
    """
    fields = reason_fields(feature_columns, groups, reasons, event_spec)
    membership = np.zeros((len(feature_columns), len(fields)))
    position = {c: i for i, c in enumerate(feature_columns)}
    for j, spec in enumerate(fields):
        membership[[position[c] for c in spec.columns], j] = 1.0
    features = train_features[feature_columns]
    decomposition = model.model_kind.contributions(model.model, features, list(feature_columns))
    base_raw = decomposition.base_raw
    step = 1e-4
    return Explainer(
        model=model, feature_columns=list(feature_columns), decomposition=decomposition,
        base_score=float(_score_of_raw(model, np.array([base_raw]))[0]),
        base_slope=float(np.diff(_score_of_raw(model, np.array([base_raw - step, base_raw + step])))[0] / (2 * step)),
        field_columns=membership,
        writer=ReasonWriter(fields, reasons.top_k, reasons.max_chars),
    )


def dimension_of(column: str, groups: FeatureGroups) -> str:
    """The first dimension whose names or shell patterns match the column, else "other"."""
    for dimension in DIMENSIONS:
        if matches_any(column, groups.patterns(dimension)):
            return dimension
    return OTHER


def reason_fields(
    feature_columns: list[str], groups: FeatureGroups, cfg: ReasonsConfig, event_spec: EventFeatureSpec | None,
) -> list[ReasonField]:
    """The reason fields of a feature set, in column order, with their dimension and templates.

    Columns named in `cfg.combine` form one field each; then each activity signal's three columns;
    every other column is a field of its own.
    """
    owner: dict[str, tuple[str, str]] = {}  # column -> (field, kind)
    for name, patterns in cfg.combine.items():
        members = resolve_group(patterns, feature_columns)
        where = f"reasons.combine.{name}"
        if not members:
            raise ConfigError(f"{where}: no feature column matches {patterns}")
        if name in feature_columns and name not in members:
            raise ConfigError(f"{where}: '{name}' is the name of another feature column; choose another name")
        claimed = [c for c in members if c in owner]
        if claimed:
            raise ConfigError(f"{where}: {claimed} already belong to '{owner[claimed[0]][0]}'")
        owner.update(dict.fromkeys(members, (name, COMBINED)))
    for name in event_spec.signals if event_spec is not None else ():
        columns = [f"{name}_{part}" for part in SIGNAL_PARTS]
        if all(c in feature_columns and c not in owner for c in columns):
            owner.update(dict.fromkeys(columns, (name, SIGNAL)))
    members: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for column in feature_columns:
        name, kind = owner.get(column, (column, COLUMN))
        members.setdefault(name, []).append(column)
        kinds[name] = kind
    return [
        ReasonField(name=name, dimension=dimension_of(columns[0], groups), columns=tuple(columns),
                    templates=_templates(name, kinds[name], cfg), kind=kinds[name])
        for name, columns in members.items()
    ]


def _templates(name: str, kind: str, cfg: ReasonsConfig) -> Templates:
    """A field's templates: its own entry, else the first matching pattern, else readable defaults."""
    entry = cfg.templates.get(name)
    if entry is None:
        entry = next((t for key, t in cfg.templates.items() if fnmatch.fnmatchcase(name, key)), None)
    default = DEFAULT_TEXTS[kind]
    if isinstance(entry, str):
        entry = ReasonTemplate(positive=entry, negative=entry)
    entry = entry or ReasonTemplate()
    texts = (entry.positive or default[0], entry.negative or default[1], entry.missing or default[2])
    allowed = ReasonField(name, OTHER, (), Templates(*texts), kind).placeholders
    for variant, text in zip(("positive", "negative", "missing"), texts):
        try:
            check_template(text, placeholders=allowed, where=f"reasons.templates for '{name}' ({variant})")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return Templates(*texts, words=dict(entry.values))


def _score_of_raw(model: CalibratedModel, raw: np.ndarray) -> np.ndarray:
    """The score (100 p) as a function of the model's raw output, through its calibration."""
    return SCORE_SCALE * model.probability_of_raw(raw)
