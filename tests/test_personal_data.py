"""Personal data never leaves the input: not in features, MLflow, outputs or logs.

Distinctive values are planted in personal columns, found by name (e-mail, name, phone, address) or
declared in the config, of both the training and the scoring data; after training, registering,
promoting and scoring with `--verbose`, every byte of the MLflow store, every output and everything
printed or logged is searched for them.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import CHAMPION, leads_to_score, make_snapshot, run_cli, snapshot_config

pytestmark = pytest.mark.slow  # trains, promotes and scores

MARKER = "QZXPLANTED"  # in every planted value, and in nothing else


def with_personal_columns(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Personal columns whose every value holds the marker; `account_memo` only the config calls personal."""
    n = len(frame)
    return frame.assign(**{
        "email": [f"{MARKER}.{seed}.{i}@example.com" for i in range(n)],
        "full_name": [f"Ana {MARKER} Ruiz {i}" for i in range(n)],
        "phone": [f"+34 600 {MARKER} {i:04d}" for i in range(n)],
        "street_address": [f"Calle {MARKER} {i}, Madrid" for i in range(n)],
        "account_memo": [f"{MARKER} prefers calls after 5pm ({i % 7})" for i in range(n)],  # few values: a category
    })


def text_of_every_file(folder: Path) -> dict[Path, str]:
    """Each file's raw bytes as text, and for Parquet files (compressed) their values too."""
    texts = {}
    for path in folder.rglob("*"):
        if path.is_file():
            texts[path] = path.read_bytes().decode("utf-8", errors="replace")
            if path.suffix == ".parquet":
                texts[path] += pq.read_table(path).to_pandas().to_csv()
    return texts


def test_planted_personal_values_appear_nowhere(tracking_store, caplog):
    # Given training and scoring data with personal values in columns found by name or declared
    folder = tracking_store
    with_personal_columns(make_snapshot(3000), seed=1).to_csv(folder / "train.csv", index=False)
    config = snapshot_config(folder / "train.csv", personal_columns=["account_memo"])
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with_personal_columns(leads_to_score(300, seed=71), seed=2).to_csv(folder / "leads.csv", index=False)

    # When a model is trained, registered, promoted and used to score, with everything logged
    caplog.set_level(logging.DEBUG)
    printed = io.StringIO()
    for argv in (["train", "--config", folder / "config.yaml"], ["promote", "--name", "leadscore"],
                 ["score", "--model", CHAMPION, "--input", folder / "leads.csv", "--output", folder / "out" / "scores.csv",
                  "--top", 10]):
        code, out, err = run_cli("--verbose", *argv)
        assert code == 0, err
        printed.write(out + err)

    # Then no planted value is in the MLflow store (database, artifacts, model files), the outputs or the logs
    assert (folder / "mlflow.db").exists() and list((folder / "mlartifacts").rglob("python_model.pkl"))
    searched = {**text_of_every_file(folder / "mlartifacts"), **text_of_every_file(folder / "out"),
                folder / "mlflow.db": (folder / "mlflow.db").read_bytes().decode("utf-8", errors="replace"),
                Path("printed"): printed.getvalue(), Path("log records"): caplog.text}
    assert any(path.name == "input_example.json" for path in searched), "the input example is among the files searched"
    assert {"scores.csv", "scores.rejects.csv", "scores.drift.json"} <= {path.name for path in searched}
    leaked = [str(path) for path, text in searched.items() if MARKER in text]
    assert not leaked, f"personal values found in {leaked}"

    # And the scores are there for every lead, without any personal column
    scores = pd.read_csv(folder / "out" / "scores.csv")
    assert len(scores) == 300 and not {"email", "full_name", "phone", "street_address", "account_memo"} & set(scores)
