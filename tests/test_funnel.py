"""Funnel analytics (`leadscore.monitoring.funnel`, `leadscore funnel`) and the synthetic funnel's SAL rejections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli

from leadscore.config import FunnelConfig, parse_config
from leadscore.errors import ConfigError, InputError
from leadscore.features import columnar, events
from leadscore.features.events import EventFeatureSpec, EventLog, EventLogLayout
from leadscore.monitoring.funnel import (
    ALL,
    MISSING,
    episodes,
    funnel_table,
    score_bands,
)
from leadscore.synthetic.funnel import (
    SAL_REJECTED,
    generate_funnel,
    generate_to_dir,
    true_sal_probability,
)

N = 2400  # more than two blocks of 1,000 leads, so chunking is exercised
SEED = 11
DAY = pd.Timedelta(days=1)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def outcomes(*rows: tuple[str, str, str]) -> pd.DataFrame:
    """An outcomes log from (lead id, stage, time) rows."""
    return pd.DataFrame(rows, columns=["lead_id", "stage", "timestamp"]).assign(
        timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True))


def step(table: pd.DataFrame, from_stage: str, **segment) -> pd.Series:
    rows = table[table["from_stage"] == from_stage]
    for column, value in segment.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, f"expected one {from_stage} row for {segment}, got {len(rows)}"
    return rows.iloc[0]


@pytest.fixture(scope="module")
def plain():
    return generate_funnel(N, SEED)


@pytest.fixture(scope="module")
def rejecting():
    """A synthetic funnel with SAL rejections written."""
    return generate_funnel(N, SEED, sal_rejections=True)


@pytest.fixture(scope="module")
def recycled():
    """A synthetic funnel with SAL rejections and rejected leads that come back for a second episode."""
    return generate_funnel(N, SEED, recycling=True)


# The synthetic funnel's rejections and recycled leads ---------------------------------------------------


@pytest.mark.parametrize("option", ["rejecting", "recycled"])
def test_the_options_add_rows_and_change_nothing_else(plain, option, request):
    """Given the same seed, when rejections (and second episodes) are written, then every other row of every
    table is unchanged, in its order."""
    funnel = request.getfixturevalue(option)
    for name in ("leads", "activities", "truth_leads"):
        pd.testing.assert_frame_equal(getattr(funnel, name), getattr(plain, name), obj=name)
    assert SAL_REJECTED not in set(plain.outcomes["stage"]), "rejections written without being asked for"
    known = funnel.outcomes.merge(plain.outcomes.assign(known=True), how="left", on=list(plain.outcomes.columns))
    known = known["known"].notna().to_numpy()
    pd.testing.assert_frame_equal(funnel.outcomes[known].reset_index(drop=True), plain.outcomes,
                                  obj="the rows written without the option")
    added = funnel.outcomes[~known]
    assert (added["stage"] == SAL_REJECTED).any(), "no rejection was written"
    assert set(added["stage"]) <= {"MQL", "SAL", SAL_REJECTED}, f"unexpected added stages {set(added['stage'])}"
    for key in ("n_activities", "n_converted"):
        assert funnel.truth["realised"][key] == plain.truth["realised"][key], f"realised {key} differs"


def test_second_episodes_do_not_depend_on_chunking(recycled, tmp_path):
    """Given chunks smaller than a block, when the funnel is written, then it equals the one made in memory."""
    paths = generate_to_dir(N, SEED, tmp_path, chunk_size=700, recycling=True)
    for name, stem in (("leads", "leads"), ("outcomes", "outcomes"), ("truth_leads", "ground_truth_leads")):
        pd.testing.assert_frame_equal(pd.read_parquet(paths[stem]), getattr(recycled, name), obj=name)


def test_a_second_episode_follows_a_rejection(recycled):
    mqls = recycled.outcomes[recycled.outcomes["stage"] == "MQL"].groupby("lead_id")["timestamp"]
    back = mqls.max()[mqls.size() > 1]
    assert len(back) == recycled.truth["realised"]["n_recycled"] > 0
    assert (mqls.size() <= 2).all(), "a lead recycled more than once"
    rejected = recycled.outcomes[recycled.outcomes["stage"] == SAL_REJECTED].groupby("lead_id")["timestamp"].min()
    gap = back - rejected.reindex(back.index)
    assert (gap >= pd.Timedelta(days=recycled.truth["recycle_after_days"])).all(), "back too soon after the rejection"


def test_rejection_is_a_decision_after_mql_and_never_with_sal(rejecting):
    wide = rejecting.outcomes.pivot(index="lead_id", columns="stage", values="timestamp")
    rejected = wide[SAL_REJECTED].notna()
    assert wide.loc[rejected, "MQL"].notna().all(), "a rejection without an MQL"
    assert wide.loc[rejected, "SAL"].isna().all(), "a lead both accepted and rejected"
    assert (wide.loc[rejected, SAL_REJECTED] > wide.loc[rejected, "MQL"]).all(), "rejected before it was an MQL"
    ends = wide.loc[rejected, ["won", "lost"]].min(axis=1)
    assert (wide.loc[rejected, SAL_REJECTED] <= ends).all(), "rejected after the lead left the funnel"


def test_both_builders_ignore_rejections_and_second_episodes(recycled, plain):
    """Given the same funnel with and without rejections and second episodes, then both builders give the same
    rows."""
    cfg = parse_config({"data": {"form": "event_log", "path": "unused"},
                        "event_log": {"snapshots": {"first": "2025-03-01", "last": "2027-01-01", "every_days": 56}}}
                       ).event_log
    spec = EventFeatureSpec(layout=EventLogLayout(), terminal_stages=("won", "lost"), profile_columns=("seniority",),
                            signals={}, half_life_days=30.0)
    for build in (events.training_rows, columnar.training_rows):
        with_rejections = build(EventLog(recycled.leads, recycled.activities, recycled.outcomes), spec, cfg)
        without = build(EventLog(plain.leads, plain.activities, plain.outcomes), spec, cfg)
        pd.testing.assert_frame_equal(with_rejections, without, obj=build.__module__)


# The funnel against the generator's truth ----------------------------------------------------------------


@pytest.mark.parametrize("option", ["rejecting", "recycled"])
def test_acceptance_rate_interval_covers_the_true_mean_probability(option, request):
    funnel = request.getfixturevalue(option)
    accept = step(funnel_table(funnel.outcomes), "MQL")
    decided = episodes(funnel.outcomes, FunnelConfig())
    decided = decided.loc[decided["SAL"].notna() | decided["rejected_at"].notna(), "lead_id"]
    p_lead = true_sal_probability(funnel.truth_leads, funnel.truth).set_axis(funnel.truth_leads["lead_id"])
    p_true = decided.map(p_lead).mean()  # per decided episode: a recycled lead counts twice
    assert accept["ci_low"] <= p_true <= accept["ci_high"], (
        f"true mean acceptance {p_true:.3f} outside [{accept['ci_low']:.3f}, {accept['ci_high']:.3f}]")
    assert accept["eligible"] == accept["converted"] + accept["rejected"], "decided is not accepted + rejected"


@pytest.mark.parametrize("option", ["rejecting", "recycled"])
def test_counts_equal_the_generators_decisions(option, request):
    funnel = request.getfixturevalue(option)
    accept = step(funnel_table(funnel.outcomes), "MQL")
    realised = funnel.truth["realised"]
    assert accept["rejected"] == realised["n_sal_rejected"], "rejections counted differ from the generator's"
    assert accept["converted"] == realised["n_sal_accepted"], "acceptances counted differ from the generator's"
    mql_leads = funnel.outcomes.loc[funnel.outcomes["stage"] == "MQL", "lead_id"].nunique()
    assert accept["recycled"] == realised["n_recycled"], "second episodes counted differ from the generator's"
    assert accept["episodes"] == mql_leads + realised["n_recycled"], "episodes are not MQL leads + second episodes"


def test_segments_add_up_to_all(rejecting):
    segments = rejecting.leads.set_index("lead_id")["company_size"]  # a few percent missing
    table = funnel_table(rejecting.outcomes, segments=segments, segment_name="company_size")
    assert set(table["company_size"]) >= {ALL, MISSING}
    parts = table[table["company_size"] != ALL].groupby("from_stage")[["episodes", "eligible", "converted"]].sum()
    whole = table[table["company_size"] == ALL].set_index("from_stage")[["episodes", "eligible", "converted"]]
    pd.testing.assert_frame_equal(parts.sort_index(), whole.sort_index(), check_names=False)


# Hand-made outcomes ---------------------------------------------------------------------------------------


def test_medians_and_counts_on_a_hand_made_log():
    log = outcomes(
        ("A", "MQL", "2025-01-01"), ("A", "SAL", "2025-01-03"), ("A", "SQL", "2025-01-13"), ("A", "won", "2025-02-12"),
        ("B", "MQL", "2025-01-01"), ("B", "SAL", "2025-01-05"), ("B", "lost", "2025-03-01"),
        ("C", "MQL", "2025-01-01"), ("C", "SAL", "2025-01-07"), ("C", "SQL", "2025-01-08"),
        ("D", "MQL", "2025-01-02"), ("D", "SAL_rejected", "2025-01-04"),
        ("E", "MQL", "2025-01-02"), ("E", "lost", "2025-04-01"),  # nobody worked on it
        ("F", "won", "2025-01-20"),  # never an MQL: no episode
    )
    table = funnel_table(log, as_of=ts("2025-06-01"))
    mql, sal, sql = step(table, "MQL"), step(table, "SAL"), step(table, "SQL")
    assert (mql["episodes"], mql["converted"], mql["rejected"], mql["not_worked"], mql["eligible"]) == (5, 3, 1, 1, 4)
    assert mql["median_days"] == 4.0 and mql["median_days_n"] == 3, "MQL -> SAL days are 2, 4, 6"
    assert (sal["episodes"], sal["converted"], sal["eligible"]) == (3, 2, 3)
    assert sal["median_days"] == 5.5 and sal["median_days_n"] == 2, "SAL -> SQL days are 10 and 1"
    assert (sql["episodes"], sql["converted"], sql["eligible"]) == (2, 1, 2)
    assert sql["median_days"] == 30.0
    assert mql["rate"] == pytest.approx(3 / 4)
    assert mql["ci_low"] < mql["rate"] < mql["ci_high"]


def test_recent_episodes_are_counted_apart():
    log = outcomes(
        ("A", "MQL", "2025-01-01"), ("A", "SAL", "2025-01-02"),
        ("B", "MQL", "2025-05-25"),  # 7 days before the export, no decision yet: too recent
        ("C", "MQL", "2025-05-26"), ("C", "SAL_rejected", "2025-05-27"),  # recent, but decided
        ("D", "MQL", "2025-03-01"),  # old and never worked
    )
    table = funnel_table(log, FunnelConfig(too_recent_days=30), as_of=ts("2025-06-01"))
    mql = step(table, "MQL")
    assert (mql["too_recent"], mql["not_worked"], mql["rejected"], mql["eligible"]) == (1, 1, 1, 2)
    sal = step(table, "SAL")
    assert sal["too_recent"] == 0 and sal["eligible"] == 1, "an old SAL without SQL counts as not converted"
    later = step(funnel_table(log, FunnelConfig(too_recent_days=30), as_of=ts("2025-12-01")), "MQL")
    assert later["too_recent"] == 0 and later["not_worked"] == 2, "once old enough, an undecided MQL was never worked"


def test_recycled_leads_count_once_per_episode():
    log = outcomes(
        ("A", "MQL", "2025-01-01"), ("A", "SAL_rejected", "2025-01-03"),
        ("A", "MQL", "2025-03-01"), ("A", "SAL", "2025-03-02"),  # back after a rejection: episode 2
        ("B", "MQL", "2025-01-01"), ("B", "SAL", "2025-01-02"), ("B", "lost", "2025-02-01"),
        ("B", "MQL", "2025-04-01"), ("B", "SAL", "2025-04-03"), ("B", "SQL", "2025-04-04"),  # after lost: episode 2
        ("C", "MQL", "2025-01-01"), ("C", "MQL", "2025-01-10"), ("C", "SAL", "2025-01-11"),  # repeated: one episode
        ("D", "MQL", "2025-01-05"), ("D", "recycled", "2025-02-01"), ("D", "MQL", "2025-02-01"),  # same moment
    )
    table = funnel_table(log, as_of=ts("2025-12-01"))
    mql = step(table, "MQL")
    assert (mql["episodes"], mql["recycled"]) == (7, 3), "A, B and D come back once each; C's second MQL is a repeat"
    assert (mql["converted"], mql["rejected"], mql["not_worked"]) == (4, 1, 2)
    # days to SAL: A 1 (from its second MQL), B 1 and 2, C 10 (from the first MQL of its one episode)
    assert (mql["median_days"], mql["median_days_n"]) == (1.5, 4)
    sal = step(table, "SAL")
    assert (sal["episodes"], sal["recycled"], sal["converted"]) == (4, 2, 1)
    per_lead = episodes(log, FunnelConfig()).groupby("lead_id")["episode"].max().to_dict()
    assert per_lead == {"A": 2, "B": 2, "C": 1, "D": 2}


def test_unknown_stage_names_list_the_known_ones():
    log = outcomes(("A", "MQL", "2025-01-01"), ("A", "Won", "2025-02-01"))
    with pytest.raises(InputError, match=r"'SAL'.*stages seen: 'MQL', 'Won'"):
        funnel_table(log)
    with pytest.raises(ConfigError, match="one role only"):
        parse_config({"data": {"form": "event_log", "path": "x"}, "event_log": {"snapshots": {
            "first": "2025-01-01", "last": "2025-02-01"}}, "funnel": {"stages": ["MQL", "lost"]}})


def test_missing_columns_are_named():
    with pytest.raises(InputError, match="stage"):
        funnel_table(pd.DataFrame({"lead_id": ["A"], "timestamp": [ts("2025-01-01")]}))


def test_score_bands():
    bands = score_bands(pd.Series([0.0, 19.9, 20.0, 55.5, 100.0, np.nan]))
    assert bands.tolist()[:5] == ["0-20", "0-20", "0-20", "40-60", "80-100"]
    assert pd.isna(bands.iloc[5])


# The command line ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("funnel_log")
    generate_to_dir(1500, SEED, out, fmt="csv", sal_rejections=True)
    return out


def test_cli_prints_and_writes_the_table(folder, tmp_path):
    code, out, err = run_cli("funnel", "--input", folder, "--by", "seniority", "--out", tmp_path / "funnel.csv")
    assert code == 0, err
    assert "MQL" in out and "SAL" in out
    written = pd.read_csv(tmp_path / "funnel.csv")
    assert {"seniority", "rate", "ci_low", "ci_high", "median_days", "rejected"} <= set(written.columns)
    assert ALL in set(written["seniority"])
    code, _, err = run_cli("funnel", "--input", folder, "--out", tmp_path / "funnel.md")
    assert code == 0, err
    assert (tmp_path / "funnel.md").read_text().startswith("| from_stage |")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["funnel.csv", "funnel.md"], "a temporary file was left"


def test_cli_by_score_band(folder, tmp_path):
    leads = pd.read_csv(folder / "leads.csv")
    scores = pd.DataFrame({"lead_id": leads["lead_id"], "score": np.linspace(0, 100, len(leads))})
    scores.to_csv(tmp_path / "scores.csv", index=False)
    code, out, err = run_cli("funnel", "--input", folder, "--scores", tmp_path / "scores.csv")
    assert code == 0, err
    assert "score_band" in out and "80-100" in out


def test_cli_errors_exit_non_zero(folder, tmp_path):
    code, _, err = run_cli("funnel", "--input", folder, "--by", "no_such_column")
    assert code == InputError.exit_code and "no_such_column" in err
    code, _, err = run_cli("funnel", "--input", folder, "--stages", "MQL,Accepted,won")
    assert code == InputError.exit_code and "'Accepted'" in err and "'SAL_rejected'" in err
    code, _, err = run_cli("funnel", "--input", folder, "--out", tmp_path / "funnel.xlsx")
    assert code != 0 and ".csv" in err
    assert not any(tmp_path.iterdir())
