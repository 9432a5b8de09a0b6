"""`LeadScorer`: everything needed to score a lead, in one object.

It is built in one call by `leadscore.training.pipeline.fit_table` once every part is fitted, and never
changed after (it is a frozen artifact, not an estimator to be fitted itself). It is logged to MLflow
inside a pyfunc wrapper, so the batch job, Spark and `mlflow models serve` all run this same `predict`.

Its output columns are the contract in `leadscore.schema`; `predict(frame, reasons=False)` leaves the
reasons out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.data.sources import ReadOptions
from leadscore.data.validation import check_ids, require_columns, validate_numeric
from leadscore.errors import ConfigError, InputError
from leadscore.features.events import EventFeatureSpec
from leadscore.model.accounts import AccountScorer
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.cutoffs import Cutoffs
from leadscore.model.dimensions import DimensionScorer
from leadscore.model.drift import DriftReference
from leadscore.model.encoding import FrameEncoder
from leadscore.model.explainer import Explainer
from leadscore.model.segments import SegmentedModel
from leadscore.schema import ROW_ID, probability_to_score


class ScoringContract:
    """Input checks shared by every scorer: needs `id_column`, `feature_columns` and `numeric_columns`.

    Every scorer also has the typed attributes `dimensions`, `cutoffs`, `reference`, `explainer` and `accounts`
    (None where it has no such part), so that no caller needs to probe for them.
    """

    id_column: str
    feature_columns: list[str]
    na_values: tuple[str, ...] = ()  # the training data's placeholders for "missing", applied again at scoring
    decimal: str = "."  # the training data's decimal mark (`data.decimal`): numbers given as text are read with it
    accounts: AccountScorer | None = None  # the account part; None for a scorer without one (the points fallback)

    @property
    def numeric_columns(self) -> list[str]:
        raise NotImplementedError

    def read_options(self) -> ReadOptions:
        """How a file of leads is read for this model, as training read its data: the training data's
        placeholders for "missing" (`data.na_values`: an `unknown` in a numeric column is missing, not a bad
        number), the id as text, numbers with the training data's decimal mark and, under a decimal comma, the
        category columns as text (`3,5` is a level there, not 3.5). Streamed chunks are text, read by the row checks."""
        numeric = set(self.numeric_columns)
        categories = [c for c in self.feature_columns if c not in numeric] if self.decimal == "," else []
        return ReadOptions(na_values=tuple(self.na_values), text_columns=(self.id_column, *categories),
                           decimal=self.decimal)

    def validate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Check a frame against the scoring contract and return it with typed feature columns."""
        if frame.empty:
            raise InputError("no leads to score", fix="give at least one row")
        if self.na_values:
            present = [c for c in self.feature_columns if c in frame.columns]
            frame = frame.assign(**{c: frame[c].replace(list(self.na_values), np.nan) for c in present})
        if self.id_column == ROW_ID and ROW_ID not in frame.columns:
            frame = frame.assign(**{ROW_ID: np.arange(1, len(frame) + 1)})
        require_columns(frame, [self.id_column], "the leads to score", "give every lead its id column")
        check_ids(frame, self.id_column, "the leads to score")
        return self.validate_features(frame)

    def validate_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Check that every feature column is present and numeric columns hold finite numbers."""
        fix = "add the column: the model was trained with it (or retrain without it)"
        require_columns(frame, self.feature_columns, "the leads to score", fix)
        numeric = set(self.numeric_columns)
        for column in self.feature_columns:
            if column not in numeric:
                _refuse_nested(frame[column], column)
        return validate_numeric(frame, self.numeric_columns, "the leads to score", self.decimal)


# What pandas infers for a column of plain cells; anything else is looked at cell by cell.
_PLAIN_KINDS = {"string", "empty", "floating", "integer", "mixed-integer-float", "boolean", "decimal", "categorical",
                "datetime", "datetime64", "date", "timedelta", "time", "period", "bytes"}


def _refuse_nested(values: pd.Series, column: str) -> None:
    """A category cell holding a structure (a Parquet struct, list or map) is an input error, not a crash."""
    if pd.api.types.infer_dtype(values, skipna=True) in _PLAIN_KINDS:
        return
    nested = values.map(lambda v: isinstance(v, (dict, list, tuple, set, np.ndarray))).to_numpy(dtype=bool)
    if nested.any():
        raise InputError(
            "a category column holds structured values (a struct, list or map), not text",
            column=column, rows=[int(i) + 1 for i in np.flatnonzero(nested)],
            fix="give one text value per cell (flatten the structure in the export)",
        )


@dataclass(frozen=True)
class LeadScorer(ScoringContract):
    """A calibrated conversion model with its parts, input contract and provenance, built whole from fitted parts."""

    classifier: CalibratedModel | SegmentedModel  # the global model, or it and the segments' own models
    encoder: FrameEncoder
    id_column: str
    feature_columns: list[str]
    event_spec: EventFeatureSpec | None
    metadata: dict  # provenance: leadscore version, training time, model, calibration, split, horizon
    dimensions: DimensionScorer | None  # the fit, engagement and stage models
    cutoffs: Cutoffs | None
    reference: DriftReference | None  # input and score distributions at training, for drift reports
    explainer: Explainer | None  # exact contributions and reason texts of `classifier`
    na_values: tuple[str, ...] = ()
    decimal: str = "."
    # Account scores (`leadscore.model.accounts`), when trained with an `accounts` section. A plain default so that
    # a scorer pickled before this field existed reads as having none.
    accounts: AccountScorer | None = None

    @property
    def numeric_columns(self) -> list[str]:
        return list(self.encoder.numeric_columns_)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated conversion probabilities for validated feature rows (ids not required)."""
        return self.classifier.predict_proba(features[self.feature_columns])[:, 1]

    def predict(self, frame: pd.DataFrame, *, reasons: bool = True) -> pd.DataFrame:
        """Score leads: one output row per input row, in input order.

        With accounts, every row also gets its account's columns (`schema.LEAD_ACCOUNT_COLUMNS`) computed from the
        leads of `frame`: right when a frame holds whole accounts (a REST request, in-memory use); a batch job that
        scores in chunks merges the chunks' account partials instead (`AccountScorer.partials` / `combine`)."""
        valid = self.validate(frame)
        p = self.predict_proba(valid)
        out = self._lead_scores(valid, p)
        if self.dimensions is not None:
            out = pd.concat([out, self.dimensions.score(valid)], axis=1)
        if self.cutoffs is not None:
            mql, sql = self.cutoffs.thresholds(valid)  # per segment with `segments.per_segment_cutoffs`
            out["is_mql"] = p >= mql
            out["is_sql"] = p >= sql
        if self.accounts is not None:
            accounts = self.accounts.score_leads(valid, out, reasons=False)
            out = pd.concat([out, self.accounts.for_leads(valid, accounts)], axis=1)
        if reasons and self.explainer is not None:
            out = pd.concat([out, self.explainer.reasons(valid, p)], axis=1)
        return out

    def predict_accounts(self, frame: pd.DataFrame, *, reasons: bool = True) -> pd.DataFrame:
        """The account table (`schema.ACCOUNT_COLUMNS`, then the account reasons) of the leads in `frame`, one row
        per account, ordered by account id; the frame should hold every open lead of each account it names."""
        if self.accounts is None:
            raise ConfigError("this model was trained without accounts, so it has no account scores. Fix: add an "
                              "accounts section (accounts.column: the account id of each lead) to the config and "
                              "retrain")
        valid = self.validate(frame)
        return self.accounts.score_leads(valid, self._lead_scores(valid, self.predict_proba(valid)), reasons=reasons)

    def _lead_scores(self, valid: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
        """The first output columns of validated rows: their id, `p_convert` and `score`."""
        return pd.DataFrame({self.id_column: valid[self.id_column].to_numpy(), "p_convert": p,
                             "score": probability_to_score(p)})

    def unseen_categories(self, frame: pd.DataFrame) -> dict[str, int]:
        """How many values per categorical column were never seen in training (scored as missing)."""
        return self.encoder.unseen_counts(frame)
