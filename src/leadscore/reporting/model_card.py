"""A short Markdown model card for a training run, logged as `model_card.md` beside the model.

It says what was trained on which data, how it did on the test window beside the baselines, where the
MQL / SQL cutoffs sit and what they deliver, which columns drive the score, what the leakage guard
flagged, and what the model is for and not for. Every figure is read from the `TrainingResult` (the
same values the run logs as metrics and tables); the card is built from aggregates only (counts,
rates, metrics, cutoffs, importance), never from rows, so it holds no personal data.
"""

from __future__ import annotations

import logging

import pandas as pd

from leadscore.config import Config, PointsCutoffs
from leadscore.features.events import label_text
from leadscore.model.cutoffs import Cutoffs, SegmentCutoffs
from leadscore.model.rules import PointsScorer
from leadscore.reporting.importance import GlobalExplanations
from leadscore.training.pipeline import TrainingResult

log = logging.getLogger(__name__)

MODEL_CARD_ARTIFACT = "model_card.md"
TOP_DRIVERS = 8
# (metric key, column title, decimals): the test-window metrics shown for every model compared.
METRICS = (
    ("roc_auc", "ROC AUC", 4), ("pr_auc", "PR AUC", 4), ("brier", "Brier", 4), ("log_loss", "log loss", 4),
    ("ece", "ECE", 4), ("top_decile_lift", "lift@10%", 2),
)
# Keys of `TrainingResult.metrics` shown in the comparison, with the name a reader sees.
COMPARED = {"leadscore": "leadscore", "baseline_logistic": "plain logistic", "baseline_points": "points rules"}


def model_card(result: TrainingResult, cfg: Config, explanations: GlobalExplanations | None = None,
               run_id: str | None = None) -> str:
    """The Markdown model card of `result`; `explanations` are the run's global explanations (top drivers),
    `run_id` the MLflow run it is logged with."""
    fallback = isinstance(result.scorer, PointsScorer)
    sections = [
        _model_section(result, cfg, fallback, run_id),
        _data_section(result, cfg, fallback),
        _metrics_section(result, fallback),
        *_segments_section(result, cfg),
        _cutoffs_section(result),
        *([_accounts_section(result)] if result.accounts is not None else []),
        _drivers_section(result, cfg, explanations, fallback),
        _leakage_section(result),
        _use_section(result, cfg, fallback),
    ]
    return "\n\n".join(sections) + "\n"


def _model_section(result: TrainingResult, cfg: Config, fallback: bool, run_id: str | None) -> str:
    meta = result.scorer.metadata
    lines = [f"# Model card: {cfg.tracking.registered_model}", ""]
    if run_id is not None:
        lines.append(f"MLflow run `{run_id}`, experiment `{cfg.tracking.experiment}`.")
    lines.append(f"Trained {meta.get('trained_at', 'at an unknown time')} by leadscore {meta.get('leadscore_version', '?')}; "
                 f"training data fingerprint `{result.fingerprint}`.")
    lines += ["", "## Model", ""]
    if fallback:
        lines.append(
            f"**Points fallback (cold start).** The training data holds {result.table.conversions:,} conversions, fewer "
            f"than `model.min_conversions` ({cfg.model.min_conversions:,}), so nothing was learned: the hand-set "
            "`points_baseline` rules are the model. `score` is points (0-100), not a probability, and `p_convert` is "
            "missing. The first learned model replaces this one at `leadscore promote`."
        )
        return "\n".join(lines)
    winner = result.winner
    trees = f", {winner.details['n_trees']} trees" if "n_trees" in winner.details else ""
    lines.append(f"**{winner.name}**, calibrated with **{winner.calibration_method}**{trees}.")
    lines.append(
        f"**Refitted on all rows.** The registered model learned from all {_deployed_rows(result):,} rows (training, "
        "calibration and test windows) with the choices below, and is calibrated on out-of-fold scores of the test "
        "window, the latest rows it can honestly calibrate on. The figures under Metrics come from a **backtest model**: "
        "the same pipeline fitted on the training and calibration windows only, measured on the test window it never saw."
    )
    selection = result.selection
    if selection is not None:
        lines += ["", f"**How it was chosen.** {selection.verdict}", "",
                  "Rolling-origin backtest over the rows before the test window: at each origin every candidate is "
                  "fitted on the earlier rows; its scores of the block after the next are recalibrated out of fold "
                  "within that block (ranking loss, which picks the candidate) and calibrated on the next block "
                  "(forecast loss, which picks the calibration method). Lowest mean wins; the noise is the standard "
                  "error across origins.", "",
                  "| option | ranking log loss | standard error | gain over constant | its standard error | "
                  "forecast log loss | standard error |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for row in selection.summary.itertuples():
            lines.append(f"| {row.option} | {row.mean_ranking_log_loss:.4f} | {row.se_ranking_log_loss:.4f} | "
                         f"{row.mean_gain_over_constant:.4f} | {row.se_gain_over_constant:.4f} | "
                         f"{row.mean_log_loss:.4f} | {row.se_log_loss:.4f} |")
        lines.append("")
    elif result.candidates:
        tournament = ", ".join(f"{c.name} {c.calibration_log_loss:.4f}" for c in result.candidates)
        lines.append(f"Chosen by out-of-fold log loss inside the calibration window (too few rows for rolling origins): "
                     f"{tournament}.")
    notes = {**{f"{c.name} candidate": c.details["calibration_note"] for c in result.candidates
                if "calibration_note" in c.details},
             **({"registered model": result.scorer.classifier.note} if result.scorer.classifier.note else {})}
    for who, note in notes.items():
        lines.append(f"- calibration guard ({who}): {note}")
    dimensions = result.scorer.dimensions
    if dimensions is not None:
        for name, model in dimensions.models.items():
            lines.append(f"- {name} score: {model.model} on {len(model.columns)} columns, target: {model.target}")
        for name, reason in dimensions.absent.items():
            lines.append(f"- {name} score: absent ({reason})")
    return "\n".join(lines)


def _data_section(result: TrainingResult, cfg: Config, fallback: bool) -> str:
    table, split = result.table, result.split
    rows, conversions = len(table.frame), table.conversions
    lines = ["## Data", "",
             f"{rows:,} labelled rows, {conversions:,} conversions ({_share(conversions, rows)}). {_label_text(cfg)}"]
    if cfg.event_log is not None:
        s = cfg.event_log.snapshots
        lines.append(f"Rows are leads as they looked at snapshots every {s.every_days} days from {s.first} to {s.last}.")
    if table.sample is not None:
        lines.append(f"Learned from {table.sample.text}. Drawn by a hash of the id, the sample keeps or leaves out "
                     "whole leads at random, so the figures below describe every lead within their noise.")
    if table.dropped_personal:
        lines.append(f"Personal columns dropped on reading (names only): {', '.join(table.dropped_personal)}.")
    lines.append(f"{len(table.feature_columns)} feature columns.")
    if fallback:
        lines.append("Nothing was held out: with nothing fitted, every labelled row measures the rules.")
        return "\n".join(lines)
    lines += ["", f"Split: **{split.method}**, {split.purged_rows:,} rows purged (their label window reached into the "
              "next window).", "", "| window | rows | conversions | rate | span |", "|---|---:|---:|---:|---|"]
    for name, window in split.windows().items():
        k = int(window[table.label_column].sum())
        lines.append(f"| {name} | {len(window):,} | {k:,} | {_share(k, len(window))} | {_span(window, table, split.method)} |")
    return "\n".join(lines)


def _label_text(cfg: Config) -> str:
    if cfg.event_log is not None:
        return f"Label: {label_text(cfg.event_log)}."
    return f"Label: `{cfg.data.label_column}` equals `{cfg.data.positive_label}`."


def _span(window: pd.DataFrame, table, method: str) -> str:
    """The window's time range, or its rows of the training table when the split followed row order."""
    if window.empty:
        return "empty"
    if table.time_column and method == "time":
        times = pd.to_datetime(window[table.time_column], utc=True)
        return f"{times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}"
    if method == "row_order":
        positions = table.frame.index.get_indexer(window.index)
        return f"rows {positions.min() + 1:,} to {positions.max() + 1:,}"
    return "random rows (no time order)"


def _metrics_section(result: TrainingResult, fallback: bool) -> str:
    where = ("every labelled row" if fallback else
             "the test window, **backtest figures**: leadscore here is the backtest model, fitted without the test window "
             "(the registered model was refitted on all rows, these included, so it has no held-out figure of its own)")
    lines = ["## Metrics", "", f"On {where} ({len(result.split.test):,} rows). "
             "Each row of the table is logged in the run as metrics (`test_*` for leadscore, `<model>_test_*` otherwise).",
             "", "| model | " + " | ".join(title for _, title, _ in METRICS) + " |",
             "|---|" + "---:|" * len(METRICS)]
    for key, name in COMPARED.items():
        values = result.metrics.get(key)
        if values:
            cells = [f"{values[m]:.{d}f}" if m in values else "–" for m, _, d in METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if not fallback:
        points = ", and the config's hand-set `points_baseline` rules" if "baseline_points" in result.metrics else ""
        lines += ["", "Baselines: a plain logistic regression on the same features and rows as the backtest model, "
                  f"without calibration{points}."]
    return "\n".join(lines)


def _segments_section(result: TrainingResult, cfg: Config) -> list[str]:
    """Per segment: its rows and conversions, its own model or the global one and why, and its test figures
    (none without `segments`)."""
    table = result.tables.get("segments")
    if table is None or cfg.segments is None:
        return []
    own = int((table["model"] == "own").sum())
    lines = ["## Segments", "",
             f"One model per value of `{cfg.segments.column}` where the data allows, the global model elsewhere "
             f"({own} of {len(table)} rows below have their own model). A segment's model is a LightGBM booster fitted "
             "on the segment's rows on top of the global model's raw output, so it learns what the segment does "
             "differently and stays near the global model where the evidence is thin; it is kept only when it beats "
             "the global model on the segment's calibration-window rows by more than one standard error (out of "
             f"fold), and needs `segments.min_conversions` ({cfg.segments.min_conversions:,}) conversions in training. "
             "Values never seen in training and missing values use the global model. Test figures are the backtest's "
             "(fitted without the test window): the chosen setup beside the global model alone.", "",
             "| segment | model | training rows | training conversions | test rows | test conversions | test log loss | "
             "global model's | ROC AUC | global model's | why |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.segment} | {row.model} | {row.train_rows:,} | {row.train_conversions:,} | "
                     f"{int(row.test_rows):,} | {int(row.test_conversions):,} | {_figure(row.test_log_loss)} | "
                     f"{_figure(row.test_log_loss_global)} | {_figure(row.test_roc_auc)} | "
                     f"{_figure(row.test_roc_auc_global)} | {row.reason} |")
    if cfg.segments.per_segment_cutoffs:
        lines += ["", "MQL/SQL flags: a lead of a segment with its own model is flagged by its segment's cutoffs "
                  "(the same policies, chosen on that segment's rows; see below), every other lead by the overall ones."]
    return ["\n".join(lines)]


def _figure(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.4f}"


def _cutoffs_section(result: TrainingResult) -> str:
    cutoffs = result.scorer.cutoffs
    lines = ["## MQL and SQL cutoffs", ""]
    if isinstance(cutoffs, PointsCutoffs):
        lines.append(f"- MQL: points >= {cutoffs.mql:g} (`points_cutoffs.mql`)")
        lines.append(f"- SQL: points >= {cutoffs.sql:g} (`points_cutoffs.sql`)")
        return "\n".join(lines)
    if not isinstance(cutoffs, Cutoffs):
        return "\n".join([*lines, "None."])
    lines.append(f"- MQL: p_convert >= {cutoffs.mql:.4f} (score {cutoffs.mql_points:g}); policy: {cutoffs.mql_policy}")
    lines.append(f"- SQL: p_convert >= {cutoffs.sql:.4f} (score {cutoffs.sql_points:g}); policy: {cutoffs.sql_policy}")
    lines.extend(f"- note: {note}" for note in cutoffs.notes)
    lines.extend(f"- **warning**: {warning}" for warning in cutoffs.warnings)
    for segment, own in (cutoffs.segments.items() if isinstance(cutoffs, SegmentCutoffs) else ()):
        lines.append(f"- segment {segment}: MQL p_convert >= {own.mql:.4f}, SQL p_convert >= {own.sql:.4f} "
                     "(its own model's out-of-fold probabilities of the test window)")
        lines.extend(f"- **warning**: {warning}" for warning in own.warnings)
    deployed = result.tables.get("cutoff_bands_deployed")
    if deployed is not None:
        lines += ["", "The registered model's cutoffs were chosen on its out-of-fold probabilities of the test window:"]
        lines.extend(f"- {row.band}: {row.leads:,} leads ({row.share_of_leads:.1%}), conversion "
                     f"{_rate(row)}, {row.share_of_conversions:.1%} of conversions" for row in deployed.itertuples())
    bands = result.tables.get("cutoff_bands")
    if bands is not None:
        backtest = result.backtest.cutoffs if result.backtest is not None else None
        chosen = (f"The backtest model's cutoffs under the same policies (MQL p >= {backtest.mql:.4f}, SQL p >= "
                  f"{backtest.sql:.4f}), realised" if backtest is not None else "Realised")
        lines += ["", f"{chosen} on the calibration window (where they were chosen) and the test window:", "",
                  "| window | band | leads | share of leads | conversion rate (95 % interval) | share of conversions |",
                  "|---|---|---:|---:|---:|---:|"]
        for row in bands.itertuples():
            rate = _rate(row)
            lines.append(f"| {row.window} | {row.band} | {row.leads:,} | {row.share_of_leads:.1%} | {rate} | "
                         f"{row.share_of_conversions:.1%} |")
    return "\n".join(lines)


def _accounts_section(result: TrainingResult) -> str:
    """The account scores: the option chosen and why, every option's test figures, the MQA cutoff, the buying group."""
    accounts = result.accounts
    deployed = accounts.deployed
    backtest = accounts.tables["accounts_backtest"]
    lines = ["## Accounts", "",
             f"`p_account`, the probability that an account converts within the horizon, is **{accounts.method}** "
             f"({backtest.set_index('option').loc[accounts.method, 'how']}): the option of lowest log loss on the test "
             "window's account rows, out of time (the account model fitted without the test window; the roll-ups of "
             "lead probabilities from the backtest lead model, calibrated on the calibration window). `max` is the "
             "best single lead of each account. Differences carry their standard error, clustered by account.", "",
             "| option | how | log loss | ROC AUC | Brier | log loss gain over max (s.e.) |",
             "|---|---|---:|---:|---:|---:|"]
    for row in backtest.itertuples():
        mark = " (chosen)" if row.option == accounts.method else ""
        lines.append(f"| {row.option}{mark} | {row.how} | {row.log_loss:.4f} | {row.roc_auc:.4f} | {row.brier:.4f} | "
                     f"{row.gain_over_max:+.4f} ({row.gain_over_max_se:.4f}) |")
    mqa = result.metrics.get("accounts_mqa", {})
    lines += ["", f"- MQA: p_account >= {deployed.cutoff:.4f} (account score {100 * deployed.cutoff:.1f}); policy: "
              f"{deployed.cutoff_policy}; chosen on the deployed part's out-of-fold probabilities of the test window"]
    if mqa:
        lines.append(f"- the backtest's MQA cutoff on the test window: {mqa['share_of_accounts']:.1%} of account rows "
                     f"are MQAs, converting at {mqa['conversion_rate']:.1%} against {mqa['conversion_rate_below']:.1%} "
                     f"below (base rate {mqa['base_rate']:.1%})")
    group = deployed.features.buying_group
    lines.append(f"- buying group: {', '.join(group)}" if group else "- buying group: none (no role column)")
    lines.append(f"- an active contact has an activity within {deployed.features.active_days:g} days"
                 if deployed.features.recency_column
                 else "- no activity recency: every contact on record counts as engaged")
    lines.append("- grades: A an MQA at or above twice the base rate, B an MQA at or above the base rate, C another MQA, "
                 "D not an MQA")
    return "\n".join(lines)


def _drivers_section(result: TrainingResult, cfg: Config, explanations: GlobalExplanations | None, fallback: bool) -> str:
    lines = ["## Top drivers", ""]
    if fallback:
        lines.append("The hand-set rules (points added when a rule holds):")
        lines.extend(f"- `{r.column} {r.op} {r.value}`: +{r.points:g}" for r in cfg.points_baseline)
        return "\n".join(lines)
    if explanations is None:
        return "\n".join([*lines, "Not measured: this model carries no explainer."])
    importance = explanations.tables["importance_columns"].head(TOP_DRIVERS)
    lines += [f"Feature columns by mean absolute contribution (log-odds) on {explanations.summary['rows']:,} test-window "
              "leads, as in `explanations/importance_columns.csv` (SHAP plots beside it):", "",
              "| rank | column | dimension | mean abs. points | mean abs. log-odds |", "|---:|---|---|---:|---:|"]
    for row in importance.itertuples():
        lines.append(f"| {row.rank} | {row.column} | {row.dimension} | {row.mean_abs_points:.2f} | {row.mean_abs_log_odds:.4f} |")
    return "\n".join(lines)


def _leakage_section(result: TrainingResult) -> str:
    lines = ["## Leakage guard", ""]
    if result.leakage is None:
        return "\n".join([*lines, "Not run."])
    if not result.leakage.flagged:
        return "\n".join([*lines, "No feature column was flagged as possibly known only after the outcome."])
    lines.append("Flagged columns (review them: a column filled in after the outcome makes these metrics look better "
                 "than live scoring will be):")
    lines.extend(f"- {finding.message}" for finding in result.leakage.findings)
    return "\n".join(lines)


def _use_section(result: TrainingResult, cfg: Config, fallback: bool) -> str:
    label = result.table.label_column
    intended = (
        "**Intended use.** Ranking and prioritising leads of the same population, sources and period as the training "
        "data, so that sales and marketing work the most promising ones first; MQL / SQL flags as a routing aid."
    )
    not_for = (
        "**Not for.** Decisions about individuals beyond sales prioritisation (credit, pricing, employment, "
        "eligibility); other populations (another market, product or lead source than the data above); use after a "
        "scoring job's drift report warns about the score or its main drivers, until the model is retrained."
    )
    limits = ["**Known limits.**"]
    if fallback:
        limits.append("- The points are hand-set, not learned: they rank leads by the rules' judgement and say nothing "
                      "about how often a lead converts.")
    else:
        latest = result.split.test
        rate = f"{latest[label].mean():.1%}" if len(latest) else "unknown"
        limits.append(
            f"- `p_convert` is calibrated to the conversion rate of the latest window ({rate}). If the base rate "
            "shifts (season, campaign, a new market), the ranking may hold but a score no longer means the same rate; "
            "retrain or recalibrate on recent data."
        )
        limits.append("- Metrics come from a backtest on one out-of-time test window; the registered model also learned "
                      "from that window, so its own performance on new leads is not measured here, and a future period "
                      "can differ.")
        if result.selection is not None and not result.selection.any_beats_constant:
            limits.append("- No candidate beat a constant predictor (the base rate) beyond noise in the rolling backtest: "
                          "treat the ranking as weak.")
    if cfg.event_log is not None:
        if cfg.event_log.from_stage is not None:
            limits.append(f"- A score is the chance that a lead at stage {cfg.event_log.from_stage} reaches "
                          f"{cfg.event_log.conversion_stage} within {cfg.event_log.horizon_days} days of scoring, not the "
                          f"chance of a sale; it was learned only from leads past {cfg.event_log.from_stage}, so it "
                          "says little about leads that have not reached it.")
        else:
            limits.append(f"- A score is the chance of conversion within {cfg.event_log.horizon_days} days of scoring; "
                          "leads that convert later count as not converted in training.")
    limits.append("- Correlation, not cause: a driver raising the score does not mean acting on it raises conversion.")
    return "\n".join(["## Intended use and limits", "", intended, "", not_for, "", *limits])


def _rate(row) -> str:
    """A band's conversion rate with its 95 % interval."""
    return "–" if row.leads == 0 else f"{row.conversion_rate:.1%} ({row.rate_ci_low:.1%} to {row.rate_ci_high:.1%})"


def _deployed_rows(result: TrainingResult) -> int:
    return len(result.split.train) + len(result.split.calibration) + len(result.split.test)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"
