"""What to do about a model, from the figures of its past scores: nothing, recalibrate, or retrain.

The rule, in order (every test at the figures' `confidence`, 95 % by default):

1. **Wait** when fewer than `min_each` (10) labelled scores converted or fewer than `min_each` did not:
   too few outcomes to tell anything.
2. **Retrain** when the ranking dropped: the ROC AUC of the past scores is below the backtest ROC AUC the model
   was registered with by more than z times the standard error of the difference (one-sided, z = 1.645 at
   95 %; each standard error by Hanley and McNeil, the backtest's from its test window's counts, taken as 0 when
   they are unknown). Recalibrating cannot bring back an order the model no longer gets right.
3. **Recalibrate** when the ranking held but the probabilities moved, i.e. calibration drift:
   - *in the large*: the mean predicted probability lies outside the exact (Clopper-Pearson) interval of the
     realised conversion rate; or
   - *in shape*: the ECE is above the `confidence` quantile of the ECE a perfectly calibrated model shows on
     the same probabilities through sampling noise alone (outcomes drawn as Bernoulli(p)).
   Without a backtest ROC AUC the ranking is not checked, and the verdict says so.
4. Otherwise **nothing to do**.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from leadscore.monitoring.figures import GroupFigures, auc_standard_error

NOTHING, RECALIBRATE, RETRAIN, WAIT = "nothing to do", "recalibrate", "retrain", "wait for more outcomes"
MIN_EACH = 10


@dataclass(frozen=True)
class Backtest:
    """The ROC AUC a model was registered with, measured on a test window of `positives` + `negatives` rows."""

    roc_auc: float
    positives: int | None = None
    negatives: int | None = None

    def standard_error(self) -> float:
        """Hanley-McNeil standard error of the backtest AUC; 0 when its counts are unknown."""
        if not self.positives or not self.negatives:
            return 0.0
        return auc_standard_error(self.roc_auc, self.positives, self.negatives)


@dataclass(frozen=True)
class Verdict:
    """The action and the findings behind it, in plain words."""

    action: str
    calibration_drift: bool | None
    in_the_large_drift: bool | None
    shape_drift: bool | None
    ranking_dropped: bool | None  # None: not checked (no backtest AUC, or too few outcomes)
    reasons: tuple[str, ...]

    def text(self) -> str:
        """The verdict as one paragraph."""
        return f"{self.action.upper()}: " + " ".join(self.reasons)


def decide(figures: GroupFigures, backtest: Backtest | None, *, min_each: int = MIN_EACH) -> Verdict:
    """Apply the rule of the module docstring to one group's figures."""
    level = f"{figures.confidence:.0%}"
    negatives = figures.leads - figures.conversions
    if figures.conversions < min_each or negatives < min_each:
        return Verdict(WAIT, None, None, None, None, (
            f"{figures.conversions} of {figures.leads} labelled scores converted; at least {min_each} conversions and "
            f"{min_each} non-conversions are needed to judge the model. Widen the window or wait for more outcomes.",))

    large = not (figures.rate_ci_low <= figures.predicted_mean <= figures.rate_ci_high)
    shape = figures.ece > figures.ece_noise_quantile
    reasons = [
        f"Predicted {figures.predicted_mean:.2%} on average, realised {figures.realised_rate:.2%} "
        f"({level} interval {figures.rate_ci_low:.2%} to {figures.rate_ci_high:.2%}; {figures.conversions} of "
        f"{figures.leads}): " + ("the predicted mean lies outside it." if large else "within it."),
        f"ECE {figures.ece:.4f} against {figures.ece_noise_quantile:.4f} that noise alone reaches {level} of the time "
        f"(mean {figures.ece_noise_mean:.4f}): " + ("above the noise." if shape else "within the noise."),
    ]
    dropped = None
    if backtest is None or figures.roc_auc is None:
        reasons.append("Ranking not checked: no backtest ROC AUC is known for this model.")
    else:
        se = float(np.hypot(figures.roc_auc_se or 0.0, backtest.standard_error()))
        margin = float(norm.ppf(figures.confidence)) * se
        dropped = backtest.roc_auc - figures.roc_auc > margin
        reasons.append(
            f"ROC AUC {figures.roc_auc:.3f} against {backtest.roc_auc:.3f} in the training backtest (a drop beyond "
            f"{margin:.3f} counts): " + ("the ranking dropped." if dropped else "the ranking held."))
    if dropped:
        action = RETRAIN
        reasons.append("Retrain on recent data: the model no longer orders leads as it did.")
    elif large or shape:
        action = RECALIBRATE
        reasons.append("Recalibrate on recent outcomes: the order of leads " +
                       ("held" if dropped is False else "was not checked") + ", but the probabilities moved.")
    else:
        action = NOTHING
        reasons.append("The scores mean what they say.")
    return Verdict(action, large or shape, large, shape, dropped, tuple(reasons))
