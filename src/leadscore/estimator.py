"""`LeadScoreClassifier`: the leadscore training pipeline as a scikit-learn estimator on snapshot tables.

`fit(X, y)` learns what `leadscore train` learns from a snapshot-form config (out-of-time windows, the
LightGBM vs logistic tournament with calibration, dimension models, MQL / SQL cutoffs, the explainer),
from a DataFrame in memory instead of a file named in YAML. The fitted `scorer_` is the same `LeadScorer`
that the YAML route registers, so `leadscore.api.log_model` logs and registers it as that same pyfunc
model, and the batch job, Spark and `mlflow models serve` score it unchanged.

The parameters mirror the config sections (see `leadscore.config`): each of `model`, `split`, `cutoffs`,
`groups`, `stage`, `reasons` and `leakage` takes a dict of that section's keys or the section object
itself, and None means the section's defaults (`accounts` and `segments` too, where None means no such
section: no account scores, one global model); the flat `*_columns` and `na_values` parameters are the
snapshot keys of the `data` section. They are validated when `fit` runs, as scikit-learn asks, with
the same messages as a YAML file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from leadscore.errors import ConfigError, InputError

# The config sections an estimator parameter stands for, in the order they are documented.
_SECTIONS = ("model", "split", "cutoffs", "groups", "stage", "reasons", "leakage", "accounts", "segments")
_IN_MEMORY = "<in-memory frame>"  # the data path recorded in the config of a model fitted from a frame


class LeadScoreClassifier(ClassifierMixin, BaseEstimator):
    """A calibrated lead-conversion classifier with dimension scores, MQL / SQL cutoffs and reasons.

    Parameters
    ----------
    model, split, cutoffs, groups, stage, reasons, leakage : dict or config section, default None
        The config sections of the same names (`ModelConfig`, `SplitConfig`, `CutoffsConfig`,
        `FeatureGroups`, `StageConfig`, `ReasonsConfig`, `LeakageConfig`); None means their defaults.
        E.g. ``model={"candidates": ["logistic"], "min_conversions": 50}`` or
        ``cutoffs={"sql": {"policy": "top_fraction", "fraction": 0.05}}``. `model.fallback` must stay
        "none": a points fallback has no probability to predict.
    accounts : dict or AccountsConfig, default None
        Account scores (`p_account`, MQA, buying groups; `score_accounts`): e.g. ``{"column": "account_id",
        "role_column": "role"}``, where `column` is the column of X naming each lead's account (text, never a
        feature). None: no account part.
    segments : dict or SegmentsConfig, default None
        One model per segment where the data allows, e.g. ``{"column": "region"}``. None: one global model.
    id_column : str, default None
        A column of X holding unique lead ids (not a feature); None numbers the rows from 1.
    time_column : str, default None
        A column of X holding when each row was observed (not a feature): the windows are then cut
        out of time. `fit(..., time=...)` gives the times as an array instead. Without either the split
        is random and stratified, unless `split={"method": "row_order"}`.
    na_values : tuple of str, default ()
        Text values that mean missing (e.g. "unknown"), in training and at scoring.
    categorical_columns : tuple of str, default ()
        Columns that are categories though nearly all their values look like numbers (codes, bands).
    personal_columns : tuple of str, default ()
        Columns never used as features nor logged; columns whose names look personal (email, phone,
        name ...) are dropped too.
    exclude_columns : tuple of str, default ()
        Columns that are not features (e.g. known only after contact).
    post_outcome_columns : tuple of str, default ()
        Columns known only after the outcome (names or shell patterns); the leakage guard flags any
        still used as a feature.

    Attributes
    ----------
    scorer_ : LeadScorer
        The fitted scoring artifact, as `leadscore.load_model` returns it for a registered model.
    classes_ : ndarray of shape (2,)
        The two labels in sorted order; `classes_[1]` is the conversion, as in scikit-learn.
    n_features_in_ : int
        Number of columns of X seen in fit (the id and time columns included).
    feature_names_in_ : ndarray of str
        The column names of X when it was a DataFrame with string column names.
    config_ : Config
        The validated configuration the parameters stand for.
    result_ : TrainingResult
        What training measured: the windows, the held-out test window's metrics against the baselines,
        tables and figures; `leadscore.api.log_model` logs it. It holds the training rows.
    """

    def __init__(
        self, *, model=None, split=None, cutoffs=None, groups=None, stage=None, reasons=None, leakage=None,
        accounts=None, segments=None, id_column=None, time_column=None, na_values=(), categorical_columns=(), personal_columns=(),
        exclude_columns=(), post_outcome_columns=(),
    ):
        self.model = model
        self.split = split
        self.cutoffs = cutoffs
        self.groups = groups
        self.stage = stage
        self.reasons = reasons
        self.leakage = leakage
        self.accounts = accounts
        self.segments = segments
        self.id_column = id_column
        self.time_column = time_column
        self.na_values = na_values
        self.categorical_columns = categorical_columns
        self.personal_columns = personal_columns
        self.exclude_columns = exclude_columns
        self.post_outcome_columns = post_outcome_columns

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = True  # a missing value is information (LightGBM branches on it)
        tags.input_tags.string = True  # text columns are categories
        tags.input_tags.categorical = True
        return tags

    def fit(self, X, y, *, time=None):
        """Fit the whole pipeline on a snapshot table: X the leads (one row each), y whether each converted.

        `time` (array-like of timestamps, one per row) cuts the windows out of time, as `time_column` does.
        Raises ValueError for data the pipeline cannot learn from (e.g. fewer conversions than
        `model.min_conversions`, or a window without both classes), with the fix in the message.
        """
        frame = self._frame(X, reset=True)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = column_or_1d(y, warn=True)
        if len(y) != len(frame):
            raise ValueError(f"X has {len(frame)} rows but y has {len(y)} labels")
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(f"Only binary classification is supported. The type of the target is {y_type}.")
        classes = np.unique(y)
        if len(classes) != 2:
            raise ValueError(f"y holds only one class ({classes[0]!r}); a conversion model needs converted "
                             "and unconverted leads")
        self.classes_ = classes

        label = _free_name("converted", frame.columns)
        time_column = self.time_column
        if time is not None:
            if time_column is not None:
                raise ValueError("give the times either as time_column or as fit(..., time=...), not both")
            time = column_or_1d(time)
            if len(time) != len(frame):
                raise ValueError(f"X has {len(frame)} rows but time has {len(time)} values")
            time_column = _free_name("observed_at", [*frame.columns, label])
            frame[time_column] = time
        frame[label] = (y == classes[1]).astype("int8")

        from leadscore.training.dataset import snapshot_table, with_checked_numbers
        from leadscore.training.pipeline import fit_table

        with _as_value_errors():
            cfg = self._config(label, time_column)
            account = cfg.accounts.column if cfg.accounts else None
            reserved = {self.id_column, time_column, label, account}
            features = [c for c in frame.columns if c not in reserved]
            frame = _with_missing(frame, features, cfg.data.na_values)
            if account in frame.columns:  # account ids are text, as `leadscore train` reads them (`000123`)
                frame[account] = frame[account].astype("string")
            # Every row given is fitted (`model.max_rows` samples what `leadscore train` reads, not what an estimator
            # is handed: a scikit-learn estimator learns from the X it is passed; pass a sample to fit one).
            table = with_checked_numbers(snapshot_table(frame, cfg.data, account_column=account))
            result = fit_table(table, cfg)
        self.config_ = cfg
        self.result_ = result
        self.scorer_ = result.scorer
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2): column 1 is P(convert), `score_frame(X)["p_convert"]`."""
        p = self._p_convert(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """The more likely label of each lead (`classes_[1]` where P(convert) >= 0.5).

        Sales work the MQL / SQL flags of `score_frame`, whose cutoffs come from the business policy."""
        p = self._p_convert(X)
        return self.classes_[(p >= 0.5).astype(int)]

    def score_frame(self, X, *, reasons: bool = True) -> pd.DataFrame:
        """The full scoring output, one row per lead in input order: the id, p_convert, score, the dimension
        scores, stage and grade, the MQL / SQL flags and (unless `reasons=False`) the reasons."""
        check_is_fitted(self)
        frame = self._frame(X, reset=False)
        with _as_value_errors():
            return self.scorer_.predict(frame, reasons=reasons)

    def score_accounts(self, X, *, reasons: bool = True) -> pd.DataFrame:
        """One row per account of the leads in X (fitted with `accounts`): `p_account`, the MQA flag, the buying
        group's coverage and (unless `reasons=False`) the account's reasons. X should hold every open lead of
        each account it names."""
        check_is_fitted(self)
        frame = self._frame(X, reset=False)
        with _as_value_errors():
            return self.scorer_.predict_accounts(frame, reasons=reasons)

    def explain(self, X) -> pd.DataFrame:
        """Each lead's score split exactly into a base score and points per field, one row per lead and
        field: the id, field, dimension, value, points, base_score and score (see `leadscore.api.explain`)."""
        check_is_fitted(self)
        frame = self._frame(X, reset=False)
        with _as_value_errors():
            return explanation_frame(self.scorer_, frame)

    def _p_convert(self, X) -> np.ndarray:
        check_is_fitted(self)
        frame = self._frame(X, reset=False)
        with _as_value_errors():
            return self.scorer_.predict_proba(self.scorer_.validate(frame))

    def _frame(self, X, *, reset: bool) -> pd.DataFrame:
        """X as a DataFrame with string column names: its own, or x0, x1 ... for arrays."""
        if isinstance(X, pd.DataFrame):
            if X.shape[0] < 1 or X.shape[1] < 1:
                raise ValueError(f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
                                 f"(shape={X.shape}) while a minimum of 1 of each is required.")
            validate_data(self, X, reset=reset, skip_check_array=True)
            frame = X.copy()
        else:
            array = check_array(X, dtype=None, ensure_all_finite=False)
            validate_data(self, array, reset=reset, skip_check_array=True)
            # Arrays of numbers stored as objects are numbers; text stays text (a category).
            frame = pd.DataFrame(array).infer_objects()
        names = getattr(self, "feature_names_in_", None)
        frame.columns = list(names) if names is not None else [f"x{i}" for i in range(frame.shape[1])]
        return frame

    def _config(self, label: str, time_column: str | None):
        """The validated Config the parameters stand for (ConfigError naming the key when one is invalid)."""
        from leadscore.config import parse_config

        sections = {}
        for name in _SECTIONS:
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                value = value.model_dump()
            if value is not None:
                sections[name] = value
        raw = {
            "data": {
                "form": "snapshot", "path": _IN_MEMORY, "id_column": self.id_column, "label_column": label,
                "positive_label": 1, "time_column": time_column,
                "na_values": list(self.na_values), "categorical_columns": list(self.categorical_columns),
                "personal_columns": list(self.personal_columns), "exclude_columns": list(self.exclude_columns),
                "post_outcome_columns": list(self.post_outcome_columns),
            },
            **sections,
        }
        cfg = parse_config(raw, source=f"{type(self).__name__} parameters")
        if cfg.model.fallback != "none":
            raise ConfigError(f"{type(self).__name__} predicts probabilities, which the points fallback does not "
                              "give; leave model.fallback at 'none' (train the fallback through a YAML config)")
        return cfg


def explanation_frame(scorer, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows' scores split into base score and points per field, one row per lead and field (see
    `leadscore.api.explain` for the columns); `scorer` is a learned `LeadScorer`."""
    from leadscore.model.reasons import COLUMN, COMBINED, render

    explainer = scorer.explainer
    if explainer is None:
        raise ValueError("this model carries no explanations (a points fallback, or trained by an older "
                         "leadscore); train a learned model to explain its scores")
    valid = scorer.validate(rows).reset_index(drop=True)
    features = valid[scorer.feature_columns]
    p = scorer.predict_proba(valid)
    explanation = explainer.explain(features, p)
    fields = explainer.fields
    values = {}
    for spec in fields:
        if spec.kind == COLUMN:
            values[spec.name] = features[spec.columns[0]].astype(object).where(features[spec.columns[0]].notna(), None)
        elif spec.kind == COMBINED:
            values[spec.name] = pd.Series(f"{len(spec.columns)} columns together", index=features.index, dtype=object)
        else:
            count, days = features[f"{spec.name}_count"], features[f"{spec.name}_days_since"]
            values[spec.name] = pd.Series(
                [render("{count:times}, most recently {days_since:ago}", {"count": float(c), "days_since": float(d)})
                 if c > 0 else "none" for c, d in zip(count, days)], index=features.index, dtype=object)
    n, k = len(valid), len(fields)
    points = explanation.fields.to_numpy()
    out = pd.DataFrame({
        scorer.id_column: np.repeat(valid[scorer.id_column].to_numpy(), k),
        "field": np.tile([f.name for f in fields], n),
        "dimension": np.tile([f.dimension for f in fields], n),
        "value": pd.concat([values[f.name] for f in fields], axis=1).to_numpy(dtype=object).reshape(-1),
        "points": points.reshape(-1),
        "base_score": explanation.base_score,
        "score": np.repeat(explanation.score, k),
    })
    # Leads in input order; within a lead, the fields that move its score most first.
    order = np.lexsort((-np.abs(points).reshape(-1), np.repeat(np.arange(n), k)))
    return out.iloc[order].reset_index(drop=True)


def _free_name(base: str, taken) -> str:
    """`base`, or `base` with trailing underscores, whichever is not a column already."""
    taken = {str(c) for c in taken}
    name = base
    while name in taken:
        name += "_"
    return name


def _with_missing(frame: pd.DataFrame, columns: list[str], na_values: list[str]) -> pd.DataFrame:
    """The frame with the `na_values` placeholders as missing in `columns`, as the scorer reads them at scoring."""
    if not na_values:
        return frame
    return frame.assign(**{c: frame[c].replace(list(na_values), np.nan) for c in columns})


@contextmanager
def _as_value_errors() -> Iterator[None]:
    """leadscore's own errors about data and settings, raised as the ValueError scikit-learn callers expect.

    The original error, with its column, rows and fix, stays attached as the cause."""
    try:
        yield
    except (InputError, ConfigError) as exc:
        raise ValueError(str(exc)) from exc
