"""Train / calibration / test windows: out of time when the data allows it.

A time split cuts at snapshot boundaries, so rows with the same time always fall in one window.
With `purge`, a row whose label window (time + horizon) reaches past the start of the next window is
dropped, so no training label depends on what happens during the calibration or test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from leadscore.config import SplitConfig
from leadscore.errors import InputError

WINDOWS = ("train", "calibration", "test")
# Both classes in every window; a few of each where something is fitted: the calibration method is chosen
# by 5-fold cross-validation inside the calibration window, which cannot cut fewer rows of a class.
MIN_ROWS_PER_CLASS = {"train": 5, "calibration": 5, "test": 1}


@dataclass(frozen=True)
class Split:
    """The three windows and how they were made."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame
    method: str
    purged_rows: int
    boundaries: dict[str, str]

    def windows(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "calibration": self.calibration, "test": self.test}


def resolve_method(cfg: SplitConfig, time_column: str | None) -> str:
    """`auto` becomes `time` when there is a time column and `random` otherwise."""
    if cfg.method == "auto":
        return "time" if time_column else "random"
    if cfg.method == "time" and not time_column:
        raise InputError("split.method is 'time' but the data has no time column",
                         fix="set data.time_column, or use split.method row_order or random")
    return cfg.method


def split_frame(
    frame: pd.DataFrame, cfg: SplitConfig, *, label_column: str, time_column: str | None,
    horizon_days: float | None = None, seed: int = 0,
) -> Split:
    """Cut `frame` into windows by time, by row order or at random (stratified)."""
    method = resolve_method(cfg, time_column)
    if method == "random":
        split = _random_split(frame, cfg, label_column, seed)
    else:
        order = frame[time_column] if method == "time" else pd.Series(np.arange(len(frame)), index=frame.index)
        split = _ordered_split(frame, cfg, order, method, horizon_days if method == "time" and cfg.purge else None)
    for name, window in split.windows().items():
        counts = window[label_column].value_counts()
        rarer = int(counts.min()) if len(counts) == 2 else 0
        if rarer < MIN_ROWS_PER_CLASS[name]:
            raise InputError(
                f"the {name} window has {len(window)} rows, {rarer} of them in the rarer label class; it needs at "
                f"least {MIN_ROWS_PER_CLASS[name]} converted and {MIN_ROWS_PER_CLASS[name]} unconverted leads",
                column=label_column,
                fix="add history, or change the split fractions (and for event logs the snapshot schedule)",
            )
    return split


def _random_split(frame, cfg, label_column, seed) -> Split:
    rest_fraction = cfg.calibration_fraction + cfg.test_fraction
    try:
        train, rest = train_test_split(frame, test_size=rest_fraction, stratify=frame[label_column], random_state=seed)
        calibration, test = train_test_split(
            rest, test_size=cfg.test_fraction / rest_fraction, stratify=rest[label_column], random_state=seed
        )
    except ValueError as exc:
        raise InputError(f"cannot split the data: {exc}", column=label_column, fix="add rows of both classes") from None
    return Split(train.sort_index(), calibration.sort_index(), test.sort_index(), "random", 0, {})


def _ordered_split(frame, cfg, order: pd.Series, method: str, horizon_days: float | None) -> Split:
    ranked = order.sort_values(kind="stable")
    n = len(ranked)
    cut_calibration = ranked.iloc[min(int(n * cfg.train_fraction), n - 1)]
    cut_test = ranked.iloc[min(int(n * (cfg.train_fraction + cfg.calibration_fraction)), n - 1)]
    in_train = order < cut_calibration
    in_test = order >= cut_test
    in_calibration = ~in_train & ~in_test
    purged = 0
    if horizon_days is not None:
        horizon = pd.Timedelta(days=horizon_days)
        leaks_train = in_train & (order + horizon > cut_calibration)
        leaks_calibration = in_calibration & (order + horizon > cut_test)
        purged = int(leaks_train.sum() + leaks_calibration.sum())
        in_train &= ~leaks_train
        in_calibration &= ~leaks_calibration
    boundaries = {"calibration_start": str(cut_calibration), "test_start": str(cut_test)}
    return Split(frame[in_train], frame[in_calibration], frame[in_test], method, purged, boundaries)
