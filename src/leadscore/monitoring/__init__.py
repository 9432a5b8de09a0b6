"""Monitoring of models in use: past scores set against what happened since.

Modules are imported by name (no eager imports here): `outcomes` labels past scores with their outcomes,
`figures` measures them, `verdict` says what to do, `report` writes the report, `tracking` logs it to MLflow,
`run` wires them, `job` is `leadscore monitor`; `funnel` reads the outcomes log as a
funnel (stage-to-stage rates per episode).
"""
