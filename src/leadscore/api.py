"""The public Python API: train, promote, load, score and explain leads, follow their scores over time, check
past scores against outcomes, read the funnel, and generate a synthetic funnel.

Every function here is what a `leadscore` command does, callable from Python (the command line is a thin
layer over them). Modules import lazily inside each function, so that scoring a batch never loads the
training stack and `import leadscore` stays light.

A *model* argument is any of: a registry URI (`models:/name@alias`, `models:/name/3`), a local model
folder (as `leadscore export` writes), a scorer returned by `load_model`, a fitted `LeadScoreClassifier`,
or the `TrainedModel` that `train` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from leadscore.config import Config
    from leadscore.estimator import LeadScoreClassifier
    from leadscore.registry.runs import RegisteredVersion
    from leadscore.scoring.job import ScoringReport
    from leadscore.training.pipeline import TrainingResult

DEFAULT_MODEL = "models:/leadscore@champion"


@dataclass(frozen=True)
class TrainedModel:
    """A training run and the model version it registered (alias `challenger`)."""

    result: TrainingResult
    registered: RegisteredVersion

    @property
    def scorer(self):
        """The trained scorer (what `load_model(self.uri)` returns)."""
        return self.result.scorer

    @property
    def uri(self) -> str:
        """The registered version's URI, `models:/<name>/<version>`."""
        return self.registered.uri

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Test-window metrics of the model (`leadscore`), its candidates and the baselines."""
        return self.result.metrics


def train(config: Config | Mapping[str, Any] | str | PathLike) -> TrainedModel:
    """Train as `config` describes, log the run to MLflow and register the model as `challenger`.

    `config` is a `Config`, a dict of the YAML file's content, or the path of a YAML file; it is validated
    before any work (ConfigError naming each bad key). The tracking store comes from MLFLOW_TRACKING_URI
    (default: `mlflow.db` in the working folder) and is checked before training starts; the MLflow run is open
    for the whole training. Each stage logs one line with its time to the `leadscore.progress` logger.
    """
    from leadscore.progress import StageClock, stage
    from leadscore.registry.runs import log_training, training_run
    from leadscore.training.pipeline import train as run_training

    cfg = _config(config)
    # The run is opened first (which also fails fast when the tracking server is down), so the UI shows the
    # training while it runs; each stage's time is logged as it ends.
    with training_run(cfg), StageClock("train") as clock:
        result = run_training(cfg)
        stage("logging")
        registered = log_training(result, cfg)
    _log_stage_times(clock.times, registered.run_id)
    return TrainedModel(result, registered)


def _log_stage_times(times: dict[str, float], run_id: str) -> None:
    """Each stage's seconds as run metrics `time_<stage>_s`, so slow stages show beside the model's measures."""
    import time

    from mlflow.entities import Metric

    from leadscore.registry.store import connect

    now = int(1000 * time.time())
    connect().log_batch(run_id, metrics=[Metric(f"time_{name}_s", round(seconds, 3), now, 0) for name, seconds in times.items()])


def log_model(estimator: LeadScoreClassifier, *, name: str = "leadscore", experiment: str = "leadscore") -> RegisteredVersion:
    """Log a fitted `LeadScoreClassifier` as `train` logs a YAML-configured run, and register it as challenger.

    The run records the estimator's parameters as a config, the test window's metrics, plots, model card
    and the same pyfunc model, so `score`, `promote`, Spark and `mlflow models serve` use it unchanged.
    """
    from sklearn.utils.validation import check_is_fitted

    from leadscore.config import TrackingConfig
    from leadscore.registry.runs import log_training

    check_is_fitted(estimator)
    tracking = TrackingConfig(**{**estimator.config_.tracking.model_dump(), "experiment": experiment, "registered_model": name})
    return log_training(estimator.result_, estimator.config_.model_copy(update={"tracking": tracking}))


def promote(name: str | None = None, *, config: Config | Mapping[str, Any] | str | PathLike | None = None,
            metric: str | None = None, force: bool = False) -> str:
    """Move the `champion` alias to the `challenger` version if it beats the champion on its test window.

    `name` and `metric` default to the config's `tracking` section when `config` is given, else to
    "leadscore" and "log_loss"; `force` promotes without comparing. Returns a one-line account, also
    recorded as a tag on the version.
    """
    from leadscore.registry.promotion import promote as promote_version

    tracking = _config(config).tracking if config is not None else None
    name = name or (tracking.registered_model if tracking else "leadscore")
    metric = metric or (tracking.promote_metric if tracking else "log_loss")
    return promote_version(name, metric, force=force)


def load_model(uri: str | PathLike = DEFAULT_MODEL):
    """The scorer of a registered model (`models:/name@alias`, `models:/name/version`) or a local model folder.

    Its `predict(frame)` gives the scoring output; `cutoffs`, `dimensions` and `metadata` describe it.
    A model file is pickled code: load models only from your own registry or a folder you trust.
    """
    from leadscore.registry.loading import load_model as load

    return load(str(uri)).scorer


def export_model(uri: str = DEFAULT_MODEL, out: str | PathLike = "models") -> Path:
    """Copy a registered model into `<out>/<name>-v<version>`, a folder `load_model` and `score` accept."""
    from leadscore.registry.loading import export_model as export

    return export(uri, out)


def score(
    model: Any, data: pd.DataFrame | str | PathLike, *, output: str | PathLike | None = None,
    as_of: str | None = None, reasons: bool | None = None, top: int = 0, rejects: str | PathLike | None = None,
    config: str | PathLike | None = None, engine: str | None = None, chunk_rows: int | None = None,
    max_reject_share: float | None = None, drift_threshold: float | None = None, spark_master: str | None = None,
    history: str | PathLike | None = None,
):
    """Score leads with a model.

    `data` a DataFrame: returns the scored DataFrame, one row per lead in input order (reasons unless
    `reasons=False`); bad input raises InputError naming the column, the rows and the fix.

    `data` a path (a CSV or Parquet snapshot table, or an event-log folder scored as of `as_of`): runs the
    batch job, which writes `output` (required), the rejects file (`rejects`, default beside the output)
    and a drift report, and returns its `ScoringReport` (counts, paths, the `top` highest-scoring leads).
    The job's options default to the `scoring` section of the YAML file `config`, else to the built-in
    defaults. The job scores through the registered pyfunc model, so `model` must then be a URI or folder.
    With `history` (a folder; or the config's `scoring.history`) the job appends its scores to the score
    history and adds each lead's `score_change` and `change_reasons` (see `leadscore.history`).
    With a model trained with an `accounts` section, every lead row also carries its account's columns, and the
    job writes the account table beside the output (`<output stem>.accounts.<csv|parquet>`, one row per account:
    `ScoringReport.accounts`, with `accounts_scored`, `mqas` and the `top` best in `top_accounts`); a DataFrame's
    account table is `load_model(model).predict_accounts(data)`.
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return _scorer_of(model).predict(data, reasons=True if reasons is None else reasons)
    return _score_file(model, data, output=output, as_of=as_of, reasons=reasons, top=top, rejects=rejects,
                       config=config, engine=engine, chunk_rows=chunk_rows, max_reject_share=max_reject_share,
                       drift_threshold=drift_threshold, spark_master=spark_master,
                       history=None if history is None else str(history))


def _score_file(model, data, *, output, as_of, reasons, top, rejects, config, **options) -> ScoringReport:
    from leadscore.scoring.job import score_file, scoring_settings

    if not isinstance(model, str | PathLike):
        raise TypeError(f"a file is scored by a registered or exported model, not a {type(model).__name__}; give "
                        "its URI (models:/name@alias) or folder, or score a DataFrame read from the file instead")
    if output is None:
        raise TypeError("scoring a file needs `output`, the CSV or Parquet file to write the scores to")
    settings = scoring_settings(config, reasons=reasons, **options)
    return score_file(str(model), data, output, as_of=as_of, settings=settings, rejects_path=rejects, top=top)


def explain(model: Any, data: pd.DataFrame | str | PathLike, lead_id: str | None = None, *,
            as_of: str | None = None) -> pd.DataFrame:
    """Each lead's score split exactly into a base score and points per field, as a DataFrame.

    One row per lead and field (a feature column, an activity signal, or columns the config combines),
    leads in input order and each lead's fields by decreasing weight, with the columns: the model's id
    column, `field`, `dimension` (fit, engagement, stage or other), `value` (the lead's value, for a
    signal its count and recency), `points`, `base_score` and `score` (100 x p_convert, unrounded), such
    that `base_score` + the lead's `points` = its `score`.

    `data` is a DataFrame, a snapshot file or an event-log folder (features as of `as_of`); `lead_id`
    keeps one lead (its row number for tables without ids). `leadscore explain` prints the same as text.
    """
    from leadscore.estimator import explanation_frame

    scorer = _scorer_of(model)
    return explanation_frame(scorer, lead_rows(scorer, data, lead_id, as_of=as_of))


def lead_rows(model: Any, data: pd.DataFrame | str | PathLike, lead_id: str | None = None, *,
              as_of: str | None = None) -> pd.DataFrame:
    """The model's input rows of the leads in `data` (all, or the one with `lead_id`).

    `data` is a DataFrame or a snapshot file (tables without an id column get their 1-based row numbers as
    ids, as in scoring), or an event-log folder, whose leads' features are computed as of `as_of` (default:
    just after the last event, as the scoring job does). An unknown `lead_id` is an InputError.
    """
    import pandas as pd

    from leadscore.errors import InputError

    scorer = _scorer_of(model)
    if isinstance(data, pd.DataFrame):
        rows = data if scorer.id_column in data.columns else scorer.validate(data)
        if lead_id is not None:
            rows = rows[rows[scorer.id_column].astype(str) == str(lead_id)].reset_index(drop=True)
    elif lead_id is not None:
        from leadscore.scoring.events import lead_rows as rows_of_lead

        rows = rows_of_lead(scorer, data, str(lead_id), as_of)
    else:
        rows = _all_rows(scorer, data, as_of)
    if lead_id is not None and rows.empty:
        where = "the frame" if isinstance(data, pd.DataFrame) else str(data)
        raise InputError(f"lead '{lead_id}' is not in {where}", column=scorer.id_column,
                         fix="give the id of a lead in the input")
    return rows


def _all_rows(scorer, location, as_of: str | None) -> pd.DataFrame:
    """Every lead's input rows in a table of leads, or its features in an event log as of `as_of`.

    A table is read and checked as the scoring job reads and checks it (`leadscore.scoring.events.table_rows`).
    Rows the job would reject (unreadable, a missing or repeated id, a value that is not a number) are refused
    here with their row numbers, not skipped: an explanation of a file is read lead by lead against that
    file, and a lead left out of it with only a log line (which a notebook does not show) is the silent drop
    the data contract forbids. The job itself is the tool for a file with bad rows: it scores every good
    row and lists the others, with the reason, in its rejects file; one good lead is explained with `lead_id`.
    """
    from leadscore.data.sources import SNAPSHOT, open_source
    from leadscore.errors import InputError
    from leadscore.scoring.events import event_log_features, table_rows

    source = open_source(location, scorer.read_options())
    if source.form != SNAPSHOT:
        return event_log_features(scorer, source, as_of)[0]
    found = table_rows(scorer, source)
    rejects = found.rejects
    if len(rejects):
        counts = ", ".join(f"{n} {reason}" for reason, n in rejects["reason"].value_counts().items())
        columns = rejects["column"].dropna().unique()
        raise InputError(
            f"{len(rejects)} row(s) of {source.location} cannot be explained ({counts})",
            column=columns[0] if len(columns) == 1 and rejects["column"].notna().all() else None,
            rows=rejects["row"].tolist(),
            fix="repair those rows; or score the file with `leadscore score`, which scores every good row and lists "
            "these in its rejects file with the reason; or explain one good lead with lead_id",
        )
    if found.valid.empty:
        raise InputError(f"{source.location} has no rows", fix="export the table again with data")
    return found.valid


def generate(n_leads: int, seed: int = 0, out: str | PathLike | None = None, *, fmt: str = "parquet",
             start: str = "2025-01-01", days: int = 730, sal_rejections: bool = False, recycling: bool = False,
             accounts: bool = False):
    """A seeded synthetic funnel of `n_leads` leads created over `days` days from `start`, with its ground truth.

    Without `out`, returns the tables in memory (`SyntheticFunnel`: leads, activities, outcomes, truth);
    with `out`, writes them into that folder as `fmt` files (memory stays bounded) and returns their
    paths by table name. The same arguments always give the same data; `sal_rejections` adds a
    `SAL_rejected` outcome for each MQL sales did not accept, and changes nothing else; `recycling` also
    brings rejected leads back for a second episode; `accounts` groups the leads into accounts that buy
    together and adds the `accounts` table and its ground truth (`leadscore.synthetic.funnel`).
    """
    from leadscore.synthetic.funnel import generate_funnel, generate_to_dir

    if out is None:
        return generate_funnel(n_leads, seed, start=start, days=days, sal_rejections=sal_rejections,
                               recycling=recycling, accounts=accounts)
    return generate_to_dir(n_leads, seed, out, fmt=fmt, start=start, days=days, sal_rejections=sal_rejections,
                           recycling=recycling, accounts=accounts)


def lead_history(history: str | PathLike, lead_id) -> pd.DataFrame:
    """One lead's scores over time from the score history folder `history` (`score(..., history=...)`), oldest
    first: score, `score_change`, `change_reasons` (JSON, points per field), alerts. An `InputError` when the
    history is empty or holds no score of this lead. `leadscore.read_history` reads the whole history."""
    from leadscore.history.trajectory import lead_trajectory

    return lead_trajectory(history, lead_id)


def monitor(history: str | PathLike, outcomes: str | PathLike, out: str | PathLike = "monitoring", **options):
    """Set the scores in the history folder `history` against what happened since (`outcomes`: an event-log
    folder or an outcomes table): realised conversion by band and grade, calibration, ranking and a verdict
    (nothing to do, recalibrate, retrain) per model version; writes the report into `out` and logs an MLflow
    run. `options` are those of `leadscore.monitoring.job.monitor_history` (`model`, `issued_days_ago`, `since`,
    `until`, `observed_until`, `horizon_days`, `backtest_auc`, `conversion_stage`, `track`). Returns its
    `MonitoringReport`."""
    from leadscore.monitoring.job import monitor_history

    return monitor_history(history, outcomes, out, **options)


def funnel(data: str | PathLike, *, by: str | None = None, scores: str | PathLike | None = None,
           config: str | PathLike | None = None, stages: list[str] | None = None, as_of=None) -> pd.DataFrame:
    """Stage-to-stage conversion (MQL -> SAL -> SQL -> won) per episode from the outcomes of the event-log folder
    `data`, with exact intervals and the days between stages; by the column `by` (of the leads table or of
    `scores`), or by score band with `scores` alone. See `leadscore.monitoring.funnel`."""
    from leadscore.monitoring.funnel import funnel_from_folder

    return funnel_from_folder(data, by=by, scores=scores, config=config, stages=stages, as_of=as_of)


def _config(config) -> Config:
    """A validated Config from a Config, a dict or a YAML path."""
    from leadscore.config import Config, load_config, parse_config

    if isinstance(config, Config):
        return config
    if isinstance(config, str | PathLike):
        return load_config(config)
    return parse_config(dict(config))


def _scorer_of(model: Any):
    """The scorer behind any of the model forms this module accepts (see the module docstring)."""
    if isinstance(model, str | PathLike):
        return load_model(model)
    if isinstance(model, TrainedModel):
        return model.scorer
    from leadscore.estimator import LeadScoreClassifier

    if isinstance(model, LeadScoreClassifier):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(model)
        return model.scorer_
    from leadscore.model.rules import PointsScorer
    from leadscore.model.scorer import LeadScorer

    if isinstance(model, LeadScorer | PointsScorer):
        return model
    raise TypeError(f"not a leadscore model: {type(model).__name__}; give a registry URI, a model folder, "
                    "a scorer from load_model, a fitted LeadScoreClassifier or the result of train")
