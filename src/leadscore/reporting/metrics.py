"""Metrics of a probability forecast, and how the score sorts leads.

ECE uses ten equal-count bins of the prediction (equal-width bins put almost every lead in the
first bin when conversion is rare, hiding miscalibration). Lift is the conversion rate among the
top 10 % of leads by score divided by the overall rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

_EPS = 1e-6


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |predicted - observed| over equal-count bins, weighted by bin size."""
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(p))):
        total += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(total / len(p))


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Conversion rate in the top 10 % by score over the overall rate (ties broken by position)."""
    n_top = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-score, kind="stable")[:n_top]
    return float(y[top].mean() / y.mean())


def ranking_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Metrics that need only an ordering of the leads."""
    return {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "top_decile_lift": top_decile_lift(y, score),
    }


def probability_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Ranking metrics plus the proper scores and calibration of a probability."""
    return {
        **ranking_metrics(y, p),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, _EPS, 1 - _EPS), labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
        "mean_predicted": float(p.mean()),
        "conversion_rate": float(y.mean()),
    }


def decile_table(y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Conversion per score decile (1 = highest scores) with the cumulative share of conversions."""
    order = np.argsort(-score, kind="stable")
    rows = []
    for decile, chunk in enumerate(np.array_split(order, 10), start=1):
        rows.append({
            "decile": decile, "leads": len(chunk), "min_score": float(score[chunk].min()),
            "max_score": float(score[chunk].max()), "conversions": int(y[chunk].sum()),
            "conversion_rate": float(y[chunk].mean()) if len(chunk) else float("nan"),
        })
    table = pd.DataFrame(rows)
    table["share_of_conversions"] = table["conversions"].cumsum() / max(1, int(y.sum()))
    return table
