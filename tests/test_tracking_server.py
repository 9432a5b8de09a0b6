"""A real `mlflow server` on 127.0.0.1: train, register, promote and score through it over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import make_snapshot, snapshot_config
from scoring_helpers import CHAMPION, background_server, cli, free_port, leads_to_score, stop, train_and_promote


# The server's background job runners (used by MLflow's GenAI features) are not needed here.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_argv(root: Path, port: int) -> list[str]:
    """A tracking server with a SQLite store, serving the artifacts itself (clients need no file access)."""
    return ["mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


@pytest.fixture(scope="module")
def server_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tracking_server")


@pytest.fixture(scope="module")
def team_server(server_root):
    """A running server for this module: its URL and process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background_server(server_argv(server_root, port), f"{url}/health", server_root / "server.log",
                            env=SERVER_ENV) as process:
        yield url, process


@pytest.fixture()
def client_folder(tmp_path, monkeypatch) -> Path:
    """The folder leadscore runs in, apart from the server's."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_train_promote_and_score_through_a_tracking_server(team_server, server_root, client_folder, monkeypatch):
    # Given leadscore pointed at the team's server by the environment variable
    url, _ = team_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)

    # When a model is trained, registered, promoted, and leads are scored with the champion
    train_and_promote(client_folder)
    leads = leads_to_score(200, seed=41)
    leads.to_csv(client_folder / "leads.csv", index=False)
    assert cli("score", "--model", CHAMPION, "--input", client_folder / "leads.csv",
               "--output", client_folder / "scores.csv") == 0

    # Then the registry on the server has the champion, its artifacts live on the server's side,
    # and every lead is scored by that version
    client = MlflowClient(url)
    champion = client.get_model_version_by_alias("leadscore", "champion")
    run = client.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), "artifacts go through the server"
    assert any((server_root / "artifacts").rglob("MLmodel")), "the model files are in the server's artifact store"
    scores = pd.read_csv(client_folder / "scores.csv")
    assert len(scores) == len(leads) and (scores["model_version"].astype(str) == champion.version).all()
    assert not (client_folder / "mlflow.db").exists() and not (client_folder / "mlartifacts").exists(), \
        "nothing is written to a local store"


def test_an_unreachable_server_fails_fast_with_a_clear_message(client_folder, monkeypatch, capsys):
    # Given a tracking URI where nothing listens
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    train_file = client_folder / "train.csv"
    leads_to_score(50, seed=42).to_csv(train_file, index=False)

    for argv in (["promote", "--name", "leadscore"],
                 ["score", "--model", CHAMPION, "--input", train_file, "--output", client_folder / "s.csv"]):
        # When a command needs the server
        started = time.monotonic()
        code = cli(*argv)
        err = capsys.readouterr().err

        # Then it stops at once with the tracking exit code and says what to fix
        assert code == 5, f"{argv[0]}: {err}"
        assert "unreachable" in err and "MLFLOW_TRACKING_URI" in err, err
        assert time.monotonic() - started < 20, "no long retries before failing"
    assert not (client_folder / "s.csv").exists() and not (client_folder / "mlflow.db").exists()


def test_a_server_lost_during_registration_leaves_no_new_version(team_server, server_root, client_folder,
                                                                 monkeypatch, capsys):
    # Given the team's server, which goes away just before the next model version is registered
    url, process = team_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once instead of retrying for minutes
    before = {v.version for v in MlflowClient(url).search_model_versions("name='leadscore'")}
    register = mlflow.register_model

    def server_lost(*args, **kwargs):
        stop(process)
        return register(*args, **kwargs)

    monkeypatch.setattr(mlflow, "register_model", server_lost)

    # When a model is trained
    make_snapshot(3000, seed=1).to_csv(client_folder / "train.csv", index=False)
    (client_folder / "config.yaml").write_text(yaml.safe_dump(snapshot_config(client_folder / "train.csv")))
    code = cli("train", "--config", client_folder / "config.yaml")
    err = capsys.readouterr().err

    # Then the job fails as a tracking failure and says nothing was registered
    assert code == 5 and "no model version was registered" in err, err

    # And once the server is back, the registry holds the versions it had before, and no other
    port = free_port()
    restarted = f"http://127.0.0.1:{port}"
    with background_server(server_argv(server_root, port), f"{restarted}/health", server_root / "server2.log",
                            env=SERVER_ENV):
        after = {v.version for v in MlflowClient(restarted).search_model_versions("name='leadscore'")}
    assert after == before, f"versions before {before}, after {after}"
