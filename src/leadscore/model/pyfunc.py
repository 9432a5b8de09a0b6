"""The MLflow pyfunc wrapper: the registered model is exactly the `LeadScorer`.

The serving environment needs the `leadscore` package installed (the scorer is pickled with
references to its classes). A model file is code: load models only from a registry or a path you trust.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from leadscore.model.rules import PointsScorer
from leadscore.model.scorer import LeadScorer


class LeadScorerModel(mlflow.pyfunc.PythonModel):
    """Delegates `predict` to the wrapped scorer (a `LeadScorer`, or the cold-start `PointsScorer`); no
    second scoring implementation."""

    def __init__(self, scorer: LeadScorer | PointsScorer):
        self.scorer = scorer

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Scores with reasons; `params={"reasons": False}` leaves the reason columns out (faster)."""
        reasons = True if params is None else bool(params.get("reasons", True))
        return self.scorer.predict(model_input, reasons=reasons)
