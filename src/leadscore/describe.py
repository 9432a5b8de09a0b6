"""One lead's scores, reasons and whole breakdown in score points, as text for a terminal (`leadscore explain`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from leadscore.model.reasons import COLUMN, COMBINED, ReasonField, render
from leadscore.model.rules import PointsScorer
from leadscore.model.scorer import LeadScorer


def describe_lead(scorer: LeadScorer | PointsScorer, lead: pd.DataFrame) -> str:
    """One lead's scores, reasons and whole breakdown in score points, as text for a terminal."""
    scored = scorer.predict(lead.head(1))
    row = scored.iloc[0]
    shown = [c for c in scored.columns if c not in (scorer.id_column, "p_convert", "score")]
    explainer = scorer.explainer
    if explainer is not None:
        shown = [c for c in shown if c not in explainer.output_columns]
    lines = [f"lead {row[scorer.id_column]}: score {row['score']:.1f} (p_convert {row['p_convert']:.4f})"]
    if shown:
        lines.append("  " + "   ".join(f"{c} {_cell(row[c])}" for c in shown))
    if explainer is None:
        lines.append("this model carries no explanations (a points fallback, or trained by an older leadscore)")
        return "\n".join(lines)
    features = scorer.validate(lead.head(1))[scorer.feature_columns]
    explanation = explainer.explain(features, scored["p_convert"].to_numpy())
    reasons = json.loads(row["reasons"])
    lines.append("reasons:" if reasons else "reasons: none (the score equals the base score)")
    lines.extend(f"  {r['text']}" for r in reasons)
    points = explanation.fields.iloc[0]
    lines.append("breakdown in score points (base score + fields = score):")
    # Columns as wide as their widest entry: a value cut short ("most recently 4 weeks a") misleads.
    specs = sorted(explainer.fields, key=lambda f: -abs(points[f.name]))
    values = {spec.name: _shown_value(spec, features.iloc[0]) for spec in specs}
    name_width = max([len("base score"), *(len(spec.name) for spec in specs)]) + 2
    value_width = max([len("value"), *(len(v) for v in values.values())]) + 2
    total = name_width + 12 + value_width
    lines.append(f"  {'field':<{name_width}}{'dimension':<12}{'value':<{value_width}}{'points':>8}")
    lines.append(f"  {'base score':<{total}}{explanation.base_score:>8.1f}")
    for spec in specs:
        lines.append(f"  {spec.name:<{name_width}}{spec.dimension:<12}{values[spec.name]:<{value_width}}"
                     f"{points[spec.name]:>+8.1f}")
    lines.append(f"  {'score':<{total}}{explanation.score[0]:>8.1f}")
    return "\n".join(lines)


def _shown_value(spec: ReasonField, values: pd.Series) -> str:
    if spec.kind == COMBINED:
        return f"{len(spec.columns)} columns together"
    if spec.kind == COLUMN:
        value = values[spec.columns[0]]
        return render("{value}", {"value": None if pd.isna(value) else (value if isinstance(value, str) else float(value))})
    count = float(values[f"{spec.name}_count"])
    if not count > 0:
        return "none"
    days_since = float(values[f"{spec.name}_days_since"])
    return render("{count:times}, most recently {days_since:ago}", {"count": count, "days_since": days_since})


def _cell(value) -> str:
    return f"{value:.1f}" if isinstance(value, float | np.floating) else str(value)
