"""Shared fixtures: a small synthetic funnel and a throwaway MLflow store per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from leadscore.config import parse_config

SYNTHETIC_LEADS = 10000
SYNTHETIC_SEED = 11

# Property tests: no deadline (a case may train a model on a loaded machine), and fixtures shared across
# cases on purpose (one trained model per module). `HYPOTHESIS_PROFILE=thorough` runs ten times the cases;
# `pytest --hypothesis-show-statistics` prints how many ran.
settings.register_profile("leadscore", deadline=None, max_examples=60, print_blob=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("thorough", settings.get_profile("leadscore"), max_examples=600)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "leadscore"))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A small event log from the synthetic funnel generator, written once per session."""
    from leadscore.synthetic.funnel import generate_to_dir

    out = tmp_path_factory.mktemp("funnel")
    generate_to_dir(SYNTHETIC_LEADS, SYNTHETIC_SEED, out)
    return out


@contextmanager
def using_store(folder: Path) -> Iterator[Path]:
    """Point MLflow at the SQLite store in `folder` (tracking URI and working folder) for the block."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        yield folder
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def demo_training(tmp_path_factory, synthetic_dir):
    """One training of the demo config on the synthetic funnel: (config file, config, training result). The
    config is read from its file, as `leadscore train --config` reads it (YAML sorts keys, and so the signal
    columns)."""
    import yaml

    from leadscore.config import load_config
    from leadscore.training.pipeline import train

    config = tmp_path_factory.mktemp("demo_run") / "demo.yaml"
    config.write_text(yaml.safe_dump(demo_config(synthetic_dir)))
    cfg = load_config(config)
    return config, cfg, train(cfg)


@pytest.fixture(scope="session")
def demo_run(demo_training):
    """The demo training, logged and registered (version 1, alias challenger) in a store of its own beside
    its config: (store folder, config file, registered version). A module that uses it points MLflow at
    the folder with `using_store`."""
    from leadscore.registry.runs import log_training

    config, cfg, result = demo_training
    with using_store(config.parent):
        registered = log_training(result, cfg)
    return config.parent, config, registered


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """For a module that only scores: the working folder and tracking URI point at a store holding the
    small champion model of `scoring_helpers.champion_store` (trained once per session)."""
    from scoring_helpers import champion_store

    with champion_store(tmp_path_factory) as folder:
        yield folder


@pytest.fixture(scope="module")
def scorer(store):
    """The scorer of the champion in `store`."""
    from scoring_helpers import CHAMPION

    from leadscore.registry.loading import load_model

    return load_model(CHAMPION).scorer


@pytest.fixture()
def tracking_store(tmp_path, monkeypatch) -> Path:
    """Point MLflow at a fresh SQLite store in a temporary folder (and work from there)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def demo_config(data_dir: Path, **overrides) -> dict:
    """The demo configuration (configs/demo.yaml) pointed at `data_dir`, as a dict to tweak."""
    import yaml

    raw = yaml.safe_load((Path(__file__).parents[1] / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(data_dir)
    raw["event_log"]["snapshots"] = {"first": "2025-03-01", "last": "2027-01-01", "every_days": 28}
    raw["model"]["lightgbm"] = {"n_estimators": 300, "learning_rate": 0.08}
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return raw


def build_config(raw: dict):
    return parse_config(raw, source="test config")


def make_snapshot(n: int = 3000, seed: int = 0):
    """A small snapshot table whose label follows a known logistic rule in `visits` and `company_size`."""
    import numpy as np
    import pandas as pd

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
    }
