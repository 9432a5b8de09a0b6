"""The builders of training rows from an event log, by name (`event_log.engine`).

All give the same rows (see `leadscore.features.columnar`): `duckdb`, one SQL query over all snapshots, is
the default; `spark` runs that very query on a Spark session (`leadscore.features.spark`, the optional
`spark` extra, imported only when asked for); `pandas` (`leadscore.features.events`) is the reference, a loop
over the snapshots."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from leadscore.config import EventLogConfig
from leadscore.errors import ConfigError
from leadscore.features import columnar, events
from leadscore.features.events import EventFeatureSpec, EventLog


def _spark_training_rows(log: EventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                         observed_until: pd.Timestamp | None = None) -> pd.DataFrame:
    # Imported here: the Spark runner is an optional part, loaded only by a training that asks for it.
    from leadscore.features import spark

    return spark.training_rows(log, spec, log_cfg, observed_until)


TRAINING_ROWS: dict[str, Callable[..., pd.DataFrame]] = {
    "duckdb": columnar.training_rows,
    "pandas": events.training_rows,
    "spark": _spark_training_rows,
}


def training_rows(log: EventLog, spec: EventFeatureSpec, log_cfg: EventLogConfig,
                  observed_until: pd.Timestamp | None = None) -> pd.DataFrame:
    """The training rows of `log`, built by the engine `log_cfg.engine` names."""
    build = TRAINING_ROWS.get(log_cfg.engine)
    if build is None:
        raise ConfigError(f"unknown event_log.engine '{log_cfg.engine}'; known: {', '.join(sorted(TRAINING_ROWS))}")
    return build(log, spec, log_cfg, observed_until)
