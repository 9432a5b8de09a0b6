"""The leakage guard flags columns known only after the outcome, before anything is fitted."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import build_config, make_snapshot, snapshot_config

from leadscore.cli import main
from leadscore.config import LeakageConfig, load_config
from leadscore.errors import InputError
from leadscore.training.dataset import load_training_table
from leadscore.training.leakage import screen_columns
from leadscore.training.pipeline import train

REPO = Path(__file__).parents[1]
DATA_DIR = Path(os.environ.get("LEADSCORE_DATA_DIR", REPO.parent / "shared" / "data"))
BANK = DATA_DIR / "bank_marketing" / "bank-additional-full.csv"


def leaky_snapshot(n: int = 3000, seed: int = 0, filled_share: float = 1.0):
    """`make_snapshot` plus `deal_value`, typed in only for (a share of) the leads that converted."""
    frame = make_snapshot(n, seed)
    rng = np.random.default_rng(seed + 1)
    filled = (frame["converted"] == 1) & (rng.random(n) < filled_share)
    frame["deal_value"] = np.where(filled, rng.gamma(2.0, 500.0, n).round(), np.nan)
    return frame


def screen(frame, columns, **settings):
    return screen_columns(frame, columns, "converted", LeakageConfig(**settings))


def test_bank_call_duration_is_flagged_and_honest_columns_are_not(monkeypatch):
    if not BANK.exists():
        pytest.skip(f"bank marketing data not found at {BANK}; set LEADSCORE_DATA_DIR to the folder holding bank_marketing/")
    monkeypatch.setenv("LEADSCORE_DATA_DIR", str(DATA_DIR))
    cfg = load_config(REPO / "configs" / "bank_marketing.yaml")
    # given the bank data with the call duration left among the features
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"exclude_columns": []})})
    table = load_training_table(cfg)
    assert "duration" in table.feature_columns

    # when the guard screens every feature column, without the config marking any
    report = screen_columns(table.frame, table.feature_columns, table.label_column, cfg.leakage)

    # then the call duration is flagged, and none of the columns known before the call
    assert report.flagged == ["duration"], f"only the call duration is known after the outcome, got {report.flagged}"
    segment = next(f for f in report.findings if f.column == "duration").evidence.segment
    assert segment is not None and segment.absent_class == 1, "short calls that never convert are the evidence"
    assert segment.observed <= 0.02 * segment.expected
    for column in ("age", "job", "campaign", "poutcome", "euribor3m", "nr.employed"):
        assert column in table.feature_columns and column not in report.flagged, f"{column} is known before the call"


@pytest.mark.parametrize("filled_share", [1.0, 0.4])
def test_a_column_filled_only_for_converters_is_flagged(filled_share):
    frame = leaky_snapshot(filled_share=filled_share)
    report = screen(frame, ["company_size", "visits", "deal_value"])
    assert report.flagged == ["deal_value"], "the column typed in after the sale, and only it"
    finding = report.findings[0]
    assert "one_class_fill" in finding.reasons
    assert finding.evidence.fill_rate_not_converted == 0.0 < finding.evidence.fill_rate_converted
    assert "deal_value" in finding.message and "filled" in finding.message


def test_honest_columns_are_not_flagged():
    frame = make_snapshot(3000)
    frame["lead_id_copy"] = np.arange(len(frame)).astype(str)  # an identifier: unique per row
    report = screen(frame, ["company_size", "visits", "lead_id_copy"])
    assert report.findings == [], [f.message for f in report.findings]
    by_column = {e.column: e for e in report.evidence}
    assert by_column["lead_id_copy"].single_auc < 0.6, "an identifier predicts nothing out of fold"
    assert by_column["company_size"].single_auc > 0.55, "an honest signal still shows as one"


def test_a_near_perfect_predictor_is_flagged_for_predicting_alone():
    frame = make_snapshot(3000)
    frame["rep_rating"] = frame["converted"] * 2 + np.random.default_rng(3).normal(0, 0.3, len(frame))
    report = screen(frame, ["visits", "rep_rating"])
    assert report.flagged == ["rep_rating"]
    assert "predicts_alone" in report.findings[0].reasons
    assert report.findings[0].evidence.single_auc >= LeakageConfig().max_single_auc


def test_marked_columns_are_flagged_and_reviewed_ones_only_when_marked():
    frame = leaky_snapshot()
    marked = screen_columns(frame, ["visits", "deal_value"], "converted", LeakageConfig(), post_outcome=["vis*"])
    assert set(marked.flagged) == {"visits", "deal_value"}
    assert next(f for f in marked.findings if f.column == "visits").reasons == ("post_outcome",)

    reviewed = screen(frame, ["visits", "deal_value"], allow_columns=["deal_value"])
    assert reviewed.findings == [], "a reviewed column is not flagged on statistics"
    both = screen_columns(frame, ["deal_value"], "converted", LeakageConfig(allow_columns=["deal_value"]),
                          post_outcome=["deal_value"])
    assert both.flagged == ["deal_value"], "the config's own marking wins over a review"


@pytest.mark.slow
def test_training_warns_before_fitting_and_records_the_findings(tmp_path, caplog):
    path = tmp_path / "leads.csv"
    leaky_snapshot().to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        result = train(build_config(snapshot_config(path)))
    warnings = [r.getMessage() for r in caplog.records if r.name == "leadscore" and r.levelno == logging.WARNING]
    assert any("deal_value" in w for w in warnings), "one warning names the column"
    assert result.leakage is not None and result.leakage.flagged == ["deal_value"], "recorded for MLflow"
    screen_table = result.tables["leakage_screen"]
    assert set(screen_table["column"]) == set(result.table.feature_columns), "evidence on every feature column"


@pytest.mark.slow
def test_strict_mode_refuses_before_any_fitting(tmp_path, monkeypatch):
    path = tmp_path / "leads.csv"
    leaky_snapshot().to_csv(path, index=False)
    raw = snapshot_config(path)
    raw["leakage"] = {"strict": True}

    def no_fitting(*args, **kwargs):
        raise AssertionError("a model was fitted although the guard refuses")

    monkeypatch.setattr("leadscore.training.pipeline.fit_candidates", no_fitting)
    with pytest.raises(InputError, match="deal_value"):
        train(build_config(raw))

    raw["data"]["exclude_columns"] = ["deal_value"]
    monkeypatch.undo()
    assert train(build_config(raw)).leakage.findings == [], "excluding the column is the fix"


def test_strict_mode_exit_code_and_message_from_the_command_line(tmp_path, tracking_store, capsys):
    path = tmp_path / "leads.csv"
    leaky_snapshot().to_csv(path, index=False)
    raw = snapshot_config(path)
    raw["leakage"] = {"strict": True}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))

    code = main(["train", "--config", str(config)])

    err = capsys.readouterr().err
    assert code == InputError.exit_code, err
    assert "deal_value" in err and "data.exclude_columns" in err, "names the column and the fix"
