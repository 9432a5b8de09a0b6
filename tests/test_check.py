"""`leadscore check`: the config against its data without training, one test per class of problem it reports,
with the exit code training would stop with."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from helpers import make_snapshot, run_cli, snapshot_config


def leads(rows: int = 1500):
    """A `make_snapshot` table without its time column: these tests are about other problems."""
    return make_snapshot(rows).drop(columns=["created_at"])


def config(**sections) -> dict:
    """`snapshot_config` without a time column (random split), with `sections` replaced."""
    raw = snapshot_config("x")
    raw["data"].pop("time_column")
    return {**raw, **sections}


def check(folder, raw: dict, frame=None) -> tuple[int, str, str]:
    """Write the data and the config into `folder`, and run `leadscore check` on them."""
    data = folder / "train.csv"
    (leads() if frame is None else frame).to_csv(data, index=False)
    raw = {**raw, "data": {**raw["data"], "path": str(data)}}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    return run_cli("check", "--config", config)


def test_a_config_that_fits_its_data_is_ready_to_train(tmp_path):
    code, out, err = check(tmp_path, config())
    assert code == 0, err
    for fact in ("label:", "time:", "split:", "leakage screen:", "cutoffs (estimated", "ready to train"):
        assert fact in out, f"the report says {fact!r}"
    assert "email" in out, "the personal column found is named"


def test_a_misspelt_column_is_a_config_problem(tmp_path):
    raw = config(groups={"fit": ["company_sise"], "engagement": ["visits"]})
    code, _, err = check(tmp_path, raw)
    assert code == 3, err
    assert "groups.fit" in err and "company_size" in err, "names the key and the closest column"


def test_too_few_conversions_is_a_data_problem(tmp_path):
    frame = leads()
    frame["converted"] = 0
    frame.loc[:9, "converted"] = 1
    raw = config(model={"min_conversions": 120})
    code, _, err = check(tmp_path, raw, frame)
    assert code == 4, err
    assert "conversions" in err and "min_conversions" in err


def test_a_time_column_without_full_dates_is_refused(tmp_path):
    frame = make_snapshot(1500)
    frame["created_at"] = np.where(np.arange(len(frame)) % 2, "Feb", "Mar")
    code, _, err = check(tmp_path, snapshot_config("x"), frame)
    assert code in (3, 4), err  # refused on reading (data) or by the span check (config), never trained on
    assert "created_at" in err


def test_an_unreachable_cutoff_policy_is_reported_before_training(tmp_path):
    raw = config(cutoffs={"sql": {"policy": "min_conversion_rate", "conversion_rate": 0.999, "confidence": 0.99}})
    code, _, err = check(tmp_path, raw)
    assert code == 3, err
    assert "cutoffs.sql" in err


def test_a_leaking_column_is_a_warning_and_in_strict_mode_a_problem(tmp_path):
    frame = leads()
    frame["call_minutes"] = np.where(frame["converted"] == 1, 10.0, 0.0) + np.random.default_rng(0).uniform(0, 1, len(frame))
    code, out, err = check(tmp_path, config(), frame)
    assert code == 0, err
    assert "warning: leakage screen" in out and "call_minutes" in out
    raw = config(leakage={"strict": True})
    code, _, err = check(tmp_path, raw, frame)
    assert code == 4, err
    assert "call_minutes" in err


def test_an_unreadable_config_stops_with_exit_3(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("data: {form: snapshot, path: x.csv, label_column: y, bogus: 1}\n")
    code, _, err = run_cli("check", "--config", config)
    assert code == 3 and "bogus" in err


def test_the_label_read_from_the_wrong_separator_is_named(tmp_path):
    frame = make_snapshot(300)
    data = tmp_path / "train.csv"
    frame.to_csv(data, index=False, sep=";")
    raw = snapshot_config(data, csv_separator=",")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, _, err = run_cli("check", "--config", config)
    assert code == 4, err
    assert "separator" in err or "one column" in err, err


@pytest.mark.parametrize("fraction", [0.5])
def test_estimated_cutoffs_say_when_the_mql_band_would_be_empty(tmp_path, fraction):
    raw = config(cutoffs={"sql": {"policy": "top_fraction", "fraction": fraction},
                          "mql": {"policy": "recall", "recall": 0.2}})
    code, out, err = check(tmp_path, raw)
    assert code == 0, err
    assert "MQL band is empty" in out
