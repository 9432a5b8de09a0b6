"""Tests of the synthetic funnel: reproducibility, schema, and that the ground truth shows in the data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadscore.synthetic import funnel as synthetic
from leadscore.synthetic.funnel import (
    LIFE_WEEKS,
    SyntheticFunnel,
    generate_funnel,
    generate_to_dir,
    true_components,
    write_funnel,
)

N = 2900  # not a whole number of blocks, so a partial block is covered
SEED = 7
TABLES = {"leads": "leads", "activities": "activities", "outcomes": "outcomes", "truth_leads": "ground_truth_leads"}
INTENT_TYPES = {"demo_request", "quote_request", "trial_signup"}
LIFE = pd.Timedelta(weeks=LIFE_WEEKS)


@pytest.fixture(scope="module")
def funnel() -> SyntheticFunnel:
    return generate_funnel(N, SEED)


@pytest.fixture(scope="module")
def stages(funnel: SyntheticFunnel) -> pd.DataFrame:
    """One row per lead, one timestamp column per stage reached."""
    wide = funnel.outcomes.pivot(index="lead_id", columns="stage", values="timestamp")
    return wide.reindex(funnel.leads["lead_id"])


def assert_same_funnel(actual: SyntheticFunnel, expected: SyntheticFunnel) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(actual, name), getattr(expected, name), obj=name)
    assert actual.truth == expected.truth, "truth dicts differ"


def read_parquet_tables(paths: dict) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(paths[stem]) for name, stem in TABLES.items()}


# Reproducibility ------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames(funnel):
    assert_same_funnel(generate_funnel(N, SEED), funnel)


def test_different_seeds_give_different_data(funnel):
    other = generate_funnel(N, SEED + 1)
    assert not other.leads.equals(funnel.leads), "leads identical for different seeds"
    assert not other.activities.equals(funnel.activities), "activities identical for different seeds"
    assert not other.truth_leads["true_fit"].equals(funnel.truth_leads["true_fit"]), "truth same for different seeds"


def test_streamed_parquet_equals_in_memory_funnel(funnel, tmp_path):
    streamed = generate_to_dir(N, SEED, tmp_path / "streamed", chunk_size=700)
    whole = write_funnel(funnel, tmp_path / "whole")
    assert set(streamed) == set(whole) == {*TABLES.values(), "ground_truth"}, f"unexpected outputs {set(streamed)}"
    for source in (streamed, whole):
        frames = read_parquet_tables(source)
        for name, frame in frames.items():
            pd.testing.assert_frame_equal(frame, getattr(funnel, name), obj=f"{name} read back")
        truth = json.loads(source["ground_truth"].read_text())
        assert truth == json.loads(json.dumps(funnel.truth)), "ground_truth.json differs from funnel.truth"


def test_splitting_activities_into_pieces_changes_nothing(funnel, tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "_ACTIVITY_PIECE", 5_000)
    paths = generate_to_dir(N, SEED, tmp_path, chunk_size=N)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["activities"]), funnel.activities, obj="activities")
    assert_same_funnel(generate_funnel(N, SEED), funnel)


def test_streamed_csv_is_byte_identical_to_written_funnel(funnel, tmp_path):
    streamed = generate_to_dir(N, SEED, tmp_path / "streamed", fmt="csv", chunk_size=1200)
    whole = write_funnel(funnel, tmp_path / "whole", fmt="csv")
    for stem in streamed:
        assert streamed[stem].read_bytes() == whole[stem].read_bytes(), f"{stem} differs between write paths"
    leads = pd.read_csv(streamed["leads"])
    assert leads["lead_id"].tolist() == funnel.leads["lead_id"].tolist(), "CSV lead ids do not round-trip"


def test_writing_leaves_only_the_final_files(funnel, tmp_path):
    paths = write_funnel(funnel, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values()), (
        f"temporary files left behind: {sorted(p.name for p in tmp_path.iterdir())}"
    )


def test_bad_format_is_rejected(funnel, tmp_path):
    with pytest.raises(ValueError, match="fmt"):
        write_funnel(funnel, tmp_path, fmt="xlsx")
    assert not any(tmp_path.iterdir()), "a rejected format still wrote files"


# Schema ---------------------------------------------------------------------------------------


def test_columns_and_dtypes(funnel):
    expected = {
        "leads": ["lead_id", "created_at", "first_name", "last_name", "email", "phone", "job_title", "seniority",
                  "department", "company_size", "industry", "country", "lead_source", "utm_campaign"],
        "activities": ["lead_id", "timestamp", "activity_type", "page", "channel"],
        "outcomes": ["lead_id", "stage", "timestamp"],
        "truth_leads": ["lead_id", "true_fit", "interest", "in_market", "decision_at", "converted_at",
                        "p_convert_life"],
    }
    for name, columns in expected.items():
        frame = getattr(funnel, name)
        assert list(frame.columns) == columns, f"{name} columns are {list(frame.columns)}"
        for column in frame.columns:
            dtype = frame[column].dtype
            assert not isinstance(dtype, pd.CategoricalDtype), f"{name}.{column} is categorical"
            if column.endswith("_at") or column == "timestamp":
                assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", f"{name}.{column}: {dtype}"
    assert funnel.truth_leads["in_market"].dtype == bool, "in_market is not boolean"


def test_leads_are_unique_plausible_and_spread_over_the_window(funnel):
    leads = funnel.leads
    assert leads["lead_id"].is_unique, "lead ids repeat"
    assert leads["lead_id"].str.fullmatch(r"L\d{7}").all(), "lead ids are not like L0000001"
    assert leads["created_at"].is_monotonic_increasing, "lead ids are not in creation order"
    start = pd.Timestamp("2025-01-01", tz="UTC")
    assert leads["created_at"].min() >= start, "a lead is created before start"
    assert leads["created_at"].max() < start + pd.Timedelta(days=730), "a lead is created after the window"
    first_half = (leads["created_at"] < start + pd.Timedelta(days=365)).mean()
    assert 0.45 < first_half < 0.55, f"{first_half:.2f} of leads in the first half year: not uniform"
    assert leads["email"].str.fullmatch(r"[a-z]+\.[a-z]+@[a-z]+\.[a-z]+").all(), "malformed email"
    names_in_email = (leads["first_name"].str.lower() + "." + leads["last_name"].str.lower())
    assert (leads["email"].str.split("@").str[0] == names_in_email).all(), "email not built from the name"
    for column in ("company_size", "industry", "department"):
        share = leads[column].isna().mean()
        assert 0.01 < share < 0.08, f"{column} missing in {share:.3f} of leads, expected a few percent"
    for column in ("lead_id", "created_at", "seniority", "country", "lead_source", "utm_campaign", "job_title"):
        assert leads[column].notna().all(), f"{column} has missing values"


def test_events_lie_within_each_leads_life(funnel):
    acts = funnel.activities.merge(funnel.leads[["lead_id", "created_at"]], on="lead_id", how="left")
    acts = acts.merge(funnel.truth_leads[["lead_id", "converted_at"]], on="lead_id", how="left")
    assert acts["created_at"].notna().all(), "activity of an unknown lead"
    assert (acts["timestamp"] >= acts["created_at"]).all(), "event before its lead was created"
    assert (acts["timestamp"] < acts["created_at"] + LIFE).all(), "event after the lead's life"
    converted = acts["converted_at"].notna()
    assert (acts.loc[converted, "timestamp"] <= acts.loc[converted, "converted_at"]).all(), "event after conversion"


def test_activities_are_sorted_and_well_formed(funnel):
    acts = funnel.activities
    order = acts.sort_values(["timestamp", "lead_id"], kind="stable").index
    assert (order == acts.index).all(), "activities not sorted by (timestamp, lead_id)"
    assert set(acts["activity_type"]) <= {
        "page_view", "email_open", "email_click", "content_download", "webinar_attended", "demo_request",
        "quote_request", "trial_signup"}, f"unknown activity types {set(acts['activity_type'])}"
    is_view = acts["activity_type"] == "page_view"
    assert acts.loc[is_view, "page"].notna().all(), "page view without a page"
    assert acts.loc[~is_view, "page"].isna().all(), "page set on a non page-view"
    assert set(acts["channel"]) <= {"web", "email", "event", "product"}, f"unknown channels {set(acts['channel'])}"


def test_outcomes_follow_the_funnel(funnel):
    rank = {"MQL": 0, "SAL": 1, "SQL": 2, "won": 3, "lost": 3}
    out = funnel.outcomes
    assert set(out["stage"]) <= set(rank), f"unknown stages {set(out['stage'])}"
    out = out.assign(rank=out["stage"].map(rank))
    grouped = out.groupby("lead_id", sort=False)
    assert grouped["rank"].is_monotonic_increasing.all(), "stages out of funnel order"
    assert (grouped["rank"].diff().dropna() > 0).all(), "a stage repeats, or both won and lost"
    assert grouped["timestamp"].is_monotonic_increasing.all(), "stage timestamps decrease"
    terminal = out[out["stage"].isin(["won", "lost"])]
    assert terminal["lead_id"].is_unique, "a lead has more than one terminal stage"
    assert set(terminal["lead_id"]) == set(funnel.leads["lead_id"]), "a lead never leaves the funnel"


def test_won_matches_conversion_and_lost_ends_the_life(funnel, stages):
    truth = funnel.truth_leads.set_index("lead_id")
    created = funnel.leads.set_index("lead_id")["created_at"]
    converted = truth["converted_at"].notna()
    assert (stages["won"].notna() == converted).all(), "won stage and converted_at disagree"
    assert (stages.loc[converted, "won"] == truth.loc[converted, "converted_at"]).all(), "won not at converted_at"
    lost = stages["lost"].notna()
    assert (stages.loc[lost, "lost"] == created[lost] + LIFE).all(), "lost not at the end of the life"
    assert (truth["decision_at"].notna() == truth["in_market"]).all(), "decision_at set for a lead not in market"


def test_truth_is_json_serialisable_and_complete(funnel):
    truth = json.loads(json.dumps(funnel.truth))
    for key in ("intercept", "fit_effects", "engagement_weights", "engagement_half_life_days", "intent_weights",
                "intent_half_life_days", "engagement_coef", "intent_coef", "noise_scale", "driver_effects"):
        assert key in truth, f"truth lacks {key}"
    keys = {"page_view:pricing", "page_view:careers", "demo_request", "email_open"}
    assert keys <= set(truth["engagement_weights"]) | set(truth["intent_weights"]), "activity keys missing"


# Ground truth shows in the data --------------------------------------------------------------


def test_conversion_rate_and_volume_are_sane(funnel):
    rate = funnel.truth_leads["converted_at"].notna().mean()
    assert 0.05 < rate < 0.20, f"conversion rate {rate:.3f} outside a plausible band"
    per_lead = len(funnel.activities) / len(funnel.leads)
    assert 10 <= per_lead <= 40, f"{per_lead:.1f} events per lead"
    realised = funnel.truth["realised"]
    assert realised["n_activities"] == len(funnel.activities), "realised event count is wrong"
    assert realised["n_converted"] == funnel.truth_leads["converted_at"].notna().sum(), "realised conversions wrong"


def test_conversions_agree_with_the_oracle_probability(funnel):
    p = funnel.truth_leads["p_convert_life"]
    converted = funnel.truth_leads["converted_at"].notna()
    expected, sd = p.sum(), np.sqrt((p * (1 - p)).sum())
    assert abs(converted.sum() - expected) < 4 * sd, f"{converted.sum()} conversions, oracle expects {expected:.0f}"
    assert p[converted].mean() > p[~converted].mean(), "converters do not have higher oracle probability"


def test_better_fit_converts_more(funnel):
    truth = funnel.truth_leads
    quintile = pd.qcut(truth["true_fit"].rank(method="first"), 5, labels=False)
    rate = truth["converted_at"].notna().groupby(quintile).mean()
    assert rate.iloc[-1] > rate.iloc[0], f"top fit quintile converts at {rate.iloc[-1]:.3f}, bottom {rate.iloc[0]:.3f}"
    assert truth.loc[truth["in_market"], "converted_at"].notna().mean() > truth.loc[
        ~truth["in_market"], "converted_at"].notna().mean(), "in-market leads do not convert more"


def test_driver_effects_rank_the_true_drivers(funnel):
    effects = funnel.truth["driver_effects"]
    assert effects["utm_campaign"] == 0, "utm_campaign should have no effect"
    for strong in ("seniority", "company_size"):
        for weak in ("country", "lead_source", "utm_campaign"):
            assert effects[strong] > effects[weak], f"{strong} ranked below {weak}"
    assert list(effects.values()) == sorted(effects.values(), reverse=True), "driver_effects not sorted"


def test_intent_events_precede_conversion_more_than_chance(funnel):
    """Converters show intent in the four weeks before converting more often than others at a like age."""
    truth = funnel.truth_leads.merge(funnel.leads[["lead_id", "created_at"]], on="lead_id")
    converted = truth["converted_at"].notna()
    ages = (truth.loc[converted, "converted_at"] - truth.loc[converted, "created_at"]).to_numpy()
    rng = np.random.default_rng(0)
    reference = truth["converted_at"].copy()
    reference[~converted] = truth.loc[~converted, "created_at"] + rng.choice(ages, size=(~converted).sum())
    intent = funnel.activities[funnel.activities["activity_type"].isin(INTENT_TYPES)
                               | (funnel.activities["page"] == "pricing")]
    intent = intent.merge(truth[["lead_id"]].assign(reference=reference), on="lead_id")
    since = intent["reference"] - pd.Timedelta(weeks=4)
    window = (intent["timestamp"] <= intent["reference"]) & (intent["timestamp"] > since)
    with_intent = truth["lead_id"].isin(intent.loc[window, "lead_id"])
    share_converted, share_other = with_intent[converted].mean(), with_intent[~converted].mean()
    assert share_converted > 2 * share_other, (
        f"intent before conversion in {share_converted:.2f} of converters vs {share_other:.2f} of others"
    )


def test_engagement_decays_without_new_events(funnel):
    last = funnel.activities["timestamp"].max()
    half_life = funnel.truth["engagement_half_life_days"]
    early = true_components(funnel.activities, funnel.truth, last + pd.Timedelta(seconds=1))
    later = true_components(funnel.activities, funnel.truth, last + pd.Timedelta(days=half_life))
    assert (early["lead_id"] == later["lead_id"]).all(), "lead order changed with as_of"
    assert (early["true_engagement"] > 0).any(), "no lead has engagement"
    assert (later["true_engagement"] < early["true_engagement"]).where(early["true_engagement"] > 0, True).all(), (
        "engagement did not decay"
    )
    np.testing.assert_allclose(later["true_engagement"], early["true_engagement"] * 0.5, rtol=1e-5,
                               err_msg="one half-life later engagement should halve")


def test_true_components_use_only_events_before_as_of(funnel):
    lead = funnel.activities["lead_id"].iloc[len(funnel.activities) // 2]
    events = funnel.activities[funnel.activities["lead_id"] == lead]
    first = events["timestamp"].iloc[0]
    at_first = true_components(funnel.activities, funnel.truth, first, lead_ids=[lead, "L9999999"])
    assert at_first["lead_id"].tolist() == [lead, "L9999999"], "lead_ids order not kept"
    assert (at_first[["true_engagement", "true_intent"]] == 0).all().all(), "event at as_of (or unknown lead) counted"


def test_mql_marks_the_engagement_threshold_crossing(funnel, stages):
    """At MQL time the true engagement reaches the threshold; just before, it has not."""
    threshold = funnel.truth["mql_engagement_threshold"]
    mql = stages["MQL"].dropna().iloc[:25]
    assert len(mql) > 0, "no MQLs"
    for lead, at in mql.items():
        before = true_components(funnel.activities, funnel.truth, at, lead_ids=[lead])["true_engagement"].iloc[0]
        after = true_components(funnel.activities, funnel.truth, at + pd.Timedelta(seconds=1),
                                lead_ids=[lead])["true_engagement"].iloc[0]
        assert before < threshold <= after * (1 + 1e-6), f"{lead}: E {before:.2f} -> {after:.2f} at MQL"
