"""Windows are out of time when possible, purged of label overlap, and stratified otherwise."""

import numpy as np
import pandas as pd
import pytest

from leadscore.config import SplitConfig
from leadscore.errors import InputError
from leadscore.training.split import split_frame


def frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    times = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.repeat(np.arange(n // 20) * 14, 20), unit="D")
    return pd.DataFrame({"t": times, "y": rng.binomial(1, 0.2, n), "x": rng.normal(size=n)})


def test_time_split_windows_are_ordered_and_keep_snapshots_whole():
    data = frame()
    split = split_frame(data, SplitConfig(purge=False), label_column="y", time_column="t")
    assert split.method == "time", "a time column means an out-of-time split"
    assert split.train["t"].max() < split.calibration["t"].min(), "calibration comes after training"
    assert split.calibration["t"].max() < split.test["t"].min(), "test comes after calibration"
    assert len(split.train) + len(split.calibration) + len(split.test) == len(data), "no row lost without purging"
    for window in split.windows().values():
        assert window["t"].value_counts().eq(20).all(), "rows of one snapshot stay together"


def test_purge_drops_rows_whose_label_window_reaches_the_next_window():
    data = frame()
    split = split_frame(data, SplitConfig(), label_column="y", time_column="t", horizon_days=30)
    horizon = pd.Timedelta(days=30)
    assert (split.train["t"] + horizon <= split.calibration["t"].min()).all(), "train labels end before calibration"
    assert (split.calibration["t"] + horizon <= split.test["t"].min()).all(), "calibration labels end before test"
    kept = len(split.train) + len(split.calibration) + len(split.test)
    assert kept + split.purged_rows == len(data), "every row is kept or counted as purged"
    assert split.purged_rows > 0, "a 30-day horizon with 14-day snapshots must purge something"


def test_random_split_is_stratified_when_there_is_no_time():
    data = frame(2000, seed=1)
    split = split_frame(data, SplitConfig(), label_column="y", time_column=None, seed=3)
    assert split.method == "random", "without a time column the split is random"
    rates = [w["y"].mean() for w in split.windows().values()]
    assert max(rates) - min(rates) < 0.02, "stratification keeps the conversion rate in every window"
    assert sorted(pd.concat(split.windows().values()).index) == list(data.index), "windows partition the rows"


def test_row_order_split_follows_the_file_order():
    data = frame().drop(columns="t")
    split = split_frame(data, SplitConfig(method="row_order"), label_column="y", time_column=None)
    assert split.train.index.max() < split.calibration.index.min() < split.test.index.min(), "earlier rows train"


def test_a_window_without_conversions_is_an_error():
    data = frame()
    data.loc[data.index[-120:], "y"] = 0  # the last six snapshots: the whole test window
    with pytest.raises(InputError, match="test window"):
        split_frame(data, SplitConfig(purge=False), label_column="y", time_column="t")
