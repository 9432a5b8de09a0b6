"""The public API: each function of `leadscore` on a small synthetic funnel, through a throwaway MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import demo_config, make_snapshot, using_store

import leadscore
from leadscore.errors import ConfigError, InputError

pytestmark = pytest.mark.slow

AS_OF = "2026-11-01"
CHAMPION = "models:/leadscore@champion"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A funnel generated, trained from a YAML file, registered and promoted; fresh leads to score."""
    folder = tmp_path_factory.mktemp("api")
    with using_store(folder):
        history = folder / "history"
        leadscore.generate(4000, seed=5, out=history)
        leadscore.generate(600, seed=6, out=folder / "fresh", start="2026-06-01", days=150)
        config = folder / "demo.yaml"
        raw = demo_config(history, model={"lightgbm": {"n_estimators": 100, "learning_rate": 0.1}})
        raw["event_log"]["snapshots"]["every_days"] = 56
        config.write_text(yaml.safe_dump(raw))
        trained = leadscore.train(config)
        promoted = leadscore.promote(config=config)
        yield SimpleNamespace(folder=folder, fresh=folder / "fresh", config=config, trained=trained, promoted=promoted)


def modules_loaded_after(statement: str) -> list[str]:
    probe = (f"{statement}\nimport json, sys\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('leadscore'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_public_names_load_on_first_use_and_scoring_loads_no_training():
    assert set(leadscore.__all__) == {"LeadScoreClassifier", "train", "score", "explain", "load_model", "promote",
                                      "generate", "read_history", "lead_history", "monitor", "funnel",
                                      "__version__"}
    assert set(leadscore.__all__) <= set(dir(leadscore)), "dir() lists the public API"
    assert modules_loaded_after("import leadscore") == ["leadscore"], "`import leadscore` loads nothing else"
    loaded = modules_loaded_after("import leadscore; leadscore.score, leadscore.load_model, leadscore.explain")
    assert not [m for m in loaded if m.startswith(("leadscore.training", "leadscore.reporting"))], \
        f"the scoring functions load no training module: {loaded}"
    with pytest.raises(AttributeError):
        leadscore.not_a_function  # noqa: B018


def test_generate_is_seeded_in_memory_and_writes_the_same_leads(tmp_path):
    first, again = leadscore.generate(300, seed=1), leadscore.generate(300, seed=1)
    pd.testing.assert_frame_equal(first.leads, again.leads, obj="the same seed gives the same leads")
    paths = leadscore.generate(300, seed=1, out=tmp_path)
    assert {"leads", "activities", "outcomes"} <= set(paths), "every table is written"
    written = pd.read_parquet(paths["leads"])
    assert written["lead_id"].tolist() == first.leads["lead_id"].tolist(), "the folder holds the same leads"


def test_train_logs_registers_and_promote_makes_it_champion(workspace):
    trained = workspace.trained
    assert trained.registered.version == "1" and trained.uri == "models:/leadscore/1"
    assert {"leadscore", "baseline_logistic"} <= set(trained.metrics), "the test window's metrics, beside a baseline"
    assert trained.scorer.cutoffs is not None, "the trained scorer carries its cutoffs"
    assert "is now champion" in workspace.promoted
    with using_store(workspace.folder):
        assert "already champion" in leadscore.promote("leadscore"), "promoting twice changes nothing"


def test_train_refuses_a_bad_config_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="data"):
        leadscore.train({"data": {"form": "snapshot", "path": str(tmp_path)}})


def test_load_model_gives_the_registered_scorer(workspace):
    with using_store(workspace.folder):
        scorer = leadscore.load_model(CHAMPION)
    assert scorer.feature_columns == workspace.trained.scorer.feature_columns, "the champion is the trained model"


def test_a_frame_is_scored_in_memory_as_the_batch_job_scores_its_file(workspace):
    with using_store(workspace.folder):
        from leadscore.api import lead_rows

        rows = lead_rows(CHAMPION, workspace.fresh, as_of=AS_OF)
        scored = leadscore.score(CHAMPION, rows)
        report = leadscore.score(CHAMPION, workspace.fresh, output=workspace.folder / "scores.csv", as_of=AS_OF, top=5)
    assert len(scored) == len(rows) and scored["p_convert"].between(0, 1).all(), "one probability per lead"
    assert report.rows_scored + report.rows_rejected == report.rows_read, "every lead scored or rejected"
    assert len(report.top) == 5, "the top leads are kept for display"
    written = pd.read_csv(report.output).set_index("lead_id")["p_convert"]
    in_memory = scored.set_index("lead_id")["p_convert"]
    np.testing.assert_allclose(written.loc[in_memory.index].to_numpy(), in_memory.to_numpy(), rtol=1e-9,
                               err_msg="the batch job and in-memory scoring agree")


def test_a_file_is_scored_by_a_registered_model_into_an_output(workspace):
    with pytest.raises(TypeError, match="output"):
        leadscore.score(CHAMPION, workspace.fresh)
    with pytest.raises(TypeError, match="URI"):
        leadscore.score(workspace.trained.scorer, workspace.fresh, output=workspace.folder / "x.csv")


def test_explain_splits_one_lead_score_into_points_that_add_up(workspace):
    with using_store(workspace.folder):
        from leadscore.api import lead_rows

        rows = lead_rows(CHAMPION, workspace.fresh, as_of=AS_OF)
        lead = rows["lead_id"].iloc[0]
        explained = leadscore.explain(CHAMPION, workspace.fresh, lead, as_of=AS_OF)
        p = leadscore.score(CHAMPION, rows[rows["lead_id"] == lead])["p_convert"].iloc[0]
        with pytest.raises(InputError, match="nobody"):
            leadscore.explain(CHAMPION, workspace.fresh, "nobody", as_of=AS_OF)
    assert set(explained["lead_id"]) == {lead}, "only the lead asked for"
    assert {"field", "dimension", "value", "points", "base_score", "score"} <= set(explained.columns)
    assert explained["base_score"].iloc[0] + explained["points"].sum() == pytest.approx(explained["score"].iloc[0])
    assert explained["score"].iloc[0] == pytest.approx(100 * p), "the score explained is the lead's 100 x p_convert"
    assert explained["points"].abs().is_monotonic_decreasing, "the fields that move the score most come first"
    assert set(explained["dimension"]) <= {"fit", "engagement", "stage", "other"}


def test_a_fitted_estimator_is_logged_and_registered_as_the_same_model(tracking_store):
    from leadscore.api import log_model

    frame = make_snapshot(1500, seed=2)
    X, y = frame.drop(columns=["converted"]), frame["converted"]
    estimator = leadscore.LeadScoreClassifier(
        id_column="lead_id", time_column="created_at", model={"min_conversions": 20, "lightgbm": {"n_estimators": 50}},
        cutoffs={"sql": {"policy": "top_fraction", "fraction": 0.1}},
    ).fit(X, y)
    registered = log_model(estimator, name="snapshot-model")
    loaded = leadscore.load_model("models:/snapshot-model@challenger")
    np.testing.assert_allclose(loaded.predict(X)["p_convert"].to_numpy(), estimator.predict_proba(X)[:, 1],
                               err_msg="the registered model scores as the estimator does")
    pd.testing.assert_frame_equal(leadscore.score(estimator, X), leadscore.score(registered.uri, X))
    assert "is now champion" in leadscore.promote("snapshot-model")
