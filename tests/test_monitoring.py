"""Outcome monitoring: past scores against what happened, per model version, with a verdict.

Most tests plant a known truth in small seeded frames (outcomes drawn from the scores' own probabilities, then
scores shifted, conversions thinned or scores shuffled); the slow ones score the synthetic funnel at earlier
times with a trained model and monitor those scores against the funnel's outcomes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli, temporary_files, using_store
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from leadscore.errors import InputError
from leadscore.monitoring.figures import exact_interval
from leadscore.monitoring.outcomes import (
    ACCOUNTS,
    label_scores,
    outcomes_from_frame,
    read_outcomes,
    validate_history,
)
from leadscore.monitoring.report import (
    BANDS_PNG,
    FIGURES_JSON,
    RELIABILITY_PNG,
    REPORT,
    write_report,
)
from leadscore.monitoring.run import ModelReference, monitor
from leadscore.monitoring.verdict import NOTHING, RECALIBRATE, RETRAIN, WAIT, Backtest

HORIZON = 90
SCORED = pd.Timestamp("2026-01-05", tz="UTC")
OBSERVED = pd.Timestamp("2026-06-01", tz="UTC")
FAR_FUTURE = pd.Timestamp("2100-01-01", tz="UTC")


def planted(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A score history of one day whose outcomes follow its probabilities exactly: the history, the outcomes
    table (won within the horizon for the converting leads; lost later, or won after the horizon, for the
    others) and who converted."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 8, n)
    converted = rng.random(n) < p
    ids = np.array([f"{i:06d}" for i in range(n)])  # leading zeros: ids are text throughout
    won_at = SCORED + pd.to_timedelta(rng.uniform(0, HORIZON - 1, n), unit="D")
    late = ~converted & (rng.random(n) < 0.3)  # won, but after the horizon: a negative
    outcomes = pd.concat([
        pd.DataFrame({"lead_id": ids[converted], "stage": "won", "timestamp": won_at[converted]}),
        pd.DataFrame({"lead_id": ids[late], "stage": "won", "timestamp": SCORED + pd.Timedelta(days=HORIZON + 5)}),
        pd.DataFrame({"lead_id": ids[~converted & ~late], "stage": "lost", "timestamp": SCORED + pd.Timedelta(days=120)}),
    ], ignore_index=True)
    history = pd.DataFrame({
        "lead_id": ids, "scored_at": SCORED, "model_name": "leadscore", "model_version": "3", "p_convert": p,
        "score": np.round(100 * p, 1), "grade": rng.choice(["A1", "B2", "C3", "D4"], n),
        "is_mql": p >= 0.1, "is_sql": p >= 0.3,
    })
    return history, outcomes, converted


def reference(p: np.ndarray, converted: np.ndarray) -> ModelReference:
    """The model of `planted`, with the backtest AUC its probabilities reach on the truth."""
    auc = roc_auc_score(converted, p)
    return ModelReference("leadscore", "3", HORIZON, Backtest(auc, int(converted.sum()), int((~converted).sum())))


def observed(outcomes: pd.DataFrame, **options):
    return outcomes_from_frame(outcomes, observed_until=OBSERVED, **options)


# Known calibration, planted drift.
def test_calibrated_scores_reproduce_their_calibration_and_need_nothing():
    history, outcomes, converted = planted()
    result = monitor(history, observed(outcomes), reference(history["p_convert"].to_numpy(), converted))
    group = result.groups["leadscore 3"]
    f = group.figures
    assert f.leads == len(history) and f.conversions == converted.sum(), "every score labelled, by the planted truth"
    assert f.rate_ci_low <= f.predicted_mean <= f.rate_ci_high, "the realised rate's exact interval holds the predicted mean"
    assert f.ece <= f.ece_noise_quantile, "ECE within what sampling noise alone gives"
    assert group.verdict.action == NOTHING, group.verdict.text()
    assert group.verdict.ranking_dropped is False


def test_scores_shifted_by_a_factor_are_flagged_and_recalibration_is_advised():
    history, outcomes, converted = planted()
    ref = reference(history["p_convert"].to_numpy(), converted)
    shifted = history.assign(p_convert=np.clip(history["p_convert"] * 1.5, 0, 1))
    verdict = monitor(shifted, observed(outcomes), ref).groups["leadscore 3"].verdict
    assert verdict.in_the_large_drift and verdict.calibration_drift, "the shift is flagged"
    assert verdict.ranking_dropped is False, "a factor keeps the order of leads"
    assert verdict.action == RECALIBRATE, verdict.text()


def test_thinned_conversions_are_flagged():
    history, outcomes, converted = planted()
    rng = np.random.default_rng(5)
    won = (outcomes["stage"] == "won") & (outcomes["timestamp"] < SCORED + pd.Timedelta(days=HORIZON))
    thinned = outcomes.loc[~(won & (rng.random(len(outcomes)) < 0.5))]
    verdict = monitor(history, observed(thinned), reference(history["p_convert"].to_numpy(), converted)
                      ).groups["leadscore 3"].verdict
    assert verdict.in_the_large_drift, "half the conversions gone: realised far below predicted"
    assert verdict.action in (RECALIBRATE, RETRAIN), verdict.text()


def test_scores_that_no_longer_rank_leads_call_for_retraining():
    history, outcomes, converted = planted()
    ref = reference(history["p_convert"].to_numpy(), converted)
    shuffled = history.assign(p_convert=np.random.default_rng(1).permutation(history["p_convert"].to_numpy()))
    verdict = monitor(shuffled, observed(outcomes), ref).groups["leadscore 3"].verdict
    assert verdict.ranking_dropped and verdict.action == RETRAIN, verdict.text()


def test_too_few_outcomes_say_wait_and_no_backtest_says_ranking_not_checked():
    history, outcomes, converted = planted(n=60)
    verdict = monitor(history, observed(outcomes), reference(history["p_convert"].to_numpy(), converted)
                      ).groups["leadscore 3"].verdict
    assert verdict.action == WAIT
    history, outcomes, _ = planted()
    verdict = monitor(history, observed(outcomes), ModelReference("leadscore", "3", HORIZON)).groups["leadscore 3"].verdict
    assert verdict.ranking_dropped is None and "not checked" in verdict.text()


# Labels, censoring and the accounting of every score.
def test_the_label_window_is_trainings_and_closed_leads_are_left_out():
    history = pd.DataFrame({"lead_id": ["a", "b", "c", "d", "e"], "scored_at": SCORED, "model_name": "m",
                            "model_version": "1", "p_convert": 0.2})
    outcomes = pd.DataFrame({
        "lead_id": ["a", "b", "c", "d"],
        "stage": ["won", "won", "won", "lost"],
        "timestamp": [SCORED, SCORED + pd.Timedelta(days=HORIZON), SCORED - pd.Timedelta(seconds=1),
                      SCORED + pd.Timedelta(days=3)],
    })
    labelled = label_scores(validate_history(history), observed(outcomes), HORIZON)
    labels = dict(zip(labelled.frame["lead_id"], labelled.frame["converted"]))
    assert labels == {"a": 1, "b": 0, "d": 0, "e": 0}, "won at the score: positive; at score + horizon: not"
    assert labelled.counts["closed_before"] == 1, "a lead won before it was scored is left out, as in training"


def test_censored_scores_are_counted_and_never_negatives():
    history, outcomes, converted = planted(n=400)
    recent = OBSERVED - pd.Timedelta(days=HORIZON - 10)  # its label window is still open
    later = history.iloc[:100].assign(lead_id=lambda f: "late-" + f["lead_id"], scored_at=recent)
    outcomes = pd.concat([outcomes, pd.DataFrame({"lead_id": later["lead_id"].iloc[:40], "stage": "won",
                                                  "timestamp": OBSERVED - pd.Timedelta(days=1)})])
    labelled = label_scores(validate_history(pd.concat([history, later])), observed(outcomes), HORIZON)
    assert labelled.counts["censored"] == 100, "every score whose horizon has not elapsed is counted as censored"
    assert not labelled.frame["lead_id"].str.startswith("late-").any(), "censored scores are left out"
    assert labelled.counts["labelled"] == 400 and labelled.frame["converted"].sum() == converted.sum()


def test_each_lead_counts_once_with_its_earliest_score():
    history, outcomes, _ = planted(n=300)
    again = history.assign(scored_at=SCORED + pd.Timedelta(days=7), p_convert=0.99)
    labelled = label_scores(validate_history(pd.concat([again, history])), observed(outcomes), HORIZON)
    assert labelled.counts["repeat"] == 300 and labelled.counts["labelled"] == 300
    assert (labelled.frame["scored_at"] == SCORED).all(), "the earliest score of each lead is kept"


def test_a_score_is_issued_at_its_runs_as_of_when_the_history_records_one():
    history, outcomes, converted = planted(n=300)
    backtest_run = history.assign(scored_at=OBSERVED, as_of=str(SCORED.date()))
    labelled = label_scores(validate_history(backtest_run), observed(outcomes), HORIZON)
    assert labelled.counts["censored"] == 0 and labelled.frame["converted"].sum() == converted.sum()


@given(offsets=st.lists(st.integers(-200, 200), min_size=1, max_size=40),
       known=st.lists(st.booleans(), min_size=40, max_size=40))
def test_every_score_of_the_window_is_accounted_for_once(offsets, known):
    ids = [f"L{i % 7}" for i in range(len(offsets))]  # repeats on purpose
    history = pd.DataFrame({"lead_id": ids, "scored_at": [OBSERVED - pd.Timedelta(days=d) for d in offsets],
                            "model_name": "m", "model_version": "1", "p_convert": 0.3})
    outcomes = pd.DataFrame({"lead_id": ["L0", "L1", "L2"], "stage": ["won", "lost", "won"],
                             "timestamp": [OBSERVED - pd.Timedelta(days=100)] * 3})
    leads = [f"L{i}" for i in range(7) if known[i] or i == 0]
    labelled = label_scores(validate_history(history), observed(outcomes, known_leads=leads), HORIZON)
    assert sum(labelled.counts[a] for a in ACCOUNTS) == labelled.counts["window"] == len(history)
    assert labelled.counts["labelled"] == len(labelled.frame)
    assert labelled.frame["lead_id"].is_unique


@settings(max_examples=25)
@given(n=st.integers(1, 30), p=st.floats(0.001, 0.999))
def test_the_exact_interval_holds_the_true_rate_at_least_as_often_as_promised(n, p):
    # Coverage computed exactly over every possible count, not sampled.
    k = np.arange(n + 1)
    covered = [low <= p <= high for low, high in (exact_interval(int(i), n, 0.9) for i in k)]
    assert binom.pmf(k, n, p)[covered].sum() >= 0.9 - 1e-9


# Bad input.
def test_bad_input_names_the_column_and_the_fix():
    history, outcomes, converted = planted(n=200)
    ref = reference(history["p_convert"].to_numpy(), converted)
    with pytest.raises(InputError, match="p_convert"):
        monitor(history.drop(columns="p_convert"), observed(outcomes), ref)
    with pytest.raises(InputError, match="no lead of the score history") as caught:
        monitor(history.assign(lead_id=history["lead_id"].str.lstrip("0")), observed(outcomes), ref)
    assert caught.value.column == "lead_id"
    with pytest.raises(InputError, match="no score was issued in the window") as caught:
        monitor(history, observed(outcomes), ref, issued_days_ago=3)
    assert caught.value.column == "scored_at"
    with pytest.raises(InputError, match="censored"):
        monitor(history.assign(scored_at=OBSERVED - pd.Timedelta(days=5)), observed(outcomes), ref)
    with pytest.raises(InputError, match="stage"):
        outcomes_from_frame(outcomes.drop(columns="stage"), observed_until=OBSERVED)


def test_the_window_of_one_scoring_day():
    history, outcomes, converted = planted(n=400)
    other_day = history.assign(scored_at=SCORED + pd.Timedelta(days=1), lead_id="x" + history["lead_id"])
    ref = reference(history["p_convert"].to_numpy(), converted)
    days_ago = (OBSERVED - SCORED).days
    result = monitor(pd.concat([history, other_day]), observed(outcomes), ref, issued_days_ago=days_ago)
    assert result.labelled.counts["window"] == len(history), "only the scores of that day"


# Outputs.
def test_the_report_plots_and_json_are_written_whole_and_name_no_lead(tmp_path):
    history, outcomes, _ = planted(n=1500)
    two_versions = pd.concat([history, history.assign(model_version="4", lead_id="n" + history["lead_id"])])
    refs = {("leadscore", v): ModelReference("leadscore", v, HORIZON) for v in ("3", "4")}
    outcomes = pd.concat([outcomes, outcomes.assign(lead_id="n" + outcomes["lead_id"])])
    result = monitor(two_versions, observed(outcomes), refs)
    assert set(result.groups) == {"leadscore 3", "leadscore 4", "all versions"}
    files = write_report(result, tmp_path / "report")
    assert set(files) == {REPORT, FIGURES_JSON, RELIABILITY_PNG, BANDS_PNG}
    assert all(path.stat().st_size > 0 for path in files.values())
    assert not temporary_files(tmp_path / "report"), "no temporary file left behind"
    figures = json.loads(files[FIGURES_JSON].read_text())
    assert figures["groups"]["leadscore 3"]["verdict"]["action"] == NOTHING
    assert figures["counts"]["labelled"] == 2 * len(history)
    text = files[REPORT].read_text() + files[FIGURES_JSON].read_text()
    assert "000123" not in text and "n000123" not in text, "no lead id in the report"
    assert RELIABILITY_PNG in files[REPORT].read_text() and BANDS_PNG in files[REPORT].read_text()


def test_a_monitoring_run_is_logged_to_mlflow(tmp_path, tracking_store):
    from mlflow.tracking import MlflowClient

    from leadscore.monitoring.tracking import EXPERIMENT, log_monitoring_run

    history, outcomes, converted = planted()
    result = monitor(history, observed(outcomes), reference(history["p_convert"].to_numpy(), converted))
    run_id = log_monitoring_run(result, write_report(result, tmp_path / "report"))
    client = MlflowClient()
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert {"ece", "roc_auc", "realised_rate", "predicted_mean", "scores_censored"} <= set(run.data.metrics)
    assert run.data.params["model_versions"] == "leadscore 3" and run.data.params["verdict"] == NOTHING
    assert {a.path for a in client.list_artifacts(run_id, "monitoring")} >= {"monitoring/monitoring.md", "monitoring/monitoring.json"}


def test_outcomes_read_from_an_event_log_folder_or_its_outcomes_table_agree(synthetic_dir):
    folder = read_outcomes(synthetic_dir, now=FAR_FUTURE)
    table = read_outcomes(synthetic_dir / "outcomes.parquet", observed_until=folder.observed_until)
    assert folder.known_leads is not None and table.known_leads is None
    pd.testing.assert_series_equal(folder.converted_at, table.converted_at)
    pd.testing.assert_series_equal(folder.closed_at, table.closed_at)


def test_the_command_refuses_a_missing_history_with_exit_4(tmp_path, synthetic_dir):
    code, _, err = run_cli("monitor", "--history", tmp_path / "nowhere", "--outcomes", synthetic_dir,
                           "--horizon-days", 90, "--no-tracking", "--out", tmp_path / "report")
    assert code == 4 and "no score history at" in err and "nowhere" in err, err


# With a trained model: scores the synthetic funnel at earlier times, as a scoring job would have issued them.
ISSUED = ("2025-10-01", "2025-12-01", "2026-02-01", "2026-04-01")
RUN_AT = pd.Timestamp("2027-08-01", tz="UTC")


def issued_scores(scorer, folder, days=ISSUED, name="leadscore", version="1") -> pd.DataFrame:
    """The history a scoring job would have written on each day: every lead created by then, scored as of then
    (only events before it count) with `leadscore.score`, closed leads too, as the job scores them."""
    import leadscore
    from leadscore.features.events import features_as_of, load_event_log

    layout = scorer.event_spec.layout
    log = load_event_log(folder, layout, read_options=scorer.read_options())
    frames = []
    for day in days:
        as_of = pd.Timestamp(day, tz="UTC")
        leads = log.leads[log.leads[layout.created_column] < as_of]
        features = features_as_of(leads, log.activities, as_of, scorer.event_spec)
        scored = leadscore.score(scorer, features, reasons=False)
        # A backtest run: scored today, as of an earlier day; the score is issued at its as_of.
        frames.append(scored.assign(scored_at=RUN_AT, as_of=day, model_name=name, model_version=version))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def funnel_history(demo_training, synthetic_dir):
    _, cfg, result = demo_training
    test = result.split.test[result.table.label_column]
    backtest = Backtest(result.metrics["leadscore"]["roc_auc"], int(test.sum()), int(len(test) - test.sum()))
    return issued_scores(result.scorer, synthetic_dir), ModelReference("leadscore", "1", cfg.event_log.horizon_days, backtest)


def test_a_calibrated_models_past_scores_on_the_funnel_need_nothing(funnel_history, synthetic_dir):
    history, ref = funnel_history
    result = monitor(history, read_outcomes(synthetic_dir, now=FAR_FUTURE), ref)
    group = result.groups["leadscore 1"]
    f = group.figures
    assert result.labelled.counts["closed_before"] > 0 and result.labelled.counts["repeat"] > 0
    assert f.rate_ci_low <= f.predicted_mean <= f.rate_ci_high, group.verdict.text()
    assert f.ece <= f.ece_noise_quantile, group.verdict.text()
    assert group.verdict.action == NOTHING, group.verdict.text()


def test_a_planted_shift_in_the_funnels_scores_calls_for_recalibration(funnel_history, synthetic_dir):
    history, ref = funnel_history
    shifted = history.assign(p_convert=history["p_convert"] * 0.6)
    verdict = monitor(shifted, read_outcomes(synthetic_dir, now=FAR_FUTURE), ref).groups["leadscore 1"].verdict
    assert verdict.in_the_large_drift and verdict.ranking_dropped is False
    assert verdict.action == RECALIBRATE, verdict.text()


def cut_export(folder, day: str, out):
    """The event log as exported on `day`: nothing created or recorded from that day on."""
    out.mkdir()
    moment = pd.Timestamp(day, tz="UTC")
    for table, column in (("leads", "created_at"), ("activities", "timestamp"), ("outcomes", "timestamp")):
        rows = pd.read_parquet(folder / f"{table}.parquet")
        rows.loc[pd.to_datetime(rows[column], utc=True) < moment].to_parquet(out / f"{table}.parquet", index=False)
    return out


def test_the_command_monitors_the_history_a_scoring_job_wrote(demo_run, synthetic_dir, tmp_path):
    pytest.importorskip("leadscore.history.store", reason="the score-history store is not in this tree")
    from mlflow.tracking import MlflowClient

    import leadscore

    folder, _, registered = demo_run
    store, report = tmp_path / "history", tmp_path / "report"
    with using_store(folder):
        for day in ISSUED[:2]:
            export = cut_export(synthetic_dir, day, tmp_path / f"export-{day}")
            leadscore.score(registered.uri, export, output=tmp_path / f"scores-{day}.csv", as_of=day,
                            reasons=False, history=store)
        code, out, err = run_cli("monitor", "--history", store, "--outcomes", synthetic_dir, "--model", registered.uri,
                                 "--observed-until", "2027-07-03", "--out", report)
        assert code == 0, err
        assert f"{registered.name} {registered.version}:" in out and "report:" in out
        figures = json.loads((report / FIGURES_JSON).read_text())
        assert figures["counts"]["labelled"] > 0 and figures["counts"]["repeat"] > 0
        client = MlflowClient()
        runs = client.search_runs([client.get_experiment_by_name("leadscore-monitoring").experiment_id])
        assert len(runs) == 1 and {"ece", "roc_auc"} <= set(runs[0].data.metrics)
        assert runs[0].data.params["model_versions"] == f"{registered.name} {registered.version}"

        code, _, err = run_cli("monitor", "--history", store, "--outcomes", synthetic_dir, "--model", registered.uri,
                               "--issued-days-ago", 3, "--observed-until", "2027-07-03", "--out", report)
        assert code == 4 and "no score was issued in the window" in err, err
