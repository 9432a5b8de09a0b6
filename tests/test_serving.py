"""`mlflow models serve` on the registered champion answers with the batch job's scores and columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import requests
from helpers import (
    CHAMPION,
    PROVENANCE,
    background_server,
    cli,
    free_port,
    leads_to_score,
)

pytestmark = pytest.mark.slow  # starts a model server


@pytest.fixture(scope="module")
def server(store):
    """`mlflow models serve -m models:/leadscore@champion` on a free port of 127.0.0.1, stopped at the end."""
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local",
            "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]]
    with background_server(argv, f"{url}/ping", store / "serve.log"):
        yield url


def post(url: str, frame: pd.DataFrame, **extra) -> requests.Response:
    payload = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False)), **extra}
    return requests.post(f"{url}/invocations", json=payload, timeout=60)


def test_served_scores_equal_batch_scores(store, server):
    # Given 40 leads scored by the batch job
    leads = leads_to_score(40, seed=31)
    path = store / "serve_input.csv"
    leads.to_csv(path, index=False)
    assert cli("score", "--model", CHAMPION, "--input", path, "--output", store / "serve_batch.csv") == 0
    batch = pd.read_csv(store / "serve_batch.csv").drop(columns=PROVENANCE)

    # When the same leads are posted to the server
    response = post(server, leads.drop(columns=["email"]))

    # Then it answers with the same columns and the same scores, lead for lead
    assert response.status_code == 200, response.text
    served = pd.DataFrame(response.json()["predictions"])
    assert list(served.columns) == list(batch.columns), "the same columns as the batch output"
    assert served["lead_id"].tolist() == batch["lead_id"].tolist()
    np.testing.assert_allclose(served["p_convert"], batch["p_convert"], rtol=0, atol=1e-9)
    for column in batch.columns.difference(["lead_id", "p_convert"]):
        ours, theirs = batch[column], served[column]
        if pd.api.types.is_float_dtype(ours):
            np.testing.assert_allclose(theirs.astype(float), ours, rtol=0, atol=1e-9, err_msg=column)
        else:
            same = (ours.astype("string") == theirs.astype("string")).fillna(False) | (ours.isna() & theirs.isna())
            assert same.all(), f"column {column} differs"


def test_reasons_can_be_left_out_per_request(server):
    leads = leads_to_score(5, seed=32).drop(columns=["email"])
    full = pd.DataFrame(post(server, leads).json()["predictions"])
    lean = post(server, leads, params={"reasons": False})
    assert lean.status_code == 200, lean.text
    lean = pd.DataFrame(lean.json()["predictions"])
    assert not [c for c in lean.columns if c.startswith("reason")], "no reason columns when asked for none"
    np.testing.assert_allclose(lean["p_convert"], full["p_convert"], rtol=0, atol=0)


def test_a_bad_lead_is_refused_with_the_column_named(server):
    leads = leads_to_score(3, seed=33).drop(columns=["email"]).astype({"visits": object})
    leads.loc[1, "visits"] = "many"
    response = post(server, leads)
    assert response.status_code == 400, response.text
    assert "visits" in response.text and "many" in response.text, response.text


def test_the_readme_example_works_as_written(store, server):
    """README, "Real time": download the model's own input example, post it with curl."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    mlflow_cli = str(Path(sys.executable).parent / "mlflow")
    subprocess.run([mlflow_cli, "artifacts", "download", "-u", f"{CHAMPION}/serving_input_example.json", "-d", str(store)],
                   check=True, capture_output=True, timeout=120)
    example = store / "serving_input_example.json"
    if shutil.which("curl") is None:
        response = requests.post(f"{server}/invocations", data=example.read_bytes(),
                                 headers={"Content-Type": "application/json"}, timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
    else:
        done = subprocess.run(["curl", "-s", "-f", f"{server}/invocations", "-H", "Content-Type: application/json",
                               "-d", f"@{example}"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        answer = json.loads(done.stdout)
    scored = pd.DataFrame(answer["predictions"])
    sent = json.loads(example.read_text())["dataframe_split"]["data"]
    assert len(scored) == len(sent) and scored["p_convert"].between(0, 1).all(), "one scored row per lead sent"


def test_leadscore_is_in_the_models_requirements(store):
    import mlflow

    folder = mlflow.artifacts.download_artifacts(f"{CHAMPION}/requirements.txt", dst_path=str(store / "reqs"))
    assert any(line.startswith("leadscore==") for line in open(folder).read().splitlines()), \
        "the model's environment installs leadscore, so serving needs no --env-manager local where it can be installed"
