"""The figures of labelled past scores: realised against predicted conversion, by band, with their noise.

For one group of scores (a model version, or all):
- the realised conversion rate with its exact (Clopper-Pearson) interval, beside the mean predicted probability,
  and the score test of calibration in the large, z = (conversions - sum p) / sqrt(sum p (1 - p));
- a reliability table: ten equal-count bands of `p_convert`, the bins of `leadscore.reporting.metrics`'s ECE,
  each with its exact interval; the same by cutoff band (SQL, MQL, below MQL) and by grade when present;
- ECE (`leadscore.reporting.metrics.expected_calibration_error`) beside the ECE that sampling noise alone gives a
  perfectly calibrated model on these very probabilities: outcomes drawn as Bernoulli(p) (seeded), its mean and
  its `confidence` quantile;
- ROC AUC (`sklearn.metrics.roc_auc_score`) with its Hanley-McNeil standard error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest, norm
from sklearn.metrics import roc_auc_score

from leadscore.reporting.metrics import expected_calibration_error
from leadscore.schema import SCORE_SCALE

BINS = 10
ECE_DRAWS = 400


@dataclass(frozen=True)
class GroupFigures:
    """The figures of one group of labelled scores (see the module docstring)."""

    leads: int
    conversions: int
    predicted_mean: float
    realised_rate: float
    rate_ci_low: float
    rate_ci_high: float
    z: float  # score test of calibration in the large
    z_p_value: float
    ece: float
    ece_noise_mean: float  # mean ECE of a perfectly calibrated model on these probabilities
    ece_noise_quantile: float  # its `confidence` quantile
    roc_auc: float | None  # None when only one class occurred
    roc_auc_se: float | None
    confidence: float
    reliability: pd.DataFrame
    cutoff_bands: pd.DataFrame | None
    grades: pd.DataFrame | None

    def summary(self) -> dict:
        """The scalar figures, as plain numbers (for JSON and MLflow)."""
        skip = {"reliability", "cutoff_bands", "grades"}
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables present (reliability always; cutoff bands and grades when the scores carry them)."""
        named = {"reliability": self.reliability, "cutoff_bands": self.cutoff_bands, "grades": self.grades}
        return {name: table for name, table in named.items() if table is not None}


def exact_interval(conversions: int, leads: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a conversion rate; (nan, nan) without leads."""
    if leads == 0:
        return float("nan"), float("nan")
    ci = binomtest(int(conversions), int(leads)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's (1982) standard error of a ROC AUC measured on `positives` and `negatives` rows."""
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc ** 2) + (negatives - 1) * (q2 - auc ** 2)) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def ece_under_calibration(p: np.ndarray, *, draws: int = ECE_DRAWS, seed: int = 0, bins: int = BINS) -> np.ndarray:
    """ECE of `draws` outcome sets drawn as Bernoulli(p): what sampling noise alone gives a calibrated model."""
    rng = np.random.default_rng(seed)
    return np.array([expected_calibration_error((rng.random(len(p)) < p).astype(float), p, bins) for _ in range(draws)])


def band_table(y: np.ndarray, p: np.ndarray, bands: pd.Series, order: list, confidence: float) -> pd.DataFrame:
    """Leads, conversions, predicted mean and realised rate with its exact interval per band (in `order`)."""
    rows = []
    for band in order:
        mask = (bands == band).to_numpy()
        n, k = int(mask.sum()), int(y[mask].sum())
        low, high = exact_interval(k, n, confidence)
        predicted = float(p[mask].mean()) if n else float("nan")
        rows.append({"band": str(band), "leads": n, "conversions": k, "predicted_mean": predicted,
                     "realised_rate": k / n if n else float("nan"), "rate_ci_low": low, "rate_ci_high": high,
                     "predicted_in_interval": bool(low <= predicted <= high) if n else None})
    return pd.DataFrame(rows)


def reliability_table(y: np.ndarray, p: np.ndarray, confidence: float, bins: int = BINS) -> pd.DataFrame:
    """Equal-count bands of `p` (as `expected_calibration_error` bins them), with score ranges and intervals."""
    order = np.argsort(p, kind="stable")
    band = np.empty(len(p), dtype=object)
    names = []
    for chunk in np.array_split(order, min(bins, len(p))):
        low, high = SCORE_SCALE * p[chunk].min(), SCORE_SCALE * p[chunk].max()
        name = f"{low:.1f}-{high:.1f}"
        # Equal scores can make two bands' names equal; the position keeps them apart.
        name = f"{len(names) + 1:>2}: score {name}"
        band[chunk] = name
        names.append(name)
    return band_table(y, p, pd.Series(band), names, confidence)


def group_figures(y: np.ndarray, p: np.ndarray, *, grade: pd.Series | None = None, is_mql: pd.Series | None = None,
                  is_sql: pd.Series | None = None, confidence: float = 0.95, seed: int = 0) -> GroupFigures:
    """Every figure of one group of labelled scores: `y` converted (0/1), `p` the predicted probability."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    n, k = len(y), int(y.sum())
    low, high = exact_interval(k, n, confidence)
    variance = float(np.sum(p * (1 - p)))
    z = (k - float(p.sum())) / np.sqrt(variance) if variance > 0 else float("nan")
    noise = ece_under_calibration(p, seed=seed)
    auc = se = None
    if 0 < k < n:
        auc = float(roc_auc_score(y, p))
        se = auc_standard_error(auc, k, n - k)
    cutoff_bands = None
    if is_mql is not None and is_sql is not None and is_mql.notna().all() and is_sql.notna().all():
        label = np.where(is_sql.astype(bool), "SQL", np.where(is_mql.astype(bool), "MQL (not SQL)", "below MQL"))
        cutoff_bands = band_table(y, p, pd.Series(label), ["SQL", "MQL (not SQL)", "below MQL"], confidence)
    grades = None
    if grade is not None and grade.notna().any():
        grade = grade.astype("string").fillna("(none)").reset_index(drop=True)
        grades = band_table(y, p, grade, sorted(grade.unique()), confidence)
    return GroupFigures(
        leads=n, conversions=k, predicted_mean=float(p.mean()), realised_rate=k / n, rate_ci_low=low,
        rate_ci_high=high, z=float(z), z_p_value=float(2 * norm.sf(abs(z))) if np.isfinite(z) else float("nan"),
        ece=expected_calibration_error(y, p, BINS), ece_noise_mean=float(noise.mean()),
        ece_noise_quantile=float(np.quantile(noise, confidence)), roc_auc=auc, roc_auc_se=se, confidence=confidence,
        reliability=reliability_table(y, p, confidence), cutoff_bands=cutoff_bands, grades=grades,
    )
