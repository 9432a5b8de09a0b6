"""Diagnostic figures logged with every training run (matplotlib, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402


def calibration_figure(y: np.ndarray, probabilities: dict[str, np.ndarray]) -> Figure:
    """Reliability diagram: observed conversion against predicted probability, by quantile bin."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = max(float(np.max(p)) for p in probabilities.values())
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    for name, p in probabilities.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.set(xlabel="predicted probability", ylabel="observed conversion rate", title="Calibration (test window)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def gains_figure(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """Cumulative gains: share of conversions captured when calling the top x % of leads."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    share = np.arange(1, len(y) + 1) / len(y)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random order")
    for name, score in scores.items():
        captured = np.cumsum(y[np.argsort(-score, kind="stable")]) / y.sum()
        ax.plot(share, captured, label=name)
    ax.set(xlabel="share of leads contacted (highest score first)", ylabel="share of conversions captured",
           title="Cumulative gains (test window)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def score_histogram(y: np.ndarray, score: np.ndarray) -> Figure:
    """Score distribution of converted and unconverted leads."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, max(1.0, float(score.max())), 40)
    ax.hist(score[y == 0], bins=bins, alpha=0.6, density=True, label="did not convert")
    ax.hist(score[y == 1], bins=bins, alpha=0.6, density=True, label="converted")
    ax.set(xlabel="score (0-100)", ylabel="density", title="Scores on the test window")
    ax.legend()
    fig.tight_layout()
    return fig
