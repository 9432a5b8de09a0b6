"""Segments: one model per segment where the data allows, the global model elsewhere (`leadscore.training.segments`,
`leadscore.model.segments`).

The data: three product lines. In A conversion follows visits and company size; in B the same company size
effect, but a trial-usage score (irrelevant in A) drives conversion and visits count slightly against it; C is
tiny. The global model is the linear candidate (a common winner out of time), which cannot tell that trial usage
matters in B only: B's own model, a booster on top of it, has something to learn, and C has too few conversions.
"""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from helpers import build_config

from leadscore.errors import ConfigError
from leadscore.model.calibrated import CalibratedModel
from leadscore.model.cutoffs import SegmentCutoffs
from leadscore.model.segments import SegmentedModel
from leadscore.reporting.model_card import model_card
from leadscore.training.dataset import TrainingTable
from leadscore.training.pipeline import fit_table

FEATURES = ["product_line", "company_size", "visits", "trial_usage"]
MIN_CONVERSIONS = 150


def segmented_leads(n: int = 8000, seed: int = 0) -> pd.DataFrame:
    """Leads of product lines A (49 %), B (49 %) and C (2 %) whose conversion drivers differ between A and B."""
    rng = np.random.default_rng(seed)
    line = rng.choice(["A", "B", "C"], n, p=[0.49, 0.49, 0.02])
    visits = rng.poisson(3, n).astype(float)
    size = rng.choice(["1-10", "11-50", "51-200", "201+"], n)
    trial = rng.normal(size=n)
    base = -1.6 + np.select([size == "201+", size == "1-10"], [0.8, -0.8], 0.0)
    logit = np.where(line == "B", base + 1.4 * trial - 0.25 * (visits - 3), base + 0.35 * (visits - 3))
    return pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)],
        "created_at": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"),
        "product_line": line, "company_size": size, "visits": visits, "trial_usage": trial,
        "converted": rng.binomial(1, 1 / (1 + np.exp(-logit))),
    })


def segments_config(column: str = "product_line", **segments):
    return build_config({
        "data": {"form": "snapshot", "path": "leads.csv", "label_column": "converted", "time_column": "created_at"},
        "model": {"min_conversions": 20, "candidates": ["linear"], "lightgbm": {"n_estimators": 300, "learning_rate": 0.08}},
        "segments": {"column": column, "min_conversions": MIN_CONVERSIONS, **segments},
        "cutoffs": {"sql": {"policy": "top_fraction", "fraction": 0.1}},
        "tracking": {"experiment": "leadscore", "registered_model": "leadscore"},
    })


def training_table(frame: pd.DataFrame) -> TrainingTable:
    return TrainingTable(frame=frame, id_column="lead_id", label_column="converted", time_column="created_at",
                         feature_columns=FEATURES, event_spec=None, dropped_personal=[])


@pytest.fixture(scope="module")
def trained():
    cfg = segments_config(per_segment_cutoffs=True)
    return fit_table(training_table(segmented_leads()), cfg), cfg


def segment_rows(result, name: str) -> pd.Series:
    return result.tables["segments"].set_index("segment").loc[name]


def row_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def test_a_segment_whose_drivers_differ_gets_its_own_model_that_beats_the_global_one_on_its_test_rows(trained):
    # Given the backtest (fitted without the test window) and B's rows of the test window
    result, _ = trained
    assert segment_rows(result, "B")["model"] == "own", segment_rows(result, "B")["reason"]
    classifier = result.backtest.classifier
    assert isinstance(classifier, SegmentedModel) and "B" in classifier.segments
    test = result.split.test
    rows = test[test["product_line"] == "B"]
    y = rows["converted"].to_numpy()
    # When both score them: the chosen setup (B's own model) and the global model alone
    own = row_losses(y, result.backtest.predict_proba(rows[FEATURES]))
    alone = row_losses(y, classifier.overall.predict_proba(rows[FEATURES])[:, 1])
    # Then B's own model has the lower log loss, beyond twice the standard error of the paired per-row differences
    gain = alone - own
    standard_error = gain.std(ddof=1) / np.sqrt(len(gain))
    assert gain.mean() > 2 * standard_error, (
        f"B's own model should beat the global model on B's {len(y)} test rows: log loss {own.mean():.4f} against "
        f"{alone.mean():.4f}, standard error of the difference {standard_error:.4f}")
    metrics = result.metrics["segment_B"]
    assert metrics["log_loss"] == pytest.approx(own.mean(), rel=1e-4), "the run metric is the chosen setup's"
    assert metrics["log_loss_global"] == pytest.approx(alone.mean(), rel=1e-4), "beside the global model's"
    assert metrics["own_model"] == 1.0


def test_a_tiny_segment_falls_back_with_a_reason_naming_its_conversions(trained):
    result, _ = trained
    train = result.split.train
    conversions = int(train.loc[train["product_line"] == "C", "converted"].sum())
    assert conversions < MIN_CONVERSIONS, "the test data should make C too small"
    row = segment_rows(result, "C")
    assert row["model"] == "global"
    assert f"{conversions} conversions in training" in row["reason"], row["reason"]
    assert f"min_conversions {MIN_CONVERSIONS}" in row["reason"], row["reason"]
    assert "C" not in result.scorer.classifier.segments, "a segment that fell back has no model in the scorer"
    assert result.run_tags["segments.C"].startswith("global: "), "the run says why C uses the global model"
    assert result.run_tags["segments.B"].startswith("own: ")
    assert result.metrics["segment_C"]["own_model"] == 0.0


def test_unseen_and_missing_segment_values_use_the_global_model(trained):
    result, _ = trained
    scorer = result.scorer
    leads = result.split.test.drop(columns=["converted"]).head(40).reset_index(drop=True)
    unseen = leads.assign(product_line=["Z"] * 20 + [None] * 20)
    overall = scorer.classifier.overall
    np.testing.assert_allclose(scorer.predict(unseen, reasons=False)["p_convert"].to_numpy(),
                               overall.predict_proba(unseen[FEATURES])[:, 1], rtol=0, atol=1e-12,
                               err_msg="an unseen or missing segment value is scored by the global model")
    as_b = leads.assign(product_line="B")
    assert not np.allclose(scorer.predict_proba(as_b), overall.predict_proba(as_b[FEATURES])[:, 1]), (
        "a lead of B is scored by B's own model")


def test_reasons_add_up_to_each_rows_own_score_for_segment_and_global_rows(trained):
    # Given leads of every kind: B (own model), A and C (whichever their decision), an unseen and a missing value
    result, _ = trained
    scorer = result.scorer
    leads = result.split.test.drop(columns=["converted"]).groupby("product_line").head(30).reset_index(drop=True)
    leads.loc[:4, "product_line"] = "Z"
    leads.loc[5:9, "product_line"] = None
    valid = scorer.validate(leads)
    features = valid[FEATURES]
    p = scorer.predict_proba(valid)
    # When explained
    explanation = scorer.explainer.explain(features, p)
    # Then log-odds contributions add up to each row's raw output, and points to each row's score, from one base
    np.testing.assert_allclose(explanation.base_raw + explanation.raw.sum(axis=1).to_numpy(),
                               scorer.classifier.raw_output(features), atol=1e-8)
    np.testing.assert_allclose(explanation.base_score + explanation.points.sum(axis=1).to_numpy(), 100 * p, atol=1e-8)
    np.testing.assert_allclose(explanation.base_score + explanation.fields.sum(axis=1).to_numpy(), 100 * p, atol=1e-8)
    route = scorer.classifier.route(features)
    assert (route >= 0).any() and (route < 0).any(), "the rows should include both kinds"
    # Every field but the segment column keeps the sign of its log-odds contribution (each row's own secant)
    others = [c for c in FEATURES if c != "product_line"]
    raw, points = explanation.raw[others].to_numpy(), explanation.points[others].to_numpy()
    assert ((np.sign(raw) == np.sign(points)) | (np.abs(points) < 1e-9)).all()
    # And the written reasons are those points, each row's own
    written = scorer.predict(leads)
    fields = scorer.explainer.reasons(features, p)
    assert written["reason_1"].tolist() == fields["reason_1"].tolist()


def test_the_scorer_survives_cloudpickle_and_scores_identically(trained):
    result, _ = trained
    leads = result.split.test.drop(columns=["converted"]).head(200)
    restored = cloudpickle.loads(cloudpickle.dumps(result.scorer))
    pd.testing.assert_frame_equal(restored.predict(leads), result.scorer.predict(leads))


def test_the_model_card_has_a_segments_section(trained):
    result, cfg = trained
    card = model_card(result, cfg)
    assert "## Segments" in card
    section = card.split("## Segments", 1)[1].split("\n## ", 1)[0]
    b_row = next(line for line in section.splitlines() if line.startswith("| B |"))
    c_row = next(line for line in section.splitlines() if line.startswith("| C |"))
    assert "| own |" in b_row and "| global |" in c_row
    assert segment_rows(result, "C")["reason"] in c_row, "the card says why C fell back"
    assert "segment B: MQL p_convert >=" in card, "the card lists B's own cutoffs"


def test_per_segment_cutoffs_flag_a_segments_leads_by_its_own_cutoffs(trained):
    result, _ = trained
    cutoffs = result.scorer.cutoffs
    assert isinstance(cutoffs, SegmentCutoffs) and set(cutoffs.segments) == set(result.scorer.classifier.segments)
    own = cutoffs.segments["B"]
    assert (own.mql, own.sql) != (cutoffs.mql, cutoffs.sql), "B's cutoffs should be its own for this test to mean much"
    leads = result.split.test.drop(columns=["converted"]).reset_index(drop=True)
    scored = result.scorer.predict(leads, reasons=False)
    line, p = leads["product_line"], scored["p_convert"]
    b, c = line == "B", line == "C"
    assert (scored.loc[b, "is_sql"] == (p[b] >= own.sql)).all() and (scored.loc[b, "is_mql"] == (p[b] >= own.mql)).all()
    assert (scored.loc[c, "is_sql"] == (p[c] >= cutoffs.sql)).all(), "a segment without its own model: overall cutoffs"
    assert (scored.loc[c, "is_mql"] == (p[c] >= cutoffs.mql)).all()
    # The band tables count the flags as scoring sets them: the backtest's test window, per segment's cutoffs
    flagged = result.backtest.predict(leads, reasons=False)
    bands = result.tables["cutoff_bands"].set_index(["window", "band"])
    assert bands.loc[("test", "SQL"), "leads"] == flagged["is_sql"].sum()
    assert bands.loc[("test", "MQL"), "leads"] == (flagged["is_mql"] & ~flagged["is_sql"]).sum()


def test_without_per_segment_cutoffs_every_lead_has_the_same_cutoffs():
    frame = segmented_leads(3000, seed=1)
    result = fit_table(training_table(frame), segments_config(min_conversions=10_000))
    assert type(result.scorer.cutoffs).__name__ == "Cutoffs"
    assert isinstance(result.scorer.classifier, SegmentedModel) and not result.scorer.classifier.segments
    assert set(result.tables["segments"]["model"]) == {"global"}


def test_without_segments_the_scorer_carries_the_global_model_alone():
    cfg = segments_config()
    cfg = cfg.model_copy(update={"segments": None})
    result = fit_table(training_table(segmented_leads(3000, seed=2)), cfg)
    assert isinstance(result.scorer.classifier, CalibratedModel)
    assert "segments" not in result.tables and not any(k.startswith("segment") for k in result.run_tags)


def test_a_segment_column_the_data_lacks_stops_training_before_fitting():
    with pytest.raises(ConfigError, match=r"segments\.column: no feature column 'product_lin'; did you mean 'product_line'"):
        fit_table(training_table(segmented_leads(500)), segments_config(column="product_lin"))


def test_a_segmented_run_logs_its_segments_and_its_pyfunc_scores_as_the_scorer(trained, tracking_store):
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    from leadscore.registry.runs import log_training

    # Given the trained segmented result, logged and registered as MLflow does it
    result, cfg = trained
    version = log_training(result, cfg)
    # Then the run holds each segment's test figures and decision, and the card's Segments section
    run = MlflowClient().get_run(version.run_id)
    assert run.data.metrics["segment_B_test_log_loss"] == pytest.approx(result.metrics["segment_B"]["log_loss"])
    assert run.data.tags["segments.C"].startswith("global: ")
    assert "## Segments" in MlflowClient().get_model_version(version.name, version.version).description
    # And the registered pyfunc scores leads as the scorer in memory does
    leads = result.split.test.drop(columns=["converted"]).head(50)
    served = mlflow.pyfunc.load_model(version.uri).predict(leads)
    pd.testing.assert_frame_equal(served.reset_index(drop=True), result.scorer.predict(leads).reset_index(drop=True))
