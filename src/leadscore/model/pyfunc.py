"""The MLflow pyfunc wrapper: the registered model is exactly the `LeadScorer`.

The serving environment needs the `leadscore` package installed (the scorer is pickled with
references to its classes). A model file is code: load models only from a registry or a path you trust.

A lead that breaks the data contract is an `InputError` naming the column and the value. Raised out of
`predict` as a `ContractViolation`, which is both that `InputError` (the batch job's exit 4) and an
`MlflowException` with `INVALID_PARAMETER_VALUE`, which `mlflow models serve` answers with HTTP 400 and the
message, without a Python traceback (it adds one only to errors that are not MlflowExceptions).
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from leadscore.errors import InputError
from leadscore.model.rules import PointsScorer
from leadscore.model.scorer import LeadScorer


class ContractViolation(MlflowException, InputError):
    """An `InputError` raised through MLflow: HTTP 400 when served, exit 4 in the batch job."""

    exit_code = InputError.exit_code

    def __init__(self, error: InputError):
        MlflowException.__init__(self, str(error), error_code=INVALID_PARAMETER_VALUE)
        self.problem, self.column, self.rows, self.fix = error.problem, error.column, error.rows, error.fix


class LeadScorerModel(mlflow.pyfunc.PythonModel):
    """Delegates `predict` to the wrapped scorer (a `LeadScorer`, or the cold-start `PointsScorer`); no
    second scoring implementation."""

    def __init__(self, scorer: LeadScorer | PointsScorer):
        self.scorer = scorer

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Scores with reasons; `params={"reasons": False}` leaves the reason columns out (faster)."""
        reasons = True if params is None else bool(params.get("reasons", True))
        try:
            return self.scorer.predict(model_input, reasons=reasons)
        except ContractViolation:
            raise
        except InputError as error:
            raise ContractViolation(error) from None
