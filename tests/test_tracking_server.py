"""A real `mlflow server` on 127.0.0.1: train, register, promote and score through it over HTTP."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
from helpers import (
    CHAMPION,
    background_server,
    cli,
    free_port,
    leads_to_score,
    run_cli,
    train_and_promote,
    write_training_config,
)
from mlflow.tracking import MlflowClient

from leadscore.registry.loading import load_model

pytestmark = pytest.mark.slow  # starts tracking servers and trains

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
    """A running server for this module: its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background_server(server_argv(server_root, port), f"{url}/health", server_root / "server.log",
                            env=SERVER_ENV):
        yield url


@pytest.fixture()
def client_folder(tmp_path, monkeypatch) -> Path:
    """The folder leadscore runs in, apart from the server's."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_train_promote_and_score_through_a_tracking_server(team_server, server_root, client_folder, monkeypatch):
    # Given leadscore pointed at the team's server by the environment variable
    url = team_server
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


class SwitchableProxy:
    """A small HTTP proxy in front of the tracking server, switched to fail as a dying or flaky server does.

    `go_down_at(part)`: from the first request whose path holds `part`, every request fails (503), as
    when the server dies mid-run. `fail(part, times)`: only requests holding `part` fail, `times` times.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.down_at: str | None = None
        self.down = False
        self.failing: dict[str, float] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> SwitchableProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

    def go_down_at(self, part: str) -> None:
        self.down_at = part

    def fail(self, part: str, times: float = float("inf")) -> None:
        self.failing[part] = times

    def recover(self) -> None:
        self.down_at, self.down, self.failing = None, False, {}

    def _fails(self, path: str) -> bool:
        if self.down_at is not None and self.down_at in path:
            self.down = True
        for part, left in self.failing.items():
            if part in path and left > 0:
                self.failing[part] = left - 1
                return True
        return self.down

    def _handler(self):
        proxy = self

        class Relay(BaseHTTPRequestHandler):
            def _relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._fails(self.path):
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                answer = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                          timeout=120)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay

            def log_message(self, *args):  # the test's output is not the place for an access log
                pass

        return Relay


# Set per connection, or describing a body that the proxy re-encodes.
_HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def train_once(folder: Path) -> tuple[int, str]:
    """Train the snapshot model of `helpers.make_snapshot` (1,500 rows); the exit code and stderr."""
    code, _, err = run_cli("train", "--config", write_training_config(folder, rows=1500, seed=1))
    return code, err


def registered_versions(url: str) -> dict[str, str]:
    """Every registered version of the model: {version: its run id}."""
    return {v.version: v.run_id for v in MlflowClient(url).search_model_versions("name='leadscore'")}


def test_a_server_failing_mid_run_registers_nothing_and_a_retry_succeeds(team_server, client_folder, monkeypatch):
    # Given the team's server behind a proxy, and MLflow's retries off so that a failure shows at once
    url = team_server
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with SwitchableProxy(url) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        before = registered_versions(url)

        # When the server dies while the model is uploaded, then at registration, then refuses the alias
        for failure, expected in (
            (lambda: proxy.go_down_at("python_model.pkl"), "logging the training run failed"),
            (lambda: proxy.go_down_at("model-versions/create"), "registering the model failed"),
            (lambda: proxy.fail("registered-models/alias"), "the version was removed"),
        ):
            failure()
            code, err = train_once(client_folder)
            proxy.recover()

            # Then each run fails as a tracking failure with a clear message, and the registry has no new version
            assert code == 5 and expected in err and "Traceback" not in err, err
            assert registered_versions(url) == before, f"after '{expected}': {registered_versions(url)} vs {before}"

        # And once the server answers again (a passing glitch is retried by MLflow), training registers a version
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
        proxy.fail("registered-models/alias", times=2)
        code, err = train_once(client_folder)
        assert code == 0, err
        assert proxy.failing["registered-models/alias"] == 0, "the glitches happened and were retried"
        after = registered_versions(url)
        assert len(after) == len(before) + 1, f"one new version: {after} vs {before}"

    # And every registered version has its model: each one loads
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for version in after:
        assert load_model(f"models:/leadscore/{version}").scorer.feature_columns, f"version {version} loads"
