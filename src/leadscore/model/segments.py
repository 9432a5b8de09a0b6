"""One model per segment (`segments.column`, e.g. product line or region), the global model elsewhere.

A segment's own model is a LightGBM booster fitted on the segment's rows *on top of* the global model: its
starting point is the global model's raw output (LightGBM's `init_score`), so it learns only what the segment
does differently (the interactions of the segment with the other columns), and early stopping decides how far
it moves away from the global model; with little evidence it stays near it. The raw output of a segment's lead
is therefore

    f(x) = f_global(x) + f_segment(x),      p = g_segment(f(x)),

with `g_segment` the segment's own calibrator (fitted on out-of-fold scores of its latest rows, guarded
against inversion as every calibrator is: `leadscore.training.calibration`). Leads of any other segment, of a
segment value never seen in training and with the segment missing use the global model as it is. Which
segments get their own model, and why the others do not, is decided at training time
(`leadscore.training.segments`); this module is the scoring side only.

Contributions stay exact and additive. With the global model's base value f0 (its expected raw output), a
segment lead's contributions per column are the global model's plus the segment booster's (TreeSHAP,
LightGBM's `pred_contrib`), and the booster's own base value b (its expected raw output over the segment's
rows) goes to the segment column: being in that segment is what moves the lead's reference from f0 to f0 + b.
So f0 + sum of contributions = f(x) for every row, with one base value for every lead.

Score points (`SegmentedExplainer.points`): a segment lead's score is read through its own calibrator, so the
secant of `leadscore.model.explainer` is taken between the segment's base (raw f0 + b, score 100 g_segment(f0 + b))
and the lead, which keeps every field's sign; the segment column also gets the difference between the
segment's base score and the global base score. Points then add up to each lead's own score from the one
global base score, the same for every lead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline

from leadscore.config import FeatureGroups, ReasonsConfig
from leadscore.features.events import EventFeatureSpec
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.encoding import segment_codes
from leadscore.model.explainer import Explainer, build_explainer, secant_points
from leadscore.model.kinds import TreeContributions, model_kind
from leadscore.schema import SCORE_SCALE


@dataclass(frozen=True)
class SegmentModel:
    """One segment's own model: a LightGBM pipeline (`encode` + `LGBMClassifier`) fitted with the global model's raw
    output as its starting score, and the calibrator of the sum of the two raw outputs."""

    booster: Pipeline
    calibrator: CalibratedClassifierCV
    note: str = ""  # why the calibration differs from the one asked for ("" when it does not)

    def raw_output(self, features: pd.DataFrame) -> np.ndarray:
        """The booster's own raw output: what it adds to the global model's log-odds."""
        return np.asarray(model_kind("lightgbm").raw_output(self.booster, features))

    def probability_of_raw(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated probability of converting, as a function of the combined raw output."""
        return self.calibrator.predict_proba(np.asarray(raw, dtype="float64").reshape(-1, 1))[:, 1]


@dataclass(frozen=True)
class SegmentedModel:
    """The global calibrated model and the segments' own models, routing each lead by its `column` value.

    Offers what the scorer and the reports read from a `CalibratedModel` (`predict_proba`, `raw_output`, `note`,
    `model`), so that `LeadScorer.classifier` can be either."""

    column: str
    overall: CalibratedModel
    segments: dict[str, SegmentModel]  # segment value (as text) -> its own model

    @property
    def keys(self) -> tuple[str, ...]:
        """The segment values with their own model."""
        return tuple(self.segments)

    @property
    def model(self) -> Pipeline:
        """The global model's fitted pipeline (what the model is, for reports)."""
        return self.overall.model

    @property
    def note(self) -> str:
        """Calibration notes: the global model's, then each segment's."""
        notes = [self.overall.note] if self.overall.note else []
        notes += [f"segment {key}: {part.note}" for key, part in self.segments.items() if part.note]
        return "; ".join(notes)

    @property
    def method(self) -> str:
        """The global model's calibration method."""
        return self.overall.method

    def route(self, features: pd.DataFrame) -> np.ndarray:
        """Each row's segment among `keys`, or -1 for the global model."""
        return segment_codes(features[self.column], self.keys)

    def raw_output(self, features: pd.DataFrame) -> np.ndarray:
        """Raw output (log-odds scale): the global model's, plus the segment booster's for a segment's lead."""
        raw = self.overall.raw_output(features).astype("float64")
        route = self.route(features)
        for code, part in enumerate(self.segments.values()):
            rows = route == code
            if rows.any():
                raw[rows] += part.raw_output(features[rows])
        return raw

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one column per class; each lead through its own model's calibrator."""
        raw = self.raw_output(features)
        route = self.route(features)
        p = self.overall.probability_of_raw(raw)
        for code, part in enumerate(self.segments.values()):
            rows = route == code
            if rows.any():
                p[rows] = part.probability_of_raw(raw[rows])
        return np.column_stack([1 - p, p])


@dataclass(frozen=True)
class SegmentBase:
    """Where a segment's leads start from: the booster's contributions, its base value, and the segment's base
    score and slope (through its own calibrator)."""

    contributions: TreeContributions
    base_raw: float  # the global base value plus the booster's
    base_score: float
    base_slope: float


@dataclass(frozen=True)
class SegmentedExplainer(Explainer):
    """The explainer of a `SegmentedModel`: exact contributions and points per lead (see the module docstring)."""

    column_index: int  # the position of the segment column among the feature columns
    bases: dict[str, SegmentBase]

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """Log-odds contributions, rows x feature columns; with `base_raw` they sum to each lead's raw output."""
        features = features[self.feature_columns]
        out = np.asarray(self.decomposition(self.model.model, features), dtype="float64").copy()
        route = self.model.route(features)
        for code, (key, base) in enumerate(self.bases.items()):
            rows = route == code
            if rows.any():
                out[rows] += base.contributions(self.model.segments[key].booster, features[rows])
                out[rows, self.column_index] += base.contributions.base_raw
        return out

    def points(self, contributions: np.ndarray, p: np.ndarray, features: pd.DataFrame | None = None) -> np.ndarray:
        """Score points per column; each segment lead's by its own calibrator (see the module docstring)."""
        if features is None:
            raise TypeError("a segmented model's points depend on each lead's segment: pass the features too")
        out = super().points(contributions, p)
        route = self.model.route(features)
        p = np.asarray(p, dtype="float64")
        for code, base in enumerate(self.bases.values()):
            rows = route == code
            if not rows.any():
                continue
            own = contributions[rows].copy()
            own[:, self.column_index] -= base.contributions.base_raw  # measured from the segment's own base
            points = secant_points(own, p[rows], base.base_score, base.base_slope)
            points[:, self.column_index] += base.base_score - self.base_score
            out[rows] = points
        return out


def build_segmented_explainer(model: SegmentedModel, train_features: pd.DataFrame, feature_columns: list[str],
                              groups: FeatureGroups, reasons: ReasonsConfig,
                              event_spec: EventFeatureSpec | None = None) -> SegmentedExplainer:
    """The explainer of a segmented model: the global model's (`build_explainer`), plus each segment's base.

    `train_features` are the rows the global model was fitted on (a segment booster's base value is LightGBM's
    own, over the rows it was fitted on: any row gives it)."""
    overall = build_explainer(model.overall, train_features, feature_columns, groups, reasons, event_spec)
    step = 1e-4
    bases = {}
    for key, part in model.segments.items():
        contributions = TreeContributions.build(part.booster, train_features, list(feature_columns))
        base_raw = overall.base_raw + contributions.base_raw
        around = SCORE_SCALE * part.probability_of_raw(np.array([base_raw - step, base_raw, base_raw + step]))
        bases[key] = SegmentBase(contributions, base_raw, float(around[1]), float(around[2] - around[0]) / (2 * step))
    parts = {f.name: getattr(overall, f.name) for f in fields(Explainer)}
    return SegmentedExplainer(**{**parts, "model": model}, column_index=list(feature_columns).index(model.column),
                              bases=bases)
