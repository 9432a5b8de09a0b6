"""Global explanations for data scientists, logged with every training run under `explanations/`.

They are computed from the scorer's exact contributions (`leadscore.model.explainer`) on a sample of the
test window, so they describe the model as it scores leads it has not seen:
- `importance_columns.csv`: per feature column, its dimension, mean |contribution| in log-odds and in
  score points, and the mean and standard deviation of the contribution; ranked by mean |log-odds|;
- `importance_fields.csv`: the same per reason field (an activity signal's columns together);
- `importance_dimensions.csv`: per dimension, mean |sum of its columns' contributions|;
- `summary.json`: rows, base value and base score, and the largest additivity errors found;
- `shap_beeswarm.png` and `shap_bar.png` (SHAP's own plots, in log-odds), `importance_by_dimension.png`,
  and `dependence_<column>.png` for the strongest columns.
In the beeswarm, a categorical column is coloured by its categories ordered by mean contribution
(red: the categories that raise the score).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from leadscore.model.dimensions import DIMENSIONS
from leadscore.model.explainer import OTHER, Explanation
from leadscore.model.rules import PointsScorer
from leadscore.model.scorer import LeadScorer

SAMPLE_ROWS = 2000
DEPENDENCE_PLOTS = 4
BEESWARM_ROWS = 15


@dataclass(frozen=True)
class GlobalExplanations:
    """Importance tables, figures and a summary of one scorer on one sample of leads."""

    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure]
    summary: dict

    def write(self, folder: Path) -> None:
        """Write every table (CSV), figure (PNG) and the summary (JSON) into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            table.to_csv(folder / f"{name}.csv", index=False)
        for name, figure in self.figures.items():
            figure.savefig(folder / name, dpi=110, bbox_inches="tight")
        (folder / "summary.json").write_text(json.dumps(self.summary, indent=2) + "\n")


def global_explanations(scorer: LeadScorer | PointsScorer, frame: pd.DataFrame, *, sample: int = SAMPLE_ROWS, seed: int = 0) -> GlobalExplanations | None:
    """Global explanations of `scorer` on at most `sample` rows of `frame`; None without an explainer."""
    explainer = scorer.explainer
    if explainer is None or frame.empty:
        return None
    rows = frame.sample(n=min(sample, len(frame)), random_state=seed) if len(frame) > sample else frame
    features = rows[scorer.feature_columns]
    explanation = explainer.explain(features, scorer.predict_proba(features))
    dimension = {c: f.dimension for f in explainer.fields for c in f.columns}
    raw = explanation.raw
    columns = importance_table(raw, explanation.points, dimension)
    fields = importance_table(
        _by_field(raw, explainer.fields), explanation.fields, {f.name: f.dimension for f in explainer.fields}, key="field",
    )
    dimensions = dimension_table(raw, explanation.points, dimension)
    additivity = np.abs(explanation.base_raw + raw.sum(axis=1).to_numpy() - explainer.model.raw_output(features))
    points_error = np.abs(explanation.base_score + explanation.points.sum(axis=1).to_numpy() - explanation.score)
    summary = {
        "rows": len(rows), "model": type(explainer.model.model[-1]).__name__,
        "base_raw_output": explanation.base_raw, "base_score": explanation.base_score,
        "additivity_max_abs_error": float(additivity.max()), "points_max_abs_error": float(points_error.max()),
    }
    figures = {
        "shap_beeswarm.png": _shap_figure("beeswarm", explanation, features),
        "shap_bar.png": _shap_figure("bar", explanation, features),
        "importance_by_dimension.png": _dimension_figure(dimensions),
    }
    for column in columns["column"].head(DEPENDENCE_PLOTS):
        figures[f"dependence_{_file_safe(column)}.png"] = dependence_figure(features[column], raw[column])
    tables = {"importance_columns": columns, "importance_fields": fields, "importance_dimensions": dimensions}
    return GlobalExplanations(tables, figures, summary)


def write_global_explanations(scorer: LeadScorer | PointsScorer, frame: pd.DataFrame, folder: Path, *, seed: int = 0) -> GlobalExplanations | None:
    """Compute and write the global explanations of `scorer` on a sample of `frame` (nothing without an explainer).

    Returns them, so that other reports of the run (the model card) quote the same figures."""
    explanations = global_explanations(scorer, frame, seed=seed)
    if explanations is not None:
        explanations.write(folder)
    return explanations


def importance_table(raw: pd.DataFrame, points: pd.DataFrame, dimension: dict[str, str], *, key: str = "column") -> pd.DataFrame:
    """Per column of `raw`: mean |log-odds|, mean |points|, mean and spread of the log-odds; strongest first."""
    table = pd.DataFrame({
        key: raw.columns,
        "dimension": [dimension.get(c, OTHER) for c in raw.columns],
        "mean_abs_log_odds": raw.abs().mean().to_numpy(),
        "mean_abs_points": points.abs().mean().to_numpy(),
        "mean_log_odds": raw.mean().to_numpy(),
        "std_log_odds": raw.std().to_numpy(),
    })
    table = table.sort_values("mean_abs_log_odds", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def dimension_table(raw: pd.DataFrame, points: pd.DataFrame, dimension: dict[str, str]) -> pd.DataFrame:
    """Per dimension: mean |sum of its columns' contributions| in log-odds and points, and its column count."""
    rows = []
    for name in (*DIMENSIONS, OTHER):
        members = [c for c in raw.columns if dimension.get(c, OTHER) == name]
        if members:
            rows.append({
                "dimension": name, "columns": len(members),
                "mean_abs_log_odds": float(raw[members].sum(axis=1).abs().mean()),
                "mean_abs_points": float(points[members].sum(axis=1).abs().mean()),
            })
    return pd.DataFrame(rows).sort_values("mean_abs_log_odds", ascending=False, kind="stable").reset_index(drop=True)


def dependence_figure(values: pd.Series, contribution: pd.Series) -> Figure:
    """How one column's contribution depends on its value: a scatter, or a box per category."""
    figure = Figure(figsize=(6.5, 4))
    ax = figure.subplots()
    numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    if numeric:
        x = values.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(x)
        ax.scatter(x[present], contribution.to_numpy()[present], s=6, alpha=0.4, color="#1E88E5")
        ax.set_xlabel(values.name)
        missing = int((~present).sum())
        title = f"{values.name}" + (f" ({missing} missing not shown)" if missing else "")
    else:
        labels = values.astype("string").fillna("(missing)")
        order = contribution.groupby(labels.to_numpy()).median().sort_values().index
        ax.boxplot([contribution[labels.to_numpy() == c].to_numpy() for c in order], orientation="horizontal", showfliers=False)
        ax.set_yticks(range(1, len(order) + 1), [str(c) for c in order], fontsize=8)
        title = str(values.name)
    ax.axhline(0, color="#999999", lw=0.8) if numeric else ax.axvline(0, color="#999999", lw=0.8)
    ax.set_title(title)
    (ax.set_ylabel if numeric else ax.set_xlabel)("contribution (log-odds)")
    figure.tight_layout()
    return figure


def _shap_figure(kind: str, explanation: Explanation, features: pd.DataFrame) -> Figure:
    import shap

    values = shap.Explanation(
        values=explanation.raw.to_numpy(), base_values=np.full(len(features), explanation.base_raw),
        data=_colour_values(features, explanation.raw), feature_names=list(explanation.raw.columns),
    )
    figure = Figure(figsize=(9, 0.4 * BEESWARM_ROWS + 1.5))
    ax = figure.subplots()
    if kind == "beeswarm":
        shap.plots.beeswarm(values, max_display=BEESWARM_ROWS, ax=ax, show=False, plot_size=None,
                            color_bar_label="value (categories: by mean contribution)")
    else:
        shap.plots.bar(values, max_display=BEESWARM_ROWS, ax=ax, show=False)
    ax.set_xlabel(f"contribution to the raw output (log-odds){'' if kind == 'beeswarm' else ', mean |value|'}")
    figure.tight_layout()
    return figure


def _colour_values(features: pd.DataFrame, raw: pd.DataFrame) -> np.ndarray:
    """Feature values to colour a beeswarm: numbers as they are, categories by their mean contribution."""
    out = np.empty(features.shape, dtype="float64")
    for j, column in enumerate(features.columns):
        values = features[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            out[:, j] = values.to_numpy(dtype="float64", na_value=np.nan)
        else:
            labels = values.astype("string").to_numpy(dtype=object, na_value=None)
            means = raw[column].groupby(labels, dropna=False).mean().rank()
            out[:, j] = pd.Series(labels).map(means).to_numpy(dtype="float64", na_value=np.nan)
    return out


def _dimension_figure(table: pd.DataFrame) -> Figure:
    figure = Figure(figsize=(6, 0.5 * len(table) + 1.5))
    ax = figure.subplots()
    ordered = table.iloc[::-1]
    ax.barh(ordered["dimension"], ordered["mean_abs_log_odds"], color="#1E88E5")
    for y, (log_odds, points) in enumerate(zip(ordered["mean_abs_log_odds"], ordered["mean_abs_points"])):
        ax.text(log_odds, y, f"  {points:.1f} points", va="center", fontsize=9)
    ax.set_xlabel("mean |contribution| of the dimension's columns together (log-odds)")
    ax.set_title("Importance by dimension")
    figure.tight_layout()
    return figure


def _by_field(raw: pd.DataFrame, fields) -> pd.DataFrame:
    return pd.DataFrame({f.name: raw[list(f.columns)].sum(axis=1) for f in fields}, index=raw.index)


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
