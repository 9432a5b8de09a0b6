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

    `y` is one target for all curves, or one target per curve (keyed like `probabilities`). Both axes are
    zoomed to the range the bins reach (lead scores mostly sit far below 1, where a 0-1 axis squeezes every
    curve into a corner), and each point of the first curve is labelled with its number of leads."""
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    curves = {}
    for name, p in probabilities.items():
        target = np.asarray(y[name] if isinstance(y, dict) else y)
        p = np.asarray(p, dtype=float)
        observed, predicted = calibration_curve(target, p, n_bins=10, strategy="quantile")
        # The leads behind each point, binned as `calibration_curve` bins them (it drops empty bins too).
        edges = np.percentile(p, np.linspace(0, 100, 11))
        counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=10)
        curves[name] = (predicted, observed, counts[counts > 0])
    top = calibration_axis_limit(curves)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    for i, (name, (predicted, observed, counts)) in enumerate(curves.items()):
        ax.plot(predicted, observed, marker="o", label=name)
        if i == 0:
            for x, o, n in zip(predicted, observed, counts):
                ax.annotate(f"{n:,}", (x, o), xytext=(4, -10), textcoords="offset points", fontsize=7, color="C0")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set(xlabel="predicted probability", ylabel="observed conversion rate",
           title="Calibration (test window; numbers: leads per bin)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def calibration_axis_limit(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """The upper end of both calibration axes: the highest binned value of any curve with a margin, at most 1."""
    highest = max(max(float(np.max(predicted)), float(np.max(observed))) for predicted, observed, _ in curves.values())
    return float(min(1.0, max(0.02, highest * 1.1)))


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
    """Conversion rate per cutoff band with its 95 % interval, calibration beside test window.

    The share of leads in each band is written under the bars, in the tick labels, where it cannot collide
    with a bar, an interval or the axis label."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    windows = list(dict.fromkeys(bands["window"]))
    width = 0.8 / len(windows)
    shares = {band: [] for band in order}
    for i, window in enumerate(windows):
        rows = bands[bands["window"] == window].set_index("band").loc[list(order)]
        x = np.arange(len(order)) + i * width
        rate = rows["conversion_rate"].fillna(0).to_numpy()
        errors = np.vstack([rate - rows["rate_ci_low"].fillna(0).to_numpy(), rows["rate_ci_high"].fillna(0).to_numpy() - rate])
        ax.bar(x, rate, width, yerr=np.clip(errors, 0, None), capsize=3, label=window)
        for band, share in zip(order, rows["share_of_leads"]):
            shares[band].append(f"{share:.0%}")
    labels = [f"{band}\n{' / '.join(shares[band])} of leads" for band in order]
    ax.set_xticks(np.arange(len(order)) + width * (len(windows) - 1) / 2, labels)
    ax.set(ylabel="conversion rate (95 % interval)", title=f"Cutoff bands ({' / '.join(windows)} window)")
    ax.set_ylim(0, min(1.0, float(bands["rate_ci_high"].fillna(0).max()) * 1.15 + 0.01))
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig
