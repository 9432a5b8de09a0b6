"""Plain helpers shared by the tests (fixtures live in conftest.py): configs and tables to train on, a
throwaway MLflow store, a small champion model, the command line run in-process, and background servers."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from leadscore.cli import main
from leadscore.config import Config, parse_config

CHAMPION = "models:/leadscore@champion"
PROVENANCE = ["model_name", "model_version", "scored_at"]
REPO = Path(__file__).parents[1]


# Configs and tables to train on.
# Columns of the demo config that only a funnel generated with accounts has.
ACCOUNT_ONLY_COLUMNS = ("buying_role", "employees")


def demo_config(data_dir: Path, **overrides) -> dict:
    """The demo configuration (configs/demo.yaml) pointed at `data_dir`, as a dict to tweak; a smaller model
    and a snapshot schedule that fits the test funnel. `overrides` update whole sections.

    The demo's funnel has accounts; the tests' shared funnel has not. Unless `overrides` has an `accounts`
    section (which then updates the demo's), the accounts section and the account-only columns are left out."""
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    if "accounts" not in overrides:
        del raw["accounts"]
        raw["groups"]["fit"] = [c for c in raw["groups"]["fit"] if c not in ACCOUNT_ONLY_COLUMNS]
    raw["data"]["path"] = str(data_dir)
    raw["event_log"]["snapshots"] = {"first": "2025-03-01", "last": "2027-01-01", "every_days": 28}
    raw["model"]["lightgbm"] = {"n_estimators": 300, "learning_rate": 0.08}
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return raw


def build_config(raw: dict) -> Config:
    """Validate a config dict as the command line validates a config file."""
    return parse_config(raw, source="test config")


def make_snapshot(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A small snapshot table whose label follows a known logistic rule in `visits` and `company_size`."""
    rng = np.random.default_rng(seed)
    size = rng.choice(["1-10", "11-50", "51-200", "201+"], n)
    visits = rng.poisson(3, n)
    logit = -2.5 + 0.35 * visits + np.select([size == "201+", size == "1-10"], [1.0, -1.0], 0.0)
    return pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)],
        "created_at": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC").astype(str),
        "email": [f"person{i}@example.com" for i in range(n)],
        "company_size": size,
        "visits": visits,
        "converted": rng.binomial(1, 1 / (1 + np.exp(-logit))),
    })


def snapshot_config(path, **data_overrides) -> dict:
    """A snapshot-form config for `make_snapshot` tables."""
    return {
        "data": {"form": "snapshot", "path": str(path), "label_column": "converted", "time_column": "created_at",
                 **data_overrides},
        "model": {"min_conversions": 20, "lightgbm": {"n_estimators": 100}},
        "groups": {"fit": ["company_size"], "engagement": ["visits"]},
        "cutoffs": {"sql": {"policy": "top_fraction", "fraction": 0.1}},
        "points_baseline": [{"column": "visits", "op": ">=", "value": 4, "points": 20}],
        # Named outright: a config file without this section registers under its own file name.
        "tracking": {"experiment": "leadscore", "registered_model": "leadscore"},
    }


# MLflow stores, the command line and a small champion model.
@contextmanager
def using_store(folder: Path) -> Iterator[Path]:
    """Point MLflow at the SQLite store in `folder` (tracking URI and working folder) for the block."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        yield folder
    mlflow.set_tracking_uri(None)


def cli(*argv) -> int:
    """Run the command line in this process with `argv` (any values, as text); its exit code."""
    return main([str(a) for a in argv])


def run_cli(*argv) -> tuple[int, str, str]:
    """Run the command line in this process: exit code, stdout and stderr (safe inside hypothesis examples)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli(*argv)
    return code, out.getvalue(), err.getvalue()


def write_training_config(folder: Path, rows: int = 3000, seed: int = 0) -> Path:
    """A `make_snapshot` table and its `snapshot_config` in `folder`; the config file."""
    make_snapshot(rows, seed=seed).to_csv(folder / "train.csv", index=False)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(snapshot_config(folder / "train.csv")))
    return config


def train_and_promote(folder: Path, rows: int = 3000) -> None:
    """Train the snapshot model of `make_snapshot` and make it champion (tracking URI already set)."""
    assert cli("train", "--config", write_training_config(folder, rows)) == 0, "training the test model failed"
    assert cli("promote", "--name", "leadscore") == 0, "promoting the test model failed"


_trained: dict[str, Path] = {}


@contextmanager
def champion_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SQLite MLflow store holding a champion model, as the working folder and tracking URI.

    The model is trained once per test session and shared by the modules that only score with it.
    """
    folder = _trained.get("champion")
    if folder is None:
        folder = _trained["champion"] = tmp_path_factory.mktemp("champion")
        with using_store(folder):
            train_and_promote(folder)
    with using_store(folder):
        yield folder


# Leads to score, and what a scoring job writes.
def leads_to_score(rows: int, seed: int) -> pd.DataFrame:
    """Leads shaped like the training table, without the label."""
    return make_snapshot(rows, seed=seed).drop(columns=["converted"])


def with_problems(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Plant one row of each kind of problem; returns the frame and {row number: reason}."""
    frame = frame.copy()
    frame["visits"] = frame["visits"].astype(object)
    frame.loc[5, "visits"] = "seven"
    frame.loc[9, "visits"] = "inf"
    frame.loc[12, "lead_id"] = None
    frame.loc[20, "lead_id"] = "   "
    frame.loc[30, "lead_id"] = frame.loc[2, "lead_id"]      # duplicate within a chunk
    frame.loc[250, "lead_id"] = frame.loc[40, "lead_id"]    # duplicate from an earlier chunk
    frame.loc[260, "lead_id"] = frame.loc[9, "lead_id"]     # repeats a rejected row's id: still a duplicate
    frame.loc[270, "visits"] = ""                           # an empty cell is a missing value, not a problem
    reasons = {6: "bad value", 10: "bad value", 13: "missing id", 21: "missing id", 31: "duplicate id",
               251: "duplicate id", 261: "duplicate id"}
    return frame, reasons


def read_output(path: Path) -> pd.DataFrame:
    """A scores table written by either engine: one file, or a folder of part files."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.is_dir():
        return pd.concat([pd.read_csv(part) for part in sorted(path.glob("part-*.csv"))], ignore_index=True)
    return pd.read_csv(path)


# Servers.
def free_port() -> int:
    """A TCP port free on this machine at the moment of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def temporary_files(folder: Path) -> list[Path]:
    """Files a job writes aside before publishing them: none may be left behind."""
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


@contextmanager
def background_server(argv: list[str], ready_url: str, log_path: Path, env: dict | None = None,
                      startup_seconds: float = 120) -> Iterator[subprocess.Popen]:
    """Run `python -m <argv>` in its own process group until the block ends; wait until `ready_url` answers.

    MLflow's servers start uvicorn by name, so the interpreter's bin folder comes first on PATH.
    """
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", *argv], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + startup_seconds
            while not _answers(ready_url):
                assert process.poll() is None, f"the server stopped: {log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no answer from {ready_url} within {startup_seconds} s"
                time.sleep(0.5)
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """Stop a server started by `background_server`, with the workers it started (its process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


# Spark in local mode (the `local_spark` fixture in conftest.py starts the session).
def _spark_runs_here() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("pyspark") is not None and (
        shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME")))


needs_spark = pytest.mark.skipif(
    not _spark_runs_here(),
    reason="Spark needs PySpark (pip install -e '.[spark]'; make test installs it) and Java 17 or newer (a JDK on "
    "the PATH or JAVA_HOME)",
)
