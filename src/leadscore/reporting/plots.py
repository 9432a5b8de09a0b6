"""Diagnostic figures logged with every training run.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so they need no display
and are freed with the run instead of piling up in pyplot's global registry.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve


def calibration_figure(y: np.ndarray | dict[str, np.ndarray], probabilities: dict[str, np.ndarray]) -> Figure:
    """Reliability diagram: observed rate against predicted probability, by quantile bin.

    `y` is one target for all curves, or one target per curve (keyed like `probabilities`)."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    top = max(float(np.max(p)) for p in probabilities.values())
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    for name, p in probabilities.items():
        target = y[name] if isinstance(y, dict) else y
        observed, predicted = calibration_curve(target, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.set(xlabel="predicted probability", ylabel="observed conversion rate", title="Calibration (test window)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def gains_figure(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """Cumulative gains: share of conversions captured when calling the top x % of leads."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
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
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    bins = np.linspace(0, max(1.0, float(score.max())), 40)
    ax.hist(score[y == 0], bins=bins, alpha=0.6, density=True, label="did not convert")
    ax.hist(score[y == 1], bins=bins, alpha=0.6, density=True, label="converted")
    ax.set(xlabel="score (0-100)", ylabel="density", title="Scores on the test window")
    ax.legend()
    fig.tight_layout()
    return fig


def bands_figure(bands, order: tuple[str, ...]) -> Figure:
    """Conversion rate per cutoff band with its 95 % interval, calibration beside test window."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    windows = list(dict.fromkeys(bands["window"]))
    width = 0.8 / len(windows)
    for i, window in enumerate(windows):
        rows = bands[bands["window"] == window].set_index("band").loc[list(order)]
        x = np.arange(len(order)) + i * width
        rate = rows["conversion_rate"].to_numpy()
        errors = np.vstack([rate - rows["rate_ci_low"].to_numpy(), rows["rate_ci_high"].to_numpy() - rate])
        ax.bar(x, rate, width, yerr=errors, capsize=3, label=window)
        for xi, share in zip(x, rows["share_of_leads"]):
            ax.annotate(f"{share:.0%} of leads", (xi, 0), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=7, rotation=90)
    ax.set_xticks(np.arange(len(order)) + width * (len(windows) - 1) / 2, order)
    ax.set(ylabel="conversion rate (95 % interval)", title="Cutoff bands")
    ax.legend()
    fig.tight_layout()
    return fig
