"""`leadscore init`: a commented starter config that trains without edits on real exports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from helpers import REPO, make_snapshot, run_cli

from leadscore.config import load_config

DATA = Path(os.environ.get("LEADSCORE_DATA_DIR") or REPO.parent / "shared" / "data")
REAL = {
    "bank_marketing": DATA / "bank_marketing" / "bank-additional-full.csv",
    "online_shoppers": DATA / "online_shoppers" / "online_shoppers_intention.csv",
}


def real(name: str) -> Path:
    path = REAL[name]
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared real data sets are not on this machine (set LEADSCORE_DATA_DIR)")
    return path


def test_init_writes_a_commented_config_named_after_the_data(tmp_path, monkeypatch):
    # Given a CRM-like export with an id, a date, an e-mail and a label
    monkeypatch.chdir(tmp_path)
    make_snapshot(800).to_csv(tmp_path / "crm_export.csv", index=False, sep=";")
    # When init runs without options
    code, out, err = run_cli("init", tmp_path / "crm_export.csv")
    # Then it writes <data name>.yaml in the working folder, says where, and every guess is in it
    assert code == 0, err
    path = tmp_path / "crm_export.yaml"
    assert str(path) in out and path.exists()
    cfg = load_config(path)
    assert cfg.data.label_column == "converted" and cfg.data.id_column == "lead_id"
    assert cfg.data.time_column == "created_at" and cfg.data.csv_separator == ";"
    assert "email" in cfg.data.personal_columns
    assert cfg.tracking.registered_model == "leadscore-crm_export", "never the demo's model"
    text = path.read_text()
    assert text.count("#") >= 10, "the guesses are explained in comments"


def test_init_refuses_to_overwrite_and_names_a_wrong_label(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_snapshot(300).to_csv(tmp_path / "leads.csv", index=False)
    assert run_cli("init", tmp_path / "leads.csv")[0] == 0
    code, _, err = run_cli("init", tmp_path / "leads.csv")
    assert code == 6 and "--force" in err
    code, _, err = run_cli("init", tmp_path / "leads.csv", "--label", "convertd", "--output", tmp_path / "x.yaml")
    assert code == 4 and "converted" in err, "suggests the closest column"


@pytest.mark.parametrize("name", ["bank_marketing", "online_shoppers"])
def test_init_guesses_the_real_data_sets(tmp_path, name):
    code, _, err = run_cli("init", real(name), "--output", tmp_path / f"{name}.yaml")
    assert code == 0, err
    raw = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
    assert raw["data"]["label_column"] == {"bank_marketing": "y", "online_shoppers": "Revenue"}[name]
    if name == "bank_marketing":
        assert raw["data"]["csv_separator"] == ";" and "duration" in raw["data"]["exclude_columns"], "the leak is excluded"
        assert raw["data"]["na_values"] == ["unknown"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bank_marketing", "online_shoppers"])
def test_a_config_from_init_trains_without_edits(tracking_store, name):
    # Given the config init writes for a real data set, unedited
    config = tracking_store / f"{name}.yaml"
    assert run_cli("init", real(name), "--output", config)[0] == 0
    # When it is checked and trained
    code, out, err = run_cli("check", "--config", config)
    assert code == 0, err
    code, out, err = run_cli("train", "--config", config)
    # Then training succeeds, registers under the config's own name, and reports each stage with its time
    assert code == 0, err
    assert f"registered leadscore-{name} version 1" in out
    for stage in ("reading", "tournament", "cutoffs", "logging"):
        assert f"train: {stage}" in err, f"a progress line for {stage}"
