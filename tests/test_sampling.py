"""Training on a sample of whole leads beyond `model.max_rows` (`leadscore.training.sampling`).

Given a training table larger than `model.max_rows`, when it is loaded, then it holds every row of a seeded,
uniform sample of leads (whole accounts with `accounts`) and no row of another, exactly the rows the whole table
has for them, drawn before any feature is built; the sample is recorded with the run, the model card and the
command line's summary. Below the bound nothing changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import build_config, demo_config, make_snapshot, snapshot_config

from leadscore.cli import _training_summary
from leadscore.errors import InputError
from leadscore.features import events
from leadscore.features.events import (
    EventLogLayout,
    load_event_log,
    rows_per_lead,
    snapshot_times,
)
from leadscore.reporting.model_card import model_card
from leadscore.synthetic.funnel import generate_funnel, write_funnel
from leadscore.training.dataset import load_training_table
from leadscore.training.pipeline import fit_table
from leadscore.training.sampling import draw, kept_ids


def _ids(n: int) -> pd.Series:
    return pd.Series([f"L{i:07d}" for i in range(n)])


def test_whether_an_id_is_kept_depends_on_the_id_and_the_seed_alone():
    ids = _ids(20_000)
    kept = kept_ids(ids, 0.3, seed=7)
    # Not on the other ids, their order or their count,
    shuffled = ids.sample(frac=1, random_state=1)
    assert np.array_equal(kept_ids(shuffled, 0.3, seed=7), kept[shuffled.index.to_numpy()])
    assert np.array_equal(kept_ids(ids[:500], 0.3, seed=7), kept[:500])
    # a larger fraction keeps every id a smaller one keeps,
    assert not (kept & ~kept_ids(ids, 0.5, seed=7)).any()
    # and another seed draws another sample.
    assert (kept != kept_ids(ids, 0.3, seed=8)).mean() > 0.2


@pytest.mark.parametrize("fraction", [0.01, 0.25, 0.9])
def test_the_share_kept_is_the_fraction_within_its_binomial_noise(fraction):
    n = 100_000
    share = kept_ids(_ids(n), fraction, seed=0).mean()
    assert abs(share - fraction) < 4 * np.sqrt(fraction * (1 - fraction) / n)


def test_nothing_is_sampled_within_the_bound():
    rows = pd.Series([3, 2, 5], index=["a", "b", "c"])
    assert draw(rows, "lead_id", 10, seed=0) is None and draw(rows, "lead_id", None, seed=0) is None
    sample = draw(rows, "lead_id", 5, seed=0)
    assert sample.fraction == 0.5 and sample.weight == 2 and sample.rows_total == 10 and sample.units_total == 3


@pytest.fixture(scope="module")
def event_log(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sampling") / "history"
    write_funnel(generate_funnel(3000, 5, accounts=True), folder)
    return folder


def _config(folder, max_rows, **overrides):
    raw = demo_config(folder, **overrides)
    raw["model"]["max_rows"] = max_rows
    return build_config(raw)


def test_each_lead_gives_the_rows_counted_before_any_feature_is_built(event_log):
    # Given the whole training table of an event log,
    cfg = _config(event_log, None)
    whole = load_training_table(cfg)
    assert whole.sample is None
    # when each lead's rows are counted from its creation and closing times alone,
    log = load_event_log(event_log, EventLogLayout.from_config(cfg))
    counted = rows_per_lead(log.leads, log.outcomes, EventLogLayout.from_config(cfg), cfg.event_log.terminal_stages,
                            snapshot_times(cfg.event_log))
    # then they are exactly the rows the features give it.
    built = whole.frame.groupby("lead_id").size()
    assert counted.sum() == len(whole.frame)
    assert counted[counted > 0].sort_index().equals(built.sort_index().rename("rows").astype(counted.dtype))


@pytest.mark.parametrize("chunk_rows", [None, 7_000], ids=["one chunk", "chunks of 7,000 activities"])
def test_a_sampled_event_log_gives_exactly_the_kept_leads_rows(event_log, chunk_rows, monkeypatch):
    if chunk_rows:
        monkeypatch.setattr(events, "ACTIVITY_CHUNK_ROWS", chunk_rows)
    whole = load_training_table(_config(event_log, None))
    # When the bound is a third of the rows,
    table = load_training_table(_config(event_log, len(whole.frame) // 3))
    sample = table.sample
    # then about a third of the rows remain, every one of a kept lead, equal to the whole table's rows of those leads,
    assert sample is not None and sample.unit == "lead_id" and sample.rows_total == len(whole.frame)
    assert len(table.frame) == sample.rows_kept and 0.25 < len(table.frame) / len(whole.frame) < 0.42
    kept = kept_ids(whole.frame["lead_id"], sample.fraction, seed=7)
    pd.testing.assert_frame_equal(table.frame, whole.frame[kept].reset_index(drop=True))
    assert sample.units_kept == table.frame["lead_id"].nunique()
    # and the conversion rate is the whole table's within noise (the sample is uniform: no weights are needed).
    rate, whole_rate = table.frame["converted"].mean(), whole.frame["converted"].mean()
    assert abs(rate - whole_rate) < 4 * np.sqrt(whole_rate * (1 - whole_rate) / len(table.frame))


def test_with_accounts_whole_accounts_are_kept(event_log):
    accounts = {"column": "account_id", "role_column": "buying_role", "table": "accounts"}
    whole = load_training_table(_config(event_log, None, accounts=accounts))
    table = load_training_table(_config(event_log, len(whole.frame) // 2, accounts=accounts))
    assert table.sample.unit == "account_id"
    kept_accounts = set(table.frame["account_id"])
    of_kept = whole.frame[whole.frame["account_id"].isin(kept_accounts)]
    assert len(of_kept) == len(table.frame), "every row of every kept account's leads, whichever lead it is"
    assert table.frame.groupby("account_id")["lead_id"].nunique().sum() == \
        of_kept.groupby("account_id")["lead_id"].nunique().sum()


def test_a_sampled_snapshot_table_is_recorded_with_the_run_the_card_and_the_summary(tmp_path):
    make_snapshot(4000).to_csv(tmp_path / "train.csv", index=False)
    raw = snapshot_config(tmp_path / "train.csv", id_column="lead_id")
    raw["model"] = {**raw["model"], "candidates": ["logistic"], "max_rows": 2000}
    cfg = build_config(raw)
    table = load_training_table(cfg)
    assert table.sample is not None and table.sample.rows_kept == len(table.frame) < 4000
    assert set(table.frame["lead_id"]) == set(make_snapshot(4000)["lead_id"][
        kept_ids(make_snapshot(4000)["lead_id"], table.sample.fraction, cfg.model.seed)])

    result = fit_table(table, cfg)
    assert result.run_tags["training.sample"] == table.sample.text and "model.max_rows is 2,000" in table.sample.text
    assert result.run_metrics["sample_fraction"] == pytest.approx(2000 / 4000)
    assert result.run_metrics["sample_rows"] == len(table.frame)
    assert f"Learned from {table.sample.text}" in model_card(result, cfg)
    assert f"sample: {table.sample.text}" in _training_summary(result)


@pytest.fixture(scope="module")
def csv_log(tmp_path_factory):
    """A small funnel written as CSV files, whose activities the tests change."""
    folder = tmp_path_factory.mktemp("sampling_csv") / "history"
    write_funnel(generate_funnel(1500, 6), folder, fmt="csv")
    return folder


def _copy_with_activities(source, target, change):
    """`source`'s event log in `target`, its activities table changed by `change(frame) -> frame`."""
    target.mkdir()
    for path in source.iterdir():
        if path.name != "activities.csv":
            (target / path.name).write_bytes(path.read_bytes())
    change(pd.read_csv(source / "activities.csv", dtype=str, keep_default_na=False)).to_csv(
        target / "activities.csv", index=False)
    return target


def test_csv_activities_read_in_chunks_give_the_same_rows(csv_log, monkeypatch):
    whole = load_training_table(_config(csv_log, None))
    monkeypatch.setattr(events, "ACTIVITY_CHUNK_ROWS", 5_000)
    table = load_training_table(_config(csv_log, len(whole.frame) // 2))
    kept = kept_ids(whole.frame["lead_id"], table.sample.fraction, seed=7)
    pd.testing.assert_frame_equal(table.frame, whole.frame[kept].reset_index(drop=True))


def _with_one_activity_changed(csv_log, tmp_path, monkeypatch, timestamp: str) -> tuple:
    """`csv_log` with the timestamp of one activity set to `timestamp`: an activity past the first two chunks of
    5,000 (the chunk size set for the test), of a lead that a sample of half the rows leaves out. Returns the
    folder, that bound on the rows and the activity's 0-based row."""
    whole_rows = len(load_training_table(_config(csv_log, None)).frame)
    activities = pd.read_csv(csv_log / "activities.csv", dtype=str)
    out = ~kept_ids(activities["lead_id"], (whole_rows // 2) / whole_rows, seed=7)
    row = int(np.flatnonzero(out & (np.arange(len(activities)) > 12_000))[0])

    def change(frame):
        frame.loc[row, "timestamp"] = timestamp
        return frame

    monkeypatch.setattr(events, "ACTIVITY_CHUNK_ROWS", 5_000)
    return _copy_with_activities(csv_log, tmp_path / "history", change), whole_rows // 2, row


def test_a_bad_activity_of_a_lead_outside_the_sample_is_still_an_error_naming_its_row(csv_log, tmp_path, monkeypatch):
    # Given an activity without a timestamp, in the third chunk, of a lead the sample would leave out,
    folder, max_rows, row = _with_one_activity_changed(csv_log, tmp_path, monkeypatch, "")
    # when training reads the activities chunk by chunk for a sample,
    with pytest.raises(InputError) as caught:
        load_training_table(_config(folder, max_rows))
    # then it stops naming the column and the row of the whole table (1-based), never a value.
    assert caught.value.column == "timestamp" and caught.value.rows == [row + 1]


def test_late_activities_of_leads_outside_the_sample_are_refused_or_left_out(csv_log, tmp_path, monkeypatch):
    folder, max_rows, row = _with_one_activity_changed(csv_log, tmp_path, monkeypatch, "2150-01-01T00:00:00Z")
    # Refused, with the row, as when every lead is read,
    with pytest.raises(InputError) as caught:
        load_training_table(_config(folder, max_rows))
    assert "1 record(s) are dated after the export time" in str(caught.value) and caught.value.rows == [row + 1]
    with pytest.raises(InputError) as unsampled:
        load_training_table(_config(folder, None))
    assert unsampled.value.rows == caught.value.rows and str(unsampled.value) == str(caught.value)
    # or left out when the config says so: the sample's rows are those of the untouched log.
    dropping = _config(folder, max_rows, event_log={"drop_events_after_export": True})
    expected = load_training_table(_config(csv_log, max_rows))
    pd.testing.assert_frame_equal(load_training_table(dropping).frame, expected.frame)
