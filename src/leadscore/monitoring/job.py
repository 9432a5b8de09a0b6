"""`leadscore monitor`, wired: read the score history and the outcomes, find each model version's horizon and
backtest, measure, write the report and log the run. The steps are `leadscore.monitoring.run.monitor`,
`.report.write_report` and `.tracking.log_monitoring_run`; this module only reads the inputs and calls them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from leadscore.features.events import EventLogLayout
from leadscore.history.store import read_history
from leadscore.monitoring.outcomes import read_outcomes
from leadscore.monitoring.report import write_report
from leadscore.monitoring.run import (
    MonitoringResult,
    monitor,
    reference_of,
    references_for,
)


@dataclass(frozen=True)
class MonitoringReport:
    """What a monitoring job produced: the result, the files written and the MLflow run (None: not logged)."""

    result: MonitoringResult
    files: dict[str, Path]
    run_id: str | None


def monitor_history(history: str | os.PathLike, outcomes: str | os.PathLike, out: str | os.PathLike, *,
                    model: str | None = None, issued_days_ago: int | None = None, since=None, until=None,
                    observed_until=None, horizon_days: float | None = None, backtest_auc: float | None = None,
                    conversion_stage: str = "won", confidence: float = 0.95, track: bool = True) -> MonitoringReport:
    """Monitor the score history in folder `history` against the outcomes at `outcomes` (an event-log folder or an
    outcomes table); write the report into `out` and, with `track`, log the run to MLflow."""
    reference = None
    layout = EventLogLayout()
    if model is not None:
        reference = reference_of(model, horizon_days=horizon_days, backtest_auc=backtest_auc)
    found = read_outcomes(outcomes, layout, conversion_stage=conversion_stage, observed_until=observed_until)
    # All of it: the window is chosen by when each score was issued (its run's `as_of`), which the store does not
    # filter; a missing folder is the store's InputError.
    frame = read_history(history)
    if reference is not None:
        references = reference
    else:  # without the provenance columns `monitor` says which are missing
        have = {"model_name", "model_version"} <= set(frame.columns)
        references = references_for(frame, horizon_days=horizon_days, backtest_auc=backtest_auc) if have else {}
    result = monitor(frame, found, references, issued_days_ago=issued_days_ago, since=since, until=until,
                     confidence=confidence)
    files = write_report(result, out)
    run_id = None
    if track:
        from leadscore.monitoring.tracking import log_monitoring_run

        run_id = log_monitoring_run(result, files)
    return MonitoringReport(result, files, run_id)

