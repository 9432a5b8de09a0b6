"""Shared fixtures (plain helpers live in helpers.py), the hypothesis profiles, and the `slow` marker.

Hypothesis profiles, chosen once per session:
- `ci` (the default, and always when the CI environment variable is set): derandomized, so a run
  explores the same cases every time and a failure in CI reproduces on a laptop;
- `explore` (`HYPOTHESIS_PROFILE=explore`): random cases on every run, remembered in the local
  example database, for hunting new failures;
- `thorough` (`HYPOTHESIS_PROFILE=thorough`): `explore` with ten times the cases.
All: no deadline (a case may train a model on a loaded machine), and fixtures shared across cases on
purpose (one trained model per module). `pytest --hypothesis-show-statistics` prints how many ran.

`slow`: a test that trains a model or starts a server. Modules where every test does say so with
`pytestmark`; a test that uses a fixture that trains (`SLOW_FIXTURES`) is marked here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import CHAMPION, champion_store, demo_config, using_store
from hypothesis import HealthCheck, settings

SYNTHETIC_LEADS = 10000
SYNTHETIC_SEED = 11

settings.register_profile("ci", deadline=None, max_examples=60, print_blob=True, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("explore", settings.get_profile("ci"), derandomize=False,
                          database=settings.get_profile("default").database)
settings.register_profile("thorough", settings.get_profile("explore"), max_examples=600)


def _hypothesis_profile() -> str:
    """`ci` under CI (CI=true, as CI services set it) or by default; else the one HYPOTHESIS_PROFILE names."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return "ci"
    return os.environ.get("HYPOTHESIS_PROFILE", "ci")


settings.load_profile(_hypothesis_profile())

# Fixtures that train a model (or use one trained for the session): a test that asks for one is slow.
SLOW_FIXTURES = frozenset({"demo_training", "demo_run", "store", "scorer"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow = pytest.mark.slow
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(slow)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A small event log from the synthetic funnel generator, written once per session."""
    from leadscore.synthetic.funnel import generate_to_dir

    out = tmp_path_factory.mktemp("funnel")
    generate_to_dir(SYNTHETIC_LEADS, SYNTHETIC_SEED, out)
    return out


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
    the folder with `helpers.using_store`."""
    from leadscore.registry.runs import log_training

    config, cfg, result = demo_training
    with using_store(config.parent):
        registered = log_training(result, cfg)
    return config.parent, config, registered


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """For a module that only scores: the working folder and tracking URI point at a store holding the
    small champion model of `helpers.champion_store` (trained once per session)."""
    with champion_store(tmp_path_factory) as folder:
        yield folder


@pytest.fixture(scope="module")
def scorer(store):
    """The scorer of the champion in `store`."""
    from leadscore.registry.loading import load_model

    return load_model(CHAMPION).scorer


@pytest.fixture(scope="module")
def local_spark():
    """A local Spark session on two cores (four shuffle partitions), which leadscore's Spark parts pick up as the
    running session; stopped at the end of the module. A test using it is slow and `helpers.needs_spark`."""
    from leadscore.spark_session import spark_session

    session, _ = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture()
def tracking_store(tmp_path, monkeypatch) -> Path:
    """Point MLflow at a fresh SQLite store in a temporary folder (and work from there)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)
