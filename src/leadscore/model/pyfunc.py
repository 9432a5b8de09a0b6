"""The MLflow pyfunc wrapper: the registered model is exactly the `LeadScorer`.

The serving environment needs the `leadscore` package installed (the scorer is pickled with
references to its classes). A model file is code: load models only from a registry or a path you trust.

A lead that breaks the data contract is an `InputError` naming the column and the value. Raised out of
`predict` as a `ContractViolation`, which is both that `InputError` (the batch job's exit 4) and an
`MlflowException` with `INVALID_PARAMETER_VALUE`, which `mlflow models serve` answers with HTTP 400 and the
message, without a Python traceback (it adds one only to errors that are not MlflowExceptions).

Params (declared in the model's signature, `PARAMS`, so that MLflow passes them on; a request names any of them):
- `output`: `"leads"` (the default) answers one row per lead, `LeadScorer.predict`'s columns, with the account
  columns (`schema.LEAD_ACCOUNT_COLUMNS`) when the model has an account part; `"accounts"` answers one row per
  account of the request's leads (`LeadScorer.predict_accounts`), for a model trained with an `accounts` section.
  The account values are those of the leads in the request: send all of an account's leads together;
- `reasons`: `false` leaves the reason columns out (faster), of either output.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from leadscore.errors import InputError
from leadscore.model.rules import PointsScorer
from leadscore.model.scorer import LeadScorer

LEADS, ACCOUNTS = "leads", "accounts"
# The params a model is logged with (`leadscore.registry.runs`), with their defaults.
PARAMS = {"reasons": True, "output": LEADS}


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
        """The leads' scores with reasons, or their accounts' (see the module docstring for the params)."""
        params = params or {}
        reasons = bool(params.get("reasons", True))
        output = params.get("output") or LEADS  # models logged before `output` existed pass none
        try:
            answer = _OUTPUTS.get(output)
            if answer is None:
                raise InputError(f"unknown output {output!r}",
                                 fix=f"ask for one of {', '.join(map(repr, _OUTPUTS))} (param 'output')")
            return answer(self.scorer, model_input, reasons)
        except ContractViolation:
            raise
        except InputError as error:
            raise ContractViolation(error) from None


def _leads(scorer, frame: pd.DataFrame, reasons: bool) -> pd.DataFrame:
    return scorer.predict(frame, reasons=reasons)


def _accounts(scorer, frame: pd.DataFrame, reasons: bool) -> pd.DataFrame:
    if scorer.accounts is None:
        raise InputError(
            "this model has no account part, so it cannot answer output 'accounts'",
            fix="retrain it with an `accounts` section in the config (accounts: {column: <each lead's account id "
            "column>}), or ask for output 'leads'",
        )
    return scorer.predict_accounts(frame, reasons=reasons)


# What a request's `output` param answers, by name.
_OUTPUTS = {LEADS: _leads, ACCOUNTS: _accounts}
