"""The same data, config and seed give the same model: identical scores, reasons and cutoffs, run after run.

Agreement of the pandas and Spark engines on one model is checked in tests/test_spark.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import CHAMPION, leads_to_score, train_and_promote, using_store

from leadscore.registry.loading import load_model

pytestmark = pytest.mark.slow  # trains twice


def train_in_a_fresh_store(folder: Path):
    """Train and promote in a store of its own; the champion's scorer."""
    folder.mkdir()
    with using_store(folder):
        train_and_promote(folder, rows=2000)
        return load_model(CHAMPION).scorer


def test_two_trainings_give_identical_models(tmp_path):
    # Given two fresh stores, and the same data, config and seed
    first = train_in_a_fresh_store(tmp_path / "first")
    second = train_in_a_fresh_store(tmp_path / "second")

    # When each scores the same leads
    leads = leads_to_score(500, seed=61)
    ours, theirs = first.predict(leads), second.predict(leads)

    # Then every probability, dimension score, band, flag and reason is identical (exactly, not within a tolerance)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    assert ours["reasons"].notna().all() and ours["p_convert"].nunique() > 10, "a model that tells leads apart"
    assert {"fit_score", "engagement_score", "grade", "is_mql", "is_sql"} <= set(ours.columns)
    assert (first.cutoffs.mql, first.cutoffs.sql) == (second.cutoffs.mql, second.cutoffs.sql)
    assert first.metadata["model"] == second.metadata["model"] and first.feature_columns == second.feature_columns
